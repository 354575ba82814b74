"""ncsn.data: embedded digits, 2-D toys, file loaders (real files written here), transforms."""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import pickle
import re
import struct
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import ncsn.data as data
from ncsn.data import DataError

# ---------------------------------------------------------------------------------------------
# helpers that write real files in each format
# ---------------------------------------------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    """LeCun's IDX layout: 00 00 <type> <ndim>, big-endian uint32 sizes, big-endian values."""
    code = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}[
        f"{array.dtype.kind}{array.dtype.itemsize}"
    ]
    header = struct.pack(">BBBB", 0, 0, code, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray, *, gz: bool = False) -> Path:
    raw = idx_bytes(array)
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def py2_cifar_pickle(rows: np.ndarray, labels: list[int]) -> bytes:
    """Opcode for opcode what Python 2's cPickle wrote for the official CIFAR-10 batches.

    A protocol-2 dict of byte-string keys, the array rebuilt through
    ``numpy.core.multiarray._reconstruct`` with its buffer as a py2 ``str`` and a list of ints.
    """

    def short(s: bytes) -> bytes:
        return b"U" + bytes([len(s)]) + s

    def binint(v: int) -> bytes:
        return b"J" + struct.pack("<i", v)

    n, d = rows.shape
    dtype = b"cnumpy\ndtype\n" + short(b"u1") + b"K\x00K\x01\x87R"
    dtype += b"(K\x03" + short(b"|") + b"NNN" + binint(-1) + binint(-1) + b"K\x00tb"
    array = b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + short(b"b")
    array += b"\x87R(K\x01" + binint(n) + binint(d) + b"\x86" + dtype + b"\x89"
    array += b"T" + struct.pack("<I", rows.size) + rows.tobytes() + b"tb"
    label_list = b"](" + b"".join(b"K" + bytes([v]) for v in labels) + b"e"
    body = short(b"batch_label") + short(b"training batch 1 of 5")
    body += short(b"data") + array + short(b"labels") + label_list
    return b"\x80\x02}(" + body + b"u."


def cifar_rows(n: int, seed: int) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3072), dtype=np.uint8), rng.integers(0, 10, n).tolist()


def write_cifar_folder(root: Path, per_batch: int = 3) -> dict[str, tuple[np.ndarray, list[int]]]:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    written = {}
    names = [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]
    for seed, name in enumerate(names):
        rows, labels = cifar_rows(per_batch, seed)
        if seed == 0:
            blob = py2_cifar_pickle(rows, labels)
        else:  # Python 3 pickles of every protocol a user might have re-saved them with
            blob = pickle.dumps({b"data": rows, b"labels": labels}, protocol=1 + seed % 5)
        (folder / name).write_bytes(blob)
        written[name] = (rows, labels)
    return written


