"""The protocols every part of ``ncsn`` speaks, the sampler's step record, and shape aliases.

A plain function or an :class:`torch.nn.Module` satisfies these protocols structurally; no part of
the library checks another part's concrete class.

Shapes are written ``[B, *event]``: a batch dimension followed by any event shape (vectors,
sequences, images, volumes).
"""

from __future__ import annotations

from typing import NamedTuple, Protocol, TypeAlias, runtime_checkable

import torch
from torch import Tensor

__all__ = [
    "Batch",
    "ConditionalScoreModel",
    "Labels",
    "NoiseSchedule",
    "NoisyClassifier",
    "Sampler",
    "ScoreLoss",
    "ScoreModel",
    "Sigmas",
    "StepCallback",
    "StepHook",
    "StepInfo",
]

Batch: TypeAlias = Tensor
"""A tensor of shape ``[B, *event]``."""

Sigmas: TypeAlias = Tensor
"""A 1-D tensor of noise levels ``[L]``, strictly decreasing and positive (σ₁ first)."""

Labels: TypeAlias = Tensor
"""A 1-D integer tensor of class labels ``[B]``: ``0 … K − 1`` for K classes, ``K`` the null label."""


@runtime_checkable
class ScoreModel(Protocol):
    """An estimate of the score ``∇ₓ log p_σ(x)`` of data perturbed by ``N(0, σ²I)``.

    ``model(x, sigma)`` takes ``x: [B, *event]`` and ``sigma: [B]`` (the noise *value* per example,
    never a level index) and returns a tensor of the shape of ``x``.
    """

    def __call__(self, x: Tensor, sigma: Tensor, /) -> Tensor: ...


@runtime_checkable
class ConditionalScoreModel(Protocol):
    """A class-conditional score estimate ``∇ₓ log p_σ(x | y)`` for ``num_classes`` classes.

    ``model(x, sigma, y)`` takes ``x: [B, *event]``, ``sigma: [B]`` and integer labels ``y: [B]``
    in ``0 … K`` and returns a tensor of the shape of ``x``. The label ``K = num_classes`` is the
    *null* label: the unconditional score ``∇ₓ log p_σ(x)``, which classifier-free guidance needs
    next to the conditional one. It is not a :class:`ScoreModel` itself;
    :func:`ncsn.guidance.condition` fixes its labels and returns one.
    """

    @property
    def num_classes(self) -> int: ...

    def __call__(self, x: Tensor, sigma: Tensor, y: Tensor, /) -> Tensor: ...


@runtime_checkable
class NoisyClassifier(Protocol):
    """A noise-conditional classifier: the logits of ``p(y | x, σ)`` for data perturbed by ``N(0, σ²I)``.

    ``classifier(x, sigma)`` takes ``x: [B, *event]`` and ``sigma: [B]`` and returns ``[B, K]``
    logits (``log_softmax`` of them is ``log p(y | x, σ)``), ``K = num_classes``. Classifier
    guidance (:class:`ncsn.guidance.ClassifierGuidance`) differentiates it in ``x``.
    """

    @property
    def num_classes(self) -> int: ...

    def __call__(self, x: Tensor, sigma: Tensor, /) -> Tensor: ...


@runtime_checkable
class NoiseSchedule(Protocol):
    """A finite set of noise levels ``σ₁ > σ₂ > … > σ_L > 0``.

    ``sigmas`` is ``[L]``, largest first. ``sample(batch, generator=)`` draws one level per example
    and returns the σ *values* ``[batch]``.
    """

    @property
    def sigmas(self) -> Tensor: ...

    def sample(self, batch: int, *, generator: torch.Generator | None = None) -> Tensor: ...


@runtime_checkable
class ScoreLoss(Protocol):
    """A training objective for score models: ``loss(model, x, generator=) -> scalar``."""

    def __call__(
        self, model: ScoreModel, x: Tensor, *, generator: torch.Generator | None = None
    ) -> Tensor: ...


class StepInfo(NamedTuple):
    """What a sampler's ``callback`` sees after each step.

    Attributes:
        level: index of the noise level (0 = largest σ; always 0 for plain Langevin).
        step: index of the step within the level.
        sigma: σ given to the model at this step.
        step_size: the step's size in the sampler's own convention (α for Langevin steps, the
            σ² decrement for the diffusion and ODE steps; 0.0 for a final denoising step).
        x: the iterate after the step (and after the step hook) ``[B, *event]``; a sampler's
            buffer may be reused by the next step: clone it to keep it.
        score: the model output used by the step ``[B, *event]``.
    """

    level: int
    step: int
    sigma: float
    step_size: float
    x: Tensor
    score: Tensor


class StepCallback(Protocol):
    """Observes one sampler step: ``callback(info)`` with the step's :class:`StepInfo`.

    It must not change the shape, dtype or device of ``info.x`` (the samplers refuse it).
    """

    def __call__(self, info: StepInfo, /) -> None: ...


class StepHook(Protocol):
    """Changes the iterate in place whenever it is taken to be at noise level σ.

    Every sampler of :mod:`ncsn.samplers` calls ``hook(x, sigma)`` on its starting point (at the
    first level's σ) and after every step, with the noise level the iterate then stands for
    (``sigma = 0.0`` after a final denoising step), before the ``callback`` sees it. Inpainting
    (:class:`~ncsn.samplers.Inpainting`) is such a hook: it replaces the known entries by the
    observations perturbed at σ. A hook must not change the shape, dtype or device of ``x`` (the
    samplers refuse it).
    """

    def __call__(self, x: Tensor, sigma: float, /) -> None: ...


@runtime_checkable
class Sampler(Protocol):
    """Moves initial points ``x: [B, *event]`` toward samples and returns the final iterate.

    ``callback`` sees a :class:`StepInfo` after every step; ``hook`` (a :class:`StepHook`, e.g.
    inpainting) is applied in place to the start and after every step.
    """

    def __call__(
        self,
        model: ScoreModel,
        x: Tensor,
        *,
        generator: torch.Generator | None = None,
        callback: StepCallback | None = None,
        hook: StepHook | None = None,
    ) -> Tensor: ...
