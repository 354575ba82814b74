"""NCSNv2's settings computed from a data set (Song & Ermon, 2020)."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from ncsn._checks import positive_float, positive_int
from ncsn.ncsnv2 import (
    estimate_max_pairwise_distance,
    max_pairwise_distance,
    ncsnv2_num_levels,
    ncsnv2_step_size,
)
from ncsn.presets._paper import OFFICIAL_STEP_SIZE
from ncsn.schedules import geometric_sigmas

__all__ = [
    "EXACT_DISTANCE_LIMIT",
    "PAPER_NUM_LEVELS",
    "Recipe",
    "fitted_ema",
    "recipe",
    "sampling_note",
]

EXACT_DISTANCE_LIMIT = 10_000
"""Data sets up to this many examples get the exact σ₁ (O(N²) distances); larger ones the
certified double-sweep estimate (:func:`~ncsn.estimate_max_pairwise_distance`)."""

PAPER_NUM_LEVELS = 10
"""L where NCSNv2's Technique 2 does not bound the ratio of levels (data dimension D <= 4)."""


class Recipe(NamedTuple):
    """NCSNv2's settings computed from a data set by :func:`recipe`."""

    sigmas: Tensor
    """``[L]`` geometric levels from σ₁ to σ_L (Techniques 1 and 2)."""
    step_size: float
    """Langevin ε for ``steps_per_level`` steps per level (Technique 4)."""
    steps_per_level: int
    """T, Langevin steps per level."""
    ema_rate: float
    """The rate of the exponential moving average of the weights to sample with (Technique 5)."""
    denoise: bool
    """End sampling with the denoising step x + σ_L² s(x, σ_L)."""
    notes: tuple[str, ...]
    """One line per choice, saying where it came from (printed by ``ncsn train``)."""


def fitted_ema(ema_rate: float, steps: int | None) -> tuple[float, str]:
    """Technique 5's rate, at most ``1 − 10/steps`` so that the average spans at most a tenth of
    the run, and the note saying so."""
    ema_rate = positive_float(ema_rate, "ema_rate")
    if steps is not None and ema_rate > 1.0 - 10.0 / positive_int(steps, "steps"):
        fitted = max(0.5, 1.0 - 10.0 / steps)
        return fitted, (
            f"EMA of the weights at {fitted:g} (Technique 5's {ema_rate:g}, shortened to a tenth "
            f"of the {steps} training steps)"
        )
    return ema_rate, f"EMA of the weights at {ema_rate:g} (Technique 5)"


def sampling_note(steps_per_level: int, step_size: float, step_scale: float = 1.0) -> str:
    rule = "Technique 4" if step_scale == 1 else f"{step_scale:g} × Technique 4's"
    return (
        f"sampling: annealed Langevin, T = {steps_per_level} steps per level, ε = "
        f"{step_size:.4g} ({rule}), then the denoising step"
    )


