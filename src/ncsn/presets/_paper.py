"""The paper's NCSN and its single-noise-level baseline, as :class:`Setup` s."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from ncsn._checks import as_sigmas
from ncsn._types import NoiseSchedule, Sampler, ScoreLoss
from ncsn.losses import DenoisingScoreMatching
from ncsn.nets.config import build_model
from ncsn.samplers import AnnealedLangevin, Langevin
from ncsn.schedules import Schedule, geometric_sigmas

__all__ = ["OFFICIAL_STEP_SIZE", "Setup", "baseline", "ncsn_paper"]

OFFICIAL_STEP_SIZE = 2 * 2e-5
"""ε of the released code (``step_lr = 2e-5`` is ε/2); the paper's text states ε = 2e-5."""


class Setup(NamedTuple):
    """A model with the loss it is trained with and the sampler it is sampled with."""

    model: nn.Module
    loss: ScoreLoss
    sampler: Sampler
    schedule: NoiseSchedule


def _refinenet(
    channels: int, ngf: int, sigmas: Tensor, generator: torch.Generator | None
) -> nn.Module:
    config = {"kind": "RefineNet", "channels": channels, "ngf": ngf, "sigmas": sigmas.tolist()}
    return build_model(config, generator=generator)


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

    Raises:
        ValueError: bad ``sigmas``, ``ngf`` or sampler settings (named).

    Example:
        >>> setup = ncsn.presets.ncsn_paper(channels=1, ngf=8, steps_per_level=2)  # paper: T = 100
        >>> x = setup.sampler(setup.model, ncsn.samplers.uniform_init((4, 1, 8, 8)))
        >>> x.shape
        torch.Size([4, 1, 8, 8])
    """
    levels = as_sigmas(sigmas) if sigmas is not None else geometric_sigmas(1.0, 0.01, 10)
    schedule = Schedule(levels)
    model = _refinenet(channels, ngf, levels, generator)
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

    Raises:
        ValueError: bad ``sigma``, ``ngf`` or sampler settings (named).

    Example:
        >>> setup = ncsn.presets.baseline(channels=1, ngf=8)
        >>> setup.sampler.num_steps, setup.loss.power
        (1000, 0.0)
    """
    schedule = Schedule([sigma])
    config = {"kind": "RefineNetBaseline", "channels": channels, "ngf": ngf}
    model = build_model(config, generator=generator)
    loss = DenoisingScoreMatching(schedule, power=0.0)
    sampler = Langevin(sigma, step_size, num_steps)
    return Setup(model, loss, sampler, schedule)
