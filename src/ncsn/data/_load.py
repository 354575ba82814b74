"""One entry point, :func:`load`, that picks the loader from the source's name or contents."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from ncsn._checks import positive_int
from ncsn.data._arrays import load_array
from ncsn.data._cifar import _TEST_BATCHES, _TRAIN_BATCHES, load_cifar10, load_cifar10_batch
from ncsn.data._common import DataError, as_path, float_dtype
from ncsn.data._digits import load_digits
from ncsn.data._idx import load_idx, load_mnist
from ncsn.data._images import _PARTITION, CELEBA_CROP, CELEBA_SIZE, load_celeba, load_image_folder
from ncsn.data._toys import TOY_NAMES, toy_dataset

__all__ = ["load"]

_DEFAULT_TOY_SAMPLES = 10_000
_ACCEPTED = (
    f"'digits', a toy name {list(TOY_NAMES)}, a .npy/.npz file, an IDX file, a CIFAR-10 batch, "
    "or a CIFAR-10, MNIST, CelebA or image folder"
)


def _is_cifar_folder(folder: Path) -> bool:
    inner = folder / "cifar-10-batches-py"
    return any((f / n).is_file() for f in (folder, inner) for n in _TRAIN_BATCHES + _TEST_BATCHES)


def _is_mnist_folder(folder: Path) -> bool:
    folders = (folder, folder / "raw", folder / "MNIST" / "raw")
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
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor | None]:
    """Load a training set from one string: a built-in name, a file, or a folder.

    The loader is chosen in this order (a name given as a string wins over a path; write
    ``./digits`` or pass a :class:`~pathlib.Path` for a folder called ``digits``):

    ========================================  =============================================
    ``source``                                loader
    ========================================  =============================================
    ``"digits"``                              :func:`load_digits` (``split`` default train)
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
        source: a name or a path.
        split: for sources with splits (digits, CIFAR-10, MNIST, CelebA); ``None`` means
            ``"train"`` there. An error for other sources.
        num_samples: points to draw from a toy (default 10,000). An error for other sources.
        generator: randomness for a toy. An error for other sources.
        crop: center-crop size for image folders and CelebA.
        size: resize target for image folders and CelebA.
        dtype: floating dtype of the data.

    Returns:
        ``(x, labels)``: ``x`` ``[N, *event]`` (images ``[N, C, H, W]`` in ``[0, 1]``, toys
        ``[N, 2]``) and int64 ``labels`` ``[N]`` or ``None`` when the source has none.

    Raises:
        FileNotFoundError: ``source`` is neither a name nor an existing path.
        DataError: a file or folder of no recognised kind, or a corrupt one.
        ValueError: an argument that does not apply to the source, or an unknown ``split``.

    Example:
        >>> x, y = ncsn.data.load("digits")
        >>> x.shape
        torch.Size([1500, 1, 8, 8])
        >>> x, _ = ncsn.data.load("moons", num_samples=512, generator=torch.Generator().manual_seed(0))
        >>> x.shape
        torch.Size([512, 2])
    """
    float_dtype(dtype)
    if isinstance(source, str) and source == "digits":
        _no_extra(source, num_samples=num_samples, generator=generator, crop=crop, size=size)
        return load_digits(split or "train", dtype=dtype)
    if isinstance(source, str) and source in TOY_NAMES:
        _no_extra(source, split=split, crop=crop, size=size)
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
            _no_extra(str(path), crop=crop, size=size)
            return load_cifar10(path, split or "train", dtype=dtype)
        if _is_mnist_folder(path):
            _no_extra(str(path), crop=crop, size=size)
            return load_mnist(path, split or "train", dtype=dtype)
        if (path / _PARTITION).is_file():
            if crop is None and size is None:
                crop, size = CELEBA_CROP, CELEBA_SIZE
            return load_celeba(path, split or "train", crop=crop, size=size, dtype=dtype), None
        _no_extra(str(path), split=split)
        return load_image_folder(path, crop=crop, size=size, dtype=dtype), None
    _no_extra(str(path), split=split, crop=crop, size=size)
    if path.suffix.lower() in (".npy", ".npz"):
        return load_array(path, dtype=dtype)
    if path.name in _TRAIN_BATCHES + _TEST_BATCHES:
        return load_cifar10_batch(path, dtype=dtype)
    if _is_idx_file(path):
        labels = path.with_name(path.name.replace("images-idx3", "labels-idx1"))
        has_labels = labels != path and labels.is_file()
        return load_idx(path, labels if has_labels else None, dtype=dtype)
    raise DataError(f"{path}: expected {_ACCEPTED}, got a file of unknown kind")
