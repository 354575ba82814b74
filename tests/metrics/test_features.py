"""Feature statistics (ncsn.metrics.features): Fréchet distance, Inception-style score, extraction."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from ncsn.metrics import (
    Classifier,
    FeatureExtractor,
    FeatureStatistics,
    InceptionScore,
    RunningStatistics,
    extract_features,
    extract_probabilities,
    feature_statistics,
    frechet_distance,
    frechet_distance_from_statistics,
    inception_score,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- Fréchet distance


def reference_frechet(mu_a, cov_a, mu_b, cov_b) -> float:
    """tr (C_a^{1/2} C_b C_a^{1/2})^{1/2} = Σ √λ(C_a C_b), with numpy's general eigvals."""
    eig = np.linalg.eigvals(cov_a @ cov_b)
    trace_sqrt = np.sqrt(np.clip(eig.real, 0.0, None)).sum()
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt)


def random_cov(rng: np.random.Generator, dim: int, rank: int, jitter: float) -> np.ndarray:
    w = rng.normal(size=(dim, rank)) * rng.uniform(0.1, 3.0, size=rank)
    return w @ w.T + jitter * np.eye(dim)


@pytest.mark.parametrize(
    ("dim", "rank_a", "rank_b", "jitter"),
    [(5, 5, 5, 0.0), (16, 16, 16, 1e-3), (16, 4, 16, 0.0), (16, 4, 6, 0.0), (32, 31, 8, 1e-12)],
    ids=["full", "jitter", "singular-a", "both-singular", "near-singular"],
)
def test_frechet_matches_reference(dim, rank_a, rank_b, jitter):
    rng = np.random.default_rng(dim * 100 + rank_a + rank_b)
    for _ in range(5):
        cov_a = random_cov(rng, dim, rank_a, jitter)
        cov_b = random_cov(rng, dim, rank_b, jitter)
        mu_a, mu_b = rng.normal(size=dim), rng.normal(size=dim)
        expected = reference_frechet(mu_a, cov_a, mu_b, cov_b)
        got = frechet_distance_from_statistics(
            (torch.from_numpy(mu_a), torch.from_numpy(cov_a)),
            (torch.from_numpy(mu_b), torch.from_numpy(cov_b)),
        )
        scale = np.trace(cov_a) + np.trace(cov_b)
        assert got == pytest.approx(expected, abs=1e-7 * scale)


def test_frechet_closed_forms():
    # Commuting (diagonal) covariances: Σ (√a_i − √b_i)² + ‖Δμ‖².
    a = torch.tensor([1.0, 4.0, 0.0, 9.0], dtype=torch.float64)
    b = torch.tensor([4.0, 1.0, 2.0, 9.0], dtype=torch.float64)
    mu = torch.tensor([1.0, 0.0, 0.0, 2.0], dtype=torch.float64)
    got = frechet_distance_from_statistics(
        (mu, torch.diag(a)), (torch.zeros(4).double(), torch.diag(b))
    )
    expected = float(((a.sqrt() - b.sqrt()) ** 2).sum() + mu @ mu)
    assert got == pytest.approx(expected, rel=1e-12)
    same = FeatureStatistics(mu, torch.diag(a))
    assert frechet_distance_from_statistics(same, same) == pytest.approx(0.0, abs=1e-12)


def test_frechet_from_features_agrees_with_numpy_statistics():
    g = gen(0)
    fa = torch.randn(50, 8, generator=g) @ torch.randn(8, 8, generator=g)
    fb = torch.randn(30, 8, generator=g) + 0.5
    a64, b64 = fa.double().numpy(), fb.double().numpy()
    expected = reference_frechet(
        a64.mean(0), np.cov(a64, rowvar=False), b64.mean(0), np.cov(b64, rowvar=False)
    )
    assert frechet_distance(fa, fb) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(fa, fb) == pytest.approx(frechet_distance(fb, fa), rel=1e-9)
    stats = feature_statistics(fa)
    np.testing.assert_allclose(stats.cov.numpy(), np.cov(a64, rowvar=False), rtol=1e-12)


