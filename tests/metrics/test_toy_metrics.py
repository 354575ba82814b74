"""Exact toy metrics (ncsn.metrics.toy): mode weights and score error."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from contracts import gaussian_score
from ncsn.metrics import (
    mode_weights,
    score_error,
)
from ncsn.toy import GaussianMixture, paper_mixture


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- mode weights


def test_mode_weights_of_exact_samples_match_mixture_weights():
    gmm = paper_mixture()
    n = 20_000
    weights = mode_weights(gmm.sample(n, generator=gen(0)), gmm)
    assert weights.shape == (2,) and weights.dtype == torch.float64
    assert float(weights.sum()) == pytest.approx(1.0)
    se = math.sqrt(0.2 * 0.8 / n)
    assert abs(float(weights[0]) - 0.2) < 5 * se


def test_mode_weights_assigns_by_posterior():
    gmm = GaussianMixture([0.5, 0.3, 0.2], [[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]], 1.0)
    x = torch.tensor([[0.1, 0.0], [10.0, 0.5], [9.0, 0.0], [0.0, 11.0]])
    torch.testing.assert_close(
        mode_weights(x, gmm), torch.tensor([0.25, 0.5, 0.25], dtype=torch.float64)
    )
    # The midpoint between two equal-variance modes goes to the heavier one, at any σ.
    mid = torch.tensor([[5.0, 0.0]])
    torch.testing.assert_close(
        mode_weights(mid, gmm, sigma=3.0), torch.tensor([1.0, 0, 0]).double()
    )


class _FakeMixture:
    def __init__(self, posterior: torch.Tensor) -> None:
        self.posterior = posterior

    def component_posterior(self, x: torch.Tensor, sigma: torch.Tensor | float = 0.0):
        return self.posterior


def test_mode_weights_accepts_any_mixture_with_posteriors():
    post = torch.tensor([[0.9, 0.1], [0.4, 0.6], [0.0, 1.0], [0.7, 0.3]])
    weights = mode_weights(torch.zeros(4, 3), _FakeMixture(post))
    torch.testing.assert_close(weights, torch.tensor([0.5, 0.5], dtype=torch.float64))


@pytest.mark.parametrize(
    ("x", "mixture", "kwargs", "error", "match"),
    [
        (torch.zeros(3, 2), object(), {}, TypeError, "component_posterior"),
        (torch.zeros(3, 2), paper_mixture(), {"sigma": -1.0}, ValueError, "sigma"),
        (torch.zeros(0, 2), paper_mixture(), {}, ValueError, "x must hold at least one example"),
        (torch.zeros(3, 2), _FakeMixture(torch.ones(2, 2)), {}, ValueError, r"\[B, K\]"),
        (torch.zeros(3, 2, dtype=torch.long), paper_mixture(), {}, TypeError, "floating"),
    ],
)
def test_mode_weights_rejects(x, mixture, kwargs, error, match):
    with pytest.raises(error, match=match):
        mode_weights(x, mixture, **kwargs)


# ---------------------------------------------------------------- score error


def test_score_error_is_zero_for_the_exact_score_and_offset_squared():
    gmm = paper_mixture()
    exact = gmm.score_model()
    x = gmm.sample(64, generator=gen(0), dtype=torch.float64)
    sigmas = torch.tensor([10.0, 1.0, 0.1], dtype=torch.float64)
    err = score_error(exact, exact, x, sigmas, generator=gen(1))
    assert err.shape == (3,) and err.dtype == torch.float64
    torch.testing.assert_close(err, torch.zeros(3, dtype=torch.float64))
    offset = torch.tensor([0.3, -0.4], dtype=torch.float64)
    shifted = score_error(lambda x, s: exact(x, s) + offset, exact, x, sigmas, generator=gen(1))
    torch.testing.assert_close(shifted, torch.full((3,), 0.25, dtype=torch.float64))


def test_score_error_perturbs_with_the_generator():
    gmm = paper_mixture()
    exact = gmm.score_model()
    x = gmm.sample(32, generator=gen(0), dtype=torch.float64)
    sigmas = [2.0, 0.5]

    def doubled(x, s):
        return 2 * exact(x, s)

    err = score_error(doubled, exact, x, sigmas, generator=gen(3))
    # Independently: the same noise draws, then E‖s‖² at the perturbed points.
    g = gen(3)
    expected = []
    for sigma in sigmas:
        xt = x + sigma * torch.randn(x.shape, generator=g, dtype=x.dtype)
        expected.append(gmm.score(xt, sigma).square().sum(1).mean())
    torch.testing.assert_close(err, torch.stack(expected))
    unperturbed = score_error(doubled, exact, x, sigmas, perturb=False)
    expected_at_x = torch.stack([gmm.score(x, s).square().sum(1).mean() for s in sigmas])
    torch.testing.assert_close(unperturbed, expected_at_x)


def test_score_error_rejects():
    exact = paper_mixture().score_model()
    x = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="strictly decreasing"):
        score_error(exact, exact, x, [0.1, 1.0])
    with pytest.raises(ValueError, match="output shape"):
        score_error(lambda x, s: x[:, :1], exact, x, [1.0])
    with pytest.raises(ValueError, match="exact_score output shape"):
        score_error(exact, lambda x, s: x[:, :1], x, [1.0])


# ---------------------------------------------------------------- bad inputs

X = torch.rand(4, 2)
NAN = torch.full((4, 2), math.nan)
SIGMAS = torch.tensor([1.0, 0.5, 0.1])


class _Posterior:
    """A mixture stand-in whose ``component_posterior`` returns a fixed value."""

    def __init__(self, value: object) -> None:
        self.value = value

    def component_posterior(self, x: torch.Tensor, sigma: torch.Tensor | float = 0.0) -> Any:
        return self.value


BAD_INPUTS: list[Any] = [
    pytest.param(
        lambda: mode_weights(NAN, paper_mixture()),
        ValueError,
        "x must be finite",
        id="mode_weights/NaN samples",
    ),
    pytest.param(
        lambda: mode_weights(torch.full((4, 2), math.inf), paper_mixture()),
        ValueError,
        "x must be finite",
        id="mode_weights/infinite samples",
    ),
    pytest.param(
        lambda: mode_weights(X, paper_mixture(), sigma="a"),  # type: ignore[arg-type]
        TypeError,
        r"sigma must be a real number; got sigma='a'",
        id="mode_weights/sigma as a string",
    ),
    pytest.param(
        lambda: mode_weights(X, _Posterior(1)),
        TypeError,
        r"component_posterior must return a torch\.Tensor; got int",
        id="mode_weights/posterior not a tensor",
    ),
    pytest.param(
        lambda: mode_weights(X, _Posterior(torch.full((4, 2), math.nan))),
        ValueError,
        "component_posterior returned non-finite values",
        id="mode_weights/NaN posteriors",
    ),
    pytest.param(
        lambda: score_error(gaussian_score, gaussian_score, torch.zeros(0, 2), SIGMAS),
        ValueError,
        r"x must hold at least one example; got shape \(0, 2\)",
        id="score_error/empty batch",
    ),
    pytest.param(
        lambda: score_error(gaussian_score, gaussian_score, NAN, SIGMAS),
        ValueError,
        "x must be finite",
        id="score_error/NaN x",
    ),
    pytest.param(
        lambda: score_error(
            gaussian_score,
            gaussian_score,
            X,
            SIGMAS,
            perturb="no",  # type: ignore[arg-type]
        ),
        TypeError,
        r"perturb must be a bool; got perturb='no'",
        id="score_error/perturb as a string",
    ),
    pytest.param(
        lambda: score_error(None, gaussian_score, X, SIGMAS),  # type: ignore[arg-type]
        TypeError,
        r"model must be a callable score model; got None",
        id="score_error/model not callable",
    ),
    pytest.param(
        lambda: score_error(gaussian_score, 1.0, X, SIGMAS),  # type: ignore[arg-type]
        TypeError,
        r"exact_score must be a callable score model; got 1\.0",
        id="score_error/exact_score not callable",
    ),
]


@pytest.mark.parametrize(("call", "error", "match"), BAD_INPUTS)
def test_toy_metrics_refuse_bad_input_naming_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()
