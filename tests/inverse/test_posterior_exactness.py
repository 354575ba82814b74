"""Every posterior sampler against the exact posterior (inverse/langevin.py, snips.py, ddrm.py,
dps.py, exact.py).

On a Gaussian prior with noisy y the posterior is Gaussian in closed form (gaussian_posterior). The
chain of PosteriorLangevin, SNIPS and DDRM is affine with Gaussian noise, so its exact law is read
off the kernels (posterior_laws.py): the samples of the configured sampler must match that law
within Monte Carlo standard errors (the loop is the kernel's), and the law must approach the
posterior as the steps grow (exact in the limit) for PosteriorLangevin and SNIPS; the slow tests
also compare samples with the posterior directly. DDRM and DPS are not exact: their bias at the
default settings is measured and must stay what the docs state. With the paper's two-mode
mixture the posterior mode weights are closed-form (mixture_posterior) and checked.
"""

from __future__ import annotations

import math

import pytest
import torch
from posterior_laws import (
    check_moments,
    ddrm_law,
    flat_score,
    gaussian_problem,
    langevin_law,
    law_error,
)

import ncsn
from ncsn import inverse
from ncsn.inverse import (
    DDRM,
    DPS,
    SNIPS,
    Blur,
    ChannelMix,
    Compose,
    Downsample,
    GaussianProjection,
    Identity,
    Mask,
    PosteriorLangevin,
    gaussian_kernel,
)

OPERATORS = {
    "identity": lambda: Identity((3,)),
    "mask": lambda: Mask(torch.tensor([[[1, 0, 1], [0, 1, 0]]]) == 1),
    "downsample": lambda: Downsample((1, 2, 4), 2),
    "blur_circular": lambda: Blur((1, 3, 3), gaussian_kernel(3, 0.7)),
    "blur_zeros": lambda: Blur((1, 3, 3), gaussian_kernel(3, 0.7), padding="zeros"),
    "colour_to_grey": lambda: ChannelMix((3, 1, 2)),
    "gaussian_projection": lambda: GaussianProjection(
        (5,), 3, generator=torch.Generator().manual_seed(3)
    ),
    "compose": lambda: Compose(
        Downsample((1, 2, 4), 2), Blur((1, 2, 4), [[0.5, 0.25], [0.25, 0.0]])
    ),
}
WITH_SVD = [name for name in OPERATORS if name not in ("blur_zeros", "compose")]

# ε and the σ grid of the exactness checks: ε·(σ₁/σ_L)²·(1 + s²) keeps every level stable.
GRID = ncsn.geometric_sigmas(4.0, 0.02, 8)
EPSILON = 2e-4
N = 4000  # the number of draws the law's error is measured against


def _langevin(name: str, steps: int, kind: str) -> tuple[float, ...]:
    op = OPERATORS[name]()
    prior, m = gaussian_problem(op)
    post = inverse.gaussian_posterior(prior, m)
    model = flat_score(prior, tuple(op.in_shape))
    if kind == "snips":
        law = langevin_law(SNIPS(GRID, EPSILON, steps, measurement=m), model, inverse.snips_step)
    else:
        sampler = PosteriorLangevin(GRID, EPSILON, steps, measurement=m)
        law = langevin_law(sampler, model, inverse.posterior_langevin_step)
    return (law_error(*law, post, N),)


@pytest.mark.parametrize("name", OPERATORS)
def test_posterior_langevin_law_tends_to_the_posterior(name: str) -> None:
    """The exact law of the chain, in standard errors of 4,000 draws, for T = 20, 200, 2,000
    steps per level: it shrinks about tenfold each time and ends below half a standard error."""
    errors = [_langevin(name, steps, "langevin")[0] for steps in (20, 200, 2000)]
    assert errors[0] > 3 * errors[1] > 9 * errors[2], errors
    assert errors[2] < 0.5, errors


@pytest.mark.parametrize("name", WITH_SVD)
def test_snips_law_tends_to_the_posterior(name: str) -> None:
    errors = [_langevin(name, steps, "snips")[0] for steps in (20, 200, 2000)]
    assert errors[0] > 3 * errors[1] > 9 * errors[2], errors
    assert errors[2] < 0.5, errors