def rgb(height: int, width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def as_uint8(x: torch.Tensor) -> np.ndarray:
    """The uint8 pixels behind ``x``, checking that ``x`` is exactly ``pixels.to(dtype) / 255``."""
    pixels = (x.double() * 255).round().to(torch.uint8)
    assert torch.equal(x, pixels.to(x.dtype) / 255), "x is not exactly uint8 / 255"
    return pixels.numpy()


# ---------------------------------------------------------------------------------------------
# embedded digits
# ---------------------------------------------------------------------------------------------


def test_digits_sizes_shapes_and_split():
    x_all, y_all = data.load_digits("all")
    x_train, y_train = data.load_digits("train")
    x_test, y_test = data.load_digits("test")
    assert x_all.shape == (1797, 1, 8, 8) and y_all.shape == (1797,)
    assert x_train.shape == (1500, 1, 8, 8) and x_test.shape == (297, 1, 8, 8)
    assert data.DIGITS_NUM_TRAIN == 1500
    assert torch.equal(torch.cat([x_train, x_test]), x_all)
    assert torch.equal(torch.cat([y_train, y_test]), y_all)
    assert x_all.dtype == torch.float32 and y_all.dtype == torch.int64
    assert data.load_digits("test", dtype=torch.float64)[0].dtype == torch.float64


def test_digits_values_labels_and_balance():
    x, y = data.load_digits("all")
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert torch.equal(x * 16, (x * 16).round())  # 17 grey levels, value / 16
    assert set(y.tolist()) == set(range(10))
    for labels, low, high in ((y, 170, 190), (data.load_digits("train")[1], 140, 160)):
        counts = torch.bincount(labels, minlength=10)
        assert int(counts.min()) >= low and int(counts.max()) <= high, counts.tolist()
    # each class has a distinct mean image: labels belong to their images
    means = torch.stack([x[y == k].mean(0).flatten() for k in range(10)])
    assert float(torch.cdist(means, means).add(torch.eye(10) * 1e9).min()) > 0.5


def test_digits_match_recorded_checksums_and_licence_ships():
    text = resources.files("ncsn._embedded").joinpath("digits_LICENSE.txt").read_text()
    assert "CC BY 4.0" in text and "Alpaydin" in text and "UCI" in text
    recorded = dict(re.findall(r"SHA-256 of (\w+)\.tobytes\(\): ([0-9a-f]{64})", text))
    x, y = data.load_digits("all")
    images = (x * 16).round().to(torch.uint8).squeeze(1).numpy()
    assert hashlib.sha256(images.tobytes()).hexdigest() == recorded["images"]
    assert hashlib.sha256(y.to(torch.uint8).numpy().tobytes()).hexdigest() == recorded["labels"]


def test_digits_deterministic_and_fresh():
    x1, y1 = data.load_digits("train")
    x1.zero_()
    y1.zero_()
    x2, y2 = data.load_digits("train")
    assert float(x2.max()) == 1.0 and int(y2.max()) == 9
    assert torch.equal(x2, data.load_digits("train")[0])


def test_digits_bad_arguments():
    with pytest.raises(ValueError, match=r"split must be one of .*'val'"):
        data.load_digits("val")
    with pytest.raises(TypeError, match=r"dtype must be a floating"):
        data.load_digits("train", dtype=torch.int64)


# ---------------------------------------------------------------------------------------------
# 2-D toys
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", data.TOY_NAMES)
def test_toy_shape_dtype_and_seed(name):
    toy = data.toy_dataset(name)
    assert isinstance(toy, data.ToySampler)
    a = toy.sample(500, generator=torch.Generator().manual_seed(3))
    b = toy.sample(500, generator=torch.Generator().manual_seed(3))
    c = toy.sample(500, generator=torch.Generator().manual_seed(4))
    assert a.shape == (500, 2) and a.dtype == torch.float32
    assert bool(torch.isfinite(a).all())
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_toy_names_and_errors():
    assert data.TOY_NAMES == ("mixture", "rings", "moons", "checkerboard", "swiss_roll")
    with pytest.raises(ValueError, match=r"name must be one of .*'spiral'"):
        data.toy_dataset("spiral")
    with pytest.raises(ValueError, match=r"n must be >= 1; got n=0"):
        data.Moons().sample(0)
    with pytest.raises(TypeError, match=r"generator must be a torch.Generator"):
        data.Rings().sample(3, generator=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"generator is on device cpu but device='meta'"):
        data.SwissRoll().sample(3, generator=torch.Generator(), device="meta")
    with pytest.raises(TypeError, match=r"dtype must be a floating"):
        data.Checkerboard().sample(3, dtype=torch.int32)
    with pytest.raises(ValueError, match=r"num_rings must be >= 1; got num_rings=0"):
        data.Rings(num_rings=0)
    with pytest.raises(ValueError, match=r"noise must be >= 0; got noise=-0.1"):
        data.Moons(noise=-0.1)
    with pytest.raises(ValueError, match=r"cells must be >= 2"):
        data.Checkerboard(cells=1)
    with pytest.raises(ValueError, match=r"scale must be positive"):
        data.SwissRoll(scale=0.0)


def test_toy_mixture_is_the_papers():
    x = data.toy_dataset("mixture").sample(20_000, generator=torch.Generator().manual_seed(0))
    upper = (x[:, 0] > 0).double()
    # weight 0.8 at (5, 5): binomial standard error sqrt(0.16 / n) = 0.0028, allow 5 of them
    assert abs(float(upper.mean()) - 0.8) < 5 * math.sqrt(0.16 / 20_000)
    assert torch.allclose(x[x[:, 0] > 0].mean(0), torch.tensor([5.0, 5.0]), atol=0.05)


def test_rings_radii_and_weights():
    x = data.Rings(num_rings=3, spacing=1.5, noise=0.0).sample(
        30_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    radius = x.norm(dim=1)
    ring = (radius / 1.5).round()
    assert torch.allclose(radius, 1.5 * ring, atol=1e-12)
    frac = torch.bincount(ring.long(), minlength=4)[1:].double() / len(x)
    expected = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64) / 6  # ∝ radius
    assert torch.allclose(frac, expected, atol=5 * math.sqrt(0.25 / len(x)))


def test_moons_lie_on_their_half_circles():
    x = data.Moons(noise=0.0, scale=2.0).sample(
        4000, generator=torch.Generator().manual_seed(1), dtype=torch.float64
    )
    p = x / 2.0 + torch.tensor([0.5, 0.25], dtype=torch.float64)
    upper = (p.norm(dim=1) - 1).abs() < 1e-9
    lower = ((p - torch.tensor([1.0, 0.5], dtype=torch.float64)).norm(dim=1) - 1).abs() < 1e-9
    assert bool((upper | lower).all())
    assert bool((p[upper, 1] >= -1e-12).all()) and bool((p[lower, 1] <= 0.5 + 1e-12).all())
    assert abs(float(upper.double().mean()) - 0.5) < 5 * math.sqrt(0.25 / 4000)


def test_checkerboard_only_dark_squares_uniformly():
    board = data.Checkerboard(cells=4, half_width=2.0)
    x = board.sample(40_000, generator=torch.Generator().manual_seed(2))
    assert bool((x.abs() <= 2.0).all())
    cell = ((x + 2.0) / 1.0).floor().long().clamp(max=3)
    assert bool(((cell[:, 0] + cell[:, 1]) % 2 == 0).all())
    counts = torch.bincount(cell[:, 0] * 4 + cell[:, 1], minlength=16).double()
    dark = counts[counts > 0]
    assert len(dark) == 8
    assert float((dark / len(x) - 1 / 8).abs().max()) < 5 * math.sqrt((1 / 8) * (7 / 8) / len(x))


def test_swiss_roll_follows_its_spiral():
    x = data.SwissRoll(noise=0.0, scale=0.5).sample(
        2000, generator=torch.Generator().manual_seed(3), dtype=torch.float64
    )
    t = x.norm(dim=1) / 0.5
    assert float(t.min()) >= 1.5 * math.pi - 1e-9 and float(t.max()) <= 4.5 * math.pi + 1e-9
    assert torch.allclose(x, 0.5 * torch.stack((t * t.cos(), t * t.sin()), 1), atol=1e-9)


# ---------------------------------------------------------------------------------------------
# transforms
# ---------------------------------------------------------------------------------------------


def test_to_unit_range():
    u8 = torch.tensor([0, 51, 255], dtype=torch.uint8)
    assert torch.equal(data.to_unit_range(u8), torch.tensor([0.0, 0.2, 1.0]))
    arr = np.array([[0, 8, 16]], dtype=np.int64)
    out = data.to_unit_range(arr, max_value=16, dtype=torch.float64)
    assert out.dtype == torch.float64 and torch.equal(out, torch.tensor([[0.0, 0.5, 1.0]]).double())
    with pytest.raises(ValueError, match=r"x must lie in \[0, max_value=16\].*\[0.0, 17.0\]"):
        data.to_unit_range(torch.tensor([0, 17]), max_value=16)
    with pytest.raises(ValueError, match=r"max_value must be a positive number; got max_value=0"):
        data.to_unit_range(u8, max_value=0)
    with pytest.raises(TypeError, match=r"x must hold integers or floats; got dtype torch.bool"):
        data.to_unit_range(torch.tensor([True]))
    with pytest.raises(TypeError, match=r"x must be a torch.Tensor or numpy array; got list"):
        data.to_unit_range([1, 2])  # type: ignore[arg-type]


def test_dequantize_is_the_official_formula():
    x = torch.randint(0, 256, (64, 3, 4, 4), generator=torch.Generator().manual_seed(0)) / 255.0
    out = data.dequantize(x, generator=torch.Generator().manual_seed(7))
    u = torch.rand(x.shape, generator=torch.Generator().manual_seed(7))
    assert torch.equal(out, x / 256 * 255 + u / 256)
    # each level k/255 lands in [k/256, (k+1)/256)
    assert torch.equal((out.double() * 256).floor(), (x.double() * 255).round())
    assert torch.equal(out, data.dequantize(x, generator=torch.Generator().manual_seed(7)))
    assert out.shape == x.shape and out.dtype == x.dtype


def test_dequantize_digit_levels():
    x, _ = data.load_digits("test")
    out = data.dequantize(x, levels=17, generator=torch.Generator().manual_seed(0))
    assert torch.equal((out.double() * 17).floor(), (x.double() * 16).round())
    with pytest.raises(ValueError, match=r"levels must be >= 2; got levels=1"):
        data.dequantize(x, levels=1)
    with pytest.raises(TypeError, match=r"x must be a floating-point tensor"):
        data.dequantize(torch.zeros(2, 3, dtype=torch.uint8))


def test_random_flip():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    assert torch.equal(data.random_flip(x, p=1.0), x.flip(-1))
    assert torch.equal(data.random_flip(x, p=0.0), x)
    big = torch.randn(4000, 2, 3, generator=torch.Generator().manual_seed(0))
    out = data.random_flip(big, generator=torch.Generator().manual_seed(1))
    flipped = (out == big.flip(-1)).flatten(1).all(1)
    kept = (out == big).flatten(1).all(1)
    assert bool((flipped ^ kept).all())  # each example whole: flipped or not
    assert abs(float(flipped.double().mean()) - 0.5) < 5 * math.sqrt(0.25 / 4000)
    again = data.random_flip(big, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out, again)
    with pytest.raises(ValueError, match=r"x must have shape \[B, \*event\]"):
        data.random_flip(torch.zeros(4))
    with pytest.raises(ValueError, match=r"p must lie in \[0, 1\]; got p=1.5"):
        data.random_flip(x, p=1.5)


def test_logit_transform_values_and_round_trip():
    lam = 1e-6
    x = torch.tensor([[0.0, 0.25, 0.5, 1.0]], dtype=torch.float64)
    y = data.logit_transform(x)
    assert float(y[0, 2]) == 0.0
    assert math.isclose(float(y[0, 0]), math.log(lam / (1 - lam)), rel_tol=1e-12)
    assert math.isclose(float(y[0, 3]), -math.log(lam / (1 - lam)), rel_tol=1e-9)
    assert torch.allclose(data.inverse_logit_transform(y), x, atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match=r"lam must lie in \[0, 0.5\); got lam=0.5"):
        data.logit_transform(x, lam=0.5)
    with pytest.raises(ValueError, match=r"lam must lie in \[0, 0.5\); got lam=-0.1"):
        data.inverse_logit_transform(y, lam=-0.1)


@settings(max_examples=25, deadline=None)
@given(
    shape=st.lists(st.integers(1, 4), min_size=1, max_size=4),
    lam=st.sampled_from([1e-6, 1e-3, 0.05]),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    seed=st.integers(0, 2**16),
)
def test_logit_round_trip_any_shape(shape, lam, dtype, seed):
    x = torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    x[..., 0] = 1.0  # the edges are the hard cases
    y = data.logit_transform(x, lam)
    assert y.shape == x.shape and y.dtype == dtype and bool(torch.isfinite(y).all())
    back = data.inverse_logit_transform(y, lam)
    atol = 1e-6 if dtype == torch.float32 else 1e-12
    assert torch.allclose(back, x, atol=atol, rtol=0)


# ---------------------------------------------------------------------------------------------
# IDX / MNIST
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# CIFAR-10 python batches
# ---------------------------------------------------------------------------------------------


def test_cifar_python2_batch_exact(tmp_path):
    rows, labels = cifar_rows(4, 0)
    (tmp_path / "data_batch_1").write_bytes(py2_cifar_pickle(rows, labels))
    x, y = data.load_cifar10_batch(tmp_path / "data_batch_1")
    assert x.shape == (4, 3, 32, 32) and y.tolist() == labels
    pixels = as_uint8(x)
    # row layout: 1024 red values, then green, then blue, each row-major
    for n, c, i, j in [(0, 0, 0, 0), (1, 1, 5, 7), (3, 2, 31, 31), (2, 0, 31, 0)]:
        assert pixels[n, c, i, j] == rows[n, c * 1024 + i * 32 + j]


def test_cifar_folder_splits(tmp_path):
    written = write_cifar_folder(tmp_path)
    x, y = data.load_cifar10(tmp_path)  # the folder holding cifar-10-batches-py
    train_rows = np.concatenate([written[f"data_batch_{k}"][0] for k in range(1, 6)])
    assert x.shape == (15, 3, 32, 32)
    assert np.array_equal(as_uint8(x).reshape(15, -1), train_rows)
    assert y.tolist() == [v for k in range(1, 6) for v in written[f"data_batch_{k}"][1]]
    x, y = data.load_cifar10(tmp_path / "cifar-10-batches-py", "test")
    assert np.array_equal(as_uint8(x).reshape(3, -1), written["test_batch"][0])
    x, y = data.load_cifar10(tmp_path, "all", dtype=torch.float64)
    assert x.shape == (18, 3, 32, 32) and x.dtype == torch.float64 and len(y) == 18
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match=r"data_batch_3: no such file"):
        data.load_cifar10(tmp_path)


