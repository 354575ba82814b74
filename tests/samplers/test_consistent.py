"""Consistent annealed sampling (samplers/consistent.py): the loop, the kernel's formula and the\nconsistency of the noise level, against exact scores (``ncsn.toy``)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

import ncsn
from contracts import gaussian_score
from ncsn.samplers import ConsistentAnnealedSampling, consistent_step, denoise_step

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


@pytest.mark.parametrize("denoise", [False, True])
def test_consistent_annealed_sampling_equals_the_kernel_loop(denoise: bool) -> None:
    sampler = ConsistentAnnealedSampling(SIGMAS, eta=0.7, denoise=denoise)
    x0 = torch.rand(3, 2, 4, 4)
    model = _counting(_model)
    got = sampler(model, x0, generator=torch.Generator().manual_seed(1))
    assert model.calls == sampler.num_model_calls == 6 + int(denoise)
    g = torch.Generator().manual_seed(1)
    x = x0
    levels = [*SIGMAS.tolist(), 0.0]
    for sigma, nxt in itertools.pairwise(levels):
        x = consistent_step(_model, x, sigma, nxt, 0.7, generator=g)
    if denoise:
        x = denoise_step(_model, x, levels[-2])
    assert torch.equal(got, x)


def test_consistent_step_with_given_noise_is_the_formula() -> None:
    x, z = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    s = _model(x, torch.full((4,), 1.0, dtype=torch.float64))
    beta = math.sqrt(1 - (0.2 * 1.0 / 0.6) ** 2)
    got = consistent_step(_model, x, 1.0, 0.6, 0.8, noise=z)
    torch.testing.assert_close(got, x + 0.8 * s + beta * 0.6 * z, rtol=1e-14, atol=1e-14)


def test_consistent_sampling_keeps_the_noise_level_of_a_point_mass_consistent() -> None:
    """Jolicoeur-Martineau et al. (2021): with the exact score of (almost) a point mass, the
    iterate after the step from σ_i stands at noise level σ_{i+1}: its spread is σ_{i+1}."""
    point = ncsn.toy.Gaussian(torch.zeros(2), 1e-10 * torch.eye(2))
    sigmas = ncsn.geometric_sigmas(10.0, 0.1, 12, dtype=torch.float64)
    sampler = ConsistentAnnealedSampling(sigmas, eta=0.5)
    n = 8000
    g = torch.Generator().manual_seed(3)
    x0 = 10.0 * torch.randn(n, 2, generator=g, dtype=torch.float64)
    spreads: list[float] = []
    sampler(
        point.score_model(),
        x0,
        generator=g,
        callback=lambda info: spreads.append(info.x.square().mean().sqrt().item()),
    )
    expected = [*sigmas.tolist()[1:], sampler.final_sigma]
    se = 1 / math.sqrt(2 * 2 * n)  # relative standard error of an RMS over 2n normal values
    for got, want in zip(spreads, expected, strict=True):
        assert abs(got / want - 1) < 4 * se


def test_consistent_sampling_with_eta_one_is_tweedie_at_every_level() -> None:
    point = ncsn.toy.Gaussian(torch.zeros(2), 1e-10 * torch.eye(2))
    sampler = ConsistentAnnealedSampling([4.0, 2.0, 1.0], eta=1.0)
    assert sampler.betas == (1.0, 1.0, 0.0) and sampler.final_sigma == 0.0
    out = sampler(point.score_model(), torch.randn(100, 2, dtype=torch.float64))
    assert out.abs().max() < 1e-8  # the last step lands on the point


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "make, error, match",
    [
        (
            lambda: ConsistentAnnealedSampling([1.0, 0.5], eta=0.2),
            ValueError,
            r"eta must lie in \[0\.5, 1\].*eta=0\.2",
        ),
        (lambda: ConsistentAnnealedSampling([1.0, 0.5], eta=1.5), ValueError, "eta must lie in"),
        (
            lambda: ConsistentAnnealedSampling([1.0, 0.5], eta=0.0),
            ValueError,
            "eta must be positive",
        ),
        (lambda: ConsistentAnnealedSampling([1.0, 0.5], eta="a"), TypeError, "eta must be a real"),
        (
            lambda: ConsistentAnnealedSampling([1.0, 0.5], eta=1.0, denoise=True),
            ValueError,
            "denoise=True needs eta < 1",
        ),
        (
            lambda: ConsistentAnnealedSampling([0.5, 1.0], eta=0.9),
            ValueError,
            "strictly decreasing",
        ),
        (
            lambda: consistent_step(_model, torch.rand(2, 2), 1.0, 1.0, 0.5),
            ValueError,
            r"next_sigma must lie in \[0, sigma\)",
        ),
        (
            lambda: consistent_step(_model, torch.rand(2, 2), 1.0, 0.5, 0.1),
            ValueError,
            "eta must lie in",
        ),
        (
            lambda: ConsistentAnnealedSampling([1.0, 0.5], eta=0.9)(
                _model, torch.rand(2, 2), generator=0
            ),
            TypeError,
            "generator must be a torch.Generator",
        ),
    ],
)
def test_bad_consistent_settings_are_typed_errors(make, error: type[Exception], match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=match):
        make()


def test_a_grid_ending_in_zero_is_refused_saying_the_last_step_goes_to_zero() -> None:
    with pytest.raises(ValueError, match=r"a trailing 0 .* the last step already goes to σ = 0"):
        ConsistentAnnealedSampling([1.0, 0.5, 0.0], eta=0.9)


EMPTY_RULE = r"x must hold at least one example; got shape \(0, 2\)"


AUDIT_CASES: list[tuple[str, Callable[[], object], type[Exception], str]] = [
    (
        "consistent_step/empty batch",
        lambda: ncsn.samplers.consistent_step(gaussian_score, torch.zeros(0, 2), 1.0, 0.5, 0.9),
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
