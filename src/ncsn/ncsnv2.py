"""NCSNv2's hyper-parameter techniques computed from data (Song & Ermon, 2020).

"Improved Techniques for Training Score-Based Generative Models" gives recipes for the noise
schedule and the sampler that the official code hard-codes per dataset. This module computes them:

- **Technique 1** (σ₁): the maximum pairwise Euclidean distance between training points,
  :func:`max_pairwise_distance` (exact, chunked) and :func:`estimate_max_pairwise_distance`
  (sampled, with a certified bracket).
- **Technique 2** (the other levels): a geometric schedule whose ratio γ makes consecutive
  levels overlap, :func:`ncsnv2_gamma`, :func:`ncsnv2_num_levels`, :func:`ncsnv2_sigmas`.
- **Technique 4** (Langevin step size): :func:`ncsnv2_step_size` from the closed-form variance
  ratio :func:`langevin_variance_ratio` (NCSNv2 Proposition 3).

Step sizes are in this library's (the NCSN paper's) convention ``x ← x + (ε_i/2)·s + √ε_i·z`` with
``ε_i = ε·σ_i²/σ_L²``. NCSNv2 writes ``x ← x + α_i·s + √(2α_i)·z``, so its ``ε`` is half of ours:
NCSNv2's CIFAR-10 setting ε = 6.2e-6 is ε ≈ 1.24e-5 here.

Example:
    >>> x = torch.rand(500, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    >>> sigma_max = ncsn.max_pairwise_distance(x)
    >>> sigmas = ncsn.ncsnv2_sigmas(x[0].numel(), sigma_max, 0.01)
    >>> step_size = ncsn.ncsnv2_step_size(sigmas, steps_per_level=5)

References:
    Song & Ermon (2020), "Improved Techniques for Training Score-Based Generative Models",
    NeurIPS 2020, §3 (Techniques 1, 2 and 4) and Proposition 3.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, NamedTuple

import torch
from torch import Tensor

from ncsn._checks import (
    as_sigmas,
    check_generator_type,
    positive_float,
    positive_int,
)
from ncsn.metrics.distances import flatten64, sq_dists, unit_scale
from ncsn.schedules import geometric_sigmas

__all__ = [
    "PairwiseDistanceEstimate",
    "estimate_max_pairwise_distance",
    "langevin_variance_ratio",
    "max_pairwise_distance",
    "ncsnv2_gamma",
    "ncsnv2_num_levels",
    "ncsnv2_overlap",
    "ncsnv2_sigmas",
    "ncsnv2_step_size",
]


# --------------------------------------------------------------------------------------------
# Technique 1: σ₁ from the data
# --------------------------------------------------------------------------------------------


class PairwiseDistanceEstimate(NamedTuple):
    """A sampled estimate of the largest pairwise distance with a certified bracket.

    ``estimate <= max_pairwise_distance(x) <= upper_bound`` always holds (up to floating-point
    rounding); neither bound is probabilistic.
    """

    estimate: float
    """The largest distance actually measured between two points of ``x`` (a lower bound)."""
    upper_bound: float
    """A triangle-inequality upper bound on the true maximum (at most twice ``estimate``)."""


def _centred64(x: Tensor) -> tuple[Tensor, float]:
    """``x`` as float64 rows divided by a power of two ``s`` (so squares cannot overflow) and
    centred (distances are translation invariant, and centring reduces the cancellation in
    ‖a‖² + ‖b‖² − 2a·b), and ``s``: distances of the rows times ``s`` are those of ``x``."""
    flat = flatten64(x, min_rows=2)
    scale = unit_scale(flat)
    flat = flat / scale
    return flat - flat.mean(dim=0), scale


def max_pairwise_distance(x: Tensor, *, chunk_size: int = 1024) -> float:
    """The exact largest Euclidean distance between two points of ``x`` (NCSNv2 Technique 1).

    max_{i<j} ‖x_i − x_j‖ over the flattened events, computed in float64 block by block: O(N²·F)
    time for N points of F features and O(chunk_size² + N·F) memory, on ``x``'s device. Only
    blocks on or above the diagonal are computed. The data are divided by a power of two (exact)
    and centred first, so squares never overflow (data of any finite scale work) and the usual
    ‖a‖² + ‖b‖² − 2a·b expansion keeps about 1e-12 relative accuracy.

    Args:
        x: ``[N, *event]`` floating data, N >= 2 (for images, in the units σ will be used in,
            e.g. [0, 1] pixels).
        chunk_size: rows per block; memory grows as ``chunk_size²`` float64 values.

    Returns:
        The maximum distance as a Python float (NCSNv2 uses it as σ₁).

    Raises:
        TypeError: if ``x`` is not a floating tensor or ``chunk_size`` not an int.
        ValueError: if ``x`` has fewer than 2 points or non-finite values, or
            ``chunk_size < 1``.

    Example:
        >>> x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [1.0, 1.0]])
        >>> ncsn.max_pairwise_distance(x)
        5.0

    References:
        Song & Ermon (2020), Technique 1: "choose σ₁ to be as large as the maximum Euclidean
        distance between all pairs of training data points".
    """
    chunk_size = positive_int(chunk_size, "chunk_size")
    flat, scale = _centred64(x)
    n = flat.shape[0]
    best = torch.zeros((), dtype=torch.float64, device=flat.device)
    for start in range(0, n, chunk_size):
        rows = flat[start : start + chunk_size]
        # Blocks left of the diagonal repeat pairs already seen (distance is symmetric).
        for other in range(start, n, chunk_size):
            block = sq_dists(rows, flat[other : other + chunk_size])
            best = torch.maximum(best, block.max())
    return math.sqrt(float(best.item())) * scale


def estimate_max_pairwise_distance(
    x: Tensor,
    num_anchors: int = 64,
    *,
    chunk_size: int = 4096,
    generator: torch.Generator | None = None,
) -> PairwiseDistanceEstimate:
    """A sampled estimate of :func:`max_pairwise_distance` for data too large for O(N²).

    Draws ``num_anchors`` distinct points uniformly at random, measures each anchor's distance to
    every point (its eccentricity ``r_a = max_j ‖x_a − x_j‖``) and then, as a "double sweep",
    the eccentricity of each anchor's farthest point. Cost: O(num_anchors·N·F) time.

    What it guarantees:

    - ``estimate`` is a distance between two actual points, so it never exceeds the true
      maximum D: it is a **lower bound**.
    - ``upper_bound = min(2·min_a r_a, 2·max_j ‖x_j − x̄‖)`` is a certified **upper bound** by the
      triangle inequality (any pair is within ``r_a`` of a common anchor), so the true D lies in
      ``[estimate, upper_bound]`` and the relative error is at most ``upper_bound/estimate − 1``
      (never more than 1, i.e. a factor of 2).
    - Probabilistically: if a fraction q of the points have eccentricity ≥ some value d, at
      least one anchor is among them with probability ≥ 1 − (1 − q)^num_anchors, and then
      ``estimate >= d``. The double sweep usually finds an exact diametral pair on real data.

    Args:
        x: ``[N, *event]`` floating data, N >= 2.
        num_anchors: number of random anchors (clipped to N).
        chunk_size: anchors processed per block (bounds memory to ``chunk_size·N`` values).
        generator: draws the anchors (on the generator's device; indices then move to ``x``'s).

    Returns:
        :class:`PairwiseDistanceEstimate` ``(estimate, upper_bound)`` as Python floats.

    Raises:
        TypeError: if ``x`` is not a floating tensor or an integer argument is not an int.
        ValueError: if ``x`` has fewer than 2 points or non-finite values, or
            ``num_anchors``/``chunk_size`` is below 1.

    Example:
        >>> x = torch.randn(10_000, 3 * 32 * 32, generator=torch.Generator().manual_seed(0))
        >>> est = ncsn.estimate_max_pairwise_distance(x, generator=torch.Generator().manual_seed(1))
        >>> est.estimate <= est.upper_bound
        True
    """
    num_anchors = positive_int(num_anchors, "num_anchors")
    chunk_size = positive_int(chunk_size, "chunk_size")
    check_generator_type(generator)
    flat, scale = _centred64(x)
    n = flat.shape[0]
    device = generator.device if generator is not None else flat.device
    anchors = torch.randperm(n, generator=generator, device=device)[: min(num_anchors, n)]
    anchors = anchors.to(flat.device)

    def eccentricity(index: Tensor) -> tuple[Tensor, Tensor]:
        radii, farthest = [], []
        for start in range(0, index.numel(), chunk_size):
            d2 = sq_dists(flat[index[start : start + chunk_size]], flat)
            value, arg = d2.max(dim=1)
            radii.append(value)
            farthest.append(arg)
        return torch.cat(radii).sqrt(), torch.cat(farthest)

    r_anchor, far = eccentricity(anchors)
    r_far, _ = eccentricity(far)
    estimate = torch.maximum(r_anchor.max(), r_far.max())
    # flat is centred, so its row norms are distances to the mean x̄.
    upper = torch.minimum(
        2.0 * torch.minimum(r_anchor.min(), r_far.min()), 2.0 * flat.norm(dim=1).max()
    )
    return PairwiseDistanceEstimate(float(estimate.item()) * scale, float(upper.item()) * scale)


# --------------------------------------------------------------------------------------------
# Technique 2: the number of levels
# --------------------------------------------------------------------------------------------


def _upper_tail(t: float) -> float:
    """1 − Φ(t), accurate in both tails."""
    return 0.5 * math.erfc(t / math.sqrt(2.0))


def _overlap(gamma: float, dim: int) -> float:
    a = math.sqrt(2.0 * dim) * (gamma - 1.0)
    b = 3.0 * gamma
    # Φ(a+b) − Φ(a−b) = Q(a−b) − Q(a+b); in this form neither term cancels for large a.
    return _upper_tail(a - b) - _upper_tail(a + b)


def _check_dim(dim: int) -> int:
    return positive_int(dim, "dim")


def _check_target(target: float) -> float:
    target = positive_float(target, "target")
    if not target < 1.0:
        raise ValueError(f"target must lie in (0, 1); got target={target!r}")
    return target


def ncsnv2_overlap(gamma: float, dim: int) -> float:
    """NCSNv2's overlap between consecutive noise levels with ratio ``gamma`` in ``dim`` dims.

    ``Φ(√(2D)(γ−1) + 3γ) − Φ(√(2D)(γ−1) − 3γ)`` with Φ the standard normal CDF: approximately the
    probability that a point perturbed at level σ_{i-1} falls within three standard deviations of
    the typical radius √D·σ_i of level σ_i.

    Args:
        gamma: γ = σ_{i-1}/σ_i >= 1.
        dim: D >= 1, the data dimension.

    Returns:
        The overlap, a float in [0, 1].

    Raises:
        TypeError: on a non-numeric ``gamma`` or a non-int ``dim``.
        ValueError: if ``gamma < 1`` or is not finite, or ``dim < 1``.

    Example:
        >>> round(ncsn.ncsnv2.ncsnv2_overlap(1.0398, 3072), 3)
        0.5
    """
    gamma = positive_float(gamma, "gamma")
    if gamma < 1.0:
        raise ValueError(f"gamma must be >= 1; got gamma={gamma!r}")
    return _overlap(gamma, _check_dim(dim))


def ncsnv2_gamma(dim: int, *, target: float = 0.5) -> float:
    """The largest ratio γ = σ_{i-1}/σ_i whose :func:`ncsnv2_overlap` is at least ``target``.

    Solves ``Φ(√(2D)(γ−1) + 3γ) − Φ(√(2D)(γ−1) − 3γ) = target`` by float64 bisection. As a
    function of γ >= 1 the overlap rises from Φ(3) − Φ(−3) ≈ 0.9973 to a single peak at
    ``6√(2D)·γ(γ−1) = log((√(2D)+3)/(√(2D)−3))`` and then falls to 0 (for D >= 5), so the
    solution on the falling side is unique and every larger γ overlaps less than ``target``.
    For D <= 4 the overlap tends to 1 as γ grows and no finite ratio is limited by it.

    Args:
        dim: D >= 5, the data dimension (3072 for 32×32 RGB images).
        target: the required overlap in (0, 1); NCSNv2 writes "≈ 0.5". Its published configs
            correspond to ≈ 0.5669 with rounding to nearest (see :func:`ncsnv2_num_levels`).

    Returns:
        γ > 1 as a Python float.

    Raises:
        TypeError: on a non-int ``dim`` or non-numeric ``target``.
        ValueError: if ``target`` is outside (0, 1), ``dim < 5``, or ``target`` exceeds the
            largest overlap any γ reaches in this dimension.

    Example:
        >>> round(ncsn.ncsnv2.ncsnv2_gamma(3072), 4)
        1.0398

    References:
        Song & Ermon (2020), Technique 2.
    """
    dim = _check_dim(dim)
    target = _check_target(target)
    s = math.sqrt(2.0 * dim)
    if s <= 3.0:
        raise ValueError(
            f"dim must be >= 5 for the overlap criterion to bound γ (for D <= 4 the overlap "
            f"tends to 1 as γ grows); got dim={dim}"
        )
    k = math.log((s + 3.0) / (s - 3.0)) / (6.0 * s)
    peak = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * k))
    peak_overlap = _overlap(peak, dim)
    if target > peak_overlap:
        raise ValueError(
            f"target={target!r} is unattainable in dim={dim}: the largest overlap is "
            f"{peak_overlap:.6f} (at γ={peak:.6f})"
        )
    lo, hi = peak, 2.0 * peak
    while _overlap(hi, dim) >= target:
        lo, hi = hi, 2.0 * hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if _overlap(mid, dim) >= target:
            lo = mid
        else:
            hi = mid
    return lo


def ncsnv2_num_levels(
    dim: int,
    sigma_max: float,
    sigma_min: float,
    *,
    target: float = 0.5,
    rounding: Literal["up", "nearest"] = "up",
) -> int:
    """The number of geometric levels L between σ₁ and σ_L for NCSNv2 Technique 2.

    With γ from :func:`ncsnv2_gamma`, L solves ``σ₁/σ_L = γ^{L−1}``:
    ``L = 1 + log(σ₁/σ_L) / log γ``. ``rounding="up"`` (default) takes the ceiling, so the
    schedule's actual ratio ``(σ₁/σ_L)^{1/(L−1)}`` is at most γ and every pair of consecutive
    levels overlaps by at least ``target``. ``rounding="nearest"`` rounds half up; NCSNv2's
    published L (CIFAR-10 232, CelebA-64 500, LSUN-128 1086, FFHQ-256 2311, all with σ_L = 0.01)
    are reproduced with ``target≈0.5669`` and ``rounding="nearest"``. L is at least 2.

    Args:
        dim: D >= 5, the data dimension.
        sigma_max: σ₁ (e.g. from :func:`max_pairwise_distance`).
        sigma_min: σ_L < σ₁.
        target: the overlap between consecutive levels, in (0, 1).
        rounding: ``"up"`` or ``"nearest"``.

    Returns:
        L as a Python int.

    Raises:
        TypeError: on arguments of the wrong type.
        ValueError: if ``sigma_min >= sigma_max``, a σ is not positive and finite, ``rounding``
            is unknown, or γ cannot be solved for (see :func:`ncsnv2_gamma`).

    Example:
        >>> ncsn.ncsnv2_num_levels(3072, 50.0, 0.01)
        220
        >>> ncsn.ncsnv2_num_levels(3072, 50.0, 0.01, target=0.5669, rounding="nearest")
        232

    References:
        Song & Ermon (2020), Technique 2 and Table 4 (the per-dataset settings).
    """
    sigma_max = positive_float(sigma_max, "sigma_max")
    sigma_min = positive_float(sigma_min, "sigma_min")
    if sigma_min >= sigma_max:
        raise ValueError(
            f"sigma_min must be smaller than sigma_max; got sigma_min={sigma_min}, "
            f"sigma_max={sigma_max}"
        )
    if rounding not in ("up", "nearest"):
        raise ValueError(f"rounding must be 'up' or 'nearest'; got rounding={rounding!r}")
    gamma = ncsnv2_gamma(dim, target=target)
    exact = 1.0 + math.log(sigma_max / sigma_min) / math.log(gamma)
    # The tolerance keeps an exact integer L (up to rounding noise) from being bumped by one.
    levels = math.ceil(exact - 1e-9) if rounding == "up" else math.floor(exact + 0.5)
    return max(2, levels)


def ncsnv2_sigmas(
    dim: int,
    sigma_max: float,
    sigma_min: float,
    *,
    target: float = 0.5,
    rounding: Literal["up", "nearest"] = "up",
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """NCSNv2's geometric schedule: :func:`ncsnv2_num_levels` levels from σ₁ to σ_L.

    Args:
        dim: D >= 5, the data dimension.
        sigma_max: σ₁.
        sigma_min: σ_L.
        target: the overlap between consecutive levels, in (0, 1).
        rounding: ``"up"`` or ``"nearest"`` (see :func:`ncsnv2_num_levels`).
        dtype: result dtype (default: torch's default dtype).
        device: result device.

    Returns:
        ``[L]`` strictly decreasing levels, equal to ``geometric_sigmas(sigma_max, sigma_min, L)``.

    Raises:
        TypeError, ValueError: as :func:`ncsnv2_num_levels`.

    Example:
        >>> ncsn.ncsnv2_sigmas(3072, 50.0, 0.01).shape
        torch.Size([220])
    """
    levels = ncsnv2_num_levels(dim, sigma_max, sigma_min, target=target, rounding=rounding)
    return geometric_sigmas(sigma_max, sigma_min, levels, dtype=dtype, device=device)


# --------------------------------------------------------------------------------------------
# Technique 4: the Langevin step size
# --------------------------------------------------------------------------------------------


def _ratio(u: float, steps: int, gamma: float) -> float:
    """The variance ratio with ``u = ε/(4σ_L²)`` in (0, 1)."""
    # κ = 1 − ε/(2σ_L²) = 1 − 2u, κ² = 1 + 4u(u − 1); c = stationary variance / σ_i² = 1/(1 − u).
    log_k2 = math.log1p(4.0 * u * (u - 1.0))
    decay = math.exp(steps * log_k2)
    return decay * gamma * gamma - math.expm1(steps * log_k2) / (1.0 - u)


def langevin_variance_ratio(
    step_size: float, steps_per_level: int, sigma_min: float, gamma: float
) -> float:
    """Var(x_T)/σ_i² after T annealed Langevin steps at level σ_i (NCSNv2 Proposition 3).

    For a point mass at 0 the perturbed score at level σ_i is exact, ``s(x) = −x/σ_i²``, and one
    step ``x ← x + (ε_i/2)·s + √ε_i·z`` with ``ε_i = ε·σ_i²/σ_L²`` is
    ``x ← κ·x + √ε_i·z`` with ``κ = 1 − ε/(2σ_L²)``. Starting from the previous level's
    distribution N(0, γ²σ_i²) (γ = σ_{i-1}/σ_i), after T steps

        Var(x_T)/σ_i² = κ^{2T}·γ² + (1 − κ^{2T})/(1 − ε/(4σ_L²)).

    This is NCSNv2's expression
    ``(1 − ε'/σ_L²)^{2T}(γ² − 2ε'/(σ_L² − σ_L²(1 − ε'/σ_L²)²)) + 2ε'/(σ_L² − σ_L²(1 − ε'/σ_L²)²)``
    with its step size ``ε' = ε/2``. It does not depend on i. For γ > 1 it is a convex
    combination of γ² > 1 and 1/(1 − ε/(4σ_L²)) > 1, so it is always above 1 and tends to 1
    only as T → ∞.

    Args:
        step_size: ε in this library's convention, ``0 < ε < 4σ_L²`` (beyond, |κ| >= 1 and the
            recursion does not converge).
        steps_per_level: T >= 1.
        sigma_min: σ_L.
        gamma: γ = σ_{i-1}/σ_i > 0 (the ratio of a geometric schedule).

    Returns:
        The variance ratio (1 is ideal) as a Python float.

    Raises:
        TypeError: on arguments of the wrong type.
        ValueError: if a value is not positive and finite, or ``step_size >= 4·sigma_min²``.

    Example:
        >>> gamma = (50 / 0.01) ** (1 / 231)                 # NCSNv2's CIFAR-10 schedule
        >>> round(ncsn.ncsnv2.langevin_variance_ratio(1.24e-5, 5, 0.01, gamma), 4)
        1.0555

    References:
        Song & Ermon (2020), Proposition 3 and Technique 4.
    """
    step_size = positive_float(step_size, "step_size")
    steps = positive_int(steps_per_level, "steps_per_level")
    sigma_min = positive_float(sigma_min, "sigma_min")
    gamma = positive_float(gamma, "gamma")
    u = step_size / (4.0 * sigma_min * sigma_min)
    if not u < 1.0:
        raise ValueError(
            f"step_size must be below 4·sigma_min² = {4.0 * sigma_min * sigma_min!r} for the "
            f"Langevin recursion to converge; got step_size={step_size!r}"
        )
    return _ratio(u, steps, gamma)


def ncsnv2_step_size(
    sigmas: Tensor | Sequence[float], steps_per_level: int, *, grid_size: int = 2048
) -> float:
    """The step size ε that brings :func:`langevin_variance_ratio` closest to 1 (Technique 4).

    Minimises ``max_i |ratio(ε; γ_i) − 1|`` over the level ratios ``γ_i = σ_{i-1}/σ_i`` of
    ``sigmas`` (all equal for a geometric schedule) on ``0 < ε < 4σ_L²``: a log-spaced grid of
    ``grid_size`` points over twelve decades, refined by golden-section search in log ε around
    the best grid point. The ratio is above 1 for every ε (see :func:`langevin_variance_ratio`),
    so this is the ε with the smallest ratio; choose T (``steps_per_level``) as large as the
    sampling budget allows, since the achievable ratio falls toward 1 as T grows.

    A schedule known only by (σ_L, γ) can be passed as ``[sigma_min * gamma, sigma_min]``.

    Args:
        sigmas: ``[L]`` levels, L >= 2, strictly decreasing.
        steps_per_level: T >= 1.
        grid_size: points of the initial grid (>= 16).

    Returns:
        ε in this library's convention (``x ← x + (ε_i/2)·s + √ε_i·z``, ``ε_i = ε·σ_i²/σ_L²``);
        NCSNv2's (and the official code's) step size is ε/2.

    Raises:
        TypeError: on arguments of the wrong type.
        ValueError: if ``sigmas`` is not a valid schedule with at least 2 levels, or
            ``steps_per_level``/``grid_size`` is out of range.

    Example:
        >>> sigmas = ncsn.geometric_sigmas(50.0, 0.01, 232)   # NCSNv2's CIFAR-10 schedule
        >>> f"{ncsn.ncsnv2_step_size(sigmas, 5):.3g}"         # NCSNv2 publishes 6.2e-6 = ε/2
        '1.24e-05'

    References:
        Song & Ermon (2020), Technique 4.
    """
    sigmas = as_sigmas(sigmas)
    if sigmas.numel() < 2:
        raise ValueError(f"sigmas must hold at least 2 levels; got {sigmas.tolist()}")
    steps = positive_int(steps_per_level, "steps_per_level")
    grid_size = positive_int(grid_size, "grid_size")
    if grid_size < 16:
        raise ValueError(f"grid_size must be >= 16; got grid_size={grid_size}")
    values = sigmas.detach().to("cpu", torch.float64)
    sigma_min = float(values[-1])
    ratios = values[:-1] / values[1:]
    # The variance ratio increases with γ, so the worst level is the one with the extreme γ.
    gammas = [float(ratios.min()), float(ratios.max())]

    def objective(log_u: float) -> float:
        u = math.exp(log_u)
        return max(abs(_ratio(u, steps, g) - 1.0) for g in gammas)

    # u = ε/(4σ_L²) ∈ (0, 1); the grid stops just short of 1 where the ratio diverges.
    lo_end, hi_end = math.log(1e-12), math.log1p(-1e-9)
    grid = [lo_end + (hi_end - lo_end) * k / (grid_size - 1) for k in range(grid_size)]
    scores = [objective(v) for v in grid]
    best = min(range(grid_size), key=scores.__getitem__)
    a, b = grid[max(best - 1, 0)], grid[min(best + 1, grid_size - 1)]
    inv_phi = (math.sqrt(5.0) - 1.0) / 2.0
    c, d = b - inv_phi * (b - a), a + inv_phi * (b - a)
    fc, fd = objective(c), objective(d)
    for _ in range(100):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - inv_phi * (b - a)
            fc = objective(c)
        else:
            a, c, fc = c, d, fd
            d = a + inv_phi * (b - a)
            fd = objective(d)
    candidates = [(scores[best], grid[best]), (fc, c), (fd, d)]
    log_u = min(candidates)[1]
    return 4.0 * sigma_min * sigma_min * math.exp(log_u)
