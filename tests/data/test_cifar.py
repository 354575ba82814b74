"""ncsn.data: CIFAR-10 python batches (real pickles written here)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from datafiles import as_uint8, cifar_rows, py2_cifar_pickle, write_cifar_folder

import ncsn.data as data
from ncsn.data import DataError


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
