"""CIFAR-10 "python version" batches, read with a restricted unpickler."""

from __future__ import annotations

import codecs
import functools
import importlib
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ncsn.data._common import (
    DataError,
    choice,
    existing_dir,
    existing_file,
    float_dtype,
    uint8_to_unit,
)

__all__ = ["load_cifar10", "load_cifar10_batch"]

_EXPECTED = "a CIFAR-10 python batch (a pickled dict with b'data' uint8 [N, 3072] and b'labels')"
_TRAIN_BATCHES = tuple(f"data_batch_{k}" for k in range(1, 6))
_TEST_BATCHES = ("test_batch",)


def _numpy_attr(modules: tuple[str, ...], name: str) -> Any:
    # numpy 2 moved numpy.core to numpy._core; importing the old name there warns.
    for module in modules:
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"numpy provides none of {[f'{m}.{name}' for m in modules]}")


@functools.lru_cache(maxsize=1)
def _allowed_globals() -> dict[tuple[str, str], Any]:
    reconstruct = _numpy_attr(("numpy._core.multiarray", "numpy.core.multiarray"), "_reconstruct")
    frombuffer = _numpy_attr(("numpy._core.numeric", "numpy.core.numeric"), "_frombuffer")
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,  # how protocol-2 pickles from Python 3 store bytes
    }
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = reconstruct
        allowed[(f"{package}.numeric", "_frombuffer")] = frombuffer
    for builtins in ("builtins", "__builtin__"):
        for kind in (dict, list, tuple, bytes, bytearray, str, int):
            allowed[(builtins, kind.__name__)] = kind
    return allowed


class _BatchUnpickler(pickle.Unpickler):
    """Resolves only plain containers and numpy array reconstruction; any other global is refused.

    The official batches are Python 2 pickles holding a dict of byte strings, a list of ints and
    one numpy uint8 array, so nothing else is needed, and a hostile file cannot run code.
    """

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _allowed_globals()[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused global {module}.{name}") from None


def _get(batch: dict[Any, Any], key: str) -> Any:
    for candidate in (key.encode(), key):
        if candidate in batch:
            return batch[candidate]
    return None


def _read_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    p = existing_file(path, _EXPECTED)
    try:
        batch = _BatchUnpickler(io.BytesIO(p.read_bytes()), encoding="bytes").load()
    except Exception as err:  # any failure of a corrupt or hostile pickle is a data error
        raise DataError(f"{p}: expected {_EXPECTED}, got an unreadable pickle ({err})") from err
    if not isinstance(batch, dict):
        raise DataError(f"{p}: expected {_EXPECTED}, got a pickled {type(batch).__name__}")
    data, labels = _get(batch, "data"), _get(batch, "labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        got = (
            f"{data.dtype} {list(data.shape)}" if isinstance(data, np.ndarray) else repr(type(data))
        )
        raise DataError(f"{p}: expected {_EXPECTED}, got b'data' {got}")
    if data.shape[1] != 3 * 32 * 32:
        raise DataError(f"{p}: expected {_EXPECTED}, got b'data' of shape {list(data.shape)}")
    try:
        targets = np.asarray(labels)
    except (TypeError, ValueError):
        targets = np.asarray(None)
    if targets.dtype.kind not in "iu" or targets.shape != (len(data),):
        raise DataError(
            f"{p}: expected {_EXPECTED} with {len(data)} integer labels, got b'labels' {labels!r:.60}"
        )
    if len(targets) and (targets.min() < 0 or targets.max() > 9):
        raise DataError(
            f"{p}: expected {_EXPECTED} with labels in 0..9, got {targets.min()}..{targets.max()}"
        )
    return data.reshape(-1, 3, 32, 32), targets.astype(np.int64)


def load_cifar10_batch(
    path: str | Path, *, dtype: torch.dtype = torch.float32
) -> tuple[Tensor, Tensor]:
    """Load one CIFAR-10 python batch (``data_batch_1`` … ``data_batch_5``, ``test_batch``).

    The batches are pickles. They are read with a restricted unpickler that resolves only
    containers and numpy's array reconstruction, so a tampered file raises :class:`DataError`
    instead of running code.

    Args:
        path: the batch file.
        dtype: floating dtype of the images.

    Returns:
        ``(x, labels)``: ``x`` ``[N, 3, 32, 32]`` = pixels / 255 and int64 ``labels`` ``[N]``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        DataError: not a CIFAR-10 batch, or corrupt.

    Example:
        >>> import pickle, tempfile
        >>> import numpy as np
        >>> from pathlib import Path
        >>> batch = {b"data": np.zeros((2, 3 * 32 * 32), np.uint8), b"labels": [3, 8]}  # 2 images
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     _ = Path(tmp, "test_batch").write_bytes(pickle.dumps(batch))
        ...     x, y = ncsn.data.load_cifar10_batch(Path(tmp, "test_batch"))
        >>> x.shape, y.tolist()
        (torch.Size([2, 3, 32, 32]), [3, 8])
    """
    float_dtype(dtype)
    data, labels = _read_batch(path)
    return uint8_to_unit(data, dtype), torch.from_numpy(labels)


def load_cifar10(
    root: str | Path, split: str = "train", *, dtype: torch.dtype = torch.float32
) -> tuple[Tensor, Tensor]:
    """Load CIFAR-10 from the "python version" batches (``cifar-10-python.tar.gz``, extracted).

    ``root`` is the ``cifar-10-batches-py`` folder or the folder containing it. Split ``"train"``
    reads ``data_batch_1`` … ``data_batch_5`` (50,000 images), ``"test"`` reads ``test_batch``
    (10,000), ``"all"`` both, in that order. Nothing downloads.

    Args:
        root: the folder.
        split: ``"train"``, ``"test"`` or ``"all"``.
        dtype: floating dtype of the images.

    Returns:
        ``(x, labels)``: ``x`` ``[N, 3, 32, 32]`` in ``[0, 1]`` and int64 ``labels`` ``[N]``.

    Raises:
        FileNotFoundError: ``root`` or one of the batches is missing.
        DataError: a batch is not a valid CIFAR-10 batch.
        ValueError: an unknown ``split``.

    Example:
        >>> x, y = ncsn.data.load_cifar10("~/data/cifar-10-batches-py")  # doctest: +SKIP
        >>> x.shape, y.shape  # doctest: +SKIP
        (torch.Size([50000, 3, 32, 32]), torch.Size([50000]))
    """
    choice(split, "split", ("train", "test", "all"))
    float_dtype(dtype)
    folder = existing_dir(root, "CIFAR-10 python batches")
    if (folder / "cifar-10-batches-py").is_dir():
        folder = folder / "cifar-10-batches-py"
    names = {"train": _TRAIN_BATCHES, "test": _TEST_BATCHES}.get(
        split, _TRAIN_BATCHES + _TEST_BATCHES
    )
    for name in names:
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name}: no such file (expected {_EXPECTED})")
    batches = [_read_batch(folder / name) for name in names]
    data = np.concatenate([d for d, _ in batches])
    labels = np.concatenate([y for _, y in batches])
    return uint8_to_unit(data, dtype), torch.from_numpy(labels)
