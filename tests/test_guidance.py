"""Conditioning and guidance (guidance.py), checked against a mixture whose components are the
classes: the conditional score, the noisy classifier and every guided score are closed-form."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

import ncsn
from ncsn.guidance import ClassifierFreeGuidance, ClassifierGuidance, condition


def _gmm() -> ncsn.toy.GaussianMixture:
    """Three classes in 2-D with diagonal, unequal spreads (so no formula holds by symmetry)."""
    return ncsn.toy.GaussianMixture(
        [0.2, 0.3, 0.5],
        [[-2.0, 0.0], [1.0, 1.5], [2.0, -1.0]],
        [[1.0, 0.5], [0.7, 0.7], [1.5, 0.8]],
    )


def _points(n: int = 64, seed: int = 0) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = 4 * torch.randn(n, 2, generator=g, dtype=torch.float64)
    sigma = torch.exp(torch.empty(n, dtype=torch.float64).uniform_(-3, 2, generator=g))
    return x, sigma


def _class_score(gmm: ncsn.toy.GaussianMixture, x: Tensor, sigma: Tensor, y: Tensor) -> Tensor:
    """(μ_y − x) / (s_y² + σ²), written out."""
    var = gmm.stds[y] ** 2 + sigma[:, None] ** 2
    return (gmm.means[y] - x) / var


# ------------------------------------------------------------------ guided scores, closed forms
@pytest.mark.parametrize("w", [0.0, 0.3, 1.0, 4.0])
def test_classifier_free_guidance_with_exact_parts_is_the_closed_form(w: float) -> None:
    gmm = _gmm()
    x, sigma = _points()
    y = torch.arange(64) % 3
    guided = ClassifierFreeGuidance(gmm.conditional_score_model(), y, weight=w)
    expected = (1 + w) * _class_score(gmm, x, sigma, y) - w * gmm.score(x, sigma)
    torch.testing.assert_close(guided(x, sigma), expected, rtol=1e-12, atol=1e-12)
    assert isinstance(guided, ncsn.ScoreModel)


@pytest.mark.parametrize("w", [0.0, 0.5, 1.0, 3.0])
def test_classifier_guidance_with_exact_parts_is_the_closed_form(w: float) -> None:
    """s + w·∇ log p(y | x, σ) with ∇ log p(y | x, σ) = s_y − s: and so CFG with weight w − 1."""
    gmm = _gmm()
    x, sigma = _points()
    y = torch.arange(64) % 3
    guided = ClassifierGuidance(gmm.score_model(), gmm.classifier(), y, weight=w)
    s, s_y = gmm.score(x, sigma), _class_score(gmm, x, sigma, y)
    torch.testing.assert_close(guided(x, sigma), s + w * (s_y - s), rtol=1e-10, atol=1e-10)
    if w >= 1:
        cfg = ClassifierFreeGuidance(gmm.conditional_score_model(), y, weight=w - 1)
        torch.testing.assert_close(guided(x, sigma), cfg(x, sigma), rtol=1e-10, atol=1e-10)


def test_classifier_gradient_is_the_exact_posterior_gradient() -> None:
    gmm = _gmm()
    x, sigma = _points()
    for k in range(3):
        expected = _class_score(gmm, x, sigma, torch.full((64,), k)) - gmm.score(x, sigma)
        got = ncsn.guidance.classifier_gradient(gmm.classifier(), x, sigma, k)
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)
        assert not got.requires_grad


def test_condition_fixes_the_labels_and_none_is_the_null_label() -> None:
    gmm = _gmm()
    model = gmm.conditional_score_model()
    x, sigma = _points(6)
    per_example = torch.tensor([0, 1, 2, 3, 0, 1])
    torch.testing.assert_close(
        condition(model, per_example)(x, sigma), model(x, sigma, per_example)
    )
    torch.testing.assert_close(condition(model, 2)(x, sigma), gmm.class_score(x, sigma, 2))
    torch.testing.assert_close(
        condition(model, torch.tensor(1))(x, sigma), gmm.class_score(x, sigma, 1)
    )
    torch.testing.assert_close(condition(model, None)(x, sigma), gmm.score(x, sigma))


def test_guidance_weight_zero_is_one_call_of_the_conditional_model() -> None:
    calls: list[int] = []
    gmm = _gmm()
    inner = gmm.conditional_score_model()

    class Counting:
        num_classes = 3

        def __call__(self, x: Tensor, sigma: Tensor, y: Tensor) -> Tensor:
            calls.append(x.shape[0])
            return inner(x, sigma, y)

    x, sigma = _points(5)
    assert torch.equal(
        ClassifierFreeGuidance(Counting(), 1, weight=0.0)(x, sigma),
        inner(x, sigma, torch.ones(5, dtype=torch.long)),
    )
    ClassifierFreeGuidance(Counting(), 1, weight=2.0)(x, sigma)
    assert calls == [5, 10]  # w > 0: one call on the doubled batch


# ------------------------------------------------------------------ every sampler, inpainting, likelihood
def _samplers() -> list[tuple[str, ncsn.Sampler, Callable[[int, torch.Generator], Tensor]]]:
    def uniform(n: int, g: torch.Generator) -> Tensor:
        return ncsn.samplers.uniform_init((n, 2), low=-8, high=8, generator=g, dtype=torch.float64)

    def prior(n: int, g: torch.Generator) -> Tensor:
        return ncsn.samplers.gaussian_init((n, 2), 50.0, generator=g, dtype=torch.float64)

    fine = ncsn.geometric_sigmas(50.0, 0.05, 200, dtype=torch.float64)
    return [
        (
            "annealed",
            ncsn.samplers.AnnealedLangevin(ncsn.geometric_sigmas(20.0, 1.0, 10), 0.1, 100),
            uniform,
        ),
        ("cas", ncsn.samplers.ConsistentAnnealedSampling(fine, eta=0.9, denoise=True), prior),
        ("pc", ncsn.samplers.PredictorCorrector(fine), prior),
        ("ode", ncsn.samplers.ProbabilityFlowODE(fine), prior),
    ]


@pytest.mark.parametrize("name, sampler, init", _samplers(), ids=[s[0] for s in _samplers()])
def test_every_sampler_draws_the_chosen_component_only(
    name: str, sampler: ncsn.Sampler, init
) -> None:  # type: ignore[no-untyped-def]
    """The paper's mixture, exact conditional score: class 0 (prior weight 0.2) gets every
    sample; the true share of the other component is below 1e-20, so any stray sample fails."""
    gmm = ncsn.toy.paper_mixture()
    n = 300
    for y in (0, 1):
        g = torch.Generator().manual_seed(10 + y)
        out = sampler(condition(gmm.conditional_score_model(), y), init(n, g), generator=g)
        weights = ncsn.metrics.mode_weights(out, gmm)
        assert weights[y].item() == 1.0, (name, y, weights)
        # and the class's own law: mean μ_y within 4 standard errors of √(1 + σ_L²)/√n
        se = math.sqrt(1 + 0.05**2) / math.sqrt(n) if name != "annealed" else math.sqrt(2 / n)
        assert (out.mean(0) - gmm.means[y]).abs().max().item() < 4 * se


def test_inpainting_with_a_conditioned_model_samples_the_class_conditional() -> None:
    """Known x₁, unknown x₂: under class y the coordinates are independent, so x₂ follows the
    class's own law at σ_L, N(μ_y2, s_y2² + σ_L²), whatever x₁ is."""
    gmm = _gmm()
    n, y, sigma_l = 1000, 1, 0.1
    g = torch.Generator().manual_seed(3)
    observed = torch.zeros(n, 2, dtype=torch.float64)
    observed[:, 0] = 3.0  # far from class 1's mean in x₁: the conditional must not care
    mask = torch.tensor([True, False])
    sigmas = ncsn.geometric_sigmas(5.0, sigma_l, 10, dtype=torch.float64)
    sampler = ncsn.samplers.AnnealedLangevin(sigmas, 2e-3, 100)
    init = ncsn.samplers.gaussian_init((n, 2), 5.0, generator=g, dtype=torch.float64)
    model = condition(gmm.conditional_score_model(), y)
    out = ncsn.samplers.inpaint(sampler, model, observed, mask, init=init, generator=g)
    mean = gmm.means[y, 1].item()
    std = math.sqrt(gmm.stds[y, 1].item() ** 2 + sigma_l**2)
    assert abs(out[:, 1].mean().item() - mean) < 4 * std / math.sqrt(n)
    assert abs(out[:, 1].std().item() / std - 1) < 4 / math.sqrt(2 * n)


