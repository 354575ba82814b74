"""The probability-flow ODE (samplers/ode.py): the loop and encoding, the solvers' formulas, and\nthe transport of exact samples."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

import ncsn
from contracts import gaussian_score
from ncsn.samplers import ProbabilityFlowODE, denoise_step, ode_step

SIGMAS = ncsn.geometric_sigmas(1.0, 0.05, 6)


def _model(x: Tensor, sigma: Tensor) -> Tensor:
    """A smooth non-linear score model for equivalence tests."""
    return -torch.tanh(x) / sigma.reshape(-1, *([1] * (x.ndim - 1)))


def _counting(model):  # type: ignore[no-untyped-def]
    def wrapped(x: Tensor, sigma: Tensor) -> Tensor:
        wrapped.calls += 1  # type: ignore[attr-defined]
        return model(x, sigma)

    wrapped.calls = 0  # type: ignore[attr-defined]
    return wrapped


def _mixture_start(n: int, sigma: float, g: torch.Generator) -> Tensor:
    """Exact samples of the paper mixture perturbed by N(0, σ²I)."""
    gmm = ncsn.toy.paper_mixture()
    return gmm.sample(n, generator=g, dtype=torch.float64) + sigma * torch.randn(
        n, 2, generator=g, dtype=torch.float64
    )


@pytest.mark.parametrize("solver", ["heun", "euler"])
@pytest.mark.parametrize("denoise", [False, True])
def test_probability_flow_ode_equals_the_kernel_loop(solver: str, denoise: bool) -> None:
    sampler = ProbabilityFlowODE(SIGMAS, solver=solver, denoise=denoise)  # type: ignore[arg-type]
    x0 = torch.rand(3, 2, 4, 4)
    model = _counting(_model)
    got = sampler(model, x0)
    per_step = 2 if solver == "heun" else 1
    assert model.calls == sampler.num_model_calls == 5 * per_step + int(denoise)
    x = x0
    levels = SIGMAS.tolist() + ([0.0] if denoise else [])
    for sigma, nxt in itertools.pairwise(levels):
        x = ode_step(_model, x, sigma, nxt, solver=solver)  # type: ignore[arg-type]
    assert torch.equal(got, x)
    # encoding is the same kernel on the reversed grid
    model.calls = 0
    latent = sampler.encode(model, x0)
    assert model.calls == 5 * per_step
    y = x0
    up = SIGMAS.tolist()[::-1]
    for sigma, nxt in itertools.pairwise(up):
        y = ode_step(_model, y, sigma, nxt, solver=solver)  # type: ignore[arg-type]
    assert torch.equal(latent, y)


def test_ode_step_to_zero_is_the_denoising_step_bit_for_bit() -> None:
    x = torch.randn(4, 3)
    for solver in ("heun", "euler"):
        assert torch.equal(
            ode_step(_model, x, 0.5, 0.0, solver=solver), denoise_step(_model, x, 0.5)
        )


def test_heun_step_is_the_trapezoid_rule_on_the_euler_guess() -> None:
    x = torch.randn(4, 3, dtype=torch.float64)
    s, t = 0.8, 0.5
    d1 = -s * _model(x, torch.full((4,), s, dtype=torch.float64))
    guess = x + (t - s) * d1
    d2 = -t * _model(guess, torch.full((4,), t, dtype=torch.float64))
    expected = x + (t - s) * (d1 + d2) / 2
    torch.testing.assert_close(ode_step(_model, x, s, t), expected, rtol=1e-14, atol=1e-14)


def test_the_ode_is_deterministic_whatever_the_generator() -> None:
    sampler = ProbabilityFlowODE(SIGMAS)
    x0 = torch.rand(5, 3)
    a = sampler(_model, x0, generator=torch.Generator().manual_seed(0))
    b = sampler(_model, x0, generator=torch.Generator().manual_seed(123))
    assert torch.equal(a, b) and torch.equal(a, sampler(_model, x0))


def test_the_ode_transports_exact_samples_to_the_data_law() -> None:
    """p_{σ_1} → p_{σ_L}: mode weights within standard errors, every mode's spread √(1 + σ_L²)."""
    gmm = ncsn.toy.paper_mixture()
    n = 4000
    g = torch.Generator().manual_seed(6)
    start = _mixture_start(n, 50.0, g)
    ode = ProbabilityFlowODE(ncsn.geometric_sigmas(50.0, 0.05, 400, dtype=torch.float64))
    out = ode(gmm.score_model(), start)
    weights = ncsn.metrics.mode_weights(out, gmm)
    assert abs(weights[0].item() - 0.2) < 4 * math.sqrt(0.2 * 0.8 / n)
    _assert_unit_spread_per_mode(gmm, out)
    # and back: encoding the samples recovers the start up to the solver's error
    back = ode.encode(gmm.score_model(), out)
    assert (back - start).abs().max() < 1e-2 * 50.0


def _assert_unit_spread_per_mode(gmm: ncsn.toy.GaussianMixture, out: Tensor) -> None:
    k = gmm.component_posterior(out).argmax(dim=1)
    for mode in (0, 1):
        points = out[k == mode]
        m = points.shape[0]
        spread = points.std(dim=0)
        # std of m normal values: standard error 1/√(2m); 4 standard errors
        assert (spread - 1.0).abs().max() < 4 / math.sqrt(2 * m), (mode, spread)


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "make, error, match",
    [
        (
            lambda: ProbabilityFlowODE([1.0, 0.5], solver="rk4"),
            ValueError,
            r"solver must be one of \['heun', 'euler'\]; got solver='rk4'",
        ),
        (lambda: ProbabilityFlowODE([1.0]), ValueError, "at least two levels"),
        (
            lambda: ProbabilityFlowODE([1.0, 0.5], denoise="yes"),
            TypeError,
            "denoise must be a bool",
        ),
        (
            lambda: ode_step(_model, torch.rand(2, 2), 1.0, 1.0),
            ValueError,
            "next_sigma must differ",
        ),
        (lambda: ode_step(_model, torch.rand(2, 2), 1.0, -0.5), ValueError, "must be non-negative"),
        (
            lambda: ode_step(_model, torch.rand(2, 2), 1.0, 0.5, out=torch.rand(3, 2)),
            ValueError,
            "out must match x",
        ),
        (
            lambda: ProbabilityFlowODE([1.0, 0.5])(_model, torch.rand(0, 2)),
            ValueError,
            "x must hold at least one example",
        ),
        (
            lambda: ProbabilityFlowODE([1.0, 0.5])(lambda x, s: x[:, :1], torch.rand(2, 2)),
            ValueError,
            "output shape",
        ),
    ],
)
def test_bad_ode_settings_are_typed_errors(make, error: type[Exception], match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=match):
        make()


def test_a_grid_ending_in_zero_is_refused_naming_denoise() -> None:
    """[σ_1, ..., σ_L, 0] is what denoise=True integrates; encode could not start at σ = 0."""
    with pytest.raises(ValueError, match=r"a trailing 0 .* pass denoise=True, exactly that last"):
        ProbabilityFlowODE([1.0, 0.5, 0.0])


EMPTY_RULE = r"x must hold at least one example; got shape \(0, 2\)"


AUDIT_CASES: list[tuple[str, Callable[[], object], type[Exception], str]] = [
    (
        "ode_step/empty batch",
        lambda: ncsn.samplers.ode_step(gaussian_score, torch.zeros(0, 2), 1.0, 0.5),
        ValueError,
        EMPTY_RULE,
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
