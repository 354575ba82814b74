"""Distances between point sets (ncsn.metrics.distances): MMD, sliced Wasserstein, nearest
neighbours, precision and recall."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ncsn.metrics import (
    mmd_rbf,
    nearest_neighbour_distances,
    precision_recall,
    sliced_wasserstein,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- MMD


def mmd_loops(x: np.ndarray, y: np.ndarray, h: float) -> float:
    def k(a, b):
        return math.exp(-float(((a - b) ** 2).sum()) / (2 * h * h))

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


@settings(max_examples=20, deadline=None)
@given(m=st.integers(2, 12), n=st.integers(2, 12), seed=st.integers(0, 2**31))
def test_mmd_equals_double_loop(m, n, seed):
    g = gen(seed)
    x = torch.randn(m, 2, 2, generator=g, dtype=torch.float64)
    y = torch.randn(n, 2, 2, generator=g, dtype=torch.float64) + 0.5
    xn, yn = x.reshape(m, -1).numpy(), y.reshape(n, -1).numpy()
    assert mmd_rbf(x, y, bandwidth=1.3) == pytest.approx(mmd_loops(xn, yn, 1.3), abs=1e-12)
    pooled = np.concatenate([xn, yn])
    dists = [
        float(np.linalg.norm(pooled[i] - pooled[j]))
        for i in range(m + n)
        for j in range(m + n)
        if i != j
    ]
    # torch.median returns the lower of the two middle values.
    median = sorted(dists)[(len(dists) - 1) // 2]
    assert mmd_rbf(x, y) == pytest.approx(mmd_loops(xn, yn, median), abs=1e-9)


def test_mmd_is_unbiased_under_the_null():
    # E[MMD²ᵤ] = 0 when both samples come from one distribution; the biased V-statistic would
    # sit about (1/m + 1/n)(1 − E k) ≈ 0.05 above zero here.
    g = gen(1)
    values = torch.tensor(
        [
            mmd_rbf(torch.randn(20, 1, generator=g), torch.randn(20, 1, generator=g), bandwidth=1.0)
            for _ in range(300)
        ]
    )
    se = float(values.std()) / math.sqrt(values.numel())
    assert abs(float(values.mean())) < 4 * se
    assert 4 * se < 0.02


def test_mmd_separates_shifted_distributions():
    g = gen(2)
    a = torch.randn(400, 2, generator=g)
    b = torch.randn(400, 2, generator=g)
    assert mmd_rbf(a, b + 1.0) > 10 * abs(mmd_rbf(a, b))


@pytest.mark.parametrize(
    ("x", "y", "kwargs", "error", "match"),
    [
        (torch.zeros(1, 2), torch.randn(3, 2), {}, ValueError, "x must hold at least 2"),
        (torch.randn(3, 2), torch.randn(3, 3), {}, ValueError, "same event shape"),
        (torch.randn(3, 2), torch.randn(3, 2), {"bandwidth": 0.0}, ValueError, "bandwidth"),
        (torch.ones(4, 2), torch.ones(4, 2), {}, ValueError, "pass bandwidth explicitly"),
        (torch.randn(3, 2), torch.full((3, 2), math.inf), {}, ValueError, "y must be finite"),
    ],
)
def test_mmd_rejects(x, y, kwargs, error, match):
    with pytest.raises(error, match=match):
        mmd_rbf(x, y, **kwargs)


# ---------------------------------------------------------------- sliced Wasserstein


def wasserstein_1d(a: np.ndarray, b: np.ndarray, p: float) -> float:
    """Replicate both samples to a common size (lcm), then match sorted values."""
    m, n = len(a), len(b)
    size = m * n // math.gcd(m, n)
    ra = np.sort(np.repeat(a, size // m))
    rb = np.sort(np.repeat(b, size // n))
    return float(np.mean(np.abs(ra - rb) ** p) ** (1 / p))


@settings(max_examples=25, deadline=None)
@given(
    m=st.integers(1, 15),
    n=st.integers(1, 15),
    p=st.sampled_from([1.0, 2.0, 3.0]),
    seed=st.integers(0, 2**31),
)
def test_sliced_wasserstein_in_one_dimension_is_exact(m, n, p, seed):
    g = gen(seed)
    x = torch.randn(m, 1, generator=g, dtype=torch.float64)
    y = torch.randn(n, 1, generator=g, dtype=torch.float64) * 2 + 1
    expected = wasserstein_1d(x[:, 0].numpy(), y[:, 0].numpy(), p)
    got = sliced_wasserstein(x, y, num_projections=3, p=p, generator=g)
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_sliced_wasserstein_of_a_translation():
    x = torch.randn(300, 2, generator=gen(0), dtype=torch.float64)
    shift = torch.tensor([3.0, 4.0], dtype=torch.float64)
    assert sliced_wasserstein(x, x, generator=gen(1)) == pytest.approx(0.0, abs=1e-12)
    # Each projection moves by |θ·v|; E(θ·v)² = ‖v‖²/D for θ uniform on the sphere.
    got = sliced_wasserstein(x, x + shift, num_projections=20_000, generator=gen(1))
    assert got == pytest.approx(5.0 / math.sqrt(2.0), rel=0.02)


def test_sliced_wasserstein_is_reproducible():
    x, y = torch.randn(50, 3, 2, generator=gen(0)), torch.randn(70, 3, 2, generator=gen(1))
    a = sliced_wasserstein(x, y, num_projections=16, generator=gen(7))
    b = sliced_wasserstein(x, y, num_projections=16, generator=gen(7))
    assert a == b
    assert a != sliced_wasserstein(x, y, num_projections=16, generator=gen(8))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"p": 0.5}, ValueError, "p must be >= 1"),
        ({"num_projections": 0}, ValueError, "num_projections"),
        ({"generator": "seed"}, TypeError, "generator"),
    ],
)
def test_sliced_wasserstein_rejects(kwargs, error, match):
    with pytest.raises(error, match=match):
        sliced_wasserstein(torch.randn(4, 2), torch.randn(4, 2), **kwargs)


def test_sliced_wasserstein_rejects_mismatched_events():
    with pytest.raises(ValueError, match="same event shape"):
        sliced_wasserstein(torch.randn(4, 2), torch.randn(4, 3))


# ---------------------------------------------------------------- nearest neighbours


def test_nearest_neighbours_match_brute_force_and_copies_are_zero():
    g = gen(0)
    train = torch.rand(200, 1, 8, 8, generator=g)
    samples = torch.cat([torch.rand(30, 1, 8, 8, generator=g), train[[5, 17, 199]]])
    result = nearest_neighbour_distances(samples, train, chunk_size=7)
    brute = torch.cdist(samples.reshape(33, -1).double(), train.reshape(200, -1).double())
    torch.testing.assert_close(result.distances, brute.min(dim=1).values)
    torch.testing.assert_close(result.indices, brute.argmin(dim=1))
    assert result.distances[-3:].tolist() == [0.0, 0.0, 0.0]
    assert result.indices[-3:].tolist() == [5, 17, 199]


def test_nearest_neighbours_rejects():
    with pytest.raises(ValueError, match="same event shape"):
        nearest_neighbour_distances(torch.zeros(2, 64), torch.zeros(3, 1, 8, 8))
    with pytest.raises(ValueError, match="chunk_size"):
        nearest_neighbour_distances(torch.zeros(2, 3), torch.zeros(3, 3), chunk_size=0)
    with pytest.raises(ValueError, match="train must hold at least 1"):
        nearest_neighbour_distances(torch.zeros(2, 3), torch.zeros(0, 3))


# ---------------------------------------------------------------- precision and recall


def precision_recall_loops(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float]:
    """Kynkäänniemi et al.'s definition, one pair of points at a time (squared distances)."""

    def radii(points: np.ndarray) -> list[float]:
        out = []
        for i, p in enumerate(points):
            others = [float(((p - q) ** 2).sum()) for j, q in enumerate(points) if j != i]
            out.append(sorted(others)[k - 1])
        return out

    def coverage(queries: np.ndarray, points: np.ndarray) -> float:
        r = radii(points)
        inside = [
            any(float(((q - p) ** 2).sum()) <= r[j] for j, p in enumerate(points)) for q in queries
        ]
        return sum(inside) / len(queries)

    return coverage(fake, real), coverage(real, fake)


