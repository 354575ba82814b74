"""Langevin dynamics at one level: :func:`langevin_step` and :class:`Langevin` (samplers/langevin.py)."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

import ncsn
from contracts import gaussian_score
from ncsn.samplers import Langevin, langevin_step


def _model(x: Tensor, sigma: Tensor) -> Tensor:
    """A smooth non-linear score model for equivalence tests."""
    return -torch.tanh(x) / sigma.reshape(-1, *([1] * (x.ndim - 1)))


def test_langevin_equals_the_kernel_loop() -> None:
    x0 = torch.rand(4, 3, 5, 5)
    got = Langevin(0.3, 0.01, 7)(_model, x0, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    x = x0
    for _ in range(7):
        x = langevin_step(_model, x, 0.3, 0.01, generator=g)
    assert torch.equal(got, x)


def test_one_step_equals_the_official_update_with_step_size_twice_step_lr() -> None:
    """Official image code: x + step_lr·s + sqrt(2·step_lr)·z (spec §1.5)."""
    step_lr = 2e-5 * (1.0 / 0.01) ** 2  # level 0 of the official schedule
    g = torch.Generator().manual_seed(2)
    x = torch.rand(8, 3, 32, 32, generator=g)
    z = torch.randn(x.shape, generator=g)
    sigma = torch.full((8,), 1.0)
    official = x + step_lr * _model(x, sigma) + z * math.sqrt(step_lr * 2)
    ours = langevin_step(_model, x, sigma, 2 * step_lr, noise=z)
    assert torch.equal(ours, official)


def test_langevin_reaches_the_exact_gaussian_stationary_law() -> None:
    """Target N(μ, s²I) with its exact score; the discretised chain's stationary law is known exactly.

    x' = x + (α/2)(μ − x)/s² + √α z has stationary mean μ and variance α / (1 − (1 − α/(2s²))²).
    """
    mu, s, alpha, n = 1.5, 0.7, 0.05, 8000
    score = lambda x, sig: (mu - x) / s**2  # noqa: E731
    g = torch.Generator().manual_seed(3)
    x0 = ncsn.samplers.uniform_init((n, 2), low=-3, high=3, generator=g, dtype=torch.float64)
    x = Langevin(0.0, alpha, 600)(score, x0, generator=g).flatten()
    var_exact = alpha / (1 - (1 - alpha / (2 * s**2)) ** 2)
    m = x.numel()
    assert abs(x.mean().item() - mu) < 4 * math.sqrt(var_exact / m)
    assert abs(x.var().item() - var_exact) < 4 * var_exact * math.sqrt(2 / (m - 1))


class _CountingScore:
    """The score of N(0, I), counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, xt: Tensor, s: Tensor) -> Tensor:
        self.calls += 1
        return -xt


@pytest.mark.parametrize(
    "sigma, shown",
    [
        (-1.0, r"sigma=-1\.0"),
        (float("nan"), r"sigma=nan"),
        (float("inf"), r"sigma=inf"),
        (torch.tensor([0.5, -0.1]), r"sigma=\[0\.5, -0\.1"),
    ],
)
def test_langevin_step_rejects_negative_or_non_finite_sigma(
    sigma: float | Tensor, shown: str
) -> None:
    with pytest.raises(ValueError, match=rf"sigma must be non-negative and finite; got {shown}"):
        langevin_step(_model, torch.rand(2, 2), sigma, 0.1)


def test_langevin_step_accepts_sigma_zero() -> None:
    x = torch.rand(3, 2, dtype=torch.float64)
    z = torch.randn(3, 2, dtype=torch.float64)
    out = langevin_step(lambda xt, s: -xt, x, 0.0, 0.04, noise=z)
    assert torch.equal(out, x + (-x) * 0.02 + z * 0.2)


def test_langevin_step_checks_noise_before_calling_the_model() -> None:
    model = _CountingScore()
    with pytest.raises(ValueError, match=r"noise must have the shape of x \(2, 3\); got \(2, 2\)"):
        langevin_step(model, torch.rand(2, 3), 0.1, 0.1, noise=torch.zeros(2, 2))
    with pytest.raises(TypeError, match=r"noise must be a torch\.Tensor or None; got list"):
        langevin_step(model, torch.rand(2, 3), 0.1, 0.1, noise=[0.0])  # type: ignore[arg-type]
    assert model.calls == 0


def test_langevin_step_casts_noise_to_the_dtype_of_x() -> None:
    x = torch.rand(4, 3)
    z64 = torch.randn(4, 3, dtype=torch.float64)
    out = langevin_step(_model, x, 0.5, 0.01, noise=z64)
    assert out.dtype == torch.float32
    assert torch.equal(out, langevin_step(_model, x, 0.5, 0.01, noise=z64.float()))


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: Langevin(0.1, 0.0, 3), "step_size=0.0"),
        (lambda: Langevin(0.1, float("nan"), 3), "step_size=nan"),
        (lambda: Langevin(0.1, 0.1, 0), "num_steps must be >= 1; got num_steps=0"),
        (lambda: Langevin(-0.1, 0.1, 3), "sigma must be non-negative; got sigma=-0.1"),
    ],
)
def test_langevin_construction_errors(make, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match):
        make()


X = torch.rand(4, 2)
SIGMAS = ncsn.geometric_sigmas(1.0, 0.1, 3)
EMPTY_RULE = r"x must hold at least one example; got shape \(0, 2\)"


def _meta(shape: tuple[int, ...] = (4, 2)) -> Tensor:
    """A tensor on another device than the CPU models (meta: shapes, no values)."""
    return torch.zeros(shape, device="meta")


AUDIT_CASES: list[tuple[str, Callable[[], object], type[Exception], str]] = [
    (
        "langevin_step/model not callable",
        lambda: ncsn.samplers.langevin_step(None, X, 1.0, 0.1),
        TypeError,  # type: ignore[arg-type]
        r"model must be a callable score model; got None",
    ),
    (
        "langevin_step/empty batch",
        lambda: ncsn.samplers.langevin_step(gaussian_score, torch.zeros(0, 2), 1.0, 0.1),
        ValueError,
        EMPTY_RULE,
    ),
    (
        "langevin_step/noise on another device",
        lambda: ncsn.samplers.langevin_step(gaussian_score, X, 1.0, 0.1, noise=_meta()),
        ValueError,
        r"noise is on device meta but x is on device cpu",
    ),
    (
        "langevin_step/integer noise",
        lambda: ncsn.samplers.langevin_step(
            gaussian_score, X, 1.0, 0.1, noise=torch.zeros(4, 2, dtype=torch.int64)
        ),
        TypeError,
        r"noise must be a floating-point tensor; got dtype torch\.int64",
    ),
    (
        "langevin_step/sigma on another device",
        lambda: ncsn.samplers.langevin_step(gaussian_score, X, _meta((4,)), 0.1),
        ValueError,
        r"sigma is on device meta but x is on device cpu",
    ),
]


@pytest.mark.parametrize(
    ("call", "error", "match"), [c[1:] for c in AUDIT_CASES], ids=[c[0] for c in AUDIT_CASES]
)
def test_audited_bad_input_raises_naming_the_argument(
    call: Callable[[], object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        call()