@pytest.mark.parametrize("kind", ["condition", "classifier_guidance"])
def test_the_likelihood_of_a_conditioned_model_is_the_class_density(kind: str) -> None:
    gmm = ncsn.toy.paper_mixture()
    y = 0
    model: ncsn.ScoreModel = condition(gmm.conditional_score_model(), y)
    if kind == "classifier_guidance":  # weight 1: the conditional score, through autograd
        model = ClassifierGuidance(gmm.score_model(), gmm.classifier(), y, weight=1.0)
    sigmas = ncsn.geometric_sigmas(50.0, 0.1, 400, dtype=torch.float64)  # Heun error < 1e-3
    x = gmm.means[y] + torch.randn(
        4, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    got = ncsn.likelihood.log_prob(
        model, x, sigmas, trace="exact", prior=lambda z: gmm.class_log_prob(z, 50.0, y)
    )
    torch.testing.assert_close(got, gmm.class_log_prob(x, 0.1, y), rtol=0, atol=1e-3)


# ------------------------------------------------------------------ sharpening: the tempered mixture
def _tempered_moments(
    gmm: ncsn.toy.GaussianMixture, sigma: float, y: int, w: float
) -> tuple[float, float, float]:
    """Mean, variance and P(x > 0) of q ∝ p_σ(x | y)^{1+w} p_σ(x)^{−w}, by quadrature."""
    grid = torch.linspace(-12, 12, 48001, dtype=torch.float64)[:, None]
    log_q = (1 + w) * gmm.class_log_prob(grid, sigma, y) - w * gmm.log_prob(grid, sigma)
    p = torch.softmax(log_q, 0)
    mean = (p * grid[:, 0]).sum().item()
    var = (p * (grid[:, 0] - mean) ** 2).sum().item()
    return mean, var, (p * (grid[:, 0] > 0)).sum().item()


@pytest.mark.slow
@pytest.mark.parametrize("w", [1.0, 3.0])
@pytest.mark.parametrize("kind", ["classifier_free", "classifier"])
def test_guided_langevin_samples_the_tempered_mixture(kind: str, w: float) -> None:
    """Two overlapping classes, N(−1, 1) and N(1, 1): guidance toward class 1 with weight w moves
    the mean from 1 to 1.29 (w = 1) and 1.54 (w = 3) and narrows the spread; the chains match
    the tempered law's mean, variance and mass beyond 0 within 4 standard errors."""
    gmm = ncsn.toy.GaussianMixture([0.5, 0.5], [[-1.0], [1.0]], 1.0)
    sigma, y, n = 0.1, 1, 2000
    mean, var, right = _tempered_moments(gmm, sigma, y, w)
    model: ncsn.ScoreModel
    if kind == "classifier_free":
        model = ClassifierFreeGuidance(gmm.conditional_score_model(), y, weight=w)
    else:  # exact parts: classifier weight w + 1 is classifier-free weight w
        model = ClassifierGuidance(gmm.score_model(), gmm.classifier(), y, weight=w + 1)
    g = torch.Generator().manual_seed(7)
    start = 1.0 + math.sqrt(1 + sigma**2) * torch.randn(n, 1, generator=g, dtype=torch.float64)
    # Langevin time 15 (7 relaxation times); the step's bias on the variance is below 1%
    out = ncsn.samplers.Langevin(sigma, 0.02, 750)(model, start, generator=g)[:, 0]
    assert mean > 1.25  # the sharpening is large against the errors below
    assert abs(out.mean().item() - mean) < 4 * math.sqrt(var / n)
    # var of the sample variance ≈ (μ₄ − σ⁴)/n ≤ 2σ⁴/n·(1 + excess), bounded by 3σ⁴/n here
    assert abs(out.var().item() - var) < 4 * math.sqrt(3 * var**2 / n)
    assert abs((out > 0).double().mean().item() - right) < 4 * math.sqrt(right * (1 - right) / n)


# ------------------------------------------------------------------ training parts
def _labelled(gmm: ncsn.toy.GaussianMixture, n: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """``n`` draws of the mixture with the component each came from (its class)."""
    k = torch.multinomial(gmm.weights, n, replacement=True, generator=g)
    return gmm.means[k] + gmm.stds[k] * torch.randn(n, gmm.dim, generator=g, dtype=torch.float64), k


def test_drop_labels_replaces_labels_by_the_null_label_at_the_rate() -> None:
    y = torch.arange(20000) % 7
    g = torch.Generator().manual_seed(0)
    out = ncsn.guidance.drop_labels(y, 0.25, 7, generator=g)
    dropped = out == 7
    assert torch.equal(out[~dropped], y[~dropped])
    assert abs(dropped.double().mean().item() - 0.25) < 4 * math.sqrt(0.25 * 0.75 / 20000)
    assert torch.equal(ncsn.guidance.drop_labels(y, 0.0, 7), y)
    assert (ncsn.guidance.drop_labels(y, 1.0, 7, generator=g) == 7).all()


def test_classifier_loss_is_the_cross_entropy_of_the_perturbed_point() -> None:
    gmm = _gmm()
    x, sigma = _points(32)
    y = torch.arange(32) % 3
    z = torch.randn(32, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    got = ncsn.guidance.classifier_loss(gmm.classifier(), x, y, sigma, noise=z)
    noisy = x + sigma[:, None] * z
    expected = -gmm.component_posterior(noisy, sigma).log().gather(1, y[:, None])[:, 0]
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.slow
def test_a_trained_noisy_classifier_approaches_the_exact_one() -> None:
    """The cross-entropy gap E[−log p_θ(y | x̃, σ)] − E[−log p(y | x̃, σ)] is a KL divergence
    (≥ 0): after training it is below 0.01 nats (the exact cross-entropy is 0.18 nats), the
    paired estimate's 4 standard errors included."""
    gmm = ncsn.toy.paper_mixture()
    g = torch.Generator().manual_seed(0)
    x, y = _labelled(gmm, 4096, g)
    schedule = ncsn.GeometricSchedule(20.0, 1.0, 10)
    net = ncsn.nets.NoisyClassifierMLP(2, 2, hidden=64, generator=g).double()
    losses = ncsn.guidance.train_classifier(net, x, y, schedule, steps=1500, lr=3e-3, generator=g)
    assert losses.shape == (1500,) and not net.training
    # fresh data, the same noise for both classifiers
    gt = torch.Generator().manual_seed(1)
    xt, k = _labelled(gmm, 20000, gt)
    sigma = schedule.sample(20000, generator=gt).double()
    z = torch.randn(20000, 2, generator=gt, dtype=torch.float64)
    exact = ncsn.guidance.classifier_loss(gmm.classifier(), xt, k, sigma, noise=z)
    with torch.no_grad():
        trained = ncsn.guidance.classifier_loss(net, xt, k, sigma, noise=z)
    gap = trained - exact
    se = gap.std().item() / math.sqrt(20000)
    assert exact.mean().item() > 0.15  # measured 0.18 nats; the gap 0.0006 ± 0.0004
    assert gap.mean().item() + 4 * se < 0.01


# ------------------------------------------------------------------ bad input
def _cond() -> ncsn.ConditionalScoreModel:
    return _gmm().conditional_score_model()


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: condition(_cond(), 4), ValueError, r"y must lie in \[0, 3\]; got y=4"),
        (
            lambda: condition(_cond(), 1.0),
            TypeError,
            "y must be an int or an integer tensor; got y=1.0",
        ),
        (lambda: condition(_cond(), torch.tensor([[0, 1]])), ValueError, r"y must be 0-d or \[B\]"),
        (
            lambda: condition(lambda x, s, y: x, 0),
            TypeError,
            "model must be a ConditionalScoreModel",
        ),
        (
            lambda: ClassifierFreeGuidance(_cond(), 3, weight=1.0),
            ValueError,
            r"y must lie in \[0, 2\]; got y=3",
        ),
        (
            lambda: ClassifierFreeGuidance(_cond(), 0, weight=-0.5),
            ValueError,
            "weight must be >= 0",
        ),
        (lambda: ClassifierFreeGuidance(_cond(), 0, weight=float("nan")), ValueError, "weight"),
        (
            lambda: ClassifierFreeGuidance(_cond(), 0, weight="2"),
            TypeError,
            "weight must be a real number",
        ),
        (
            lambda: ClassifierGuidance(_gmm().score_model(), _gmm().classifier(), 3, weight=1.0),
            ValueError,
            r"y must lie in \[0, 2\]",
        ),
        (
            lambda: ClassifierGuidance(_gmm().score_model(), lambda x, s: x, 0, weight=1.0),
            TypeError,
            "classifier must be a NoisyClassifier",
        ),
        (
            lambda: ClassifierGuidance(None, _gmm().classifier(), 0, weight=1.0),
            TypeError,
            "model must be a callable",
        ),
        (
            lambda: ncsn.guidance.drop_labels(torch.zeros(3), 0.1, 2),
            TypeError,
            "y must be an integer tensor",
        ),
        (
            lambda: ncsn.guidance.drop_labels(torch.zeros(3, dtype=torch.long), 1.5, 2),
            ValueError,
            r"rate must lie in \[0, 1\]",
        ),
        (
            lambda: ncsn.guidance.drop_labels(torch.zeros(3, dtype=torch.long), 0.5, 0),
            ValueError,
            "num_classes must be >= 1",
        ),
    ],
)
def test_bad_construction(make, error: type[Exception], match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=match):
        make()


