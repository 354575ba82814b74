"""ncsn.data: the official pipeline's transforms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import ncsn.data as data


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


@pytest.mark.parametrize(
    ("transform", "shape"),
    [(data.dequantize, (0, 2)), (data.random_flip, (0, 1, 4, 4))],
    ids=["dequantize", "random_flip"],
)
def test_an_empty_batch_is_refused_naming_x(transform, shape):
    with pytest.raises(
        ValueError,
        match=rf"x must hold at least one example; got shape \({', '.join(map(str, shape))}\)",
    ):
        transform(torch.zeros(shape))


# ------------------------------------------------------------------ ImageTransform, grey_levels
def test_image_transform_flips_dequantises_then_maps_to_logit_space() -> None:
    x = data.load_digits("train")[0][:16]
    transform = data.ImageTransform(flip=True, dequantize=True, logit=True, levels=17)
    got = transform(x, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    steps = data.dequantize(data.random_flip(x, generator=g), levels=17, generator=g)
    assert torch.equal(got, data.logit_transform(steps))
    assert data.ImageTransform(dequantize=False)(x) is x  # every step off: the batch itself
    assert data.ImageTransform(levels=17) == data.ImageTransform(levels=17)  # a value


def test_grey_levels_and_image_transform_refuse_bad_input() -> None:
    assert (data.grey_levels("digits"), data.grey_levels("mnist")) == (17, 256)
    with pytest.raises(TypeError, match="source must be a str"):
        data.grey_levels(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="levels must be >= 2; got levels=1"):
        data.ImageTransform(levels=1)
    with pytest.raises(TypeError, match="flip must be a bool; got flip=1"):
        data.ImageTransform(flip=1)  # type: ignore[arg-type]
