"""Shared pieces of :mod:`ncsn.data`: the error type and small argument checks (private)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["ChecksumError", "DataError", "DatasetNotFoundError", "DownloadError"]


class DataError(ValueError):
    """A data file or folder exists but is not what the loader expected (wrong format, corrupt).

    The message is one line: the path, what was expected there, and what was found. A path that
    does not exist raises :class:`FileNotFoundError` instead; bad arguments raise
    :class:`ValueError`/:class:`TypeError` as everywhere else in ``ncsn``.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = Path(tmp, "notes.txt")
        ...     _ = path.write_text("hello")
        ...     try:
        ...         ncsn.data.read_idx(path)
        ...     except ncsn.data.DataError as err:
        ...         print(err)
        /.../notes.txt: expected an IDX file (magic 00 00 <type> <ndim>), got magic 68 65 6c 6c
    """


class ChecksumError(DataError):
    """A dataset file is not the canonical one: its checksum differs (a truncated download, a
    damaged copy or another file under the canonical name).

    The message is one line: the file, the expected checksum and the one found, and what to do.

    Example:
        >>> err = ncsn.data.ChecksumError("mnist/t10k-labels-idx1-ubyte.gz: expected MD5 ...")
        >>> isinstance(err, ncsn.data.DataError) and isinstance(err, ValueError)
        True
    """


class DatasetNotFoundError(FileNotFoundError):
    """A named dataset's files are in none of the folders searched, and ``download`` was off.

    The message is one line: the files, every folder searched, and the two ways to get them
    (``download=True``, or a folder holding the files passed as ``root``).

    Example:
        >>> issubclass(ncsn.data.DatasetNotFoundError, FileNotFoundError)
        True
    """


class DownloadError(ConnectionError):
    """A file could be fetched from none of its mirrors (offline, refused, HTTP errors, or a
    served file whose checksum is wrong).

    The message is one line: each URL tried with its failure, and the remedy (put the files in a
    folder and pass it as ``root``). Files written so far stay: a partial one as ``<name>.part``,
    which the next ``download=True`` resumes.

    Example:
        >>> issubclass(ncsn.data.DownloadError, OSError)
        True
    """


def float_dtype(dtype: torch.dtype) -> torch.dtype:
    """``dtype`` must be a floating torch dtype."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype; got dtype={dtype!r}")
    return dtype


def choice(value: str, name: str, allowed: Sequence[str]) -> str:
    """``value`` must be one of ``allowed``."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}; got {name}={value!r}")
    return value


def as_path(path: str | Path, name: str = "path") -> Path:
    """A :class:`~pathlib.Path` from a string or path (``~`` expanded)."""
    if not isinstance(path, (str, Path)):
        raise TypeError(f"{name} must be a str or pathlib.Path; got {path!r}")
    return Path(path).expanduser()


def existing_file(path: str | Path, what: str, name: str = "path") -> Path:
    """``path`` must be an existing regular file; ``what`` names the expected content."""
    p = as_path(path, name)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file (expected {what})")
    if not p.is_file():
        raise DataError(f"{p}: expected {what}, got a folder or special file")
    return p


def existing_dir(path: str | Path, what: str, name: str = "root") -> Path:
    """``path`` must be an existing folder; ``what`` names the expected content."""
    p = as_path(path, name)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such folder (expected {what})")
    if not p.is_dir():
        raise DataError(f"{p}: expected a folder holding {what}, got a file")
    return p


def uint8_to_unit(array: np.ndarray, dtype: torch.dtype) -> Tensor:
    """``uint8`` array → float tensor in [0, 1] (value / 255), as torchvision's ``ToTensor``."""
    return torch.from_numpy(np.ascontiguousarray(array)).to(dtype).div_(255.0)
