"""Noise schedules: the levels ``σ₁ > σ₂ > … > σ_L`` an NCSN is trained and sampled at.

The paper's schedule (§5 of Song & Ermon, 2019) is geometric from σ₁ = 1 to σ₁₀ = 0.01, in units of
the [0, 1] pixel range.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ncsn._checks import as_sigmas, positive_float, positive_int

__all__ = ["GeometricSchedule", "Schedule", "geometric_sigmas"]


def geometric_sigmas(
    sigma_max: float,
    sigma_min: float,
    num_levels: int,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Geometric noise levels from ``sigma_max`` down to ``sigma_min``.

    σ_i = σ_max · (σ_min/σ_max)^{(i-1)/(L-1)}, computed in float64 as
    ``exp(linspace(log σ_max, log σ_min, L))`` (the official code's formula) and cast to ``dtype``.

    Args:
        sigma_max: σ₁, the largest level.
        sigma_min: σ_L, the smallest level; must be below ``sigma_max``.
        num_levels: L >= 1. With one level the schedule is ``[sigma_max]``.
        dtype: result dtype (default: torch's default dtype).
        device: result device.

    Returns:
        ``[L]`` strictly decreasing tensor, ``sigmas[0] == sigma_max``, ``sigmas[-1] == sigma_min``.

    Raises:
        ValueError: if a level is non-positive or non-finite, ``sigma_min >= sigma_max`` or
            ``num_levels < 1``.

    Example:
        >>> ncsn.geometric_sigmas(1.0, 0.01, 10)[:3]
        tensor([1.0000, 0.5995, 0.3594])
    """
    sigma_max = positive_float(sigma_max, "sigma_max")
    sigma_min = positive_float(sigma_min, "sigma_min")
    num_levels = positive_int(num_levels, "num_levels")
    if sigma_min >= sigma_max:
        raise ValueError(
            f"sigma_min must be smaller than sigma_max; got sigma_min={sigma_min}, "
            f"sigma_max={sigma_max}"
        )
    logs = torch.linspace(math.log(sigma_max), math.log(sigma_min), num_levels, dtype=torch.float64)
    return logs.exp().to(dtype=dtype or torch.get_default_dtype(), device=device)


def _sample(sigmas: Tensor, batch: int, generator: torch.Generator | None) -> Tensor:
    batch = positive_int(batch, "batch")
    device = generator.device if generator is not None else sigmas.device
    index = torch.randint(sigmas.numel(), (batch,), generator=generator, device=device)
    return sigmas.to(device)[index]


@dataclass(frozen=True, eq=False)
class Schedule:
    """A noise schedule from any user tensor of levels (a :class:`~ncsn.NoiseSchedule`).

    Args:
        sigmas: ``[L]`` levels; validated to be 1-D, non-empty, finite, positive and strictly
            decreasing.

    Example:
        >>> schedule = ncsn.Schedule(torch.tensor([0.01]))    # the paper's single-σ baseline
        >>> schedule.sample(4, generator=torch.Generator().manual_seed(0))
        tensor([0.0100, 0.0100, 0.0100, 0.0100])
    """

    sigmas: Tensor

    def __init__(self, sigmas: Tensor | Sequence[float]) -> None:
        object.__setattr__(self, "sigmas", as_sigmas(sigmas))

    @property
    def num_levels(self) -> int:
        """L, the number of levels."""
        return self.sigmas.numel()

    def sample(self, batch: int, *, generator: torch.Generator | None = None) -> Tensor:
        """Draw one level per example uniformly; return their σ values ``[batch]``.

        The draw happens on the generator's device (or the levels' device without one).
        """
        return _sample(self.sigmas, batch, generator)

    def __repr__(self) -> str:
        return f"Schedule(sigmas={self.sigmas.tolist()})"


@dataclass(frozen=True)
class GeometricSchedule:
    """The paper's geometric schedule as a :class:`~ncsn.NoiseSchedule`.

    Args:
        sigma_max: σ₁ (paper: 1.0 for images, 20.0 for the toy mixture).
        sigma_min: σ_L (paper: 0.01 for images, 1.0 for the toy mixture).
        num_levels: L (paper: 10).

    Example:
        >>> schedule = ncsn.GeometricSchedule(1.0, 0.01, 10)
        >>> schedule.sample(3, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([3])
    """

    sigma_max: float
    sigma_min: float
    num_levels: int
    _sigmas: Tensor = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        sigmas = geometric_sigmas(self.sigma_max, self.sigma_min, self.num_levels)
        object.__setattr__(self, "_sigmas", sigmas)

    @property
    def sigmas(self) -> Tensor:
        """``[L]`` levels, largest first."""
        return self._sigmas

    def sample(self, batch: int, *, generator: torch.Generator | None = None) -> Tensor:
        """Draw one level per example uniformly; return their σ values ``[batch]``."""
        return _sample(self._sigmas, batch, generator)
