"""Folders of PNG/JPEG images (pillow), with the official center-crop and resize; CelebA."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ncsn.data._common import DataError, choice, existing_dir, float_dtype, uint8_to_unit

__all__ = ["CELEBA_CROP", "CELEBA_SIZE", "load_celeba", "load_image_folder"]

CELEBA_CROP = 140
"""The official CelebA preprocessing: center-crop 140×140 pixels of the aligned 178×218 images …"""
CELEBA_SIZE = 32
"""… then resize to 32×32 (bilinear), as ``CenterCrop(140)`` → ``Resize(32)`` in the official code."""

_SUFFIXES = (".png", ".jpg", ".jpeg")
_CHANNELS = (1, 3)
# Pillow's modes of one grey channel, and those of 16-bit grey PNGs (I;16, or I in older Pillow
# versions): these are scaled by 65535 (converting them to L clips every value above 255 to white).
# Pillow itself reads 16-bit RGB PNGs as 8-bit RGB.
_GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N")
_WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")
_BILINEAR = getattr(Image, "Resampling", Image).BILINEAR
_PARTITION = "list_eval_partition.txt"
_CELEBA_SPLITS = {"train": "0", "valid": "1", "test": "2"}


def _pair(value: int | Sequence[int] | None, name: str) -> tuple[int, int] | None:
    if value is None:
        return None
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair):
        raise TypeError(
            f"{name} must be an int or a (height, width) pair of ints; got {name}={value!r}"
        )
    if min(pair) < 1:
        raise ValueError(f"{name} must be positive; got {name}={value!r}")
    return pair[0], pair[1]


def _open(path: Path, channels: int | None) -> Image.Image:
    """The decoded image: ``F`` for 16-bit grey, else ``L`` or ``RGB`` (as ``channels`` asks,
    or as the file is when ``channels`` is ``None``)."""
    try:
        with Image.open(path) as img:
            if img.mode in _WIDE_MODES:
                return img.convert("F")
            if channels == 1 or (channels is None and img.mode in _GREY_MODES):
                return img.convert("L")  # decodes the whole file, so truncation shows up here
            return img.convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise DataError(
            f"{path}: refused as a possible decompression bomb ({err}); if the image is genuine, "
            "raise PIL.Image.MAX_IMAGE_PIXELS"
        ) from err
    except (OSError, ValueError, SyntaxError) as err:
        raise DataError(
            f"{path}: expected a readable PNG or JPEG image, got an error ({err})"
        ) from err


def _read_image(
    path: Path,
    channels: int | None,
    crop: tuple[int, int] | None,
    size: tuple[int, int] | None,
) -> np.ndarray:
    """``[C, H, W]``: uint8, or uint16 for a 16-bit image; C is 1 for a grey image when
    ``channels`` is ``None`` (an RGB file whose three channels are equal counts as grey)."""
    img = _open(path, channels)
    if crop is not None:
        height, width = crop
        if img.height < height or img.width < width:
            raise DataError(
                f"{path}: expected an image of at least {height}×{width} to center-crop, "
                f"got {img.height}×{img.width}"
            )
        # Same rounding as torchvision's CenterCrop.
        top = round((img.height - height) / 2.0)
        left = round((img.width - width) / 2.0)
        img = img.crop((left, top, left + width, top + height))
    if size is not None and (img.height, img.width) != size:
        img = img.resize((size[1], size[0]), resample=_BILINEAR)
    if img.mode == "F":
        array = np.asarray(img, dtype=np.float32).round().clip(0, 65535).astype(np.uint16)[None]
    else:
        array = np.asarray(img, dtype=np.uint8)
        array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
        if channels is None and len(array) == 3 and (array[1:] == array[0]).all():
            array = array[:1]
    return np.repeat(array, 3, axis=0) if channels == 3 and len(array) == 1 else array


def _merge(out: np.ndarray, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``out`` and ``image`` widened to one dtype (8-bit values v become 257·v of 16 bits, the
    same fraction of the range) and one channel count (grey repeated as RGB)."""
    if image.dtype != out.dtype:
        if out.dtype == np.uint8:
            out = out.astype(np.uint16) * np.uint16(257)
        else:
            image = image.astype(np.uint16) * np.uint16(257)
    if len(image) != out.shape[1]:
        if out.shape[1] == 1:
            out = np.repeat(out, 3, axis=1)
        else:
            image = np.repeat(image, 3, axis=0)
    return out, image


def _load_files(
    files: Sequence[Path],
    where: Path,
    crop: int | Sequence[int] | None,
    size: int | Sequence[int] | None,
    channels: int | None,
    dtype: torch.dtype,
) -> Tensor:
    float_dtype(dtype)
    crop_hw, size_hw = _pair(crop, "crop"), _pair(size, "size")
    if channels is not None and (isinstance(channels, bool) or channels not in _CHANNELS):
        raise ValueError(
            f"channels must be 1 (grey), 3 (RGB) or None (grey when every image is); "
            f"got channels={channels!r}"
        )
    if not files:
        raise DataError(f"{where}: expected PNG or JPEG images, found none")
    first = _read_image(files[0], channels, crop_hw, size_hw)
    out = np.empty((len(files), *first.shape), dtype=first.dtype)
    out[0] = first
    for k, path in enumerate(files[1:], start=1):
        image = _read_image(path, channels, crop_hw, size_hw)
        if image.shape[1:] != first.shape[1:]:
            raise DataError(
                f"{path}: expected an image of {first.shape[1]}×{first.shape[2]} like {files[0].name} "
                f"(pass crop= or size= to make them equal), got {image.shape[1]}×{image.shape[2]}"
            )
        out, image = _merge(out, image)
        out[k] = image
    if out.dtype == np.uint8:
        return uint8_to_unit(out, dtype)
    return torch.from_numpy(out.astype(np.int32)).to(dtype).div_(65535.0)


