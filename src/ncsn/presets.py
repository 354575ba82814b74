"""Ready-made configurations: the paper's NCSN, its single-noise-level baseline, and NCSNv2's
settings computed from the data.

Each preset returns a :class:`Setup`: a score model, the loss to train it with, and the sampler
it is sampled with, all built from the library's ordinary parts. :func:`recipe` computes NCSNv2's
settings (Song & Ermon, 2020) from a data set; :func:`from_data` builds a :class:`Setup` from them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from ncsn._checks import as_sigmas, positive_float, positive_int
from ncsn._types import NoiseSchedule, Sampler, ScoreLoss
from ncsn.losses import DenoisingScoreMatching
from ncsn.ncsnv2 import (
    estimate_max_pairwise_distance,
    max_pairwise_distance,
    ncsnv2_num_levels,
    ncsnv2_step_size,
)
from ncsn.nets.mlp import ScoreMLP
from ncsn.nets.refinenet import RefineNet, RefineNetBaseline
from ncsn.samplers import AnnealedLangevin, Langevin
from ncsn.schedules import Schedule, geometric_sigmas

__all__ = [
    "EXACT_DISTANCE_LIMIT",
    "OFFICIAL_STEP_SIZE",
    "SMALL_IMAGE_PIXELS",
    "Recipe",
    "Setup",
    "baseline",
    "default_ngf",
    "from_data",
    "ncsn_paper",
    "recipe",
]

OFFICIAL_STEP_SIZE = 2 * 2e-5
"""ε of the released code (``step_lr = 2e-5`` is ε/2); the paper's text states ε = 2e-5."""


SMALL_IMAGE_PIXELS = 16 * 16
"""Images of at most this many pixels (H·W) get the narrow RefineNet by default."""


def default_ngf(shape: Sequence[int]) -> int:
    """The RefineNet width ``ncsn train`` and :func:`from_data` use for images of ``shape``
    ``[C, H, W]``: 16 for small images (H·W <= :data:`SMALL_IMAGE_PIXELS`), else 64 (the paper's
    MNIST width).

    Measured on the 8×8 digits at the same 20 minutes of CPU training
    (``benchmarks/quality.py``, ``docs/sample-quality.md``): the width-16 network takes 2.5×
    the steps of the width-32 one in that time and its samples come closer to real digits.

    Example:
        >>> ncsn.presets.default_ngf((1, 8, 8)), ncsn.presets.default_ngf((3, 32, 32))
        (16, 64)
    """
    if len(shape) != 3:
        raise ValueError(f"shape must be an image shape [C, H, W]; got {list(shape)}")
    return 16 if shape[1] * shape[2] <= SMALL_IMAGE_PIXELS else 64


class Setup(NamedTuple):
    """A model with the loss it is trained with and the sampler it is sampled with."""

    model: nn.Module
    loss: ScoreLoss
    sampler: Sampler
    schedule: NoiseSchedule


def ncsn_paper(
    channels: int,
    ngf: int,
    *,
    sigmas: Tensor | Sequence[float] | None = None,
    step_size: float = OFFICIAL_STEP_SIZE,
    steps_per_level: int = 100,
    generator: torch.Generator | None = None,
) -> Setup:
    """NCSN as in the paper: RefineNet, DSM with λ(σ) = σ², annealed Langevin (Alg. 1).

    Args:
        channels: image channels.
        ngf: RefineNet width (paper: 64 for MNIST, 128 for CIFAR-10 and CelebA).
        sigmas: noise levels (default: geometric 1 → 0.01, L = 10).
        step_size: ε (default: the released code's 4e-5; the paper's text says 2e-5).
        steps_per_level: T (paper: 100).
        generator: for the initial weights.

    Example:
        >>> setup = ncsn.presets.ncsn_paper(channels=1, ngf=8, steps_per_level=2)  # paper: T = 100
        >>> x = setup.sampler(setup.model, ncsn.samplers.uniform_init((4, 1, 8, 8)))
        >>> x.shape
        torch.Size([4, 1, 8, 8])
    """
    levels = as_sigmas(sigmas) if sigmas is not None else geometric_sigmas(1.0, 0.01, 10)
    schedule = Schedule(levels)
    model = RefineNet(channels, ngf, levels, generator=generator)
    loss = DenoisingScoreMatching(schedule, power=2.0)
    sampler = AnnealedLangevin(levels, step_size, steps_per_level)
    return Setup(model, loss, sampler, schedule)


