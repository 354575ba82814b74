"""ncsn.data: the embedded UCI 8×8 digits."""

from __future__ import annotations

import hashlib
import re
from importlib import resources

import pytest
import torch

import ncsn.data as data


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
