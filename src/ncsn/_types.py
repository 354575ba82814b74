"""The four protocols every part of ``ncsn`` speaks, and shape aliases.

A plain function or an :class:`torch.nn.Module` satisfies these protocols structurally; no part of
the library checks another part's concrete class.

Shapes are written ``[B, *event]``: a batch dimension followed by any event shape (vectors,
sequences, images, volumes).
"""

from __future__ import annotations

from typing import Any, Protocol, TypeAlias, runtime_checkable

import torch
from torch import Tensor

__all__ = [
    "Batch",
    "NoiseSchedule",
    "Sampler",
    "ScoreLoss",
    "ScoreModel",
    "Sigmas",
    "StepCallback",
]

Batch: TypeAlias = Tensor
"""A tensor of shape ``[B, *event]``."""

Sigmas: TypeAlias = Tensor
"""A 1-D tensor of noise levels ``[L]``, strictly decreasing and positive (σ₁ first)."""


@runtime_checkable
class ScoreModel(Protocol):
    """An estimate of the score ``∇ₓ log p_σ(x)`` of data perturbed by ``N(0, σ²I)``.

    ``model(x, sigma)`` takes ``x: [B, *event]`` and ``sigma: [B]`` (the noise *value* per example,
    never a level index) and returns a tensor of the shape of ``x``.
    """

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


class StepCallback(Protocol):
    """Observes one sampler step; receives the sampler's ``StepInfo``."""

    def __call__(self, info: Any, /) -> None: ...


@runtime_checkable
class Sampler(Protocol):
    """Moves initial points ``x: [B, *event]`` toward samples and returns the final iterate."""

    def __call__(
        self,
        model: ScoreModel,
        x: Tensor,
        *,
        generator: torch.Generator | None = None,
        callback: StepCallback | None = None,
    ) -> Tensor: ...