def test_frechet_with_fewer_samples_than_features_is_finite_and_nonnegative():
    g = gen(5)
    fa, fb = torch.randn(10, 64, generator=g), torch.randn(12, 64, generator=g)
    d = frechet_distance(fa, fb)
    assert math.isfinite(d) and d >= 0
    assert frechet_distance(fa, fa) == pytest.approx(0.0, abs=1e-8)


@pytest.mark.parametrize(
    ("a", "b", "error", "match"),
    [
        ("stats", (torch.zeros(2), torch.eye(2)), TypeError, "a must be a \\(mean, cov\\) pair"),
        ((torch.zeros(2), torch.eye(3)), (torch.zeros(2), torch.eye(2)), ValueError, "a must be"),
        (
            (torch.zeros(2), torch.eye(2)),
            (torch.zeros(3), torch.eye(3)),
            ValueError,
            "same feature",
        ),
        (
            (torch.zeros(2), torch.tensor([[1.0, 0.5], [0.0, 1.0]])),
            (torch.zeros(2), torch.eye(2)),
            ValueError,
            "symmetric",
        ),
        (
            (torch.zeros(2), torch.eye(2)),
            (torch.full((2,), math.nan), torch.eye(2)),
            ValueError,
            "finite",
        ),
    ],
)
def test_frechet_statistics_rejects(a, b, error, match):
    with pytest.raises(error, match=match):
        frechet_distance_from_statistics(a, b)


def test_frechet_features_rejects():
    with pytest.raises(ValueError, match="at least 2 points"):
        frechet_distance(torch.zeros(1, 3), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="2-D"):
        frechet_distance(torch.zeros(4, 3, 1), torch.zeros(5, 3, 1))


# ---------------------------------------------------------------- Inception-style score


def test_inception_score_extremes():
    uniform = torch.full((100, 10), 0.1)
    score = inception_score(uniform)
    assert isinstance(score, InceptionScore)
    assert score.mean == pytest.approx(1.0) and score.std == pytest.approx(0.0, abs=1e-12)
    one_hot = torch.eye(10).repeat(20, 1)  # each split of 20 holds every class twice
    assert inception_score(one_hot) == (pytest.approx(10.0), pytest.approx(0.0, abs=1e-9))
    # All mass on one class: confident but no diversity.
    same = torch.zeros(50, 10)
    same[:, 3] = 1
    assert inception_score(same, splits=5).mean == pytest.approx(1.0)


def test_inception_score_matches_direct_computation():
    probs = torch.softmax(torch.randn(90, 7, generator=gen(0), dtype=torch.float64), dim=1)
    p = probs.numpy()
    parts = [p[0:30], p[30:60], p[60:90]]
    values = [np.exp(np.mean(np.sum(q * (np.log(q) - np.log(q.mean(0))), axis=1))) for q in parts]
    got = inception_score(probs, splits=3)
    assert got.mean == pytest.approx(np.mean(values), rel=1e-12)
    assert got.std == pytest.approx(np.std(values), rel=1e-9)


@pytest.mark.parametrize(
    ("probs", "kwargs", "error", "match"),
    [
        (torch.full((10, 4), 0.3), {}, ValueError, "sum to 1"),
        (torch.tensor([[1.5, -0.5]] * 10), {}, ValueError, "non-negative"),
        (torch.full((4, 2), 0.5), {"splits": 5}, ValueError, "splits must be <= N=4"),
        (torch.full((4, 2), 0.5), {"splits": 0}, ValueError, "splits"),
        (torch.full((4, 2, 1), 0.5), {}, ValueError, "2-D"),
    ],
)
def test_inception_score_rejects(probs, kwargs, error, match):
    with pytest.raises(error, match=match):
        inception_score(probs, **kwargs)


# ---------------------------------------------------------------- extractor protocols


class _Linear:
    def __init__(self) -> None:
        self.weight = torch.randn(12, 5, generator=gen(0))
        self.calls = 0

    def features(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return x.reshape(x.shape[0], -1) @ self.weight

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.features(x), dim=1)


def test_extract_in_batches_equals_one_call():
    net = _Linear()
    assert isinstance(net, FeatureExtractor) and isinstance(net, Classifier)
    x = torch.randn(23, 3, 4, generator=gen(1))
    feats = extract_features(net, x, batch_size=5)
    assert net.calls == 5
    torch.testing.assert_close(feats, net.features(x))
    torch.testing.assert_close(extract_probabilities(net, x, batch_size=7), net.probabilities(x))