def load_image_folder(
    root: str | Path,
    *,
    crop: int | Sequence[int] | None = None,
    size: int | Sequence[int] | None = None,
    channels: int | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Load every PNG/JPEG image under a folder (recursively) as one ``[N, C, H, W]`` batch.

    Files are taken in sorted order of their path relative to ``root`` (suffixes ``.png``,
    ``.jpg``, ``.jpeg`` in any case). Each image is converted to grey or RGB, center-cropped to
    ``crop`` (with torchvision's ``CenterCrop`` rounding), then resized to ``size`` with bilinear
    filtering, the official ``CenterCrop`` → ``Resize`` order. All results must have one size.
    The batch is held in memory as floats (162,770 CelebA images at 32×32 take 2 GB).

    With ``channels=None`` a folder whose images are all grey (grey files, or RGB files whose
    three channels are equal) loads with one channel, any other with three (grey images
    repeated). 8-bit images are scaled by 1/255, 16-bit grey PNGs by 1/65535. Pillow's
    decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``) applies; an image beyond it is a
    :class:`DataError`.

    Args:
        root: the folder.
        crop: crop size, an int (square) or ``(height, width)``; ``None`` keeps the whole image.
        size: output size, an int (square) or ``(height, width)``; ``None`` keeps the size.
        channels: 3 for RGB, 1 for grey (luminance), ``None`` to detect grey folders.
        dtype: floating dtype of the images.

    Returns:
        ``[N, C, H, W]`` in ``[0, 1]``.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        DataError: no images, an unreadable image, a decompression bomb, an image smaller than
            ``crop``, or unequal sizes.
        ValueError: a non-positive ``crop``/``size`` or ``channels`` not 1, 3 or ``None``.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> with tempfile.TemporaryDirectory() as faces:
        ...     for name in ("a.png", "b.jpg"):
        ...         Image.new("RGB", (178, 218)).save(f"{faces}/{name}")  # width × height
        ...     x = ncsn.data.load_image_folder(faces, crop=140, size=32)
        >>> x.shape  # black images are grey: channels=3 loads them as RGB
        torch.Size([2, 1, 32, 32])
    """
    folder = existing_dir(root, "PNG or JPEG images")
    files = sorted(
        (p for p in folder.rglob("*") if p.suffix.lower() in _SUFFIXES and p.is_file()),
        key=lambda p: p.relative_to(folder).as_posix(),
    )
    return _load_files(files, folder, crop, size, channels, dtype)


def load_celeba(
    root: str | Path,
    split: str = "train",
    *,
    crop: int | Sequence[int] | None = CELEBA_CROP,
    size: int | Sequence[int] | None = CELEBA_SIZE,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Load CelebA's aligned images with the official preprocessing (crop 140, resize 32).

    ``root`` holds ``list_eval_partition.txt`` (lines ``000001.jpg 0``; 0 train, 1 valid, 2 test)
    and the images, either in ``root/img_align_celeba/`` or in ``root`` itself. Split ``"all"``
    needs no partition file and loads every image in the image folder. Nothing downloads.

    Args:
        root: the folder.
        split: ``"train"`` (162,770 images), ``"valid"``, ``"test"`` or ``"all"``.
        crop: center-crop size (official: :data:`CELEBA_CROP` = 140).
        size: output size (official: :data:`CELEBA_SIZE` = 32).
        dtype: floating dtype of the images.

    Returns:
        ``[N, 3, size, size]`` in ``[0, 1]``.

    Raises:
        FileNotFoundError: ``root``, the partition file (for a split other than ``"all"``) or a
            listed image is missing.
        DataError: a malformed partition file or an unreadable image.
        ValueError: an unknown ``split``.

    Example:
        >>> x = ncsn.data.load_celeba("~/data/celeba", "test")  # doctest: +SKIP
        >>> x.shape  # doctest: +SKIP
        torch.Size([19962, 3, 32, 32])
    """
    choice(split, "split", (*_CELEBA_SPLITS, "all"))
    folder = existing_dir(root, "CelebA (list_eval_partition.txt and img_align_celeba/)")
    images = folder / "img_align_celeba" if (folder / "img_align_celeba").is_dir() else folder
    partition = folder / _PARTITION
    if split == "all" and not partition.is_file():
        return load_image_folder(images, crop=crop, size=size, dtype=dtype)
    if not partition.is_file():
        raise FileNotFoundError(
            f"{partition}: no such file (expected the CelebA partition to select split={split!r}; "
            "split='all' loads every image without it)"
        )
    files = []
    for number, line in enumerate(partition.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in _CELEBA_SPLITS.values():
            raise DataError(f"{partition}:{number}: expected '<image file> <0|1|2>', got {line!r}")
        if split == "all" or fields[1] == _CELEBA_SPLITS[split]:
            files.append(images / fields[0])
    for path in files:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file (listed in {partition})")
    return _load_files(files, partition, crop, size, 3, dtype)