class _Hostile:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (os.mkdir, (str(self.target),))


def test_cifar_refuses_code_and_bad_contents(tmp_path):
    rows, labels = cifar_rows(2, 0)
    target = tmp_path / "pwned"
    blobs = {
        "hostile": pickle.dumps({b"data": _Hostile(target), b"labels": labels}),
        "garbage": b"\x00\x01 definitely not a pickle",
        "truncated": py2_cifar_pickle(rows, labels)[:-200],
        "list": pickle.dumps([rows, labels]),
        "floats": pickle.dumps({b"data": rows.astype(np.float32), b"labels": labels}),
        "narrow": pickle.dumps({b"data": rows[:, :100], b"labels": labels}),
        "fewlabels": pickle.dumps({b"data": rows, b"labels": labels[:1]}),
        "badlabels": pickle.dumps({b"data": rows, b"labels": [0, 10]}),
        "nolabels": pickle.dumps({b"data": rows}),
    }
    expected = {
        "hostile": r"unreadable pickle \(refused global posix\.mkdir\)",
        "garbage": "unreadable pickle",
        "truncated": "unreadable pickle",
        "list": "got a pickled list",
        "floats": r"got b'data' float32 \[2, 3072\]",
        "narrow": r"got b'data' of shape \[2, 100\]",
        "fewlabels": "with 2 integer labels, got b'labels' \\[",
        "badlabels": "with labels in 0..9, got 0..10",
        "nolabels": "with 2 integer labels, got b'labels' None",
    }
    if os.name != "posix":  # pragma: no cover - the module name of os.mkdir differs
        expected["hostile"] = "refused global"
    for name, blob in blobs.items():
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(DataError, match=f"{name}: expected a CIFAR-10 python batch.*"):
            data.load_cifar10_batch(tmp_path / name)
        with pytest.raises(DataError, match=expected[name]):
            data.load_cifar10_batch(tmp_path / name)
    assert not target.exists()
    with pytest.raises(FileNotFoundError, match=r"missing: no such file"):
        data.load_cifar10_batch(tmp_path / "missing")


