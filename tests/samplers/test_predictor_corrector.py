"""Predictor-corrector sampling of the VE SDE (samplers/predictor_corrector.py): the loop, the\nkernels' formulas and the paper mixture's law."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

import ncsn
from contracts import gaussian_score
from ncsn.samplers import (
    PredictorCorrector,
    denoise_step,
    langevin_corrector_step,
    reverse_diffusion_step,
)

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


@pytest.mark.parametrize("corrector_steps", [0, 1, 2])
@pytest.mark.parametrize("denoise", [False, True])
def test_predictor_corrector_equals_the_kernel_loop(corrector_steps: int, denoise: bool) -> None:
    sampler = PredictorCorrector(SIGMAS, snr=0.1, corrector_steps=corrector_steps, denoise=denoise)
    x0 = torch.rand(3, 2, 4, 4)
    model = _counting(_model)
    got = sampler(model, x0, generator=torch.Generator().manual_seed(2))
    assert model.calls == sampler.num_model_calls == 6 * corrector_steps + 5 + int(denoise)
    g = torch.Generator().manual_seed(2)
    x = x0
    levels = SIGMAS.tolist()
    for i, sigma in enumerate(levels):
        for _ in range(corrector_steps):
            x = langevin_corrector_step(_model, x, sigma, 0.1, generator=g)
        if i + 1 < len(levels):
            x = reverse_diffusion_step(_model, x, sigma, levels[i + 1], generator=g)
    if denoise:
        x = denoise_step(_model, x, levels[-1])
    assert torch.equal(got, x)


def test_reverse_diffusion_step_with_given_noise_is_the_formula() -> None:
    x, z = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    s = _model(x, torch.full((4,), 1.0, dtype=torch.float64))
    got = reverse_diffusion_step(_model, x, 1.0, 0.6, noise=z)
    torch.testing.assert_close(got, x + 0.64 * s + 0.8 * z, rtol=1e-14, atol=1e-14)


def test_corrector_step_size_follows_the_snr_rule_with_batch_mean_norms() -> None:
    x, z = torch.randn(6, 5, dtype=torch.float64), torch.randn(6, 5, dtype=torch.float64)
    s = _model(x, torch.full((6,), 0.3, dtype=torch.float64))
    eps = 2 * (0.16 * z.norm(dim=1).mean() / s.norm(dim=1).mean()) ** 2
    got = langevin_corrector_step(_model, x, 0.3, 0.16, noise=z)
    torch.testing.assert_close(got, x + eps * s + (2 * eps).sqrt() * z, rtol=1e-14, atol=1e-14)
    # a batch of zero scores is left where it is
    still = langevin_corrector_step(lambda y, _: torch.zeros_like(y), x, 0.3, 0.16, noise=z)
    assert torch.equal(still, x)


def test_predictor_corrector_recovers_the_paper_mode_weights_and_spreads() -> None:
    gmm = ncsn.toy.paper_mixture()
    n = 4000
    g = torch.Generator().manual_seed(5)
    start = _mixture_start(n, 50.0, g)
    sigmas = ncsn.geometric_sigmas(50.0, 0.05, 200, dtype=torch.float64)
    out = PredictorCorrector(sigmas)(gmm.score_model(), start, generator=g)
    weights = ncsn.metrics.mode_weights(out, gmm)
    se = math.sqrt(0.2 * 0.8 / n)
    assert abs(weights[0].item() - 0.2) < 4 * se
    _assert_unit_spread_per_mode(gmm, out)


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
        (lambda: PredictorCorrector([1.0, 0.5], snr=0.0), ValueError, "snr must be positive"),
        (
            lambda: PredictorCorrector([1.0, 0.5], snr=float("nan")),
            ValueError,
            "snr must be positive",
        ),
        (
            lambda: PredictorCorrector([1.0, 0.5], corrector_steps=-1),
            ValueError,
            "corrector_steps must be >= 0",
        ),
        (
            lambda: PredictorCorrector([1.0, 0.5], corrector_steps=1.5),
            TypeError,
            "corrector_steps must be an int",
        ),
        (lambda: PredictorCorrector([1.0, 0.5], denoise=1), TypeError, "denoise must be a bool"),
        (
            lambda: reverse_diffusion_step(_model, torch.rand(2, 2), 0.5, 1.0),
            ValueError,
            "next_sigma must lie in",
        ),
        (
            lambda: reverse_diffusion_step(_model, torch.rand(2, 2), -1.0, 0.0),
            ValueError,
            "sigma must be positive",
        ),
        (
            lambda: langevin_corrector_step(_model, torch.rand(2, 2), 1.0, -0.1),
            ValueError,
            "snr must be positive",
        ),
        (
            lambda: reverse_diffusion_step(
                _model, torch.rand(2, 2), 1.0, 0.5, noise=torch.rand(2, 3)
            ),
            ValueError,
            "noise must have the shape of x",
        ),
        (
            lambda: PredictorCorrector([1.0, 0.5])(_model, torch.full((2, 2), float("nan"))),
            ValueError,
            "NaN or infinite",
        ),
    ],
)
def test_bad_predictor_corrector_settings_are_typed_errors(
    make, error: type[Exception], match: str
) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=match):
        make()


def test_a_grid_ending_in_zero_is_refused_naming_denoise() -> None:
    with pytest.raises(ValueError, match=r"a trailing 0 .* denoise=True \(the default\)"):
        PredictorCorrector(torch.tensor([1.0, 0.5, 0.0]))


EMPTY_RULE = r"x must hold at least one example; got shape \(0, 2\)"


AUDIT_CASES: list[tuple[str, Callable[[], object], type[Exception], str]] = [
    (
        "reverse_diffusion_step/empty batch",
        lambda: ncsn.samplers.reverse_diffusion_step(gaussian_score, torch.zeros(0, 2), 1.0, 0.5),
        ValueError,
        EMPTY_RULE,
    ),
    (
        "langevin_corrector_step/empty batch",
        lambda: ncsn.samplers.langevin_corrector_step(gaussian_score, torch.zeros(0, 2), 1.0, 0.1),
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
