"""Noise schedules: the levels ``σ₁ > σ₂ > … > σ_L`` an NCSN is trained and sampled at.

The paper's schedule (§5 of Song & Ermon, 2019) is geometric from σ₁ = 1 to σ₁₀ = 0.01, in units of
the [0, 1] pixel range.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

import torch
from torch import Tensor

from ncsn._checks import as_sigmas, check_generator_type, positive_float, positive_int

__all__ = [
    "GeometricSchedule",
    "Schedule",
    "SigmaGrid",
    "SigmaGridLike",
    "edm_weights",
    "geometric_sigmas",
    "lognormal_weights",
]


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
        TypeError: if ``dtype`` is not a floating-point ``torch.dtype``.
        ValueError: if a level is non-positive or non-finite, ``sigma_min >= sigma_max``,
            ``num_levels < 1``, ``device`` names no device, or the levels do not survive the cast
            to ``dtype``: ``sigma_max`` overflows to inf, ``sigma_min`` falls below the smallest
            normal number (float16's is 6.1e-05; it would be stored as 0 or with lost precision),
            or neighbouring levels round to the same value (too many levels for a narrow range).

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
    dtype = _float_dtype(dtype)
    device = _device(device)
    logs = torch.linspace(math.log(sigma_max), math.log(sigma_min), num_levels, dtype=torch.float64)
    sigmas = logs.exp().to(dtype)
    _check_representable(sigmas, sigma_max, sigma_min, num_levels)
    return sigmas.to(device)


def _float_dtype(dtype: object) -> torch.dtype:
    if dtype is None:
        return torch.get_default_dtype()
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point torch.dtype; got dtype={dtype!r}")
    return dtype


def _device(device: object) -> torch.device | None:
    if device is None or isinstance(device, torch.device):
        return device
    if not isinstance(device, (str, int)) or isinstance(device, bool):
        raise TypeError(f"device must be a torch.device, a string or None; got device={device!r}")
    try:
        return torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"device must name a torch device; got device={device!r} ({err})") from err


def _check_representable(
    sigmas: Tensor, sigma_max: float, sigma_min: float, num_levels: int
) -> None:
    """The levels, cast to their dtype (on the CPU, before any move), must still be a schedule."""
    info = torch.finfo(sigmas.dtype)
    stored = sigmas.tolist()
    if not math.isfinite(stored[0]):
        raise ValueError(
            f"sigma_max={sigma_max!r} overflows {sigmas.dtype} (largest finite {info.max:g}); "
            f"the levels would be stored as {stored}; use a wider dtype"
        )
    if stored[-1] < info.tiny:
        raise ValueError(
            f"sigma_min={sigma_min!r} is below the smallest normal {sigmas.dtype} number "
            f"{info.tiny:.4g} and loses its precision there; the levels would be stored as "
            f"{stored}; use a larger sigma_min or a wider dtype"
        )
    if any(b >= a for a, b in itertools.pairwise(stored)):
        raise ValueError(
            f"num_levels={num_levels} levels from sigma_max={sigma_max!r} to "
            f"sigma_min={sigma_min!r} are not distinct in {sigmas.dtype}; they would be stored "
            f"as {stored}; use fewer levels, a wider range or a wider dtype"
        )


class SigmaGrid:
    """A checked σ grid σ₁ > σ₂ > … > σ_L > 0, a value that compares and hashes by its levels.

    Built from a tensor, a sequence of numbers or another grid, it checks the levels once (1-D, at
    least one, finite, positive, strictly decreasing) and keeps a detached copy
    (``requires_grad`` dropped), so changing the tensor it was built from changes nothing, and the
    levels as Python floats (:attr:`values`). Two grids are equal when their values are, whatever
    the dtype or device of their tensors: a frozen dataclass holding one (every configured
    sampler) compares and hashes by its settings with no code of its own.

    Where a tensor of levels was used it reads like one: ``len(grid)``, ``grid[i]`` and
    ``grid.tolist()``; :attr:`tensor` is a copy of the tensor.

    Args:
        sigmas: ``[L]`` levels.
        name: the argument's name in error messages.

    Raises:
        TypeError: levels that are not real numbers, or a non-floating tensor.
        ValueError: levels that are not 1-D, empty, non-finite, not positive or not strictly
            decreasing, or a tensor on the ``meta`` device (no values to check).

    Example:
        >>> grid = ncsn.schedules.SigmaGrid(torch.tensor([1.0, 0.5, 0.25]))
        >>> grid.values
        (1.0, 0.5, 0.25)
        >>> grid == ncsn.schedules.SigmaGrid([1.0, 0.5, 0.25]), len(grid), float(grid[-1])
        (True, 3, 0.25)
    """

    __slots__ = ("_tensor", "_values")

    def __init__(self, sigmas: SigmaGrid | Tensor | Sequence[float], name: str = "sigmas") -> None:
        if isinstance(sigmas, SigmaGrid):
            tensor = sigmas._tensor  # never written to: shared safely
        else:
            tensor = as_sigmas(sigmas, name).detach().clone()
        self._tensor: Tensor = tensor
        self._values: tuple[float, ...] = tuple(float(s) for s in tensor.tolist())

    @property
    def values(self) -> tuple[float, ...]:
        """The levels as Python floats, σ₁ first (read once, at construction)."""
        return self._values

    @property
    def tensor(self) -> Tensor:
        """A copy of the ``[L]`` levels, in the dtype and on the device they were given."""
        return self._tensor.clone()

    def tolist(self) -> list[float]:
        """The levels as a list of Python floats."""
        return list(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getitem__(self, index: int | slice) -> Tensor:
        """``grid.tensor[index]`` (a copy)."""
        return self._tensor[index].clone()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SigmaGrid):
            return NotImplemented
        return self._values == other._values

    def __hash__(self) -> int:
        return hash(self._values)

    def __repr__(self) -> str:
        return f"SigmaGrid({list(self._values)})"


SigmaGridLike: TypeAlias = SigmaGrid | Tensor | Sequence[float]
"""What a σ grid may be given as (to a sampler, :func:`~ncsn.likelihood.log_prob`): a
:class:`SigmaGrid`, a 1-D tensor or a sequence of numbers."""


def _sample(
    sigmas: Tensor,
    batch: int,
    generator: torch.Generator | None,
    weights: Tensor | None = None,
) -> Tensor:
    """``batch`` levels drawn uniformly, or by ``weights``, on the generator's device."""
    batch = positive_int(batch, "batch")
    check_generator_type(generator)
    device = generator.device if generator is not None else sigmas.device
    if weights is None:
        index = torch.randint(sigmas.numel(), (batch,), generator=generator, device=device)
    else:
        index = torch.multinomial(weights.to(device), batch, replacement=True, generator=generator)
    return sigmas.to(device)[index]