def test_cifar_accepts_str_keys_and_numpy_labels(tmp_path):
    rows, labels = cifar_rows(3, 5)
    blob = pickle.dumps({"data": rows, "labels": np.array(labels, dtype=np.int64)}, protocol=5)
    (tmp_path / "b").write_bytes(blob)
    x, y = data.load_cifar10_batch(tmp_path / "b")
    assert np.array_equal(as_uint8(x).reshape(3, -1), rows) and y.tolist() == labels


# ---------------------------------------------------------------------------------------------
# image folders and CelebA
# ---------------------------------------------------------------------------------------------


def test_image_folder_png_exact_sorted_recursive(tmp_path):
    images = {"b.png": rgb(6, 5, 0), "a.PNG": rgb(6, 5, 1), "sub/c.png": rgb(6, 5, 2)}
    (tmp_path / "sub").mkdir()
    for name, array in images.items():
        Image.fromarray(array).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("ignored")
    x = data.load_image_folder(tmp_path)
    assert x.shape == (3, 3, 6, 5) and x.dtype == torch.float32
    order = ["a.PNG", "b.png", "sub/c.png"]
    for k, name in enumerate(order):
        assert np.array_equal(as_uint8(x)[k].transpose(1, 2, 0), images[name])
    grey = data.load_image_folder(tmp_path, channels=1)
    expected = np.asarray(Image.fromarray(images["a.PNG"]).convert("L"))
    assert grey.shape == (3, 1, 6, 5) and np.array_equal(as_uint8(grey)[0, 0], expected)


