"""The embedded UCI optical-recognition 8×8 digits (1,797 images; nothing downloads)."""

from __future__ import annotations

import functools
import io
from importlib import resources

import numpy as np
import torch
from torch import Tensor

from ncsn.data._common import DataError, choice, float_dtype

__all__ = ["DIGITS_NUM_TRAIN", "load_digits"]

DIGITS_NUM_TRAIN = 1500
"""The first 1,500 embedded digits form the train split; the last 297 form the test split."""

_SPLITS = ("train", "test", "all")


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    resource = resources.files("ncsn._embedded").joinpath("digits.npz")
    with resource.open("rb") as fh, np.load(io.BytesIO(fh.read()), allow_pickle=False) as z:
        images, labels = z["images"], z["labels"]
    if images.shape != (1797, 8, 8) or labels.shape != (1797,) or images.max() > 16:
        raise DataError(
            f"{resource}: expected uint8 images [1797, 8, 8] in 0..16 and labels [1797]; "
            f"got {images.shape} and {labels.shape} (the installed package is damaged)"
        )
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def load_digits(
    split: str = "train", *, dtype: torch.dtype = torch.float32
) -> tuple[Tensor, Tensor]:
    """The UCI optical-recognition handwritten digits, 8×8 pixels, shipped inside ``ncsn``.

    1,797 images (the UCI test set, as distributed with scikit-learn) with 17 grey levels: each
    pixel counts the "on" bits of a 4×4 block of a 32×32 bitmap (0..16) and is returned as
    ``value / 16``. The split is fixed and needs no seed: ``"train"`` is the first 1,500 images in
    the distributed order, ``"test"`` the last 297 (every digit has 146..153 train and 27..33 test
    examples); ``"all"`` is all 1,797.

    Data: Alpaydin & Kaynak (1998), UCI Machine Learning Repository, CC BY 4.0
    (``ncsn/_embedded/digits_LICENSE.txt``).

    Args:
        split: ``"train"``, ``"test"`` or ``"all"``.
        dtype: floating dtype of the images.

    Returns:
        ``(images, labels)``: images ``[N, 1, 8, 8]`` in ``[0, 1]`` of ``dtype`` and int64 labels
        ``[N]`` in ``0..9``, fresh tensors on the CPU (N = 1500, 297 or 1797).

    Raises:
        ValueError: an unknown ``split``.
        TypeError: ``dtype`` is not floating.

    Example:
        >>> x, y = ncsn.data.load_digits("train")
        >>> x.shape, y.shape
        (torch.Size([1500, 1, 8, 8]), torch.Size([1500]))
    """
    choice(split, "split", _SPLITS)
    float_dtype(dtype)
    images, labels = _digits_arrays()
    part = {"train": slice(0, DIGITS_NUM_TRAIN), "test": slice(DIGITS_NUM_TRAIN, None)}
    rows = part.get(split, slice(None))
    x = torch.from_numpy(images[rows].copy()).to(dtype).div_(16.0).unsqueeze(1)
    y = torch.from_numpy(labels[rows].astype(np.int64))
    return x, y
