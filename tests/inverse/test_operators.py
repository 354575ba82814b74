"""Linear operators (inverse/operators.py): the adjoint identity for every operator and shape, the
closed-form SVDs (orthogonal, reproducing A), references for the convolutions and pooling, and
bad shapes and dtypes named."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn import functional as F

import ncsn
from ncsn import inverse
from ncsn.inverse import (
    Blur,
    ChannelMix,
    Compose,
    Downsample,
    GaussianProjection,
    Identity,
    Mask,
    check_operator,
    gaussian_kernel,
    operator_svd,
    to_matrix,
)

Factory = Callable[[st.DrawFn], inverse.LinearOperator]
dims = st.integers(1, 5)


def _seed(draw: st.DrawFn) -> torch.Generator:
    return torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))


def _identity(draw: st.DrawFn) -> inverse.LinearOperator:
    return Identity(tuple(draw(st.lists(dims, min_size=0, max_size=3))))


def _mask(draw: st.DrawFn) -> inverse.LinearOperator:
    shape = tuple(draw(st.lists(dims, min_size=1, max_size=3)))
    return Mask(torch.rand(shape, generator=_seed(draw)) < 0.5)


def _batched_mask(draw: st.DrawFn) -> inverse.LinearOperator:
    shape = (2, *draw(st.lists(dims, min_size=1, max_size=2)))
    return Mask(torch.rand(shape, generator=_seed(draw)) < 0.5, batched=True)


def _downsample(draw: st.DrawFn) -> inverse.LinearOperator:
    k = draw(st.integers(1, 3))
    lead = tuple(draw(st.lists(dims, min_size=0, max_size=2)))
    return Downsample((*lead, k * draw(dims), k * draw(dims)), k)


def _blur(draw: st.DrawFn) -> inverse.LinearOperator:
    h, w = draw(st.integers(2, 7)), draw(st.integers(2, 7))
    kh, kw = draw(st.integers(1, h)), draw(st.integers(1, w))
    lead = tuple(draw(st.lists(dims, min_size=0, max_size=1)))
    kernel = torch.rand(kh, kw, generator=_seed(draw)) - 0.3
    return Blur((*lead, h, w), kernel, padding=draw(st.sampled_from(["circular", "zeros"])))


def _channel_mix(draw: st.DrawFn) -> inverse.LinearOperator:
    c = draw(dims)
    spatial = tuple(draw(st.lists(dims, min_size=0, max_size=2)))
    weights = torch.randn(draw(dims), c, generator=_seed(draw))
    return ChannelMix((c, *spatial), weights)


def _projection(draw: st.DrawFn) -> inverse.LinearOperator:
    shape = tuple(draw(st.lists(dims, min_size=1, max_size=3)))
    return GaussianProjection(shape, draw(st.integers(1, 12)), generator=_seed(draw))


def _compose(draw: st.DrawFn) -> inverse.LinearOperator:
    h, w = 2 * draw(dims), 2 * draw(dims)
    blur = Blur((1, h, w), gaussian_kernel(1, 1.0) + 0.5 * torch.rand(1, 1, generator=_seed(draw)))
    return Compose(Downsample((1, h, w), 2), blur)


OPERATORS: dict[str, Factory] = {
    "identity": _identity,
    "mask": _mask,
    "batched_mask": _batched_mask,
    "downsample": _downsample,
    "blur": _blur,
    "channel_mix": _channel_mix,
    "gaussian_projection": _projection,
    "compose": _compose,
}


@pytest.mark.parametrize("name", OPERATORS)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_adjoint_and_svd_hold_to_round_off(name: str, data: st.DataObject) -> None:
    """⟨A·x, y⟩ = ⟨x, Aᵀ·y⟩, and the SVD pieces are orthogonal and reproduce A (check_operator),
    for random shapes and parameters of every operator."""
    op = data.draw(st.composite(lambda draw: OPERATORS[name](draw))())
    batch = op.mask.shape[0] if isinstance(op, Mask) and op.batched else 3
    check_operator(op, batch=batch, tolerance=1e-10, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_operators_keep_dtype_and_batch(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(0)
    for op in (
        Identity((1, 4, 4)),
        Mask(torch.rand(1, 4, 4, generator=g) < 0.5),
        Downsample((1, 4, 4), 2),
        Blur((1, 4, 4), gaussian_kernel(3, 1.0)),
        Blur((1, 4, 4), gaussian_kernel(3, 1.0), padding="zeros"),
        ChannelMix((1, 4, 4), [[2.0]]),
        GaussianProjection((1, 4, 4), 5, generator=g),
    ):
        x = torch.rand(3, *op.in_shape, dtype=dtype, generator=g)
        y = op.forward(x)
        assert y.shape == (3, *op.out_shape) and y.dtype == dtype, op
        assert op.adjoint(y).shape == x.shape and op.adjoint(y).dtype == dtype, op


def test_blur_matches_torch_convolution() -> None:
    """Circular: F.conv2d on circularly padded x with the flipped kernel (a convolution); zeros:
    the same with zero padding, for an even and an odd kernel."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 6, 7, generator=g, dtype=torch.float64)
    for kh, kw in ((3, 3), (2, 4)):
        k = torch.rand(kh, kw, generator=g, dtype=torch.float64)
        weight = k.flip(0, 1)[None, None].expand(3, 1, kh, kw)
        pads = (kw - 1 - kw // 2, kw // 2, kh - 1 - kh // 2, kh // 2)
        for padding, mode in (("circular", "circular"), ("zeros", "constant")):
            want = F.conv2d(F.pad(x, pads, mode=mode), weight, groups=3)
            got = Blur((3, 6, 7), k, padding=padding).forward(x)  # type: ignore[arg-type]
            torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_downsample_is_average_pooling_and_its_matrix() -> None:
    x = torch.rand(2, 3, 6, 9, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(Downsample((3, 6, 9), 3).forward(x), F.avg_pool2d(x, 3))
    matrix = to_matrix(Downsample((2, 4), 2))
    assert matrix.shape == (2, 8)
    assert torch.equal(matrix.sum(1), torch.ones(2, dtype=torch.float64))
    assert set(matrix.unique().tolist()) == {0.0, 0.25}


def test_singular_values_are_the_matrix_singular_values() -> None:
    g = torch.Generator().manual_seed(2)
    for op in (
        Downsample((1, 4, 6), 2),
        Blur((1, 5, 4), torch.rand(3, 2, generator=g)),
        ChannelMix((3, 2, 2)),
        GaussianProjection((2, 3), 4, generator=g),
    ):
        svd = operator_svd(op)
        assert svd is not None
        want = torch.linalg.svdvals(to_matrix(op))
        got = svd.singular_values.sort(descending=True).values[: want.numel()]
        torch.testing.assert_close(got, want, rtol=0, atol=1e-10)


def test_composition_and_zero_padding_have_no_svd() -> None:
    blur = Blur((1, 4, 4), gaussian_kernel(3, 1.0), padding="zeros")
    assert operator_svd(blur) is None
    assert operator_svd(Compose(Downsample((1, 4, 4), 2), Identity((1, 4, 4)))) is None


def test_gaussian_projection_is_seeded_and_scaled() -> None:
    a = GaussianProjection((1, 8, 8), 2000, generator=torch.Generator().manual_seed(5))
    b = GaussianProjection((1, 8, 8), 2000, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a.matrix, b.matrix)
    # entries N(0, 1/M): the column norms² average 1 (sd of the mean √(2/(M·N)))
    assert abs(float(a.matrix.square().sum(0).mean()) - 1.0) < 6 * math.sqrt(2 / (2000 * 64))


def test_gaussian_kernel_is_normalised_and_centred() -> None:
    k = gaussian_kernel(5, 1.3)
    assert k.shape == (5, 5) and abs(float(k.sum()) - 1.0) < 1e-12
    assert torch.equal(k, k.flip(0)) and torch.equal(k, k.T) and k.argmax() == 12


class _Scale:
    """A user operator in a few lines: A = 2·I on vectors of 3, with a wrong adjoint if asked."""

    in_shape = (3,)
    out_shape = (3,)

    def __init__(self, adjoint_factor: float = 2.0) -> None:
        self.adjoint_factor = adjoint_factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2.0 * x

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self.adjoint_factor * y


def test_check_operator_accepts_a_user_operator_and_names_a_wrong_adjoint() -> None:
    check_operator(_Scale())
    assert isinstance(_Scale(), inverse.LinearOperator)
    with pytest.raises(ValueError, match="Aᵀ"):
        check_operator(_Scale(adjoint_factor=3.0))


BAD: list[tuple[Callable[[], object], type[Exception], str]] = [
    (lambda: Identity("abc"), TypeError, "shape"),
    (lambda: Identity((2, 0)), ValueError, r"shape\[1\]"),
    (lambda: Mask([1, 0]), TypeError, "mask"),  # type: ignore[arg-type]
    (lambda: Mask(torch.tensor([0.5, 1.0])), ValueError, "0 and 1"),
    (lambda: Mask(torch.tensor(True), batched=True), ValueError, "mask"),
    (lambda: Downsample((1, 5, 4), 2), ValueError, "factor=2"),
    (lambda: Downsample((4,), 2), ValueError, "at least 2 dims"),
    (lambda: Blur((1, 4, 4), torch.ones(5, 5)), ValueError, "kernel"),
    (lambda: Blur((1, 4, 4), torch.ones(3)), ValueError, "kernel"),
    (lambda: Blur((1, 4, 4), torch.ones(3, 3), padding="reflect"), ValueError, "padding"),  # type: ignore[arg-type]
    (lambda: Blur((1, 4, 4), [[float("nan")]]), ValueError, "kernel"),
    (lambda: Blur((1, 4, 4), torch.ones(3, 3, dtype=torch.complex64)), TypeError, "kernel"),
    (lambda: ChannelMix((3, 2), [[1.0, 1.0]]), ValueError, "weights"),
    (lambda: GaussianProjection((4,), 0), ValueError, "measurements"),
    (lambda: GaussianProjection((4,), 2, generator=3), TypeError, "generator"),  # type: ignore[arg-type]
    (lambda: Compose(Downsample((1, 4, 4), 2), Identity((1, 8, 8))), ValueError, "out_shape"),
    (lambda: Compose(Identity((2,)), "A"), TypeError, "inner"),  # type: ignore[arg-type]
    (lambda: gaussian_kernel(4, 1.0), ValueError, "size"),
    (lambda: gaussian_kernel(3, 0.0), ValueError, "std"),
    (
        lambda: Downsample((1, 4, 4), 2).forward(torch.ones(2, 1, 4, 5)),
        ValueError,
        r"x must have shape \[B, 1, 4, 4\]",
    ),
    (
        lambda: Downsample((1, 4, 4), 2).adjoint(torch.ones(2, 1, 4, 4)),
        ValueError,
        r"y must have shape \[B, 1, 2, 2\]",
    ),
    (
        lambda: Identity((2,)).forward(torch.ones(2, 2, dtype=torch.int64)),
        TypeError,
        "x must be a real floating",
    ),
    (
        lambda: Blur((2, 2), torch.ones(1, 1)).forward([[1.0, 2.0]]),
        TypeError,
        "x must be a torch.Tensor",
    ),  # type: ignore[arg-type]
    (
        lambda: Mask(torch.ones(2, 3) == 1, batched=True).forward(torch.ones(4, 3)),
        ValueError,
        "batch of the mask",
    ),
    (lambda: to_matrix(object()), TypeError, "LinearOperator"),  # type: ignore[arg-type]
]


@pytest.mark.parametrize("call, error, match", BAD, ids=[case[2] for case in BAD])
def test_bad_arguments_are_named(
    call: Callable[[], object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        call()


def test_operators_are_in_the_namespace() -> None:
    assert ncsn.inverse.Blur is Blur and "LinearOperator" in ncsn.inverse.__all__