SQUARE = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])
# Inside the square's k=1, 2 balls (radius 2): (1, 1), (3, 0) and (0, 4) (on the boundary);
# (4, 4) lies on the boundary of the k=3 balls (radius √8); (5, 5) is outside every ball.
OFF_SQUARE = torch.tensor([[1.0, 1.0], [3.0, 0.0], [5.0, 5.0], [0.0, 4.0], [4.0, 4.0]])


@pytest.mark.parametrize(("k", "precision"), [(1, 0.6), (2, 0.6), (3, 0.8)])
def test_precision_recall_hand_computed(k, precision):
    # Recall: the five points' k-th neighbour distances² are (5, 5, 2, 10, 2) for k=1 and
    # (10, 17, 26, 16, 16) for k=2; every corner is within √2 of (1, 1), so recall is 1. For
    # k=3 too (the radii only grow).
    result = precision_recall(SQUARE, OFF_SQUARE, k=k)
    assert result == (precision, 1.0)
    assert isinstance(result.precision, float) and isinstance(result.recall, float)
    # With the corners as the samples: (1, 1)'s ball (radius² 5 for k=1) holds every corner.
    assert precision_recall(OFF_SQUARE, SQUARE, k=k) == (1.0, precision)


def test_precision_recall_hand_computed_in_one_dimension():
    real = torch.tensor([[0.0], [1.0], [2.0], [10.0]])  # k=1 radii 1, 1, 1, 8
    fake = torch.tensor([[0.0], [0.5], [6.0]])  # k=1 radii 0.5, 0.5, 5.5
    # Precision: 0 and 0.5 lie within 1 of 0; 6 lies within 8 of 10. Recall: 0 and 1 (on the
    # boundary) lie within 0.5 of 0.5; 2 and 10 lie within 5.5 of 6.
    assert precision_recall(real, fake, k=1) == (1.0, 1.0)
    far = torch.tensor([[0.0], [0.5], [30.0]])  # k=1 radii 0.5, 0.5, 29.5
    # 30 is 20 from 10 (> 8): precision 2/3. The outlier's own ball (radius 29.5) holds 2 and 10,
    # so recall stays 1: one isolated sample inflates the manifold, as the paper notes.
    assert precision_recall(real, far, k=1) == (2 / 3, 1.0)
    assert precision_recall(far, real, k=1) == (1.0, 2 / 3)


