"""Conditional generation as composition: conditioned and guided models are plain score models.

A class-conditional network (a :class:`~ncsn.ConditionalScoreModel`, such as
:class:`~ncsn.nets.ConditionalRefineNet`) is called ``model(x, sigma, y)`` with integer labels
``y: [B]`` in ``0 … K``; the label ``K`` (``num_classes``) is the *null* label, the unconditional
score, learnt by dropping labels to it at a rate during training (:func:`drop_labels`, the
losses' ``label_dropout``). Everything here fixes the labels and returns a
:class:`~ncsn.ScoreModel` ``(x, sigma) -> score``, so every sampler, inpainting and the
likelihood take it unchanged:

* :func:`condition` — the conditional score ``s(x, σ, y)`` at fixed labels (``y=None``: the null
  label, the model's unconditional score);
* :class:`ClassifierFreeGuidance` — ``(1 + w)·s(x, σ, y) − w·s(x, σ, ∅)`` (Ho & Salimans, 2021),
  the score of ``p_σ(x | y)^{1+w} p_σ(x)^{−w} ∝ p_σ(x | y)·p_σ(y | x)^w``;
* :class:`ClassifierGuidance` — ``s(x, σ) + w·∇ₓ log p(y | x, σ)`` with a noise-conditional
  classifier (a :class:`~ncsn.NoisyClassifier`; Dhariwal & Nichol, 2021; Song et al., 2021,
  controllable generation), the score of ``p_σ(x)·p_σ(y | x)^w``.

With exact parts the two guidances are one family: ``∇ₓ log p(y | x, σ) = s(x, σ, y) − s(x, σ)``,
so classifier guidance with weight ``w`` is classifier-free guidance with weight ``w − 1``, and
``w = 1`` (classifier) or ``w = 0`` (classifier-free) is the conditional score itself. On a
Gaussian mixture whose components are the classes every one of these scores is closed-form at
every σ (:meth:`ncsn.toy.GaussianMixture.conditional_score_model`,
:meth:`~ncsn.toy.GaussianMixture.classifier`), which is what the tests check them against.

The noise-conditional classifier is trained on perturbed data with :func:`classifier_loss`
(cross-entropy of ``classifier(x + σz, σ)``), in a loop of its own, :func:`train_classifier`.

Example:
    >>> gmm = ncsn.toy.paper_mixture()
    >>> model = ncsn.guidance.ClassifierFreeGuidance(gmm.conditional_score_model(), 0, weight=2.0)
    >>> sampler = ncsn.samplers.AnnealedLangevin(ncsn.geometric_sigmas(20.0, 1.0, 10), 0.1, 100)
    >>> g = torch.Generator().manual_seed(0)
    >>> x = sampler(model, ncsn.samplers.uniform_init((512, 2), low=-8, high=8, generator=g), generator=g)
    >>> ncsn.metrics.mode_weights(x, gmm)      # class 0 only, though its prior weight is 0.2
    tensor([1., 0.], dtype=torch.float64)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ncsn._checks import (
    batch_labels,
    check_batch,
    check_callable,
    check_finite,
    check_float_tensor,
    check_generator,
    check_label,
    check_nonempty,
    check_output,
    finite_float,
    non_negative_float,
    pad_event,
    positive_float,
    positive_int,
    randn_like,
    sigma_vector,
    to_device_of,
)
from ncsn._types import (
    ConditionalScoreModel,
    NoiseSchedule,
    NoisyClassifier,
    ScoreModel,
)

__all__ = [
    "ClassifierFreeGuidance",
    "ClassifierGuidance",
    "Conditioned",
    "classifier_gradient",
    "classifier_loss",
    "condition",
    "drop_labels",
    "train_classifier",
]


class _Transform(Protocol):
    def __call__(self, x: Tensor, /, *, generator: torch.Generator | None = ...) -> Tensor: ...


def _num_classes(part: object, name: str, protocol: type) -> int:
    """K of a conditional model or classifier (its ``num_classes``), checked."""
    number = getattr(part, "num_classes", None)
    if number is None or not callable(part):
        what = "model(x, sigma, y)" if protocol is ConditionalScoreModel else "classifier(x, sigma)"
        raise TypeError(
            f"{name} must be a {protocol.__name__}: callable as {what} with a num_classes "
            f"attribute; got {type(part).__name__}"
        )
    return positive_int(number, f"{name}.num_classes")


def _weight(weight: float) -> float:
    w = finite_float(weight, "weight")
    if w < 0:
        raise ValueError(f"weight must be >= 0 (0 is no guidance); got weight={weight!r}")
    return w


def _check_logits(logits: object, x: Tensor, num_classes: int) -> Tensor:
    if not isinstance(logits, Tensor) or not torch.is_floating_point(logits):
        raise TypeError(f"classifier must return floating-point logits [B, K]; got {logits!r}")
    if logits.shape != (x.shape[0], num_classes):
        raise ValueError(
            f"classifier must return logits of shape [B, K]={[x.shape[0], num_classes]}; got "
            f"{tuple(logits.shape)} for x.shape={tuple(x.shape)}"
        )
    return logits


@dataclass(frozen=True, eq=False)
class Conditioned:
    """A :class:`~ncsn.ConditionalScoreModel` with its labels fixed: a :class:`~ncsn.ScoreModel`.

    ``Conditioned(model, y)(x, sigma) = model(x, sigma, y)``. Build it with :func:`condition`.

    Args:
        model: the conditional model (with ``num_classes`` K).
        y: an int for every example, or integer labels ``[B]`` (a 0-d tensor for every
            example), in ``0 … K``; ``None`` is the null label ``K``.
    """

    model: ConditionalScoreModel
    y: int | Tensor | None

    def __post_init__(self) -> None:
        k = _num_classes(self.model, "model", ConditionalScoreModel)
        y = k if self.y is None else self.y
        object.__setattr__(self, "y", check_label(y, k, null=True))

    def __call__(self, x: Tensor, sigma: Tensor, /) -> Tensor:
        check_batch(x)
        y = batch_labels(self.y, x)  # type: ignore[arg-type]  # never None after __post_init__
        out = self.model(x, sigma_vector(sigma, x), y)
        check_output(out, x)
        return out


def condition(model: ConditionalScoreModel, y: int | Tensor | None) -> Conditioned:
    """Fix a conditional model's labels: the score model ``(x, sigma) -> model(x, sigma, y)``.

    The result is a plain :class:`~ncsn.ScoreModel`, so every sampler, inpainting and the
    likelihood take it unchanged. Labels are checked here, once: a tensor's values are read at
    this call, never per step.

    Args:
        model: a :class:`~ncsn.ConditionalScoreModel` with ``num_classes`` K.
        y: the class of every sample (an int), of each sample (integers ``[B]``, B the batch the
            sampler runs), or ``None`` for the null label K (the unconditional score the model
            learnt from label dropout).

    Returns:
        A :class:`Conditioned` score model.

    Raises:
        TypeError: ``model`` without ``num_classes``, or ``y`` neither an int, an integer
            tensor nor ``None``.
        ValueError: a label outside ``0 … K`` or a tensor that is not 0-d or ``[B]``; at call
            time, labels ``[B]`` for another batch size than x's.

    Example:
        >>> gmm = ncsn.toy.paper_mixture()
        >>> model = ncsn.guidance.condition(gmm.conditional_score_model(), 1)
        >>> model(torch.zeros(1, 2), torch.ones(1))   # the score of N((5, 5), 2I) at 0
        tensor([[2.5000, 2.5000]])
    """
    return Conditioned(model, y)


@dataclass(frozen=True, eq=False)
class ClassifierFreeGuidance:
    """Classifier-free guidance (Ho & Salimans, 2021) as a :class:`~ncsn.ScoreModel`.

    s̃(x, σ) = (1 + w)·s(x, σ, y) − w·s(x, σ, ∅), with ∅ the null label K.

    It is the score of ``p_σ(x | y)^{1+w} / p_σ(x)^w ∝ p_σ(x | y)·p_σ(y | x)^w``: ``w = 0`` is
    the conditional model (one model call per step), ``w > 0`` sharpens toward points the
    implicit classifier ``p(y | x, σ)`` is surer of. Both scores come from one model call on the
    batch doubled (``[x, x]`` with labels ``[y, ∅]``): the same number of model calls as the
    conditional model, on twice the examples.

    Args:
        model: a :class:`~ncsn.ConditionalScoreModel` trained with label dropout to its null
            label K (a network trained without it has never seen ∅).
        y: the class of every sample (an int) or of each (integers ``[B]``), in ``0 … K − 1``.
        weight: the guidance weight w ≥ 0.

    Raises:
        TypeError: ``model`` without ``num_classes``; ``y`` not an int or integer tensor;
            ``weight`` not a real number.
        ValueError: a label outside ``0 … K − 1``, a negative or non-finite weight.

    Example:
        >>> gmm = ncsn.toy.paper_mixture()
        >>> guided = ncsn.guidance.ClassifierFreeGuidance(gmm.conditional_score_model(), 1, weight=0.5)
        >>> guided(torch.zeros(1, 2), torch.ones(1))   # 1.5·(2.5, 2.5) − 0.5·(1.5, 1.5)
        tensor([[3., 3.]])

    References:
        Ho & Salimans (2021), "Classifier-Free Diffusion Guidance".
    """

    model: ConditionalScoreModel
    y: int | Tensor
    weight: float

    def __post_init__(self) -> None:
        k = _num_classes(self.model, "model", ConditionalScoreModel)
        object.__setattr__(self, "y", check_label(self.y, k, null=False))
        object.__setattr__(self, "weight", _weight(self.weight))

    def __call__(self, x: Tensor, sigma: Tensor, /) -> Tensor:
        check_batch(x)
        y = batch_labels(self.y, x)
        sigma = sigma_vector(sigma, x)
        w = self.weight
        if w == 0.0:
            out = self.model(x, sigma, y)
            check_output(out, x)
            return out
        null = torch.full_like(y, self.model.num_classes)
        both = self.model(torch.cat([x, x]), torch.cat([sigma, sigma]), torch.cat([y, null]))
        check_output(both, torch.cat([x, x]))
        conditional, unconditional = both.chunk(2)
        return (1.0 + w) * conditional - w * unconditional


def classifier_gradient(
    classifier: NoisyClassifier, x: Tensor, sigma: Tensor | float, y: int | Tensor
) -> Tensor:
    """``∇ₓ log p(y | x, σ)``, the gradient of a noise-conditional classifier's log-probability.

    ``log p(y | x, σ) = log_softmax(classifier(x, σ))[y]``, differentiated in ``x`` by one
    backward pass. It runs under :func:`torch.enable_grad` (the samplers run without
    gradients); when gradients are being recorded and ``x`` requires them (the likelihood's
    divergence, a loss), the result stays differentiable in ``x``.

    Args:
        classifier: a :class:`~ncsn.NoisyClassifier` ``(x, sigma) -> logits [B, K]``.
        x: ``[B, *event]`` points.
        sigma: a scalar or ``[B]`` noise levels.
        y: an int for every example or integers ``[B]``, in ``0 … K − 1``.

    Returns:
        ``[B, *event]``, x's shape, dtype and device.

    Raises:
        TypeError: ``classifier`` without ``num_classes``, ``y`` not an int or integer tensor,
            logits that are not a floating tensor.
        ValueError: labels outside ``0 … K − 1``, logits not ``[B, K]``, a classifier output
            that does not depend on x.

    Example:
        >>> gmm = ncsn.toy.paper_mixture()
        >>> ncsn.guidance.classifier_gradient(gmm.classifier(), torch.zeros(1, 2), 1.0, 1)
        tensor([[1.0000, 1.0000]])
    """
    k = _num_classes(classifier, "classifier", NoisyClassifier)
    check_batch(x)
    labels = batch_labels(check_label(y, k, null=False), x)
    sigma = sigma_vector(sigma, x)
    record = torch.is_grad_enabled() and x.requires_grad
    with torch.enable_grad():
        xg = x if record else x.detach().requires_grad_(True)
        logits = _check_logits(classifier(xg, sigma), x, k)
        log_p = torch.log_softmax(logits, dim=1).gather(1, labels[:, None]).sum()
        if not log_p.requires_grad:
            raise ValueError(
                "classifier output does not depend differentiably on x (a classifier run under "
                "torch.no_grad() or one that detaches its output); guidance differentiates it"
            )
        (grad,) = torch.autograd.grad(log_p, xg, create_graph=record)
    return grad


@dataclass(frozen=True, eq=False)
class ClassifierGuidance:
    """Classifier guidance as a :class:`~ncsn.ScoreModel`: s̃(x, σ) = s(x, σ) + w·∇ₓ log p(y | x, σ).

    The score of ``p_σ(x)·p_σ(y | x)^w`` (Dhariwal & Nichol, 2021; Song et al., 2021, §I
    "controllable generation"): the unconditional score plus the gradient of a classifier
    trained on perturbed data (:func:`train_classifier`) at the same σ. ``w = 1`` is the exact
    conditional score when both parts are exact; ``w > 1`` sharpens as classifier-free guidance
    with weight ``w − 1`` does. Each step costs a model call plus a classifier forward and
    backward pass.

    Args:
        model: an unconditional :class:`~ncsn.ScoreModel` (for a conditional network,
            ``condition(net, None)``, its null label).
        classifier: a :class:`~ncsn.NoisyClassifier` with ``num_classes`` K.
        y: the class of every sample (an int) or of each (integers ``[B]``), in ``0 … K − 1``.
        weight: the guidance weight w ≥ 0.

    Raises:
        TypeError: a ``model`` that is not callable, a ``classifier`` without ``num_classes``,
            ``y`` not an int or integer tensor, ``weight`` not a real number.
        ValueError: a label outside ``0 … K − 1``, a negative or non-finite weight.

    Example:
        >>> gmm = ncsn.toy.paper_mixture()
        >>> guided = ncsn.guidance.ClassifierGuidance(gmm.score_model(), gmm.classifier(), 1, weight=1.0)
        >>> guided(torch.zeros(1, 2), torch.ones(1))   # the exact class-1 score
        tensor([[2.5000, 2.5000]])

    References:
        Dhariwal & Nichol (2021), "Diffusion Models Beat GANs on Image Synthesis", §4;
        Song et al. (2021), "Score-Based Generative Modeling through Stochastic Differential
        Equations", §5 and App. I.
    """

    model: ScoreModel
    classifier: NoisyClassifier
    y: int | Tensor
    weight: float

    def __post_init__(self) -> None:
        check_callable(self.model, "model")
        k = _num_classes(self.classifier, "classifier", NoisyClassifier)
        object.__setattr__(self, "y", check_label(self.y, k, null=False))
        object.__setattr__(self, "weight", _weight(self.weight))

    def __call__(self, x: Tensor, sigma: Tensor, /) -> Tensor:
        check_batch(x)
        sigma = sigma_vector(sigma, x)
        score = self.model(x, sigma)
        check_output(score, x)
        if self.weight == 0.0:
            return score
        return score + self.weight * classifier_gradient(self.classifier, x, sigma, self.y)


def drop_labels(
    y: Tensor, rate: float, num_classes: int, *, generator: torch.Generator | None = None
) -> Tensor:
    """Replace each label by the null label ``K = num_classes`` with probability ``rate``.

    The label dropout of classifier-free guidance (Ho & Salimans, 2021): one network learns the
    conditional scores and, on the dropped examples, the unconditional one.

    Args:
        y: ``[B]`` integer labels.
        rate: the probability of dropping each label, in ``[0, 1]``.
        num_classes: K; the null label is K.
        generator: source of the draws (on y's device).

    Returns:
        ``[B]`` int64 labels on y's device (``y`` itself, as int64, for ``rate == 0``: nothing is
        drawn).

    Raises:
        TypeError: ``y`` not an integer tensor, a ``generator`` that is not a ``torch.Generator``.
        ValueError: ``y`` not 1-D, a rate outside ``[0, 1]``, ``num_classes`` < 1.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> ncsn.guidance.drop_labels(torch.arange(8), 0.5, 10, generator=g)
        tensor([10,  1, 10, 10, 10,  5, 10,  7])
    """
    if not isinstance(y, Tensor) or y.dtype.is_floating_point or y.dtype == torch.bool:
        raise TypeError(f"y must be an integer tensor [B]; got {y!r}")
    if y.ndim != 1:
        raise ValueError(f"y must be [B]; got y.shape={tuple(y.shape)}")
    rate = non_negative_float(rate, "rate")
    if rate > 1:
        raise ValueError(f"rate must lie in [0, 1]; got rate={rate!r}")
    num_classes = positive_int(num_classes, "num_classes")
    check_generator(generator, y, "y")
    y = y.long()
    if rate == 0.0:
        return y
    drop = torch.rand(y.shape, generator=generator, device=y.device) < rate
    return y.masked_fill(drop, num_classes)


def classifier_loss(
    classifier: NoisyClassifier,
    x: Tensor,
    y: Tensor,
    sigma: Tensor | float,
    *,
    noise: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Cross-entropy of a noise-conditional classifier on perturbed data, one value per example.

    ℓ(x, y, σ) = −log p_θ(y | x + σz, σ) with z ~ N(0, I): the training objective of the
    classifier that :class:`ClassifierGuidance` differentiates.

    Args:
        classifier: a :class:`~ncsn.NoisyClassifier` ``(x, sigma) -> logits [B, K]``.
        x: clean data ``[B, *event]``.
        y: ``[B]`` integer labels in ``0 … K − 1``.
        sigma: a scalar or ``[B]`` noise levels (finite, ≥ 0).
        noise: optional ``z`` of x's shape (drawn from ``generator`` otherwise).
        generator: source of ``z``.

    Returns:
        ``[B]`` per-example losses.

    Raises:
        TypeError: a ``classifier`` without ``num_classes``, a non-floating ``x`` or ``noise``,
            ``y`` not an integer tensor.
        ValueError: an empty batch, labels of another length than x or outside ``0 … K − 1``,
            a negative or non-finite σ, a noise of another shape than x, logits not ``[B, K]``.

    Example:
        >>> classifier = ncsn.toy.paper_mixture().classifier()
        >>> x, y = torch.zeros(2, 2), torch.tensor([0, 1])
        >>> ncsn.guidance.classifier_loss(classifier, x, y, 1.0, noise=torch.zeros(2, 2))
        tensor([1.6094, 0.2231])
    """
    k = _num_classes(classifier, "classifier", NoisyClassifier)
    check_batch(x)
    check_nonempty(x)
    check_generator(generator, x)
    if not isinstance(y, Tensor) or y.ndim != 1:
        raise TypeError(f"y must be an integer tensor [B]; got {y!r}")
    labels = batch_labels(check_label(y, k, null=False), x)
    sig = sigma_vector(sigma, x)
    if noise is None:
        z = randn_like(x, generator)
    else:
        check_float_tensor(noise, "noise")
        if noise.shape != x.shape:
            raise ValueError(
                f"noise must have the shape of x {tuple(x.shape)}; got {tuple(noise.shape)}"
            )
        check_finite(noise, "noise")
        z = to_device_of(noise, x, "noise").to(x.dtype)
    logits = _check_logits(classifier(x + pad_event(sig, x) * z, sig), x, k)
    return F.cross_entropy(logits, labels, reduction="none")