def test_extract_rejects():
    with pytest.raises(TypeError, match="features"):
        extract_features(object(), torch.zeros(2, 3))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="probabilities"):
        extract_probabilities(object(), torch.zeros(2, 3))  # type: ignore[arg-type]

    class Bad:
        def features(self, x: torch.Tensor) -> torch.Tensor:
            return x.sum()

    with pytest.raises(ValueError, match=r"features\(\) must return"):
        extract_features(Bad(), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="batch_size"):
        extract_features(_Linear(), torch.zeros(2, 12), batch_size=0)


# ---------------------------------------------------------------- running statistics


def two_pass(x: torch.Tensor) -> FeatureStatistics:
    """Mean, then the covariance of the centred rows, in float64."""
    x = x.double()
    mean = x.mean(0)
    centred = x - mean
    return FeatureStatistics(mean, centred.T @ centred / (x.shape[0] - 1))


def test_running_statistics_equal_a_two_pass_computation_at_a_large_offset():
    # The sums of x and xxᵀ lost the covariance at an offset of 1e8 (variances 1.64 and 0 for a
    # true 1.0); around the first chunk's mean it is kept to rounding.
    x = 1e8 + torch.randn(1000, 3, generator=gen(0), dtype=torch.float64)
    running = RunningStatistics()
    for chunk in x.split(128):
        running.update(chunk)
    expected = two_pass(x)
    got = running.statistics()
    torch.testing.assert_close(got.mean, expected.mean, rtol=1e-15, atol=0)
    torch.testing.assert_close(got.cov, expected.cov, rtol=1e-10, atol=1e-12)
    assert torch.diagonal(got.cov).min() > 0.9


def test_running_statistics_sums_added_across_processes_give_the_pooled_statistics():
    # What sharded evaluation does: each process adds its rows around one shared shift, the sums
    # are added (all_reduce), and every process loads the total; a process with no rows adds
    # zeros of the same size.
    x = 1e8 + torch.randn(700, 4, generator=gen(1), dtype=torch.float64) * 3.0
    shift = x[0].clone()
    shards = [x[:300], x[300:310], x[310:]]
    processes = [RunningStatistics(shift=shift) for _ in range(4)]
    for process, shard in zip(processes, shards, strict=False):
        for chunk in shard.split(64):
            process.update(chunk)
    total = sum(
        (p.sums if p.count else torch.zeros(25, dtype=torch.float64) for p in processes),
        torch.zeros(25, dtype=torch.float64),
    )
    assert total.shape == ((4 + 1) ** 2,)
    expected = two_pass(x)
    for process in [*processes, RunningStatistics()]:
        process.load_sums(total)
        assert process.count == 700
        got = process.statistics()
        torch.testing.assert_close(got.mean, expected.mean, rtol=1e-15, atol=0)
        torch.testing.assert_close(got.cov, expected.cov, rtol=1e-10, atol=1e-12)


def test_running_statistics_refuse_sums_around_another_shift():
    x = 1e8 + torch.randn(200, 2, generator=gen(2), dtype=torch.float64)
    a, b = RunningStatistics(), RunningStatistics()  # each shifts by its own first chunk
    a.update(x[:100])
    b.update(x[100:])
    with pytest.raises(ValueError, match=r"another shift.*same RunningStatistics\(shift=\.\.\.\)"):
        a.load_sums(a.sums + b.sums)
    a.load_sums(a.sums)  # its own sums come back unchanged
    torch.testing.assert_close(a.statistics().cov, two_pass(x[:100]).cov, rtol=1e-10, atol=0)


