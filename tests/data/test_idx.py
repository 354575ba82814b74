"""ncsn.data: IDX files and MNIST-layout folders (real files written here)."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch
from datafiles import as_uint8, idx_bytes, write_idx

import ncsn.data as data
from ncsn.data import DataError


@pytest.mark.parametrize("gz", [False, True])
def test_idx_images_and_labels_round_trip(tmp_path, gz):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (5, 4, 3), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    suffix = ".gz" if gz else ""
    images = write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", pixels, gz=gz)
    label_file = write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", labels, gz=gz)
    x, y = data.load_idx(images, label_file)
    assert x.shape == (5, 1, 4, 3) and x.dtype == torch.float32
    assert np.array_equal(as_uint8(x)[:, 0], pixels)
    assert y is not None and y.dtype == torch.int64 and y.tolist() == [3, 1, 4, 1, 5]
    assert data.load_idx(images)[1] is None


@pytest.mark.parametrize("dtype", [np.int8, ">i2", ">i4", ">f4", ">f8"])
def test_read_idx_every_type(tmp_path, dtype):
    values = (np.arange(24).reshape(2, 3, 4) - 7).astype(dtype)
    out = data.read_idx(write_idx(tmp_path / "a.idx", values))
    assert out.shape == (2, 3, 4) and out.dtype.isnative
    assert np.array_equal(out, values)


def test_idx_errors(tmp_path):
    good = idx_bytes(np.zeros((2, 3, 3), dtype=np.uint8))
    cases = {
        "missing": None,
        "text.idx": b"hello, not an idx file",
        "tiny.idx": b"\x00\x00",
        "badtype.idx": b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00",
        "header.idx": good[:9],
        "short.idx": good[:-1],
        "trailing.idx": good + b"\x00",
        "fake.gz": good,
        "corrupt.gz": gzip.compress(good)[:10] + b"\xff" * 8 + gzip.compress(good)[18:],
        "truncated.gz": gzip.compress(good)[:-6],
    }
    expected = {
        "text.idx": r"text\.idx: expected an IDX file \(magic 00 00 <type> <ndim>\), got magic 68 65 6c 6c",
        "tiny.idx": "got only 2 bytes",
        "badtype.idx": "got magic 00 00 07 01",
        "header.idx": "expected 3 dimension sizes after the magic, file is truncated",
        "short.idx": r"expected 18 data bytes for IDX shape \[2, 3, 3\] .* got 17",
        "trailing.idx": "got 19 \\(truncated or trailing bytes\\)",
        "fake.gz": "expected gzip-compressed an IDX file .*got no gzip header",
        "corrupt.gz": "corrupt gzip stream",
        "truncated.gz": "corrupt gzip stream",
    }
    with pytest.raises(FileNotFoundError, match=r"missing: no such file \(expected an IDX file"):
        data.read_idx(tmp_path / "missing")
    for name, blob in cases.items():
        if blob is None:
            continue
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(DataError, match=expected[name]):
            data.read_idx(tmp_path / name)
    with pytest.raises(DataError, match=r"expected an IDX file .*got a folder"):
        data.read_idx(tmp_path)


def test_idx_wrong_contents(tmp_path):
    images = write_idx(tmp_path / "i.idx", np.zeros((3, 2, 2), dtype=np.uint8))
    shorts = write_idx(tmp_path / "s.idx", np.zeros((3, 2, 2), dtype=">i2"))
    flat = write_idx(tmp_path / "f.idx", np.zeros(12, dtype=np.uint8))
    wrong_count = write_idx(tmp_path / "l.idx", np.zeros(4, dtype=np.uint8))
    float_labels = write_idx(tmp_path / "fl.idx", np.zeros(3, dtype=">f4"))
    with pytest.raises(
        DataError, match=r"s\.idx: expected IDX uint8 images \[N, H, W\], got int16"
    ):
        data.load_idx(shorts)
    with pytest.raises(DataError, match=r"got uint8 \[12\]"):
        data.load_idx(flat)
    with pytest.raises(DataError, match=r"l\.idx: expected IDX integer labels \[3\] to match"):
        data.load_idx(images, wrong_count)
    with pytest.raises(DataError, match=r"got float32 \[3\]"):
        data.load_idx(images, float_labels)
    with pytest.raises(TypeError, match=r"dtype must be a floating"):
        data.load_idx(images, dtype=torch.uint8)


def test_load_mnist_folder(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(1)
    train, test = (rng.integers(0, 256, (n, 28, 28), dtype=np.uint8) for n in (6, 4))
    write_idx(raw / "train-images-idx3-ubyte.gz", train, gz=True)
    write_idx(raw / "train-labels-idx1-ubyte.gz", np.arange(6, dtype=np.uint8), gz=True)
    write_idx(raw / "t10k-images-idx3-ubyte", test)
    write_idx(raw / "t10k-labels-idx1-ubyte", np.arange(4, dtype=np.uint8)[::-1].copy())
    x, y = data.load_mnist(tmp_path)
    assert x.shape == (6, 1, 28, 28) and np.array_equal(as_uint8(x)[:, 0], train)
    assert y.tolist() == [0, 1, 2, 3, 4, 5]
    x, y = data.load_mnist(tmp_path, "test")
    assert np.array_equal(as_uint8(x)[:, 0], test) and y.tolist() == [3, 2, 1, 0]
    x, y = data.load_mnist(tmp_path, "all", dtype=torch.float64)
    assert x.shape == (10, 1, 28, 28) and x.dtype == torch.float64 and len(y) == 10
    (raw / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match=r"no t10k-labels-idx1-ubyte\[.gz\]"):
        data.load_mnist(tmp_path, "test")
    with pytest.raises(FileNotFoundError, match=r"nowhere: no such folder"):
        data.load_mnist(tmp_path / "nowhere")
    with pytest.raises(ValueError, match=r"split must be one of"):
        data.load_mnist(tmp_path, "validation")
