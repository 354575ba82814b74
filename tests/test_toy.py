"""Exact toy distributions against autograd, sampling and closed forms."""

from __future__ import annotations

import math

import pytest
import torch

import ncsn
from ncsn.toy import Gaussian, GaussianMixture


def _mixture() -> GaussianMixture:
    return GaussianMixture(
        [0.5, 0.3, 0.2],
        [[0.0, 0.0, 1.0], [3.0, -1.0, 0.0], [-2.0, 2.0, 2.0]],
        [[1.0, 0.5, 2.0], [0.7, 0.7, 0.7], [1.5, 1.0, 0.3]],
    )


@pytest.mark.parametrize("sigma", [0.0, 0.3, 2.0])
def test_score_is_the_gradient_of_log_prob(sigma: float) -> None:
    gmm = _mixture()
    x = torch.randn(20, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 3
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(gmm.log_prob(x, sigma).sum(), x)
    torch.testing.assert_close(gmm.score(x.detach(), sigma), grad)


def test_log_prob_matches_the_closed_form_density() -> None:
    gmm = GaussianMixture([0.25, 0.75], [[0.0], [2.0]], [1.0, 0.5])
    x = torch.tensor([[0.3], [1.7]], dtype=torch.float64)
    sigma = 0.4

    def normal(v: float, m: float, s2: float) -> float:
        return math.exp(-((v - m) ** 2) / (2 * s2)) / math.sqrt(2 * math.pi * s2)

    expected = [
        math.log(0.25 * normal(v, 0.0, 1 + sigma**2) + 0.75 * normal(v, 2.0, 0.25 + sigma**2))
        for v in (0.3, 1.7)
    ]
    torch.testing.assert_close(gmm.log_prob(x, sigma), torch.tensor(expected, dtype=torch.float64))


def test_log_prob_and_score_are_stable_far_from_the_modes() -> None:
    gmm = ncsn.toy.paper_mixture()
    far = torch.tensor([[1e4, 1e4], [-3e3, 5e3]], dtype=torch.float64)
    assert torch.isfinite(gmm.log_prob(far)).all() and torch.isfinite(gmm.score(far)).all()
    # far away the nearest mode dominates: score ≈ (μ_nearest − x)/1
    torch.testing.assert_close(
        gmm.score(far[:1]), torch.tensor([[5.0 - 1e4, 5.0 - 1e4]], dtype=torch.float64)
    )
    assert torch.isfinite(gmm.score(far.float())).all()


def test_perturbed_score_uses_the_total_std_not_sigma_alone() -> None:
    """Issue #6 of the official repository: the std of a perturbed unit component is √(1 + σ²)."""
    gmm = GaussianMixture([1.0], [[0.0, 0.0]], 1.0)
    x = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    torch.testing.assert_close(gmm.score(x, 1.0), -x / 2)


def test_samples_have_the_right_moments() -> None:
    gmm = ncsn.toy.paper_mixture()
    x = gmm.sample(20000, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    w = gmm.component_posterior(x)[:, 1].mean().item()
    assert abs(w - 0.8) < 4 * math.sqrt(0.16 / 20000)
    # mean = 0.2·(−5) + 0.8·5 = 3; variance = 1 + 0.16·100 = 17 per coordinate
    mean_se = math.sqrt(17 / 20000)
    assert (x.mean(0) - 3.0).abs().max() < 4 * mean_se
    assert torch.equal(
        x, gmm.sample(20000, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    )


def test_score_model_is_a_score_model() -> None:
    gmm = _mixture()
    model = gmm.score_model()
    assert isinstance(model, ncsn.ScoreModel)
    x = torch.randn(5, 3, dtype=torch.float64)
    sigma = torch.tensor([0.0, 0.1, 1.0, 2.0, 3.0], dtype=torch.float64)
    expected = torch.stack([gmm.score(x[i : i + 1], float(sigma[i]))[0] for i in range(5)])
    torch.testing.assert_close(model(x, sigma), expected)


def test_gaussian_score_log_prob_and_conditional() -> None:
    cov = torch.tensor([[2.0, 0.6, 0.2], [0.6, 1.0, 0.3], [0.2, 0.3, 0.5]], dtype=torch.float64)
    g = Gaussian(torch.tensor([1.0, 0.0, -1.0], dtype=torch.float64), cov)
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(g.log_prob(x, 0.5).sum(), x)
    torch.testing.assert_close(g.score(x.detach(), 0.5), grad)
    ref = torch.distributions.MultivariateNormal(
        g.mean, cov + 0.25 * torch.eye(3, dtype=torch.float64)
    )
    torch.testing.assert_close(g.log_prob(x.detach(), 0.5), ref.log_prob(x.detach()))
    mean, ccov = g.conditional(torch.tensor([True, False, False]), torch.tensor([2.0, 0.0, 0.0]))
    torch.testing.assert_close(ccov, torch.linalg.inv(torch.linalg.inv(cov)[1:, 1:]))
    torch.testing.assert_close(
        mean, torch.tensor([0.0, -1.0], dtype=torch.float64) + cov[1:, :1].flatten() / 2.0 * 1.0
    )
    s = g.sample(20000, generator=torch.Generator().manual_seed(2))
    assert (torch.cov(s.T) - cov).abs().max() < 4 * math.sqrt(2 * 2.0 * 2.0 / 20000)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            dict(weights=[-0.2, 1.2], means=[[0.0], [1.0]]),
            r"weights must be finite and non-negative; got weights=\[-0.2, 1.2\]",
        ),
        (
            dict(weights=[0.5, 0.6], means=[[0.0], [1.0]]),
            r"weights must sum to 1; got weights=\[0.5, 0.6\]",
        ),
        (dict(weights=[1.0], means=[0.0, 1.0]), r"means must have shape \[K, D\]"),
        (dict(weights=[0.5, 0.5], means=[[0.0]]), r"weights must have shape \[K\]=\[1\]"),
        (dict(weights=[1.0], means=[[0.0]], stds=0.0), "stds must be positive"),
        (dict(weights=[1.0], means=[[0.0, 1.0]], stds=[1.0, 2.0, 3.0]), "stds must be a scalar"),
    ],
)
def test_mixture_validation(kwargs, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        GaussianMixture(**kwargs)


def test_toy_call_errors() -> None:
    gmm = ncsn.toy.paper_mixture()
    with pytest.raises(ValueError, match=r"x must have shape \[B, 2\]; got \(4, 3\)"):
        gmm.score(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="n must be >= 1"):
        gmm.sample(0)
    with pytest.raises(ValueError, match="positive definite"):
        Gaussian(torch.zeros(2), torch.tensor([[1.0, 2.0], [2.0, 1.0]]))


@pytest.mark.parametrize(
    "sigma, shown",
    [
        (float("nan"), r"sigma=nan"),
        (-1.0, r"sigma=-1\.0"),
        (float("inf"), r"sigma=inf"),
        (torch.tensor([0.5, float("nan"), 1.0]), r"sigma=\[0\.5, nan, 1\.0\]"),
    ],
)
def test_negative_or_non_finite_sigma_is_rejected(sigma: float | torch.Tensor, shown: str) -> None:
    """A NaN σ used to give NaN scores silently; a negative one a wrong perturbed variance."""
    x = torch.zeros(3, 2, dtype=torch.float64)
    gmm = ncsn.toy.paper_mixture()
    gauss = Gaussian(torch.zeros(2), torch.eye(2))
    match = rf"sigma must be non-negative and finite; got {shown}$"
    for call in (
        gmm.score,
        gmm.log_prob,
        gmm.component_posterior,
        gauss.score,
        gauss.log_prob,
        gmm.score_model(),
        gauss.score_model(),
    ):
        with pytest.raises(ValueError, match=match):
            call(x, sigma)


def test_sigma_zero_is_the_data_score() -> None:
    gauss = Gaussian(torch.zeros(2), torch.eye(2))
    x = torch.ones(3, 2, dtype=torch.float64)
    torch.testing.assert_close(gauss.score_model()(x, torch.zeros(3, dtype=torch.float64)), -x)


# ------------------------------------------------------------------ components as classes
def _classes() -> GaussianMixture:
    return GaussianMixture(
        [0.2, 0.3, 0.5],
        [[-2.0, 0.0], [1.0, 1.5], [2.0, -1.0]],
        [[1.0, 0.5], [0.7, 0.7], [1.5, 0.8]],
    )


def _points(n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = 4 * torch.randn(n, 2, generator=g, dtype=torch.float64)
    return x, torch.exp(torch.empty(n, dtype=torch.float64).uniform_(-3, 2, generator=g))


def test_the_class_score_is_the_gradient_of_the_class_log_density() -> None:
    gmm = _classes()
    x, sigma = _points()
    y = torch.arange(64) % 3
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(gmm.class_log_prob(xg, sigma, y).sum(), xg)
    torch.testing.assert_close(gmm.class_score(x, sigma, y), grad, rtol=1e-12, atol=1e-12)
    written_out = (gmm.means[y] - x) / (gmm.stds[y] ** 2 + sigma[:, None] ** 2)
    torch.testing.assert_close(gmm.class_score(x, sigma, y), written_out)


def test_the_exact_classifier_is_bayes_rule_and_the_null_label_is_the_mixture() -> None:
    gmm = _classes()
    x, sigma = _points()
    log_joint = torch.stack([gmm.class_log_prob(x, sigma, k) for k in range(3)], 1)
    expected = log_joint + gmm.weights.log() - gmm.log_prob(x, sigma)[:, None]
    classifier = gmm.classifier()
    torch.testing.assert_close(classifier(x, sigma), expected, rtol=1e-12, atol=1e-12)
    assert classifier.num_classes == 3 and isinstance(classifier, ncsn.NoisyClassifier)
    model = gmm.conditional_score_model()
    assert model.num_classes == 3 and isinstance(model, ncsn.ConditionalScoreModel)
    torch.testing.assert_close(
        model(x, sigma, torch.full((64,), 3)), gmm.score(x, sigma), rtol=0, atol=0
    )
    mixed = torch.tensor([3, 0] * 32)
    expected_mixed = torch.where(
        (mixed == 3)[:, None], gmm.score(x, sigma), gmm.class_score(x, sigma, mixed % 3)
    )
    torch.testing.assert_close(model(x, sigma, mixed), expected_mixed, rtol=0, atol=0)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda g, x: g.class_score(x, 1.0, 3), ValueError, r"y must lie in \[0, 2\]; got y=3"),
        (
            lambda g, x: g.class_log_prob(x, 1.0, torch.tensor([0, 1])),
            ValueError,
            "y has 2 labels but x holds 4",
        ),
        (
            lambda g, x: g.class_score(x, 1.0, 0.5),
            TypeError,
            "y must be an int or an integer tensor",
        ),
        (
            lambda g, x: g.conditional_score_model()(x, torch.ones(4), torch.tensor([0, 1, 2, 4])),
            ValueError,
            r"y must lie in \[0, 3\]",
        ),
        (
            lambda g, x: ncsn.toy.ExactClassifier(ncsn.toy.Gaussian([0.0], [[1.0]])),
            TypeError,
            "mixture must be a ncsn.toy.GaussianMixture",
        ),
    ],
)
def test_class_call_errors(call, error: type[Exception], match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=match):
        call(_classes(), torch.zeros(4, 2))
