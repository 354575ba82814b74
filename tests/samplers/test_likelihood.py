"""Log-likelihoods and bits/dim along the probability-flow ODE (likelihood.py): against exact\ndensities (``ncsn.toy``), the solvers' orders, Hutchinson's estimate and the discrete bound."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

import ncsn
from contracts import gaussian_score
from ncsn.samplers import NonFiniteError


def _model(x: Tensor, sigma: Tensor) -> Tensor:
    """A smooth non-linear score model for equivalence tests."""
    return -torch.tanh(x) / sigma.reshape(-1, *([1] * (x.ndim - 1)))


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
    # bits_per_dim bounds data on the grey levels: 17 levels k/16, as the digits
    g = torch.Generator().manual_seed(2)
    x = torch.randint(0, 17, (2, 1, 8, 8), generator=g).to(torch.float64) / 16
    b = ncsn.likelihood.bits_per_dim(
        net, x, sigmas, levels=17, generator=torch.Generator().manual_seed(1)
    )
    assert b.shape == (2,) and torch.isfinite(b).all()
    assert all(p.grad is None for p in net.parameters())  # no gradients left on the weights


def test_bits_per_dim_refuses_data_off_the_grey_levels() -> None:
    """Before: a number that is not the bound it documents (no P(k) to bound off the grid)."""
    x = torch.tensor([[0.3, 0.5]], dtype=torch.float64)  # 0.3 = level 4.8 of 16
    with pytest.raises(
        ValueError,
        match=r"x must hold the 17 grey levels k/16 .* got 0\.3 \(level 4\.8 of 16\).*log_prob",
    ):
        ncsn.likelihood.bits_per_dim(_model, x, [1.0, 0.5], levels=17)
    digits = torch.tensor([[3 / 16, 1.0]])  # 17 levels, scored as if 8-bit: the levels are named
    with pytest.raises(ValueError, match=r"levels=256 .*pass the data's own number of levels"):
        ncsn.likelihood.bits_per_dim(_model, digits, [1.0, 0.5])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "widened"])
def test_bits_per_dim_takes_8_bit_data_stored_in_float32_or_widened(dtype: torch.dtype) -> None:
    x = (torch.arange(256).reshape(2, 128).float() / 255).to(dtype)  # every level, round-off kept
    g = torch.Generator().manual_seed(0)
    b = ncsn.likelihood.bits_per_dim(_model, x, [1.0, 0.5], generator=g)
    assert b.shape == (2,) and torch.isfinite(b).all()


def test_log_prob_names_a_model_returning_nan() -> None:
    """Before: "the σ grid is probably too coarse"."""
    with pytest.raises(NonFiniteError, match=r"log_prob: the model returned NaN") as err:
        ncsn.likelihood.log_prob(lambda x, s: x * float("nan"), torch.rand(3, 2), [1.0, 0.5])
    assert err.value.source == "model" and err.value.level == 0


def test_log_prob_names_a_prior_returning_minus_infinity() -> None:
    with pytest.raises(NonFiniteError, match=r"the prior returned NaN or infinite") as err:
        ncsn.likelihood.log_prob(
            _model, torch.rand(3, 2), [1.0, 0.5], prior=lambda y: torch.full((3,), -math.inf)
        )
    assert err.value.source == "prior"


def test_log_prob_refuses_a_grid_ending_in_zero() -> None:
    with pytest.raises(ValueError, match=r"a trailing 0 .* log_prob starts from x at σ_L > 0"):
        ncsn.likelihood.log_prob(_model, torch.rand(3, 2), [1.0, 0.5, 0.0])


def test_log_prob_takes_a_sigma_grid() -> None:
    x = torch.rand(3, 2, dtype=torch.float64)
    sigmas = ncsn.geometric_sigmas(2.0, 0.5, 5, dtype=torch.float64)
    a = ncsn.likelihood.log_prob(_model, x, sigmas, trace="exact")
    b = ncsn.likelihood.log_prob(_model, x, ncsn.schedules.SigmaGrid(sigmas), trace="exact")
    assert torch.equal(a, b)


# ---------------------------------------------------------------- bad input
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


X = torch.rand(4, 2)
SIGMAS = ncsn.geometric_sigmas(1.0, 0.1, 3)


def _detached(x: Tensor, sigma: Tensor) -> Tensor:
    return (-x).detach()


AUDIT_CASES: list[tuple[str, Callable[[], object], type[Exception], str]] = [
    (
        "log_prob/model not callable",
        lambda: ncsn.likelihood.log_prob(None, X, SIGMAS),
        TypeError,  # type: ignore[arg-type]
        r"model must be a callable score model; got None",
    ),
    (
        "log_prob/prior not callable",
        lambda: ncsn.likelihood.log_prob(gaussian_score, X, SIGMAS, prior=3),
        TypeError,  # type: ignore[arg-type]
        r"prior must be callable or None; got prior=3",
    ),
    (
        "log_prob/model detaches its output (exact trace)",
        lambda: ncsn.likelihood.log_prob(_detached, X, SIGMAS, trace="exact"),
        ValueError,
        r"model output does not depend differentiably on x",
    ),
    (
        "log_prob/model detaches its output (Hutchinson)",
        lambda: ncsn.likelihood.log_prob(_detached, X, SIGMAS),
        ValueError,
        r"model output does not depend differentiably on x",
    ),
    (
        "log_prob/model returns complex",
        lambda: ncsn.likelihood.log_prob(lambda x, s: x.to(torch.complex64), X, SIGMAS),
        TypeError,
        r"model must return a real floating-point tensor",
    ),
    (
        "gaussian_prior/sigma 0 (-inf densities later)",
        lambda: ncsn.likelihood.gaussian_prior(0.0),
        ValueError,
        r"sigma must be positive and finite; got sigma=0\.0",
    ),
    (
        "gaussian_prior/sigma as a string",
        lambda: ncsn.likelihood.gaussian_prior("1"),
        TypeError,  # type: ignore[arg-type]
        r"sigma must be a real number; got sigma='1'",
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