@pytest.mark.parametrize("name", ["mask", "blur_circular", "gaussian_projection"])
@pytest.mark.parametrize("kind", ["langevin", "snips", "ddrm"])
def test_samples_match_the_exact_law_of_the_chain(name: str, kind: str) -> None:
    """2,000 chains of the configured sampler (its loop) against the law of its kernels."""
    op = OPERATORS[name]()
    prior, m = gaussian_problem(op)
    model = flat_score(prior, tuple(op.in_shape))
    g = torch.Generator().manual_seed(11)
    sampler: PosteriorLangevin | SNIPS | DDRM
    if kind == "langevin":
        sampler = PosteriorLangevin(GRID, EPSILON, 10, measurement=m)
        law = langevin_law(sampler, model, inverse.posterior_langevin_step)
    elif kind == "snips":
        sampler = SNIPS(GRID, EPSILON, 10, measurement=m)
        law = langevin_law(sampler, model, inverse.snips_step)
    else:
        sampler = DDRM(ncsn.geometric_sigmas(50.0, 0.01, 20), measurement=m)
        law = ddrm_law(sampler, model)
    samples = sampler(model, sampler.start(2000, generator=g).double(), generator=g)
    check_moments(samples, *law)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, kind", [("mask", "langevin"), ("blur_zeros", "langevin"), ("blur_circular", "snips")]
)
def test_samples_match_the_posterior(name: str, kind: str) -> None:
    """Samples against the closed-form posterior itself, at settings whose law is within a
    quarter of a standard error of it (T = 2,000 steps per level, 1,000 chains)."""
    op = OPERATORS[name]()
    prior, m = gaussian_problem(op)
    post = inverse.gaussian_posterior(prior, m)
    model = flat_score(prior, tuple(op.in_shape))
    cls = SNIPS if kind == "snips" else PosteriorLangevin
    sampler = cls(GRID, EPSILON, 2000, measurement=m)
    g = torch.Generator().manual_seed(12)
    samples = sampler(model, sampler.start(1000, generator=g).double(), generator=g)
    check_moments(samples, post.mean, post.cov)


def _summary(mean: torch.Tensor, cov: torch.Tensor, post: ncsn.toy.Gaussian) -> tuple[float, float]:
    """(‖mean − posterior mean‖/√tr Σ_post, tr cov / tr Σ_post)."""
    scale = float(post.cov.trace())
    return float((mean - post.mean).norm()) / math.sqrt(scale), float(cov.trace()) / scale


# DDRM's bias at its defaults (η = 0.85, η_b = 1, 20 levels 50 → 0.01), from its exact law; the
# docs state these: the mean near the posterior's, the spread too small (about half the variance).
DDRM_BIAS = {"mask": (0.060, 0.564), "downsample": (0.021, 0.569), "blur_circular": (0.422, 0.228)}


@pytest.mark.parametrize("name", DDRM_BIAS)
def test_ddrm_bias_at_the_defaults_is_the_documented_one(name: str) -> None:
    op = OPERATORS[name]()
    prior, m = gaussian_problem(op)
    post = inverse.gaussian_posterior(prior, m)
    sampler = DDRM(ncsn.geometric_sigmas(50.0, 0.01, 20), measurement=m)
    mean_error, variance_ratio = _summary(*ddrm_law(sampler, flat_score(prior, op.in_shape)), post)
    want = DDRM_BIAS[name]
    assert abs(mean_error - want[0]) < 1e-3 and abs(variance_ratio - want[1]) < 1e-3
    # more levels do not remove it (η re-draws noise at every level)
    finer = DDRM(ncsn.geometric_sigmas(50.0, 0.01, 100), measurement=m)
    _, finer_ratio = _summary(*ddrm_law(finer, flat_score(prior, op.in_shape)), post)
    assert finer_ratio < 0.8