def test_image_folder_center_crop_and_resize(tmp_path):
    array = rgb(10, 7, 3)
    Image.fromarray(array).save(tmp_path / "a.png")
    x = data.load_image_folder(tmp_path, crop=(4, 3))
    assert np.array_equal(as_uint8(x)[0].transpose(1, 2, 0), array[3:7, 2:5])
    # odd margins round like torchvision's CenterCrop: round(5 / 2) = 2
    x = data.load_image_folder(tmp_path, crop=5)
    assert np.array_equal(as_uint8(x)[0].transpose(1, 2, 0), array[2:7, 1:6])
    x = data.load_image_folder(tmp_path, crop=5, size=(3, 4), dtype=torch.float64)
    expected = Image.fromarray(array[2:7, 1:6]).resize((4, 3), Image.Resampling.BILINEAR)
    assert x.shape == (1, 3, 3, 4) and x.dtype == torch.float64
    assert np.array_equal(as_uint8(x)[0].transpose(1, 2, 0), np.asarray(expected))


def test_image_folder_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"empty: expected PNG or JPEG images, found none"):
        data.load_image_folder(empty)
    with pytest.raises(FileNotFoundError, match=r"nowhere: no such folder"):
        data.load_image_folder(tmp_path / "nowhere")
    (tmp_path / "file.png").write_bytes(b"not a png at all")
    with pytest.raises(DataError, match=r"file.png: expected a folder holding PNG or JPEG"):
        data.load_image_folder(tmp_path / "file.png")

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.png").write_bytes(b"not a png at all")
    with pytest.raises(DataError, match=r"a\.png: expected a readable PNG or JPEG image"):
        data.load_image_folder(bad)
    Image.fromarray(rgb(40, 40, 0)).save(bad / "a.jpg", quality=90)
    (bad / "a.png").unlink()
    blob = (bad / "a.jpg").read_bytes()
    (bad / "a.jpg").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match=r"a\.jpg: expected a readable PNG or JPEG image"):
        data.load_image_folder(bad)

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    Image.fromarray(rgb(6, 6, 0)).save(mixed / "a.png")
    Image.fromarray(rgb(5, 6, 1)).save(mixed / "b.png")
    with pytest.raises(DataError, match=r"b\.png: expected an image of 6×6 like a\.png.*got 5×6"):
        data.load_image_folder(mixed)
    assert data.load_image_folder(mixed, size=4).shape == (2, 3, 4, 4)
    with pytest.raises(
        DataError, match=r"expected an image of at least 6×6 to center-crop, got 5×6"
    ):
        data.load_image_folder(mixed, crop=6)
    with pytest.raises(ValueError, match=r"crop must be positive; got crop=0"):
        data.load_image_folder(mixed, crop=0)
    with pytest.raises(TypeError, match=r"size must be an int or a \(height, width\) pair"):
        data.load_image_folder(mixed, size=(4, 4, 4))
    with pytest.raises(
        ValueError, match=r"channels must be 1 \(grey\) or 3 \(RGB\); got channels=2"
    ):
        data.load_image_folder(mixed, channels=2)