@settings(max_examples=40, deadline=None)
@given(
    m=st.integers(2, 12),
    n=st.integers(2, 12),
    dim=st.integers(1, 3),
    k=st.integers(1, 4),
    chunk_size=st.integers(1, 13),
    seed=st.integers(0, 2**31),
)
def test_precision_recall_equals_double_loop(m, n, dim, k, chunk_size, seed):
    # Small integer coordinates: distances are exact in float64 and ties (points on a boundary,
    # duplicate points) are frequent, so the inclusive boundary is exercised.
    rng = np.random.default_rng(seed)
    real = rng.integers(-3, 4, size=(m + k, dim)).astype(np.float64)
    fake = rng.integers(-2, 5, size=(n + k, dim)).astype(np.float64)
    expected = precision_recall_loops(real, fake, k)
    got = precision_recall(
        torch.from_numpy(real), torch.from_numpy(fake), k=k, chunk_size=chunk_size
    )
    assert got == expected


def test_precision_recall_of_identical_sets_is_one():
    x = torch.randn(50, 3, generator=gen(1))
    assert precision_recall(x, x) == (1.0, 1.0)
    # Every point of a set lies in its own ball (radius >= 0), duplicates included.
    dup = torch.cat([x[:10], x[:10]])
    assert precision_recall(dup, dup, k=5) == (1.0, 1.0)