def _level_weights(weights: Tensor | Sequence[float], num_levels: int) -> Tensor:
    """Validated per-level sampling weights: 1-D of length L, finite, non-negative, not all 0
    (a float64 copy, detached)."""
    if not isinstance(weights, Tensor):
        try:
            weights = torch.as_tensor(weights, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(
                f"weights must be a 1-D tensor or sequence of numbers; got {type(weights).__name__}"
            ) from None
    if weights.is_complex() or weights.dtype == torch.bool:
        raise TypeError(f"weights must be real numbers; got dtype {weights.dtype}")
    w = weights.detach().to("cpu", torch.float64).clone()
    if w.dim() != 1 or w.numel() != num_levels:
        raise ValueError(
            f"weights must have shape [{num_levels}] (one per level); got {tuple(w.shape)}"
        )
    if not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
        raise ValueError(f"weights must be finite and non-negative; got weights={w.tolist()}")
    if float(w.sum()) <= 0.0:
        raise ValueError("weights must not all be 0: no level could be drawn")
    return w


@dataclass(frozen=True, eq=False)
class Schedule:
    """A noise schedule from any user tensor of levels (a :class:`~ncsn.NoiseSchedule`).

    Args:
        sigmas: ``[L]`` levels; validated to be 1-D, non-empty, finite, positive and strictly
            decreasing, and copied (detached from autograd), so changing the tensor afterwards
            does not change the schedule.
        weights: optional ``[L]`` non-negative sampling weights, one per level: training draws
            level i with probability ``weights[i] / weights.sum()`` (default: uniformly, as the
            paper). :func:`lognormal_weights` gives the log-normal weights of Karras et al.
            (2022). The DSM loss's λ(σ) is unchanged: the weights move training effort between
            levels, not the optimum of any one level.

    Raises:
        ValueError: bad levels, or weights of another length, negative, non-finite or all 0.
        TypeError: weights that are not real numbers.

    Example:
        >>> schedule = ncsn.Schedule(torch.tensor([0.01]))    # the paper's single-σ baseline
        >>> schedule.sample(4, generator=torch.Generator().manual_seed(0))
        tensor([0.0100, 0.0100, 0.0100, 0.0100])
        >>> sigmas = ncsn.geometric_sigmas(1.0, 0.01, 3)       # 1.0, 0.1, 0.01
        >>> ncsn.Schedule(sigmas, weights=[0, 1, 0]).sample(2)
        tensor([0.1000, 0.1000])
    """

    sigmas: Tensor
    weights: Tensor | None = None

    def __init__(
        self, sigmas: Tensor | Sequence[float], weights: Tensor | Sequence[float] | None = None
    ) -> None:
        levels = as_sigmas(sigmas).detach().clone()
        object.__setattr__(self, "sigmas", levels)
        # kept beside the levels, so that a draw on their device copies nothing
        chosen = (
            None if weights is None else _level_weights(weights, levels.numel()).to(levels.device)
        )
        object.__setattr__(self, "weights", chosen)

    @property
    def num_levels(self) -> int:
        """L, the number of levels."""
        return self.sigmas.numel()

    def sample(self, batch: int, *, generator: torch.Generator | None = None) -> Tensor:
        """Draw one level per example (uniformly, or by ``weights``); return their σ values
        ``[batch]``.

        The draw happens on the generator's device (or the levels' device without one).
        """
        return _sample(self.sigmas, batch, generator, self.weights)

    def __repr__(self) -> str:
        weights = "" if self.weights is None else f", weights={self.weights.tolist()}"
        return f"Schedule(sigmas={self.sigmas.tolist()}{weights})"


def lognormal_weights(sigmas: Tensor | Sequence[float], median: float, spread: float) -> Tensor:
    """Per-level weights that make the drawn log σ a normal of mean ``log(median)`` and standard
    deviation ``spread``, discretised on the grid: wᵢ ∝ exp(−(log σᵢ − log median)² / (2·spread²))
    times the grid's spacing in log σ around σᵢ (constant on a geometric grid).

    Karras, Aittala, Aila & Laine (2022, "Elucidating the design space of diffusion-based
    generative models", §5) train on log σ ~ N(−1.2, 1.2²) for images in [−1, 1]: for images in
    [0, 1] that is ``median = exp(−1.2) / 2 ≈ 0.15`` and ``spread = 1.2``. Against the geometric
    grid's uniform draw it spends less of training on the largest levels, where the data is
    drowned and the score is nearly that of a Gaussian, and more on the middle ones.

    Args:
        sigmas: ``[L]`` strictly decreasing positive levels, L >= 2 (one level needs no weights).
        median: the σ the draw centres on (positive).
        spread: the standard deviation of log σ (positive).

    Returns:
        ``[L]`` float64 weights summing to 1, for :class:`Schedule`'s ``weights``.

    Raises:
        ValueError: bad levels, fewer than two, or a non-positive ``median`` or ``spread``.

    Example:
        >>> sigmas = ncsn.geometric_sigmas(16.0, 0.01, 96)
        >>> w = ncsn.schedules.lognormal_weights(sigmas, 0.15, 1.2)
        >>> round(float(w[sigmas > 1].sum()), 2)                 # uniform: 0.38
        0.06
        >>> schedule = ncsn.Schedule(sigmas, weights=w)
    """
    levels = as_sigmas(sigmas).detach().to("cpu", torch.float64)
    if levels.numel() < 2:
        raise ValueError(f"lognormal_weights needs two or more levels; got {levels.tolist()}")
    median = positive_float(median, "median")
    spread = positive_float(spread, "spread")
    logs = levels.log()
    # the width in log σ each level stands for: half the gaps to its neighbours
    edges = torch.cat([logs[:1], (logs[1:] + logs[:-1]) / 2, logs[-1:]])
    width = edges[:-1] - edges[1:]
    density = torch.exp(-((logs - math.log(median)) ** 2) / (2 * spread**2))
    weights = density * width
    if float(weights.sum()) <= 0.0:
        raise ValueError(
            f"lognormal_weights: every level lies too far from median={median} for "
            f"spread={spread} (the weights underflow to 0)"
        )
    return weights / weights.sum()


def edm_weights(
    sigmas: Tensor | Sequence[float],
    sigma_data: float,
    median: float = 0.15,
    spread: float = 1.2,
) -> Tensor:
    """Per-level weights that turn the paper's σ²-weighted DSM into Karras et al.'s training
    objective: their log-normal draw of σ (:func:`lognormal_weights`) times their loss weight,
    folded into the draw.

    Karras et al. (2022, §5) weight the denoiser's squared error ‖D(x̃, σ) − x‖² by
    λ(σ) = (σ² + σ_d²)/(σ·σ_d)², which gives their preconditioned network
    (:class:`ncsn.nets.Preconditioned`) a target of unit variance and an equal weight at every
    σ. The paper's DSM at λ(σ) = σ² is ‖D − x‖²/σ², so theirs is it times (σ² + σ_d²)/σ_d²;
    drawing level i with probability ∝ wᵢ = lognormal(σᵢ)·(σᵢ² + σ_d²)/σ_d² gives the same
    expected loss and gradient with the loss unchanged. Against :func:`lognormal_weights` alone
    it moves the draw towards the large levels (for MNIST, σ_d = 0.31 on [0, 1] images, the 96
    levels from 16.9 to 0.01: 64% of the draws above σ = 1, against 6% and the uniform 39%).

    Args:
        sigmas: ``[L]`` strictly decreasing positive levels, L >= 2.
        sigma_data: σ_d, the standard deviation of the data (positive).
        median: the σ the log-normal draw centres on (positive; 0.15 is Karras et al.'s for
            images in [0, 1]).
        spread: the standard deviation of its log σ (positive).

    Returns:
        ``[L]`` float64 weights summing to 1, for :class:`Schedule`'s ``weights``.

    Raises:
        ValueError: bad levels, fewer than two, or a non-positive ``sigma_data``, ``median`` or
            ``spread``.

    Example:
        >>> sigmas = ncsn.geometric_sigmas(16.88, 0.01, 96)        # MNIST's grid
        >>> w = ncsn.schedules.edm_weights(sigmas, sigma_data=0.31)
        >>> round(float(w[sigmas > 1].sum()), 2)
        0.64
        >>> schedule = ncsn.Schedule(sigmas, weights=w)
    """
    weights = lognormal_weights(sigmas, median, spread)
    sd2 = positive_float(sigma_data, "sigma_data") ** 2
    levels = as_sigmas(sigmas).detach().to("cpu", torch.float64)
    weights = weights * (levels.square() + sd2) / sd2
    return weights / weights.sum()


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
