"""Datasets and transforms for training score models.

* Embedded: :func:`load_digits`, the UCI 8×8 handwritten digits (1,797 images, fixed split), and
  2-D toys (:func:`toy_dataset`: the paper's mixture, :class:`Rings`, :class:`Moons`,
  :class:`Checkerboard`, :class:`SwissRoll`).
* MNIST and Fashion-MNIST at 28×28: :func:`mnist` and :func:`fashion_mnist` find the canonical
  files (``root``, ``$NCSN_DATA``, the user cache, ``/usr/share/datasets``), verify their
  checksums, and download them from :data:`MIRRORS` only when asked (``download=True``).
* Files you already have: :func:`load_mnist` / :func:`load_idx` / :func:`read_idx` (IDX, raw or
  gzip), :func:`load_cifar10` / :func:`load_cifar10_batch` (python batches, restricted
  unpickling), :func:`load_image_folder` / :func:`load_celeba` (PNG/JPEG via pillow, center-crop
  and resize), :func:`load_array` (``.npy``/``.npz``). :func:`load` picks one from a string.
* The official pipeline's transforms: :func:`to_unit_range`, :func:`dequantize`,
  :func:`random_flip`, :func:`logit_transform` and its exact inverse, composed in
  :class:`ImageTransform` (over a source's :func:`grey_levels`).

Images are ``[N, C, H, W]`` floats in ``[0, 1]`` (σ is measured in these units). A missing path
raises :class:`FileNotFoundError`; a file of the wrong kind or a corrupt one raises
:class:`DataError` (a :class:`ValueError`) with a one-line message naming the path, what was
expected and what was found.

Example:
    >>> x, y = ncsn.data.load_digits("train")               # [1500, 1, 8, 8], [1500]
    >>> g = torch.Generator().manual_seed(0)
    >>> batch = ncsn.data.dequantize(x[:128], levels=17, generator=g)
"""

from ncsn.data._arrays import load_array
from ncsn.data._cifar import load_cifar10, load_cifar10_batch
from ncsn.data._common import ChecksumError, DataError, DatasetNotFoundError, DownloadError
from ncsn.data._digits import DIGITS_NUM_TRAIN, load_digits
from ncsn.data._idx import load_idx, load_mnist, read_idx
from ncsn.data._images import CELEBA_CROP, CELEBA_SIZE, load_celeba, load_image_folder
from ncsn.data._load import DATASETS, load
from ncsn.data._mnist import MIRRORS, fashion_mnist, mnist
from ncsn.data._toys import (
    TOY_NAMES,
    Checkerboard,
    Moons,
    Rings,
    SwissRoll,
    ToySampler,
    toy_dataset,
)
from ncsn.data._transforms import (
    ImageTransform,
    dequantize,
    grey_levels,
    inverse_logit_transform,
    logit_transform,
    random_flip,
    to_unit_range,
)

__all__ = [
    "CELEBA_CROP",
    "CELEBA_SIZE",
    "DATASETS",
    "DIGITS_NUM_TRAIN",
    "MIRRORS",
    "TOY_NAMES",
    "Checkerboard",
    "ChecksumError",
    "DataError",
    "DatasetNotFoundError",
    "DownloadError",
    "ImageTransform",
    "Moons",
    "Rings",
    "SwissRoll",
    "ToySampler",
    "dequantize",
    "fashion_mnist",
    "grey_levels",
    "inverse_logit_transform",
    "load",
    "load_array",
    "load_celeba",
    "load_cifar10",
    "load_cifar10_batch",
    "load_digits",
    "load_idx",
    "load_image_folder",
    "load_mnist",
    "logit_transform",
    "mnist",
    "random_flip",
    "read_idx",
    "to_unit_range",
    "toy_dataset",
]
