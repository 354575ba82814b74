"""numpy ``.npy`` / ``.npz`` arrays (never unpickled)."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ncsn.data._common import DataError, existing_file, float_dtype, uint8_to_unit

__all__ = ["load_array"]

_IMAGE_KEYS = ("x", "images", "data")
_LABEL_KEYS = ("y", "labels", "targets")


def _convert(array: np.ndarray, where: str, channels_last: bool, dtype: torch.dtype) -> Tensor:
    if array.ndim < 1:
        raise DataError(f"{where}: expected an array [N, *event], got a 0-d array")
    if channels_last:
        if array.ndim < 3:
            raise DataError(
                f"{where}: expected [N, H, W, C] for channels_last=True, got {list(array.shape)}"
            )
        array = np.moveaxis(array, -1, 1)
    if array.dtype == np.uint8:
        return uint8_to_unit(array, dtype)
    if array.dtype.kind != "f":
        raise DataError(
            f"{where}: expected uint8 pixels or floating values, got dtype {array.dtype}"
        )
    if not np.isfinite(array).all():
        raise DataError(f"{where}: expected finite values, got NaN or infinity")
    return torch.from_numpy(np.ascontiguousarray(array)).to(dtype)


def _from_npz(npz: Any, p: Path, key: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    with npz:
        names = list(npz.files)
        name = key or next((k for k in _IMAGE_KEYS if k in names), None)
        if name is None and len(names) == 1:
            name = names[0]
        if name is None or name not in names:
            raise DataError(
                f"{p}: expected an array named {key or ' or '.join(_IMAGE_KEYS)} "
                f"(or a single array), got arrays {names}"
            )
        label_name = next((k for k in _LABEL_KEYS if k in names and k != name), None)
        return npz[name], None if label_name is None else npz[label_name]


def load_array(
    path: str | Path,
    *,
    key: str | None = None,
    channels_last: bool = False,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor | None]:
    """Load data from a numpy ``.npy`` or ``.npz`` file (``allow_pickle=False``: nothing executes).

    A ``.npy`` file holds the data. In a ``.npz`` file the data is the array named ``key``, else
    the first of ``x``, ``images``, ``data`` present, else the only array; labels, when present,
    are the first of ``y``, ``labels``, ``targets``. ``uint8`` data is scaled by 1/255; floating
    data is returned unchanged (images should already be in ``[0, 1]``; vectors may have any
    range).

    Args:
        path: the ``.npy``/``.npz`` file.
        key: name of the data array in a ``.npz`` file.
        channels_last: the data is ``[N, H, W, C]``; return ``[N, C, H, W]``.
        dtype: floating dtype of the result.

    Returns:
        ``(x, labels)``: ``x`` ``[N, *event]`` and int64 ``labels`` ``[N]`` or ``None``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        DataError: not a numpy file, corrupt, an object (pickled) array, a missing key, a dtype
            other than uint8/floating, non-finite values, or labels that do not match.

    Example:
        >>> import tempfile
        >>> import numpy as np
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     np.savez(f"{tmp}/points.npz", x=np.zeros((5, 2), np.float32), y=np.arange(5))
        ...     x, y = ncsn.data.load_array(f"{tmp}/points.npz")
        ...     np.save(f"{tmp}/images.npy", np.full((4, 8, 8, 3), 255, np.uint8))
        ...     images, _ = ncsn.data.load_array(f"{tmp}/images.npy", channels_last=True)
        >>> x.shape, y.tolist()
        (torch.Size([5, 2]), [0, 1, 2, 3, 4])
        >>> images.shape, images.max().item()  # uint8 scaled by 1/255, [N, C, H, W]
        (torch.Size([4, 3, 8, 8]), 1.0)
    """
    float_dtype(dtype)
    p = existing_file(path, "a numpy .npy or .npz file")
    if p.suffix.lower() not in (".npy", ".npz"):
        raise DataError(f"{p}: expected a numpy file ending in .npy or .npz, got {p.suffix!r}")
    if key is not None and p.suffix.lower() == ".npy":
        raise ValueError(f"key applies to .npz files only; got key={key!r} for {p}")
    labels: np.ndarray | None = None
    # Opened here so that a corrupt file is closed even when numpy fails half way.
    with p.open("rb") as fh:
        try:
            loaded = np.load(fh, allow_pickle=False)
            if isinstance(loaded, np.ndarray):
                array = loaded
            else:  # an NpzFile, read lazily from fh
                array, labels = _from_npz(loaded, p, key)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
            if isinstance(err, DataError):
                raise
            raise DataError(
                f"{p}: expected a valid numpy {p.suffix} file, got an error ({err})"
            ) from err
    x = _convert(array, str(p), channels_last, dtype)
    if labels is None:
        return x, None
    if labels.dtype.kind not in "iu" or labels.shape != (len(x),):
        raise DataError(
            f"{p}: expected integer labels [{len(x)}] beside the data, "
            f"got {labels.dtype} {list(labels.shape)}"
        )
    return x, torch.from_numpy(labels.astype(np.int64))