def test_precision_recall_of_disjoint_far_sets_is_zero():
    x = torch.randn(40, 2, generator=gen(2))
    y = torch.randn(30, 2, generator=gen(3)) + 1e3
    assert precision_recall(x, y) == (0.0, 0.0)


def test_precision_recall_swapping_the_sets_swaps_the_numbers_and_chunks_do_not_matter():
    g = gen(4)
    real = torch.randn(200, 8, generator=g)
    fake = 1.3 * torch.randn(150, 8, generator=g) + 0.2
    p, r = precision_recall(real, fake, k=3)
    assert 0.0 < p < 1.0 and 0.0 < r < 1.0 and p != r
    assert precision_recall(fake, real, k=3) == (r, p)
    for chunk_size in (1, 7, 150, 10_000):
        assert precision_recall(real, fake, k=3, chunk_size=chunk_size) == (p, r)
    # Images and float32 give the same numbers as their flattened float64 rows.
    as_images = precision_recall(real.reshape(200, 2, 2, 2), fake.reshape(150, 2, 2, 2))
    assert as_images == (p, r)
    assert precision_recall(real.double(), fake.double()) == (p, r)


def test_precision_recall_grows_with_k():
    g = gen(5)
    real, fake = torch.randn(300, 4, generator=g), torch.randn(300, 4, generator=g) + 0.5
    results = [precision_recall(real, fake, k=k) for k in (1, 3, 10, 299)]
    # Larger k, larger balls (each radius is non-decreasing in k): both numbers can only grow.
    for small, large in itertools.pairwise(results):
        assert small.precision <= large.precision and small.recall <= large.recall
    assert results[0].precision < results[-2].precision
    assert results[-1] == (1.0, 1.0)  # k = N − 1: the farthest point's ball holds everything


def test_precision_recall_of_two_samples_from_one_gaussian():
    # By exchangeability E[precision] = E[recall] for two i.i.d. samples of equal size, but
    # neither is 1: a fresh point misses every k-NN ball with a probability that depends on the
    # dimension. Measured over 30 seeds (n = 1000, d = 2, k = 3): mean 0.979, standard
    # deviation 0.0067, so both lie above 0.979 − 4·0.0067 ≈ 0.95 and differ by less than
    # 4·√2·0.0067 ≈ 0.04. A copy shifted by 2 per coordinate loses a large part of both
    # (0.53 and 0.64 with this seed).
    g = gen(6)
    n, d = 1000, 2
    a, b = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    p, r = precision_recall(a, b)
    assert p > 0.95 and r > 0.95
    assert abs(p - r) < 0.04
    shifted = precision_recall(a, b + 2.0)
    assert shifted.precision < 0.8 and shifted.recall < 0.8