def recipe(
    x: Tensor,
    *,
    sigma_max: float | None = None,
    sigma_min: float = 0.01,
    num_levels: int | None = None,
    steps_per_level: int = 5,
    target: float = 0.5,
    ema_rate: float = 0.999,
    steps: int | None = None,
    generator: torch.Generator | None = None,
) -> Recipe:
    """NCSNv2's settings (Song & Ermon, 2020, "Improved Techniques for Training Score-Based
    Generative Models") computed from the training data ``x``.

    - σ₁ = the largest pairwise distance between training examples (Technique 1): exact for up
      to :data:`EXACT_DISTANCE_LIMIT` examples, else the double-sweep estimate (a lower bound).
    - L from Technique 2: consecutive levels overlap by ``target`` in the data's dimension D;
      where D <= 4 the overlap does not bound the ratio and L = 10 (the paper's).
    - ε from Technique 4 for T = ``steps_per_level`` steps per level.
    - EMA of the weights at ``ema_rate`` (Technique 5), shortened for short runs: given the
      training ``steps``, the rate is at most ``1 − 10/steps``, so that the average spans at most a
      tenth of the run (a longer average still holds much of the untrained weights); then the
      final denoising step.

    Any of σ₁, L given explicitly is used as it is (and the rest computed around it).

    Args:
        x: ``[N, *event]`` training data, N >= 2, in the units the model sees.
        sigma_max: σ₁ (default: from the data).
        sigma_min: σ_L (default 0.01, in data units).
        num_levels: L (default: from Technique 2).
        steps_per_level: T (default 5, NCSNv2's).
        target: the overlap between consecutive levels for Technique 2.
        ema_rate: the EMA rate (default 0.999, NCSNv2's for runs of 10,000 steps or more).
        steps: the number of training steps, to fit the EMA rate to (default: not fitted).
        generator: for the anchors of the σ₁ estimate on large data sets.

    Returns:
        A :class:`Recipe`.

    Raises:
        ValueError: ``x`` is not ``[N, *event]`` with N >= 2; ``x`` has no spread (its largest
            pairwise distance is not above ``sigma_min``); a setting out of range (named).

    Example:
        >>> x = ncsn.data.load("digits")[0]
        >>> r = ncsn.presets.recipe(x)
        >>> round(float(r.sigmas[0]), 2), len(r.sigmas), r.steps_per_level
        (4.8, 22, 5)
    """
    if not isinstance(x, Tensor) or x.ndim < 2 or x.shape[0] < 2:
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"x must be a [N, *event] tensor with N >= 2 examples; got {got}")
    sigma_min = positive_float(sigma_min, "sigma_min")
    steps_per_level = positive_int(steps_per_level, "steps_per_level")
    dim = math.prod(x.shape[1:])
    notes = []
    if sigma_max is None:
        if x.shape[0] <= EXACT_DISTANCE_LIMIT:
            sigma_max = max_pairwise_distance(x)
            how = "exact"
        else:
            sigma_max = estimate_max_pairwise_distance(x, generator=generator).estimate
            how = "double-sweep estimate"
        if not sigma_max > sigma_min:
            raise ValueError(
                f"x has no spread to take σ₁ from: the largest distance between two of its "
                f"{x.shape[0]} examples is {sigma_max:g}, not above sigma_min={sigma_min:g} "
                "(are the examples all equal?)"
            )
        notes.append(
            f"σ₁ = {sigma_max:.4g}: the largest distance between two of the {x.shape[0]} "
            f"examples ({how}; Technique 1)"
        )
    else:
        sigma_max = positive_float(sigma_max, "sigma_max")
        notes.append(f"σ₁ = {sigma_max:.4g} (given)")
    if not sigma_max > sigma_min:
        raise ValueError(
            f"sigma_max must be larger than sigma_min={sigma_min:g}; got sigma_max={sigma_max:g}"
        )
    if num_levels is not None:
        levels = positive_int(num_levels, "num_levels")
        notes.append(f"L = {levels} levels down to σ_L = {sigma_min:g} (given)")
    elif dim >= 5:
        levels = ncsnv2_num_levels(dim, sigma_max, sigma_min, target=target)
        notes.append(
            f"L = {levels} levels down to σ_L = {sigma_min:g}: consecutive levels overlap by "
            f"{target:g} in D = {dim} dimensions (Technique 2)"
        )
    else:
        levels = PAPER_NUM_LEVELS
        notes.append(
            f"L = {levels} levels down to σ_L = {sigma_min:g} (the paper's; Technique 2 does "
            f"not bound the ratio of levels in D = {dim} <= 4 dimensions)"
        )
    sigmas = geometric_sigmas(sigma_max, sigma_min, levels)
    step_size = ncsnv2_step_size(sigmas, steps_per_level) if levels > 1 else OFFICIAL_STEP_SIZE
    notes.append(sampling_note(steps_per_level, step_size))
    ema_rate, note = fitted_ema(ema_rate, steps)
    notes.append(note)
    return Recipe(sigmas, step_size, steps_per_level, ema_rate, True, tuple(notes))