@pytest.mark.parametrize("name", ["mask", "downsample", "blur_circular"])
def test_dps_bias_at_the_defaults(name: str) -> None:
    """DPS (ζ = 1, 20 levels 50 → 0.01), 2,000 chains: the spread is too small (variance ratio
    0.37 to 0.58 on these problems) and the mean off by 0.1 to 0.3 posterior standard deviations,
    far beyond the sampling error (√(1/2000) ≈ 0.02 of either)."""
    op = OPERATORS[name]()
    prior, m = gaussian_problem(op)
    post = inverse.gaussian_posterior(prior, m)
    sampler = DPS(ncsn.geometric_sigmas(50.0, 0.01, 20), measurement=m)
    g = torch.Generator().manual_seed(0)
    out = sampler(
        flat_score(prior, op.in_shape), sampler.start(2000, generator=g).double(), generator=g
    )
    flat = out.reshape(2000, -1)
    mean_error, variance_ratio = _summary(flat.mean(0), torch.cov(flat.T), post)
    assert 0.08 < mean_error < 0.35 and 0.3 < variance_ratio < 0.65, (mean_error, variance_ratio)


# ------------------------------------------------------------------------ the two-mode mixture
def _mixture_problem() -> tuple[ncsn.toy.GaussianMixture, inverse.Measurement]:
    """The paper's mixture, its first coordinate measured as −0.5 with σ_y = 1: the posterior
    weights flip to (0.75, 0.25) from the prior's (0.2, 0.8)."""
    op = Mask(torch.tensor([True, False]))
    return ncsn.toy.paper_mixture(), inverse.Measurement(
        op, torch.tensor([[-0.5, 0.0]], dtype=torch.float64), 1.0
    )


def test_mixture_posterior_weights_are_the_closed_form() -> None:
    prior, m = _mixture_problem()
    post = inverse.mixture_posterior(prior, m)
    # w_k ∝ π_k N(−0.5; μ_k1, 1 + σ_y²): a log-ratio of log(0.2/0.8) + (5.5² − 4.5²)/4
    ratio = math.exp(math.log(0.25) + (5.5**2 - 4.5**2) / 4)
    torch.testing.assert_close(
        post.weights, torch.tensor([ratio / (1 + ratio), 1 / (1 + ratio)], dtype=torch.float64)
    )
    torch.testing.assert_close(post.means[0], torch.tensor([-2.75, -5.0], dtype=torch.float64))


def _mode_fractions(samples: torch.Tensor) -> float:
    return float((samples.sum(1) < 0).to(torch.float64).mean())


# Fractions of 2,000 chains in the lower mode (posterior weight 0.753): no sampler here recovers
# the weights. Each level's target weighs the modes by the measurement at that σ, not by the
# posterior (the measurement term is exact only as σ → 0), and the chains stop crossing between
# the modes near σ ≈ 1.5, so the weights freeze there; the docs state these numbers.
MODE_FRACTIONS = {"langevin": 0.3445, "snips": 0.5055, "ddrm": 0.2885, "dps": 0.221}


@pytest.mark.slow
@pytest.mark.parametrize("kind", MODE_FRACTIONS)
def test_mode_weights_are_the_documented_ones(kind: str) -> None:
    prior, m = _mixture_problem()
    want = float(inverse.mixture_posterior(prior, m).weights[0])
    sampler: PosteriorLangevin | SNIPS | DDRM | DPS
    if kind == "langevin":
        sampler = PosteriorLangevin(ncsn.geometric_sigmas(20.0, 0.1, 10), 0.01, 100, measurement=m)
    elif kind == "snips":
        sampler = SNIPS(ncsn.geometric_sigmas(20.0, 0.1, 10), 0.01, 100, measurement=m)
    elif kind == "ddrm":
        sampler = DDRM(ncsn.geometric_sigmas(20.0, 0.01, 20), measurement=m)
    else:
        sampler = DPS(ncsn.geometric_sigmas(20.0, 0.01, 20), measurement=m)
    g = torch.Generator().manual_seed(3)
    x = sampler(prior.score_model(), sampler.start(2000, generator=g), generator=g)
    se = math.sqrt(want * (1 - want) / 2000)
    fraction = _mode_fractions(x)
    assert abs(fraction - MODE_FRACTIONS[kind]) < 4 * se, fraction
    assert want - fraction > 20 * se  # far below the posterior weight
