"""MNIST-style IDX files (raw or gzip-compressed)."""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ncsn.data._common import (
    DataError,
    as_path,
    choice,
    existing_dir,
    existing_file,
    float_dtype,
    uint8_to_unit,
)

__all__ = ["load_idx", "load_mnist", "read_idx"]

# IDX type byte → big-endian numpy dtype (LeCun's format description).
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"
_EXPECTED = "an IDX file (magic 00 00 <type> <ndim>)"


def _read_maybe_gzip(path: Path, what: str) -> bytes:
    return decompress_if_gzip(path.read_bytes(), path, what)


def decompress_if_gzip(raw: bytes, path: Path, what: str) -> bytes:
    """``raw`` itself, or its gzip decompression when it starts with the gzip magic."""
    if raw[:2] != _GZIP_MAGIC:
        if path.suffix.lower() == ".gz":
            raise DataError(f"{path}: expected gzip-compressed {what}, got no gzip header")
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(
            f"{path}: expected gzip-compressed {what}, got a corrupt gzip stream ({err})"
        ) from err


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (raw, or gzip-compressed; detected from its first bytes).

    The format: two zero bytes, a type byte (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), the number of dimensions, each dimension as a big-endian uint32,
    then the values in C order, big-endian. The header must describe the data exactly: a
    truncated file or trailing bytes are errors.

    Args:
        path: the file, e.g. ``train-images-idx3-ubyte`` or ``train-images-idx3-ubyte.gz``.

    Returns:
        A numpy array of the stored shape, in native byte order.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        DataError: not an IDX file, a corrupt gzip stream, or a size that disagrees with the header.

    Example:
        >>> import gzip, tempfile
        >>> from pathlib import Path
        >>> header = bytes([0, 0, 0x08, 1]) + (3).to_bytes(4, "big")  # uint8, one dimension of 3
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = Path(tmp, "labels-idx1-ubyte.gz")
        ...     _ = path.write_bytes(gzip.compress(header + bytes([7, 2, 1])))
        ...     ncsn.data.read_idx(path)
        array([7, 2, 1], dtype=uint8)
    """
    p = existing_file(path, _EXPECTED)
    return parse_idx(_read_maybe_gzip(p, _EXPECTED), p)


def parse_idx(data: bytes, p: Path) -> np.ndarray:
    """The array held by the (decompressed) IDX bytes ``data`` of file ``p`` (named in errors)."""
    if len(data) < 4:
        raise DataError(f"{p}: expected {_EXPECTED}, got only {len(data)} bytes")
    type_code, ndim = data[2], data[3]
    if data[:2] != b"\x00\x00" or type_code not in _IDX_TYPES or ndim == 0:
        raise DataError(f"{p}: expected {_EXPECTED}, got magic {data[:4].hex(' ')}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{p}: expected {ndim} dimension sizes after the magic, file is truncated")
    dims = tuple(int.from_bytes(data[4 + 4 * k : 8 + 4 * k], "big") for k in range(ndim))
    dtype = np.dtype(_IDX_TYPES[type_code])
    expected = math.prod(dims) * dtype.itemsize
    if len(data) - header != expected:
        raise DataError(
            f"{p}: expected {expected} data bytes for IDX shape {list(dims)} and type "
            f"{dtype.name}, got {len(data) - header} (truncated or trailing bytes)"
        )
    return (
        np.frombuffer(data, dtype=dtype, offset=header)
        .reshape(dims)
        .astype(dtype.newbyteorder("="))
    )


def load_idx(
    images: str | Path, labels: str | Path | None = None, *, dtype: torch.dtype = torch.float32
) -> tuple[Tensor, Tensor | None]:
    """Load an IDX image file (and optionally its label file) as ``[N, 1, H, W]`` in ``[0, 1]``.

    Args:
        images: IDX file of uint8 images ``[N, H, W]`` (raw or ``.gz``).
        labels: optional IDX file of integer labels ``[N]``.
        dtype: floating dtype of the images.

    Returns:
        ``(x, labels)``: ``x`` ``[N, 1, H, W]`` = pixels / 255; ``labels`` int64 ``[N]`` or ``None``.

    Raises:
        FileNotFoundError: a file does not exist.
        DataError: a file is not IDX, is corrupt, the images are not uint8 ``[N, H, W]``, the labels
            not integer ``[N]``, or the counts differ.

    Example:
        >>> import tempfile
        >>> import numpy as np
        >>> from pathlib import Path
        >>> images = bytes([0, 0, 0x08, 3]) + np.array([2, 4, 4], ">u4").tobytes() + bytes(2 * 4 * 4)
        >>> labels = bytes([0, 0, 0x08, 1]) + np.array([2], ">u4").tobytes() + bytes([5, 0])
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     _ = Path(tmp, "images-idx3-ubyte").write_bytes(images)  # 2 black 4×4 images
        ...     _ = Path(tmp, "labels-idx1-ubyte").write_bytes(labels)
        ...     x, y = ncsn.data.load_idx(Path(tmp, "images-idx3-ubyte"), Path(tmp, "labels-idx1-ubyte"))
        >>> x.shape, y.tolist()
        (torch.Size([2, 1, 4, 4]), [5, 0])
    """
    float_dtype(dtype)
    x = idx_images(read_idx(images), as_path(images), dtype)
    if labels is None:
        return x, None
    return x, idx_labels(read_idx(labels), len(x), as_path(labels), as_path(images))


def idx_images(pixels: np.ndarray, path: Path, dtype: torch.dtype) -> Tensor:
    """IDX uint8 images ``[N, H, W]`` read from ``path`` → ``[N, 1, H, W]`` in ``[0, 1]``."""
    if pixels.dtype != np.uint8 or pixels.ndim != 3:
        raise DataError(
            f"{path}: expected IDX uint8 images [N, H, W], got {pixels.dtype} {list(pixels.shape)}"
        )
    return uint8_to_unit(pixels[:, None], dtype)


def idx_labels(values: np.ndarray, count: int, path: Path, images: Path) -> Tensor:
    """IDX integer labels ``[count]`` read from ``path`` (for ``images``) → int64 ``[count]``."""
    if values.dtype.kind not in "iu" or values.shape != (count,):
        raise DataError(
            f"{path}: expected IDX integer labels [{count}] to match {images}, "
            f"got {values.dtype} {list(values.shape)}"
        )
    return torch.from_numpy(values.astype(np.int64))


_MNIST_PREFIX = {"train": "train", "test": "t10k"}


MNIST_FOLDERS = ("", "raw", "MNIST/raw", "FashionMNIST/raw")


def find_idx_file(root: Path, prefix: str, kind: str) -> Path | None:
    """``<prefix>-<kind>`` (or with ``.idx``), raw or ``.gz``, in ``root`` or its torchvision
    sub-folders; raw first. ``None`` when there is none."""
    names = [f"{prefix}-{kind}", f"{prefix}-{kind.replace('-idx', '.idx')}"]
    for folder in MNIST_FOLDERS:
        for name in names:
            for suffix in ("", ".gz"):
                candidate = root / folder / (name + suffix)
                if candidate.is_file():
                    return candidate
    return None


def _find_mnist_file(root: Path, prefix: str, kind: str) -> Path:
    found = find_idx_file(root, prefix, kind)
    if found is None:
        raise FileNotFoundError(
            f"{root}: no {prefix}-{kind}[.gz] (expected MNIST IDX files here, in raw/, "
            "MNIST/raw/ or FashionMNIST/raw/)"
        )
    return found


def load_mnist(
    root: str | Path, split: str = "train", *, dtype: torch.dtype = torch.float32
) -> tuple[Tensor, Tensor]:
    """Load MNIST (or Fashion-MNIST, which uses the same names) from its four IDX files.

    Looks for ``train-images-idx3-ubyte`` / ``train-labels-idx1-ubyte`` (split ``"train"``) and
    ``t10k-images-idx3-ubyte`` / ``t10k-labels-idx1-ubyte`` (split ``"test"``), raw or ``.gz``,
    in ``root``, ``root/raw``, ``root/MNIST/raw`` or ``root/FashionMNIST/raw`` (torchvision's
    layouts). Nothing downloads and nothing is verified: :func:`mnist` and :func:`fashion_mnist`
    find, verify and download the canonical files.

    Args:
        root: the folder holding the files.
        split: ``"train"``, ``"test"`` or ``"all"`` (train then test).
        dtype: floating dtype of the images.

    Returns:
        ``(x, labels)``: ``x`` ``[N, 1, 28, 28]`` in ``[0, 1]`` and int64 ``labels`` ``[N]``.

    Raises:
        FileNotFoundError: ``root`` or one of the files is missing.
        DataError: a file is not a valid IDX file of the expected kind.
        ValueError: an unknown ``split``.

    Example:
        >>> x, y = ncsn.data.load_mnist("~/data/mnist", "test")  # doctest: +SKIP
        >>> x.shape, y.shape  # doctest: +SKIP
        (torch.Size([10000, 1, 28, 28]), torch.Size([10000]))
    """
    choice(split, "split", ("train", "test", "all"))
    folder = existing_dir(root, "MNIST IDX files")
    parts = []
    for part in ("train", "test") if split == "all" else (split,):
        prefix = _MNIST_PREFIX[part]
        images = _find_mnist_file(folder, prefix, "images-idx3-ubyte")
        labels = _find_mnist_file(folder, prefix, "labels-idx1-ubyte")
        x = idx_images(read_idx(images), images, dtype)
        parts.append((x, idx_labels(read_idx(labels), len(x), labels, images)))
    return torch.cat([x for x, _ in parts]), torch.cat([y for _, y in parts])