def train_classifier(
    classifier: nn.Module,
    x: Tensor,
    y: Tensor,
    schedule: NoiseSchedule,
    *,
    steps: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    transform: _Transform | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Train a noise-conditional classifier on data perturbed at the schedule's levels.

    Each step draws ``batch_size`` examples with replacement, transforms them (e.g. the
    dequantisation of :class:`~ncsn.data.ImageTransform`), draws one σ per example from the
    schedule and takes an Adam step on the mean of :func:`classifier_loss`. The classifier is
    left in eval mode. Labels are checked once, before the first step.

    Args:
        classifier: a :class:`~ncsn.NoisyClassifier` module (such as
            :class:`~ncsn.nets.NoisyClassifierMLP`), trained in place.
        x: ``[N, *event]`` training data (on the classifier's device).
        y: ``[N]`` labels in ``0 … K − 1``.
        schedule: a :class:`~ncsn.NoiseSchedule`, the levels the classifier will be asked at
            (those of the score model it guides).
        steps: the number of optimiser steps.
        batch_size: examples per step.
        lr: Adam's learning rate.
        transform: ``transform(x, generator=g) -> x`` applied to each batch, or ``None``.
        generator: source of the batches, σ, noise and transform (default: the global RNG).

    Returns:
        ``[steps]`` the training losses, read back once at the end.

    Raises:
        TypeError: a ``classifier`` that is not an ``nn.Module`` with ``num_classes``, a
            ``schedule`` that is not a :class:`~ncsn.NoiseSchedule`.
        ValueError: ``y`` not ``[N]`` or outside ``0 … K − 1``, an empty ``x``, a bad
            ``steps``, ``batch_size`` or ``lr``.

    Example:
        >>> gmm = ncsn.toy.paper_mixture()
        >>> g = torch.Generator().manual_seed(0)
        >>> x = gmm.sample(512, generator=g, dtype=torch.float32)
        >>> y = gmm.component_posterior(x).argmax(1)
        >>> schedule = ncsn.GeometricSchedule(20.0, 1.0, 10)
        >>> net = ncsn.nets.NoisyClassifierMLP(2, 2, hidden=32, generator=g)
        >>> losses = ncsn.guidance.train_classifier(net, x, y, schedule, steps=50, generator=g)
        >>> losses.shape, bool(losses[-10:].mean() < losses[:10].mean())
        (torch.Size([50]), True)
    """
    if not isinstance(classifier, nn.Module):
        raise TypeError(f"classifier must be an nn.Module; got {type(classifier).__name__}")
    k = _num_classes(classifier, "classifier", NoisyClassifier)
    if not isinstance(schedule, NoiseSchedule):
        raise TypeError(f"schedule must be a NoiseSchedule; got {type(schedule).__name__}")
    check_batch(x)
    check_nonempty(x)
    if not isinstance(y, Tensor) or y.shape != (x.shape[0],):
        got = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
        raise ValueError(f"y must be [N]={[x.shape[0]]} labels for x; got {got}")
    labels = to_device_of(check_label(y, k, null=False), x, "y")  # type: ignore[arg-type]
    steps = positive_int(steps, "steps")
    batch_size = positive_int(batch_size, "batch_size")
    lr = positive_float(lr, "lr")
    if transform is not None:
        check_callable(transform, "transform", "a callable transform(x, generator=)")
    check_generator(generator, x)
    network = cast(NoisyClassifier, classifier)
    optimizer = torch.optim.Adam(classifier.parameters(), lr=lr)
    classifier.train()
    losses = []
    for _ in range(steps):
        index = torch.randint(x.shape[0], (batch_size,), generator=generator, device=x.device)
        xb = x[index]
        if transform is not None:
            xb = transform(xb, generator=generator)
        sigma = schedule.sample(batch_size, generator=generator).to(xb)
        per = classifier_loss(network, xb, labels[index], sigma, generator=generator)
        loss = per.mean()
        optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)
        optimizer.step()
        losses.append(loss.detach())
    classifier.eval()
    return torch.stack(losses).cpu()