@pytest.mark.parametrize(
    ("real", "fake", "kwargs", "error", "match"),
    [
        (
            torch.zeros(3, 2),
            torch.zeros(4, 2),
            {},
            ValueError,
            r"real_features must hold at least k \+ 1 = 4 points for k=3 .*got shape \(3, 2\)",
        ),
        (
            torch.zeros(4, 2),
            torch.zeros(1, 2),
            {"k": 1},
            ValueError,
            r"fake_features must hold at least k \+ 1 = 2 points for k=1",
        ),
        (
            torch.zeros(4, 2),
            torch.zeros(4, 3),
            {},
            ValueError,
            "real_features and fake_features must have the same event shape",
        ),
        (
            torch.full((4, 2), math.nan),
            torch.zeros(4, 2),
            {},
            ValueError,
            "real_features must be finite",
        ),
        (
            torch.zeros(4, 2),
            torch.tensor([[0.0, math.inf]] * 4),
            {},
            ValueError,
            "fake_features must be finite",
        ),
        (
            torch.zeros(4, 2, dtype=torch.int64),
            torch.zeros(4, 2),
            {},
            TypeError,
            "real_features must be a floating-point tensor",
        ),
        ([[0.0]] * 4, torch.zeros(4, 1), {}, TypeError, "real_features must be a torch.Tensor"),
        (torch.zeros(4, 2), torch.zeros(4, 2), {"k": 0}, ValueError, "k must be >= 1; got k=0"),
        (
            torch.zeros(4, 2),
            torch.zeros(4, 2),
            {"k": 2.0},
            TypeError,
            "k must be an int; got k=2.0",
        ),
        (
            torch.zeros(4, 2),
            torch.zeros(4, 2),
            {"chunk_size": 0},
            ValueError,
            "chunk_size must be >= 1; got chunk_size=0",
        ),
        (torch.zeros(4, 2), torch.zeros(4, 2), {"batch_size": 8}, TypeError, "batch_size"),
    ],
)
def test_precision_recall_rejects(real, fake, kwargs, error, match):
    with pytest.raises(error, match=match):
        precision_recall(real, fake, **kwargs)


# ---------------------------------------------------------------- data of any finite scale


@pytest.mark.parametrize("scale", [2.0**600, 2.0**-600], ids=["huge", "tiny"])
def test_distances_of_data_scaled_by_a_power_of_two_scale_exactly(scale):
    # Squares of data near 1e180 overflowed float64 (inf − inf = NaN distances), those near
    # 1e-180 underflowed to 0; every distance is now computed on data divided by a power of two.
    g = gen(0)
    x = torch.randn(40, 3, generator=g, dtype=torch.float64)
    y = torch.randn(30, 3, generator=g, dtype=torch.float64) + 0.5
    xs, ys = x * scale, y * scale
    assert mmd_rbf(xs, ys) == mmd_rbf(x, y)
    assert mmd_rbf(xs, ys, bandwidth=0.7 * scale) == mmd_rbf(x, y, bandwidth=0.7)
    assert (
        sliced_wasserstein(xs, ys, generator=gen(1))
        == sliced_wasserstein(x, y, generator=gen(1)) * scale
    )
    near, near_scaled = nearest_neighbour_distances(y, x), nearest_neighbour_distances(ys, xs)
    assert torch.equal(near_scaled.indices, near.indices)
    assert torch.equal(near_scaled.distances, near.distances * scale)
    assert precision_recall(xs, ys, k=2) == precision_recall(x, y, k=2)


def test_distances_of_data_near_the_float64_limit_are_finite():
    x = torch.tensor([[1e300, -1e300], [0.0, 0.0], [-1e300, 1e300]], dtype=torch.float64)
    near = nearest_neighbour_distances(x[:1], x[1:])
    assert near.distances.tolist() == [pytest.approx(math.sqrt(2.0) * 1e300, rel=1e-15)]
    assert math.isfinite(sliced_wasserstein(x, x * 0.5, generator=gen(0)))
    assert math.isfinite(mmd_rbf(x, x * 0.5))


# ---------------------------------------------------------------- devices


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a second device")
def test_two_sample_metrics_take_y_to_x_device() -> None:
    x, y = torch.randn(16, 2), torch.randn(16, 2).cuda()
    assert mmd_rbf(x, y) == pytest.approx(mmd_rbf(x, y.cpu()))
    g = torch.Generator().manual_seed(0)
    sw = sliced_wasserstein(x, y, generator=g)
    assert sw == pytest.approx(sliced_wasserstein(x, y.cpu(), generator=g.manual_seed(0)))