def write_celeba(root: Path, partition: list[int]) -> list[Path]:
    folder = root / "img_align_celeba"
    folder.mkdir(parents=True)
    files = []
    for k in range(1, len(partition) + 1):
        path = folder / f"{k:06d}.jpg"
        Image.fromarray(rgb(218, 178, k)).save(path, quality=95)  # CelebA's aligned size
        files.append(path)
    lines = [f"{p.name} {part}" for p, part in zip(files, partition, strict=True)]
    (root / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return files


def official_celeba(path: Path) -> np.ndarray:
    """CenterCrop(140) then Resize(32), as torchvision computes them, on the decoded JPEG."""
    with Image.open(path) as img:
        img = img.convert("RGB").crop((19, 39, 159, 179))
    return np.asarray(img.resize((32, 32), Image.Resampling.BILINEAR)).transpose(2, 0, 1)


def test_celeba_preset_and_splits(tmp_path):
    files = write_celeba(tmp_path, [0, 0, 1, 2, 0])
    x = data.load_celeba(tmp_path)
    assert (data.CELEBA_CROP, data.CELEBA_SIZE) == (140, 32)
    assert x.shape == (3, 3, 32, 32)
    for k, index in enumerate([0, 1, 4]):
        assert np.array_equal(as_uint8(x)[k], official_celeba(files[index]))
    assert np.array_equal(
        as_uint8(data.load_celeba(tmp_path, "valid"))[0], official_celeba(files[2])
    )
    assert np.array_equal(
        as_uint8(data.load_celeba(tmp_path, "test"))[0], official_celeba(files[3])
    )
    assert data.load_celeba(tmp_path, "all").shape == (5, 3, 32, 32)
    assert data.load_celeba(tmp_path, "train", crop=None, size=16).shape == (3, 3, 16, 16)


def test_celeba_errors(tmp_path):
    files = write_celeba(tmp_path, [0, 2])
    partition = tmp_path / "list_eval_partition.txt"
    text = partition.read_text()
    partition.write_text(text + "000003.jpg 7\n")
    with pytest.raises(
        DataError, match=r"list_eval_partition.txt:3: expected '<image file> <0\|1\|2>'"
    ):
        data.load_celeba(tmp_path)
    partition.write_text(text + "000003.jpg 0\n")
    with pytest.raises(FileNotFoundError, match=r"000003.jpg: no such file \(listed in"):
        data.load_celeba(tmp_path)
    partition.unlink()
    with pytest.raises(
        FileNotFoundError, match=r"list_eval_partition.txt: no such file .*split='test'"
    ):
        data.load_celeba(tmp_path, "test")
    assert data.load_celeba(tmp_path, "all").shape == (2, 3, 32, 32)  # no partition needed
    files[0].write_bytes(b"broken")
    with pytest.raises(DataError, match=r"000001.jpg: expected a readable PNG or JPEG image"):
        data.load_celeba(tmp_path, "all")
    with pytest.raises(ValueError, match=r"split must be one of"):
        data.load_celeba(tmp_path, "validation")


# ---------------------------------------------------------------------------------------------
# numpy arrays
# ---------------------------------------------------------------------------------------------


def test_npy_and_npz_round_trip(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (4, 1, 5, 5), dtype=np.uint8)
    np.save(tmp_path / "p.npy", pixels)
    x, y = data.load_array(tmp_path / "p.npy")
    assert y is None and x.shape == (4, 1, 5, 5) and np.array_equal(as_uint8(x), pixels)

    points = np.random.default_rng(1).normal(size=(7, 2)).astype(np.float64) * 10
    np.savez(tmp_path / "v.npz", x=points, y=np.arange(7))
    x, y = data.load_array(tmp_path / "v.npz", dtype=torch.float64)
    assert (
        torch.equal(x, torch.from_numpy(points)) and y is not None and y.tolist() == list(range(7))
    )

    hwc = np.random.default_rng(2).integers(0, 256, (3, 4, 5, 3), dtype=np.uint8)
    np.savez_compressed(tmp_path / "hwc.npz", pictures=hwc)  # the only array, any name
    x, y = data.load_array(tmp_path / "hwc.npz", channels_last=True)
    assert x.shape == (3, 3, 4, 5) and np.array_equal(as_uint8(x), hwc.transpose(0, 3, 1, 2))

    np.savez(tmp_path / "two.npz", a=points, b=points * 2, labels=np.zeros(7, dtype=np.int32))
    x, y = data.load_array(tmp_path / "two.npz", key="b", dtype=torch.float64)
    assert torch.equal(x, torch.from_numpy(points * 2)) and y is not None and y.dtype == torch.int64


def test_array_errors(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(tmp_path / "ints.npy", np.zeros((2, 2), dtype=np.int32))
    np.save(tmp_path / "nan.npy", np.array([[0.0, np.nan]]))
    np.save(tmp_path / "scalar.npy", np.float32(1.0))
    np.savez(tmp_path / "many.npz", a=np.zeros(2), b=np.zeros(2))
    np.savez(tmp_path / "labels.npz", x=np.zeros((3, 2)), y=np.zeros(2, dtype=np.int64))
    np.savez(tmp_path / "flat.npz", x=np.zeros((3, 2), dtype=np.uint8))
    np.savez_compressed(tmp_path / "cut.npz", x=np.arange(1000.0))
    (tmp_path / "cut.npz").write_bytes((tmp_path / "cut.npz").read_bytes()[:-40])
    (tmp_path / "junk.npy").write_bytes(b"\x93NUMPY garbage header")
    (tmp_path / "data.txt").write_text("1 2 3")
    cases = {
        "obj.npy": "expected a valid numpy .npy file, got an error .*allow_pickle",
        "ints.npy": "expected uint8 pixels or floating values, got dtype int32",
        "nan.npy": "expected finite values",
        "scalar.npy": "expected an array \\[N, \\*event\\], got a 0-d array",
        "many.npz": r"expected an array named x or images or data \(or a single array\), got arrays \['a', 'b'\]",
        "labels.npz": r"expected integer labels \[3\] beside the data, got int64 \[2\]",
        "cut.npz": "expected a valid numpy .npz file, got an error",
        "junk.npy": "expected a valid numpy .npy file, got an error",
        "data.txt": "expected a numpy file ending in .npy or .npz, got '.txt'",
    }
    for name, message in cases.items():
        with pytest.raises(DataError, match=f"{re.escape(name)}: {message}"):
            data.load_array(tmp_path / name)
    with pytest.raises(
        DataError, match=r"expected \[N, H, W, C\] for channels_last=True, got \[3, 2\]"
    ):
        data.load_array(tmp_path / "flat.npz", channels_last=True)
    with pytest.raises(DataError, match=r"expected an array named z"):
        data.load_array(tmp_path / "labels.npz", key="z")
    with pytest.raises(ValueError, match=r"key applies to .npz files only; got key='x'"):
        data.load_array(tmp_path / "ints.npy", key="x")
    with pytest.raises(FileNotFoundError, match=r"gone.npy: no such file \(expected a numpy"):
        data.load_array(tmp_path / "gone.npy")


# ---------------------------------------------------------------------------------------------
# load(): one entry point
# ---------------------------------------------------------------------------------------------


def test_load_names(tmp_path, monkeypatch):
    x, y = data.load("digits")
    assert x.shape == (1500, 1, 8, 8) and y is not None
    assert data.load("digits", split="test")[0].shape == (297, 1, 8, 8)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    x, y = data.load("moons", num_samples=300, generator=g1)
    assert y is None and torch.equal(x, data.Moons().sample(300, generator=g2))
    assert data.load("rings")[0].shape == (10_000, 2)
    assert data.load("mixture", num_samples=8, dtype=torch.float64)[0].dtype == torch.float64
    # names win over a folder of the same name; ./digits is the folder
    monkeypatch.chdir(tmp_path)
    (tmp_path / "digits").mkdir()
    Image.fromarray(rgb(4, 4, 0)).save(tmp_path / "digits" / "a.png")
    assert data.load("digits")[0].shape == (1500, 1, 8, 8)
    assert data.load("./digits")[0].shape == (1, 3, 4, 4)


def test_load_files_and_folders(tmp_path):
    np.savez(tmp_path / "v.npz", x=np.ones((3, 2)), y=np.arange(3))
    x, y = data.load(tmp_path / "v.npz")
    assert x.shape == (3, 2) and y is not None and y.tolist() == [0, 1, 2]

    mnist = tmp_path / "mnist"
    mnist.mkdir()
    pixels = np.arange(2 * 28 * 28, dtype=np.int64).reshape(2, 28, 28).astype(np.uint8)
    write_idx(mnist / "train-images-idx3-ubyte.gz", pixels, gz=True)
    write_idx(mnist / "train-labels-idx1-ubyte.gz", np.array([7, 2], dtype=np.uint8), gz=True)
    x, y = data.load(str(mnist / "train-images-idx3-ubyte.gz"))  # finds the labels beside it
    assert np.array_equal(as_uint8(x)[:, 0], pixels) and y is not None and y.tolist() == [7, 2]
    x, y = data.load(mnist)
    assert x.shape == (2, 1, 28, 28) and y is not None and y.tolist() == [7, 2]

    write_cifar_folder(tmp_path / "cifar")
    assert data.load(tmp_path / "cifar")[0].shape == (15, 3, 32, 32)
    assert data.load(tmp_path / "cifar", split="test")[0].shape == (3, 3, 32, 32)
    x, y = data.load(tmp_path / "cifar" / "cifar-10-batches-py" / "test_batch")
    assert x.shape == (3, 3, 32, 32) and y is not None

    write_celeba(tmp_path / "celeba", [0, 1])
    x, y = data.load(tmp_path / "celeba")
    assert x.shape == (1, 3, 32, 32) and y is None
    assert data.load(tmp_path / "celeba", split="all", size=8)[0].shape == (2, 3, 8, 8)

    folder = tmp_path / "pictures"
    folder.mkdir()
    Image.fromarray(rgb(9, 9, 0)).save(folder / "a.png")
    assert data.load(folder, crop=5, size=4)[0].shape == (1, 3, 4, 4)


def test_load_errors(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"nothing: no such file or folder \(expected 'digits'"
    ):
        data.load(tmp_path / "nothing")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(
        DataError, match=r"notes.txt: expected 'digits', .* got a file of unknown kind"
    ):
        data.load(tmp_path / "notes.txt")
    with pytest.raises(
        ValueError, match=r"split does not apply to data source 'moons'; got split='train'"
    ):
        data.load("moons", split="train")
    with pytest.raises(ValueError, match=r"num_samples does not apply to data source 'digits'"):
        data.load("digits", num_samples=5)
    np.save(tmp_path / "a.npy", np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"crop does not apply to data source"):
        data.load(tmp_path / "a.npy", crop=3)
    with pytest.raises(ValueError, match=r"generator does not apply to data source"):
        data.load(tmp_path / "a.npy", generator=torch.Generator())
    folder = tmp_path / "pictures"
    folder.mkdir()
    Image.fromarray(rgb(4, 4, 0)).save(folder / "a.png")
    with pytest.raises(ValueError, match=r"split does not apply to data source .*pictures"):
        data.load(folder, split="train")
    with pytest.raises(ValueError, match=r"num_samples must be >= 1; got num_samples=0"):
        data.load("rings", num_samples=0)
    with pytest.raises(TypeError, match=r"source must be a str or pathlib.Path; got 3"):
        data.load(3)  # type: ignore[arg-type]