def baseline(
    channels: int,
    ngf: int,
    *,
    sigma: float = 0.01,
    step_size: float = OFFICIAL_STEP_SIZE,
    num_steps: int = 1000,
    generator: torch.Generator | None = None,
) -> Setup:
    """The paper's single-noise-level baseline (App. C.1).

    The unconditional network (:class:`~ncsn.nets.RefineNetBaseline`, InstanceNorm++), DSM at one
    σ = 0.01 without weighting (λ = 1, i.e. power 0), and plain Langevin dynamics with T = 1000
    steps at that σ. Train and sample it with the same code as :func:`ncsn_paper`.

    Example:
        >>> setup = ncsn.presets.baseline(channels=1, ngf=8)
        >>> setup.sampler.num_steps, setup.loss.power
        (1000, 0.0)
    """
    schedule = Schedule([sigma])
    model = RefineNetBaseline(channels, ngf, generator=generator)
    loss = DenoisingScoreMatching(schedule, power=0.0)
    sampler = Langevin(sigma, step_size, num_steps)
    return Setup(model, loss, sampler, schedule)


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
      tenth of the run (measured on the digits: with 0.999 after 1,000 steps the average still
      holds e⁻¹ of the untrained weights, and the Fréchet distance was 4× that of the raw
      weights); then the final denoising step.

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
    notes.append(
        f"sampling: annealed Langevin, T = {steps_per_level} steps per level, ε = "
        f"{step_size:.4g} (Technique 4), then the denoising step"
    )
    ema_rate = positive_float(ema_rate, "ema_rate")
    if steps is not None and ema_rate > 1.0 - 10.0 / positive_int(steps, "steps"):
        ema_rate = max(0.5, 1.0 - 10.0 / steps)
        notes.append(
            f"EMA of the weights at {ema_rate:g} (Technique 5's 0.999, shortened to a tenth of "
            f"the {steps} training steps)"
        )
    else:
        notes.append(f"EMA of the weights at {ema_rate:g} (Technique 5)")
    return Recipe(sigmas, step_size, steps_per_level, ema_rate, True, tuple(notes))


def from_data(
    x: Tensor,
    *,
    ngf: int | None = None,
    hidden: int = 128,
    sigma_max: float | None = None,
    sigma_min: float = 0.01,
    num_levels: int | None = None,
    steps_per_level: int = 5,
    generator: torch.Generator | None = None,
) -> Setup:
    """A :class:`Setup` with NCSNv2's settings computed from the data (see :func:`recipe`).

    Images ``[N, C, H, W]`` get a :class:`~ncsn.nets.RefineNet` of width ``ngf`` (default:
    :func:`default_ngf` of their shape, 16 for the 8×8 digits), vectors
    ``[N, D]`` a :class:`~ncsn.nets.ScoreMLP` of width ``hidden``; DSM with λ(σ) = σ²; annealed
    Langevin with the recipe's ε and T and the final denoising step. Train with the recipe's EMA
    rate (``recipe(x).ema_rate``) and sample with the EMA weights.

    Example:
        >>> x = ncsn.data.load("digits")[0]
        >>> setup = ncsn.presets.from_data(x, ngf=8)
        >>> setup.model.num_levels, setup.sampler.steps_per_level
        (22, 5)
    """
    r = recipe(
        x,
        sigma_max=sigma_max,
        sigma_min=sigma_min,
        num_levels=num_levels,
        steps_per_level=steps_per_level,
        generator=generator,
    )
    model: nn.Module
    if x.ndim == 4:
        width = default_ngf(x.shape[1:]) if ngf is None else ngf
        model = RefineNet(x.shape[1], width, r.sigmas, generator=generator)
    elif x.ndim == 2:
        model = ScoreMLP(x.shape[1], hidden, r.sigmas, generator=generator)
    else:
        raise ValueError(
            f"x must hold images [N, C, H, W] or vectors [N, D]; got shape {tuple(x.shape)}"
        )
    schedule = Schedule(r.sigmas)
    loss = DenoisingScoreMatching(schedule, power=2.0)
    sampler = AnnealedLangevin(r.sigmas, r.step_size, r.steps_per_level, denoise=r.denoise)
    return Setup(model, loss, sampler, schedule)
