"""ncsn.data: numpy .npy/.npz arrays."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from datafiles import as_uint8

import ncsn.data as data
from ncsn.data import DataError


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