def test_running_statistics_of_features_without_offset_equal_feature_statistics():
    x = torch.randn(100, 8, generator=gen(3))
    running = RunningStatistics(shift=torch.zeros(8))
    for chunk in x.split(30):
        running.update(chunk)
    torch.testing.assert_close(running.statistics().cov, feature_statistics(x).cov)
    torch.testing.assert_close(running.statistics().mean, feature_statistics(x).mean)
    assert running.shift is not None and running.shift.dtype == torch.float64


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: RunningStatistics(shift=[0.0]), TypeError, "shift must be a torch.Tensor"),
        (
            lambda: RunningStatistics(shift=torch.zeros(2, 2)),
            ValueError,
            r"shift must be \[F\] with F >= 1; got shape \(2, 2\)",
        ),
        (
            lambda: RunningStatistics(shift=torch.tensor([math.nan])),
            ValueError,
            "shift must be finite",
        ),
        (
            lambda: RunningStatistics(shift=torch.zeros(3)).update(torch.zeros(2, 4)),
            ValueError,
            r"features must have 3 columns like the shift",
        ),
        (
            lambda: RunningStatistics().load_sums(torch.zeros(5)),
            ValueError,
            r"sums must be \[\(F \+ 1\)²\] with F >= 1; got shape \(5,\)",
        ),
        (
            lambda: RunningStatistics().statistics(),
            ValueError,
            "statistics need at least 2 rows of features; got 0",
        ),
        (lambda: RunningStatistics().sums, ValueError, "no features were added"),
    ],
)
def test_running_statistics_refuse(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ---------------------------------------------------------------- features of any finite scale


@pytest.mark.parametrize("scale", [2.0**508, 2.0**-500], ids=["huge", "tiny"])
def test_feature_metrics_of_features_scaled_by_a_power_of_two_scale_exactly(scale):
    # Sums of squares of features near 1e153 overflowed float64 (an infinite covariance, then an
    # error about statistics the user never passed).
    g = gen(4)
    a = torch.randn(500, 6, generator=g, dtype=torch.float64)
    b = 1.5 * torch.randn(400, 6, generator=g, dtype=torch.float64) + 0.5
    assert frechet_distance(a * scale, b * scale) == frechet_distance(a, b) * scale**2
    stats, scaled = feature_statistics(a), feature_statistics(a * scale)
    assert torch.equal(scaled.mean, stats.mean * scale)
    assert torch.equal(scaled.cov, stats.cov * scale**2)


def test_a_frechet_distance_beyond_float64_is_an_error_not_inf():
    a = torch.randn(50, 2, generator=gen(5), dtype=torch.float64) * 1e160
    with pytest.raises(ValueError, match=r"the Fréchet distance overflows float64 .*rescale"):
        frechet_distance(a, a + 1e160)
    with pytest.raises(ValueError, match="the covariance of features overflows float64"):
        feature_statistics(a)
    running = RunningStatistics()
    running.update(a)
    with pytest.raises(ValueError, match="the covariance of features overflows float64"):
        running.statistics()


# ---------------------------------------------------------------- bad inputs


class _Features:
    def features(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1)


BAD_INPUTS: list[Any] = [
    pytest.param(
        lambda: extract_features(_Features(), torch.zeros(0, 2)),
        ValueError,
        r"x must hold at least one example; got shape \(0, 2\)",
        id="extract_features/empty batch",
    ),
    pytest.param(
        lambda: inception_score(torch.zeros(0, 3), splits=1),
        ValueError,
        r"probs must hold at least one example; got shape \(0, 3\)",
        id="inception_score/no rows",
    ),
    pytest.param(
        lambda: frechet_distance_from_statistics(
            (torch.zeros(2), -torch.eye(2)), (torch.zeros(2), torch.eye(2))
        ),
        ValueError,
        r"a covariance must be positive semi-definite; got an eigenvalue -1",
        id="frechet_distance_from_statistics/negative-definite covariance",
    ),
    # Found by the third audit (each was loaded silently or raised naming no argument).
    pytest.param(
        lambda: RunningStatistics().load_sums(torch.tensor([-3.0, 0.0, 0.0, 1.0])),
        ValueError,
        r"sums must be finite with a whole, non-negative count first; got count=-3\.0",
        id="RunningStatistics.load_sums/negative count",
    ),
    pytest.param(
        lambda: RunningStatistics().load_sums([3.0, 0.0, 0.0, 1.0]),  # type: ignore[arg-type]
        TypeError,
        r"sums must be a torch\.Tensor; got list",
        id="RunningStatistics.load_sums/non-tensor",
    ),
]


@pytest.mark.parametrize(("call", "error", "match"), BAD_INPUTS)
def test_feature_metrics_refuse_bad_input_naming_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()
