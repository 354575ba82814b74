"""One entry point, :func:`load`, that picks the loader from the source's name or contents."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from ncsn._checks import positive_int
from ncsn.data._arrays import load_array
from ncsn.data._cifar import _TEST_BATCHES, _TRAIN_BATCHES, load_cifar10, load_cifar10_batch
from ncsn.data._common import DataError, DatasetNotFoundError, as_path, float_dtype
from ncsn.data._digits import load_digits
from ncsn.data._idx import MNIST_FOLDERS, load_idx, load_mnist
from ncsn.data._images import _PARTITION, CELEBA_CROP, CELEBA_SIZE, load_celeba, load_image_folder
from ncsn.data._mnist import fashion_mnist, mnist
from ncsn.data._toys import TOY_NAMES, toy_dataset

__all__ = ["DATASETS", "load"]

DATASETS = ("digits", "mnist", "fashion-mnist")
"""The named datasets :func:`load` takes: the embedded digits (:func:`load_digits`), and MNIST
and Fashion-MNIST (:func:`mnist`, :func:`fashion_mnist`: found, verified, downloaded on request)."""

_DEFAULT_TOY_SAMPLES = 10_000
_ACCEPTED = (
    f"a dataset name {list(DATASETS)}, a toy name {list(TOY_NAMES)}, a .npy/.npz file, an IDX "
    "file, a CIFAR-10 batch, or a CIFAR-10, MNIST, CelebA or image folder"
)
_DOWNLOADERS = {"mnist": mnist, "fashion-mnist": fashion_mnist}


def _is_cifar_folder(folder: Path) -> bool:
    inner = folder / "cifar-10-batches-py"
    return any((f / n).is_file() for f in (folder, inner) for n in _TRAIN_BATCHES + _TEST_BATCHES)


def _is_mnist_folder(folder: Path) -> bool:
    folders = [folder / name for name in MNIST_FOLDERS]
    return any(f.is_dir() and any(f.glob("*-images?idx3-ubyte*")) for f in folders)


def _is_idx_file(path: Path) -> bool:
    return "-ubyte" in path.name or path.suffix.lower() in (".idx", ".gz")


def _no_extra(source: str, **given: object) -> None:
    for name, value in given.items():
        if value is not None:
            raise ValueError(
                f"{name} does not apply to data source {source!r}; got {name}={value!r}"
            )


def load(
    source: str | Path,
    *,
    split: str | None = None,
    num_samples: int | None = None,
    generator: torch.Generator | None = None,
    crop: int | Sequence[int] | None = None,
    size: int | Sequence[int] | None = None,
    channels: int | None = None,
    download: bool = False,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor | None]:
    """Load a training set from one string: a dataset name, a file, or a folder.

    The loader is chosen in this order (a name given as a string wins over a path; write
    ``./mnist`` or pass a :class:`~pathlib.Path` for a folder called ``mnist``):

    ========================================  =============================================
    ``source``                                loader
    ========================================  =============================================
    ``"digits"``                              :func:`load_digits` (``split`` default train)
    ``"mnist"``, ``"fashion-mnist"``          :func:`mnist`, :func:`fashion_mnist` (``split``
                                              default train; ``download`` applies)
    a name in :data:`TOY_NAMES`               ``toy_dataset(name).sample(num_samples)``
    ``*.npy`` / ``*.npz``                     :func:`load_array`
    ``data_batch_*`` / ``test_batch``         :func:`load_cifar10_batch`
    ``*-ubyte``, ``*.idx``, ``*.gz``          :func:`load_idx` (with the ``labels`` sibling
                                              of an ``images`` file when it exists)
    a folder with CIFAR-10 batches            :func:`load_cifar10` (``split`` default train)
    a folder with MNIST IDX files             :func:`load_mnist` (``split`` default train)
    a folder with ``list_eval_partition.txt`` :func:`load_celeba` (crop 140, size 32 unless given)
    any other folder                          :func:`load_image_folder`
    ========================================  =============================================

    Args:
        source: a name (:data:`DATASETS`, :data:`TOY_NAMES`) or a path.
        split: for sources with splits (digits, MNIST, Fashion-MNIST, CIFAR-10, CelebA);
            ``None`` means ``"train"`` there. An error for other sources.
        num_samples: points to draw from a toy (default 10,000). An error for other sources.
        generator: randomness for a toy. An error for other sources.
        crop: center-crop size for image folders and CelebA.
        size: resize target for image folders and CelebA.
        channels: 1 or 3 for an image folder; ``None`` detects grey folders
            (:func:`load_image_folder`). An error for other sources.
        download: fetch ``"mnist"``/``"fashion-mnist"`` when they are found nowhere
            (:func:`mnist`). An error for other sources, which cannot download.
        dtype: floating dtype of the data.

    Returns:
        ``(x, labels)``: ``x`` ``[N, *event]`` (images ``[N, C, H, W]`` in ``[0, 1]``, toys
        ``[N, 2]``) and int64 ``labels`` ``[N]`` or ``None`` when the source has none.

    Raises:
        FileNotFoundError: ``source`` is neither a name nor an existing path.
        DatasetNotFoundError: ``"mnist"``/``"fashion-mnist"`` found nowhere, without
            ``download``.
        DataError: a file or folder of no recognised kind, or a corrupt one (a
            :class:`ChecksumError` for a dataset file that is not the canonical one).
        DownloadError: ``download=True`` and no mirror gave a right file.
        ValueError: an argument that does not apply to the source, or an unknown ``split``.
        TypeError: a non-bool ``download``.

    Example:
        >>> x, y = ncsn.data.load("digits")
        >>> x.shape
        torch.Size([1500, 1, 8, 8])
        >>> x, _ = ncsn.data.load("moons", num_samples=512, generator=torch.Generator().manual_seed(0))
        >>> x.shape
        torch.Size([512, 2])
    """
    float_dtype(dtype)
    if not isinstance(download, bool):
        raise TypeError(f"download must be a bool; got download={download!r}")
    if isinstance(source, str) and source in _DOWNLOADERS:
        _no_extra(
            source,
            num_samples=num_samples,
            generator=generator,
            crop=crop,
            size=size,
            channels=channels,
        )
        try:
            return _DOWNLOADERS[source](split=split or "train", download=download, dtype=dtype)
        except DatasetNotFoundError as err:
            if not Path(source).exists():
                raise
            raise DatasetNotFoundError(
                f"{err}; to load the folder ./{source} instead of the dataset, pass ./{source}"
            ) from err
    if download:
        raise ValueError(
            f"download applies to {list(_DOWNLOADERS)} only, which ncsn can fetch; got "
            f"download=True for data source {str(source)!r}"
        )
    if isinstance(source, str) and source == "digits":
        _no_extra(
            source,
            num_samples=num_samples,
            generator=generator,
            crop=crop,
            size=size,
            channels=channels,
        )
        return load_digits(split or "train", dtype=dtype)
    if isinstance(source, str) and source in TOY_NAMES:
        _no_extra(source, split=split, crop=crop, size=size, channels=channels)
        n = positive_int(
            _DEFAULT_TOY_SAMPLES if num_samples is None else num_samples, "num_samples"
        )
        points = toy_dataset(source).sample(n, generator=generator)
        return points.to(dtype), None
    _no_extra(str(source), num_samples=num_samples, generator=generator)
    path = as_path(source, "source")
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder (expected {_ACCEPTED})")
    if path.is_dir():
        if _is_cifar_folder(path):
            _no_extra(str(path), crop=crop, size=size, channels=channels)
            return load_cifar10(path, split or "train", dtype=dtype)
        if _is_mnist_folder(path):
            _no_extra(str(path), crop=crop, size=size, channels=channels)
            return load_mnist(path, split or "train", dtype=dtype)
        if (path / _PARTITION).is_file():
            if crop is None and size is None:
                crop, size = CELEBA_CROP, CELEBA_SIZE
            _no_extra(str(path), channels=channels)
            return load_celeba(path, split or "train", crop=crop, size=size, dtype=dtype), None
        _no_extra(str(path), split=split)
        folder = load_image_folder(path, crop=crop, size=size, channels=channels, dtype=dtype)
        return folder, None
    _no_extra(str(path), split=split, crop=crop, size=size, channels=channels)
    if path.suffix.lower() in (".npy", ".npz"):
        return load_array(path, dtype=dtype)
    if path.name in _TRAIN_BATCHES + _TEST_BATCHES:
        return load_cifar10_batch(path, dtype=dtype)
    if _is_idx_file(path):
        labels = path.with_name(path.name.replace("images-idx3", "labels-idx1"))
        has_labels = labels != path and labels.is_file()
        return load_idx(path, labels if has_labels else None, dtype=dtype)
    raise DataError(f"{path}: expected {_ACCEPTED}, got a file of unknown kind")
