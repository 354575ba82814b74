"""Comparisons of two point sets by distances: MMD, sliced Wasserstein, nearest neighbours, and
precision and recall of k-nearest-neighbour manifolds (Kynkäänniemi et al., 2019).

It also holds the helpers every distance in ``ncsn`` shares (the metrics here and
:mod:`ncsn.ncsnv2`'s σ₁): :func:`flatten64` (``[N, *event]`` → finite float64 rows) and
:func:`sq_dists` (squared Euclidean distances between rows).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from ncsn._checks import check_batch, check_generator, has_values, positive_float, positive_int

__all__ = [
    "NearestNeighbours",
    "PrecisionRecall",
    "mmd_rbf",
    "nearest_neighbour_distances",
    "precision_recall",
    "sliced_wasserstein",
]


def flatten64(x: Tensor, name: str = "x", *, min_rows: int = 1) -> Tensor:
    """``[N, *event]`` → ``[N, D]`` float64 rows (detached), refusing too few rows and non-finite values.

    Raises:
        TypeError: if ``x`` is not a floating tensor.
        ValueError: if ``x`` has fewer than ``min_rows`` rows, is on the meta device or is not
            finite.
    """
    check_batch(x, name)
    if x.shape[0] < min_rows:
        raise ValueError(f"{name} must hold at least {min_rows} points; got shape {tuple(x.shape)}")
    if not has_values(x):
        raise ValueError(f"{name} must hold values; got a tensor on the meta device")
    flat = x.detach().reshape(x.shape[0], -1).to(torch.float64)
    if not bool(torch.isfinite(flat).all()):
        raise ValueError(f"{name} must be finite; it holds NaN or infinite values")
    return flat


def same_event(x: Tensor, y: Tensor, names: tuple[str, str] = ("x", "y")) -> None:
    """Refuse two point sets whose events (every dim but the first) differ."""
    if x.shape[1:] != y.shape[1:]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same event shape; got "
            f"{tuple(x.shape)} and {tuple(y.shape)}"
        )


def unit_scale(*flats: Tensor) -> float:
    """A power of two ``s`` with every ``|value| / s < 2`` (1.0 when every value is 0).

    Distances of data scaled by ``s`` never overflow or underflow float64 when squared (data of
    scale 1e200 would give inf − inf = NaN), and dividing by a power of two is exact, so a
    distance computed on ``x / s`` and multiplied back by ``s`` is the one computed on ``x``
    wherever that did not overflow.
    """
    largest = max((float(f.abs().max()) for f in flats if f.numel()), default=0.0)
    if largest == 0.0:
        return 1.0
    return math.ldexp(1.0, math.frexp(largest)[1] - 1)


def sq_dists(a: Tensor, b: Tensor) -> Tensor:
    """Squared Euclidean distances ``[n, m]`` between the rows of ``a [n, D]`` and ``b [m, D]``.

    The ‖a‖² + ‖b‖² − 2a·b expansion (one matrix product), clamped at 0 against rounding.
    """
    d2 = a.pow(2).sum(1, keepdim=True) + b.pow(2).sum(1) - 2.0 * (a @ b.T)
    return d2.clamp_min_(0.0)


def mmd_rbf(x: Tensor, y: Tensor, *, bandwidth: float | None = None) -> float:
    """Squared maximum mean discrepancy with a Gaussian (RBF) kernel, unbiased U-statistic.

    ``k(a, b) = exp(−‖a − b‖²/(2h²))`` and

        MMD²ᵤ = 1/(m(m−1)) Σ_{i≠j} k(x_i, x_j) + 1/(n(n−1)) Σ_{i≠j} k(y_i, y_j) − 2/(mn) Σ_{i,j} k(x_i, y_j).

    The U-statistic is unbiased, so it can be slightly negative when the two distributions are
    equal. Memory is O((m + n)²); subsample large sets.

    Args:
        x: ``[m, *event]`` samples, m >= 2.
        y: ``[n, *event]`` samples, n >= 2, same event shape.
        bandwidth: h > 0. Default: the median heuristic, the median Euclidean distance between
            distinct points of the pooled sample (Gretton et al., 2012).

    Returns:
        MMD²ᵤ as a Python float.

    Raises:
        TypeError: on non-floating inputs.
        ValueError: on fewer than 2 points per set, mismatched event shapes, non-finite values,
            a non-positive ``bandwidth``, or a median distance of 0 (pass ``bandwidth``).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> a, b = torch.randn(500, 2, generator=g), torch.randn(500, 2, generator=g) + 1.0
        >>> ncsn.metrics.mmd_rbf(a, b) > 0.1
        True

    References:
        Gretton et al. (2012), "A Kernel Two-Sample Test", JMLR 13, Lemma 6.
    """
    xf = flatten64(x, "x", min_rows=2)
    yf = flatten64(y, "y", min_rows=2).to(xf.device)  # on x's device, as every two-set metric
    same_event(x, y)
    m, n = xf.shape[0], yf.shape[0]
    scale = unit_scale(xf, yf)
    pooled = torch.cat([xf, yf]) / scale
    d2 = sq_dists(pooled, pooled)
    if bandwidth is None:
        off = ~torch.eye(m + n, dtype=torch.bool, device=d2.device)
        h2 = float(d2[off].median())
        if h2 <= 0.0:
            raise ValueError(
                "the median pairwise distance is 0 (more than half the pairs coincide); "
                "pass bandwidth explicitly"
            )
    else:
        h2 = (positive_float(bandwidth, "bandwidth") / scale) ** 2
    k = torch.exp(-d2 / (2.0 * h2))
    kxx, kyy, kxy = k[:m, :m], k[m:, m:], k[:m, m:]
    # The diagonal of k is exactly 1 (d2 of a row with itself is clamped to >= 0, and is 0 up to
    # rounding); subtract the trace rather than assuming it.
    xx = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    yy = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    return float(xx + yy - 2.0 * kxy.mean())


def sliced_wasserstein(
    x: Tensor,
    y: Tensor,
    *,
    num_projections: int = 128,
    p: float = 2.0,
    generator: torch.Generator | None = None,
) -> float:
    """The sliced p-Wasserstein distance between two empirical distributions.

    ``SW_p = (E_θ W_p^p(θᵀx, θᵀy))^{1/p}`` with θ uniform on the unit sphere, estimated with
    ``num_projections`` random directions. Each 1-D distance is exact between the two empirical
    distributions (of any sizes m and n), from their quantile functions on the merged grid of
    breakpoints ``{i/m} ∪ {j/n}``.

    Args:
        x: ``[m, *event]`` samples.
        y: ``[n, *event]`` samples, same event shape.
        num_projections: the number of random directions.
        p: the order, p >= 1.
        generator: draws the directions (on ``x``'s device).

    Returns:
        SW_p as a Python float (same units as the data).

    Raises:
        TypeError: on non-floating inputs or a wrongly typed argument.
        ValueError: on empty sets, mismatched event shapes, non-finite values, ``p < 1`` or
            ``num_projections < 1``.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> a = torch.randn(1000, 2, generator=g)
        >>> # Each projection moves by 3·(θ₁ + θ₂), whose mean square is 9: SW₂ ≈ 3.
        >>> round(ncsn.metrics.sliced_wasserstein(a, a + 3.0, generator=g), 1)
        3.1

    References:
        Bonneel et al. (2015), "Sliced and Radon Wasserstein Barycenters of Measures".
    """
    xf = flatten64(x, "x")
    yf = flatten64(y, "y").to(xf.device)  # the directions are drawn on x's device
    same_event(x, y)
    num_projections = positive_int(num_projections, "num_projections")
    p = positive_float(p, "p")
    if p < 1.0:
        raise ValueError(f"p must be >= 1; got p={p!r}")
    check_generator(generator, x)
    theta = torch.randn(
        (xf.shape[1], num_projections), generator=generator, dtype=x.dtype, device=x.device
    ).to(torch.float64)
    theta = theta / theta.norm(dim=0, keepdim=True)
    scale = unit_scale(xf, yf)
    px = (xf / scale @ theta).sort(dim=0).values  # [m, P]
    py = (yf / scale @ theta).sort(dim=0).values  # [n, P]
    m, n = px.shape[0], py.shape[0]
    # The merged breakpoints of both quantile functions; between consecutive ones each quantile
    # function is constant, so evaluate both at the midpoints and weight by the interval length.
    grid = torch.cat(
        [
            torch.arange(1, m + 1, dtype=torch.float64, device=xf.device) / m,
            torch.arange(1, n + 1, dtype=torch.float64, device=xf.device) / n,
        ]
    )
    grid = torch.unique(torch.cat([grid, grid.new_zeros(1)]))  # sorted
    widths = grid[1:] - grid[:-1]
    mids = 0.5 * (grid[1:] + grid[:-1])
    ix = (mids * m).floor().long().clamp_(max=m - 1)
    iy = (mids * n).floor().long().clamp_(max=n - 1)
    cost = ((px[ix] - py[iy]).abs() ** p * widths[:, None]).sum(0)  # [P]
    return float(cost.mean() ** (1.0 / p)) * scale


class NearestNeighbours(NamedTuple):
    """For each sample, the distance ``[B]`` to its nearest training point and that point's index."""

    distances: Tensor
    indices: Tensor


def nearest_neighbour_distances(
    samples: Tensor, train: Tensor, *, chunk_size: int = 1024
) -> NearestNeighbours:
    """Euclidean distance from each sample to its nearest training point (a memorisation check).

    Distances between flattened events, in float64; samples are processed ``chunk_size`` at a
    time (memory ``chunk_size × N_train``). The neighbour is found with the ‖a‖² + ‖b‖² − 2a·b
    expansion and its distance then recomputed directly, so an exact copy of a training point
    reports exactly 0. Compare the distribution with the same quantity for held-out real data:
    a model that memorises has many samples much closer to the training set than test data are.

    Args:
        samples: ``[B, *event]``.
        train: ``[N, *event]``, same event shape.
        chunk_size: samples per block.

    Returns:
        :class:`NearestNeighbours` ``(distances [B] float64, indices [B] int64)`` on
        ``samples``' device.

    Raises:
        TypeError: on non-floating inputs.
        ValueError: on empty inputs, mismatched event shapes, non-finite values or
            ``chunk_size < 1``.

    Example:
        >>> train, _ = ncsn.data.load_digits("train")
        >>> test, _ = ncsn.data.load_digits("test")
        >>> nearest = ncsn.metrics.nearest_neighbour_distances(test, train)
        >>> round(nearest.distances.median().item(), 2)
        1.15
        >>> nearest.indices.shape
        torch.Size([297])
    """
    s = flatten64(samples, "samples")
    t = flatten64(train, "train").to(s.device)
    same_event(samples, train, ("samples", "train"))
    chunk_size = positive_int(chunk_size, "chunk_size")
    scale = unit_scale(s, t)
    s, t = s / scale, t / scale
    indices = torch.cat(
        [sq_dists(s[i : i + chunk_size], t).argmin(dim=1) for i in range(0, s.shape[0], chunk_size)]
    )
    distances = (s - t[indices]).norm(dim=1) * scale
    return NearestNeighbours(distances, indices)


# Precision and recall of k-NN manifolds (Kynkäänniemi et al., 2019)


class PrecisionRecall(NamedTuple):
    """Precision (fake points on the real manifold) and recall (real points on the fake one)."""

    precision: float
    recall: float


def _check_manifold_points(x: Tensor, name: str, k: int) -> Tensor:
    check_batch(x, name)
    if x.shape[0] < k + 1:
        raise ValueError(
            f"{name} must hold at least k + 1 = {k + 1} points for k={k} (each point's k-th "
            f"nearest neighbour is another point of the set); got shape {tuple(x.shape)}"
        )
    return flatten64(x, name)


def _kth_neighbour_sq_radii(points: Tensor, k: int, chunk_size: int) -> Tensor:
    """Squared distance ``[N]`` from each row to its k-th nearest other row of ``points``."""
    radii = []
    for start in range(0, points.shape[0], chunk_size):
        d2 = sq_dists(points[start : start + chunk_size], points)
        rows = torch.arange(d2.shape[0], device=d2.device)
        d2[rows, rows + start] = math.inf  # a point is not its own neighbour
        radii.append(d2.topk(k, dim=1, largest=False).values[:, -1])
    return torch.cat(radii)


def _coverage(queries: Tensor, points: Tensor, sq_radii: Tensor, chunk_size: int) -> float:
    """The fraction of ``queries`` inside at least one ball ``B(points_j, radius_j)``."""
    inside = 0
    for start in range(0, queries.shape[0], chunk_size):
        d2 = sq_dists(queries[start : start + chunk_size], points)
        inside += int((d2 <= sq_radii).any(dim=1).sum())
    return inside / queries.shape[0]


def precision_recall(
    real_features: Tensor, fake_features: Tensor, *, k: int = 3, chunk_size: int = 512
) -> PrecisionRecall:
    """Improved precision and recall of a generative model (Kynkäänniemi et al., 2019).

    Each set's manifold is the union of balls around its points, each ball's radius the distance
    from the point to its k-th nearest neighbour among the *other* points of its set:

        Φ(S) = ∪_{s ∈ S} B(s, ‖s − NN_k(s)‖₂)
        precision = |{φ ∈ fake : φ ∈ Φ(real)}| / |fake|
        recall    = |{φ ∈ real : φ ∈ Φ(fake)}| / |real|

    (a point exactly on a ball's boundary is inside). Precision is the share of samples that look
    real; recall the share of the real distribution the samples cover. Swapping the arguments
    swaps the two numbers. Features are compared in float64 as flattened rows, ``chunk_size``
    rows at a time (memory ``chunk_size × max(N_real, N_fake)`` float64 values); the result does
    not depend on ``chunk_size``. The paper uses k = 3 and 50,000 VGG-16 or Inception features
    per set; with few points the manifolds shrink and both numbers fall.

    Args:
        real_features: ``[N_real, F]`` features of real data (or any ``[N, *event]``, flattened),
            N_real >= k + 1.
        fake_features: ``[N_fake, F]`` features of samples, same event shape, N_fake >= k + 1.
        k: which neighbour sets the radius, k >= 1.
        chunk_size: rows per block of distances.

    Returns:
        :class:`PrecisionRecall` ``(precision, recall)``, Python floats in [0, 1].

    Raises:
        TypeError: on non-floating inputs or a non-int ``k`` or ``chunk_size``.
        ValueError: on fewer than k + 1 points in a set, mismatched event shapes, non-finite
            values, or ``k`` or ``chunk_size`` < 1.

    Example:
        >>> real = torch.tensor([[0.0], [1.0], [2.0]])          # every radius is 1 with k=1
        >>> fake = torch.tensor([[0.5], [1.5], [9.0], [10.0]])  # every radius is 1 too
        >>> ncsn.metrics.precision_recall(real, fake, k=1)     # 9 and 10 are off the data
        PrecisionRecall(precision=0.5, recall=1.0)

    References:
        Kynkäänniemi et al. (2019), "Improved Precision and Recall Metric for Assessing
        Generative Models", NeurIPS, Section 2.
    """
    k = positive_int(k, "k")
    chunk_size = positive_int(chunk_size, "chunk_size")
    real = _check_manifold_points(real_features, "real_features", k)
    fake = _check_manifold_points(fake_features, "fake_features", k).to(real.device)
    same_event(real_features, fake_features, ("real_features", "fake_features"))
    scale = unit_scale(real, fake)
    real, fake = real / scale, fake / scale
    real_radii = _kth_neighbour_sq_radii(real, k, chunk_size)
    fake_radii = _kth_neighbour_sq_radii(fake, k, chunk_size)
    return PrecisionRecall(
        precision=_coverage(fake, real, real_radii, chunk_size),
        recall=_coverage(real, fake, fake_radii, chunk_size),
    )
