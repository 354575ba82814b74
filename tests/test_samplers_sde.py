"""Consistent annealed sampling, predictor-corrector, the probability-flow ODE and likelihoods:
against their hand-written kernel loops, exact scores and exact densities (``ncsn.toy``)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import Tensor

import ncsn
from ncsn.samplers import (
    ConsistentAnnealedSampling,
    PredictorCorrector,
    ProbabilityFlowODE,
    consistent_step,
    denoise_step,
    langevin_corrector_step,
    ode_step,
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


# ---------------------------------------------------------------- samplers = their kernel loops
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


def test_kernels_are_pure_and_out_steps_in_place() -> None:
    x = torch.rand(4, 3)
    before = x.clone()
    for step in (
        lambda **kw: consistent_step(_model, x, 1.0, 0.5, 0.8, noise=torch.ones_like(x), **kw),
        lambda **kw: reverse_diffusion_step(_model, x, 1.0, 0.5, noise=torch.ones_like(x), **kw),
        lambda **kw: langevin_corrector_step(_model, x, 1.0, 0.1, noise=torch.ones_like(x), **kw),
        lambda **kw: ode_step(_model, x, 1.0, 0.5, **kw),
    ):
        fresh = step()
        assert torch.equal(x, before) and fresh.data_ptr() != x.data_ptr()
        buffer = torch.empty_like(x)
        assert step(out=buffer) is buffer and torch.equal(buffer, fresh)


def test_predictor_and_consistent_steps_with_given_noise_are_the_formulas() -> None:
    x, z = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    s = _model(x, torch.full((4,), 1.0, dtype=torch.float64))
    got = reverse_diffusion_step(_model, x, 1.0, 0.6, noise=z)
    torch.testing.assert_close(got, x + 0.64 * s + 0.8 * z, rtol=1e-14, atol=1e-14)
    beta = math.sqrt(1 - (0.2 * 1.0 / 0.6) ** 2)
    got = consistent_step(_model, x, 1.0, 0.6, 0.8, noise=z)
    torch.testing.assert_close(got, x + 0.8 * s + beta * 0.6 * z, rtol=1e-14, atol=1e-14)


def test_corrector_step_size_follows_the_snr_rule_with_batch_mean_norms() -> None:
    x, z = torch.randn(6, 5, dtype=torch.float64), torch.randn(6, 5, dtype=torch.float64)
    s = _model(x, torch.full((6,), 0.3, dtype=torch.float64))
    eps = 2 * (0.16 * z.norm(dim=1).mean() / s.norm(dim=1).mean()) ** 2
    got = langevin_corrector_step(_model, x, 0.3, 0.16, noise=z)
    torch.testing.assert_close(got, x + eps * s + (2 * eps).sqrt() * z, rtol=1e-14, atol=1e-14)
    # a batch of zero scores is left where it is
    still = langevin_corrector_step(lambda y, _: torch.zeros_like(y), x, 0.3, 0.16, noise=z)
    assert torch.equal(still, x)


# ---------------------------------------------------------------- exact laws (ncsn.toy)
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


# ---------------------------------------------------------------- likelihood
def _gmm_prior(gmm: ncsn.toy.GaussianMixture, sigma: float):  # type: ignore[no-untyped-def]
    return lambda y: gmm.log_prob(y, sigma=sigma)


def test_log_prob_with_exact_trace_equals_the_exact_density_and_converges_at_second_order() -> None:
    gmm = ncsn.toy.paper_mixture()
    x = gmm.sample(32, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    exact = gmm.log_prob(x, sigma=0.1)
    errors = []
    for count in (100, 200):
        sigmas = ncsn.geometric_sigmas(50.0, 0.1, count, dtype=torch.float64)
        got = ncsn.likelihood.log_prob(
            gmm.score_model(), x, sigmas, trace="exact", prior=_gmm_prior(gmm, 50.0)
        )
        assert got.shape == (32,) and got.dtype == torch.float64
        errors.append((got - exact).abs().max().item())
    assert errors[1] < 4e-3
    assert errors[0] / errors[1] > 3.0  # Heun: halving the step divides the error by ~4


def test_log_prob_with_euler_is_first_order() -> None:
    gmm = ncsn.toy.paper_mixture()
    x = gmm.sample(16, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    exact = gmm.log_prob(x, sigma=0.1)
    errors = []
    for count in (100, 200):
        sigmas = ncsn.geometric_sigmas(50.0, 0.1, count, dtype=torch.float64)
        got = ncsn.likelihood.log_prob(
            gmm.score_model(), x, sigmas, trace="exact", solver="euler", prior=_gmm_prior(gmm, 50.0)
        )
        errors.append((got - exact).abs().max().item())
    assert 1.6 < errors[0] / errors[1] < 2.5


@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
def test_hutchinson_log_prob_is_unbiased(probe: str) -> None:
    """The estimate's mean over independent probes equals the exact-trace result on the same path."""
    gmm = ncsn.toy.paper_mixture()
    points = gmm.sample(4, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    repeats = 200
    x = points.repeat_interleave(repeats, dim=0)  # each point with 200 independent probes
    sigmas = ncsn.geometric_sigmas(50.0, 0.1, 60, dtype=torch.float64)
    prior = _gmm_prior(gmm, 50.0)
    exact = ncsn.likelihood.log_prob(gmm.score_model(), points, sigmas, trace="exact", prior=prior)
    estimates = ncsn.likelihood.log_prob(
        gmm.score_model(),
        x,
        sigmas,
        prior=prior,
        probe=probe,  # type: ignore[arg-type]
        generator=torch.Generator().manual_seed(10),
    ).reshape(4, repeats)
    mean, se = estimates.mean(dim=1), estimates.std(dim=1) / math.sqrt(repeats)
    assert (se > 0).all()
    assert ((mean - exact).abs() < 4 * se).all(), (mean, exact, se)
    # more probes per evaluation: smaller spread, same mean
    more = ncsn.likelihood.log_prob(
        gmm.score_model(),
        x,
        sigmas,
        prior=prior,
        probes=4,
        generator=torch.Generator().manual_seed(11),
    ).reshape(4, repeats)
    assert (more.std(dim=1) < estimates.std(dim=1)).all()


def test_default_prior_is_the_wide_gaussian() -> None:
    x = torch.randn(3, 2, dtype=torch.float64)
    got = ncsn.likelihood.gaussian_prior(2.0)(x)
    expected = torch.distributions.Normal(0.0, 2.0).log_prob(x).sum(dim=1)
    torch.testing.assert_close(got, expected)
    # for σ_1 ≫ data the default prior gives nearly the exact density
    gmm = ncsn.toy.paper_mixture()
    points = gmm.sample(8, generator=torch.Generator().manual_seed(12), dtype=torch.float64)
    sigmas = ncsn.geometric_sigmas(1000.0, 0.1, 300, dtype=torch.float64)
    got = ncsn.likelihood.log_prob(gmm.score_model(), points, sigmas, trace="exact")
    assert (got - gmm.log_prob(points, sigma=0.1)).abs().max() < 0.02


def test_bits_per_dim_bounds_the_exact_discrete_likelihood() -> None:
    """1-D Gaussian data on K levels: the dequantised estimate bounds −log₂ P(k) from above,
    within a few hundredths of a bit when the density is smooth at the bin scale."""
    k_levels = 17
    mean, std, sigma_l = 0.5, 0.2, 0.01
    gauss = ncsn.toy.Gaussian(torch.tensor([mean]), torch.tensor([[std**2]]))
    x = torch.tensor([[4.0 / 16], [8.0 / 16], [11.0 / 16]], dtype=torch.float64)
    x = x.repeat_interleave(300, dim=0)
    sigmas = ncsn.geometric_sigmas(30.0, sigma_l, 400, dtype=torch.float64)
    bpd = ncsn.likelihood.bits_per_dim(
        gauss.score_model(),
        x,
        sigmas,
        levels=k_levels,
        trace="exact",
        prior=lambda y: gauss.log_prob(y, sigma=30.0),
        generator=torch.Generator().manual_seed(13),
    ).reshape(3, 300)
    normal = torch.distributions.Normal(mean, math.sqrt(std**2 + sigma_l**2))
    k = x.reshape(3, 300)[:, 0] * (k_levels - 1)  # level k's bin is [k/K, (k + 1)/K)
    exact = -torch.log2(normal.cdf((k + 1) / k_levels) - normal.cdf(k / k_levels))
    upper = bpd.mean(dim=1)
    se = bpd.std(dim=1) / math.sqrt(300)
    assert (upper > exact - 4 * se).all()
    assert (upper - exact < 0.05).all(), (upper, exact)


def test_likelihood_runs_with_a_refinenet_on_images() -> None:
    sigmas = ncsn.geometric_sigmas(1.0, 0.1, 4, dtype=torch.float64)
    net = ncsn.nets.RefineNet(1, ngf=4, sigmas=sigmas, generator=torch.Generator().manual_seed(0))
    net = net.double().eval()
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    b = ncsn.likelihood.bits_per_dim(
        net, x, sigmas, levels=17, generator=torch.Generator().manual_seed(1)
    )
    assert b.shape == (2,) and torch.isfinite(b).all()
    assert all(p.grad is None for p in net.parameters())  # no gradients left on the weights


# ---------------------------------------------------------------- every sampler with any hook
@pytest.mark.parametrize(
    "sampler",
    [
        ConsistentAnnealedSampling([1.0, 0.5, 0.25], eta=0.6, denoise=True),
        PredictorCorrector([1.0, 0.5, 0.25]),
        ProbabilityFlowODE([1.0, 0.5, 0.25], denoise=True),
    ],
    ids=["cas", "pc", "ode"],
)
def test_inpainting_works_with_every_new_sampler(sampler: ncsn.Sampler) -> None:
    x = torch.rand(2, 1, 4, 4)
    mask = ncsn.samplers.inpainting_mask("right_half", x.shape)
    out = ncsn.samplers.inpaint(
        sampler, _model, x, mask, generator=torch.Generator().manual_seed(0)
    )
    assert torch.equal(out[mask], x[mask])  # the denoising step ends at σ = 0: known entries exact
    assert not torch.equal(out[~mask], x[~mask])


# ---------------------------------------------------------------- bad settings
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
            lambda: reverse_diffusion_step(
                _model, torch.rand(2, 2), 1.0, 0.5, noise=torch.rand(2, 3)
            ),
            ValueError,
            "noise must have the shape of x",
        ),
        (
            lambda: ProbabilityFlowODE([1.0, 0.5])(_model, torch.rand(0, 2)),
            ValueError,
            "x must hold at least one example",
        ),
        (
            lambda: PredictorCorrector([1.0, 0.5])(_model, torch.full((2, 2), float("nan"))),
            ValueError,
            "NaN or infinite",
        ),
        (
            lambda: ConsistentAnnealedSampling([1.0, 0.5], eta=0.9)(
                _model, torch.rand(2, 2), generator=0
            ),
            TypeError,
            "generator must be a torch.Generator",
        ),
        (
            lambda: ProbabilityFlowODE([1.0, 0.5])(lambda x, s: x[:, :1], torch.rand(2, 2)),
            ValueError,
            "output shape",
        ),
    ],
)
def test_bad_sampler_settings_are_typed_errors(make, error: type[Exception], match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"trace": "full"}, ValueError, "trace must be 'exact' or 'hutchinson'"),
        ({"probe": "uniform"}, ValueError, "probe must be 'rademacher' or 'gaussian'"),
        ({"probes": 0}, ValueError, "probes must be >= 1"),
        ({"solver": "rk45"}, ValueError, "solver must be one of"),
        ({"sigmas": [1.0]}, ValueError, "at least two levels"),
        ({"sigmas": [0.5, 1.0]}, ValueError, "strictly decreasing"),
        (
            {"prior": lambda y: y},
            ValueError,
            r"prior must return one log-density per example, \[3\]",
        ),
        ({"x": torch.rand(0, 2)}, ValueError, "x must hold at least one example"),
        ({"x": torch.full((3, 2), float("inf"))}, ValueError, "x contains NaN or infinite"),
        ({"generator": 1}, TypeError, "generator must be a torch.Generator"),
    ],
)
def test_bad_likelihood_settings_are_typed_errors(kwargs, error, match) -> None:  # type: ignore[no-untyped-def]
    args = {"x": torch.rand(3, 2), "sigmas": [1.0, 0.5]} | kwargs
    x, sigmas = args.pop("x"), args.pop("sigmas")
    with pytest.raises(error, match=match):
        ncsn.likelihood.log_prob(_model, x, sigmas, **args)


def test_bad_bits_per_dim_settings_are_typed_errors() -> None:
    with pytest.raises(ValueError, match=r"x must lie in \[0, 1\].*\[-0\.5"):
        ncsn.likelihood.bits_per_dim(_model, torch.tensor([[-0.5, 0.2]]), [1.0, 0.5])
    with pytest.raises(ValueError, match="levels must be >= 2"):
        ncsn.likelihood.bits_per_dim(_model, torch.rand(2, 2), [1.0, 0.5], levels=1)