def test_bad_calls() -> None:
    x, sigma = _points(4)
    with pytest.raises(ValueError, match="y has 3 labels but x holds 4 examples"):
        condition(_cond(), torch.tensor([0, 1, 2]))(x, sigma)

    class WrongShape:
        num_classes = 3

        def __call__(self, x: Tensor, sigma: Tensor) -> Tensor:
            return x

    with pytest.raises(ValueError, match=r"logits of shape \[B, K\]=\[4, 3\]; got \(4, 2\)"):
        ncsn.guidance.classifier_gradient(WrongShape(), x, sigma, 0)

    class Detached(WrongShape):
        def __call__(self, x: Tensor, sigma: Tensor) -> Tensor:
            return torch.zeros(x.shape[0], 3, dtype=x.dtype)

    with pytest.raises(ValueError, match="does not depend differentiably on x"):
        ncsn.guidance.classifier_gradient(Detached(), x, sigma, 0)
    net = ncsn.nets.NoisyClassifierMLP(2, 3, 8)
    schedule = ncsn.GeometricSchedule(1.0, 0.1, 3)
    x32, y = torch.randn(10, 2), torch.arange(10) % 3
    with pytest.raises(ValueError, match=r"y must be \[N\]=\[10\] labels for x; got \(9,\)"):
        ncsn.guidance.train_classifier(net, x32, y[:9], schedule, steps=1)
    with pytest.raises(ValueError, match=r"y must lie in \[0, 2\]"):
        ncsn.guidance.train_classifier(net, x32, y + 1, schedule, steps=1)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        ncsn.guidance.train_classifier(net, x32, y, schedule, steps=0)
    with pytest.raises(TypeError, match="schedule must be a NoiseSchedule"):
        ncsn.guidance.train_classifier(net, x32, y, schedule.sigmas, steps=1)  # type: ignore[arg-type]
