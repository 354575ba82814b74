"""NCSNv2 Techniques 1, 2 and 4 computed from data (ncsn.ncsnv2)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ncsn.ncsnv2 import (
    PairwiseDistanceEstimate,
    estimate_max_pairwise_distance,
    langevin_variance_ratio,
    max_pairwise_distance,
    ncsnv2_gamma,
    ncsnv2_num_levels,
    ncsnv2_overlap,
    ncsnv2_sigmas,
    ncsnv2_step_size,
)
from ncsn.schedules import geometric_sigmas


def brute_force(x: torch.Tensor) -> float:
    flat = x.reshape(x.shape[0], -1).double()
    return float(torch.cdist(flat, flat, compute_mode="donot_use_mm_for_euclid_dist").max())


# ---------------------------------------------------------------- Technique 1


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(2, 60),
    event=st.lists(st.integers(1, 4), min_size=0, max_size=3),
    chunk=st.integers(1, 70),
    seed=st.integers(0, 2**31),
    scale=st.sampled_from([1e-3, 1.0, 1e3]),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_max_pairwise_distance_equals_brute_force(n, event, chunk, seed, scale, dtype):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(n, *event, generator=g, dtype=torch.float64) * scale + 7.0 * scale).to(dtype)
    assert max_pairwise_distance(x, chunk_size=chunk) == pytest.approx(brute_force(x), rel=1e-10)


def test_max_pairwise_distance_known_value_and_duplicates():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [1.0, 1.0], [3.0, 4.0]])
    assert max_pairwise_distance(x, chunk_size=1) == pytest.approx(5.0, rel=1e-14)
    assert max_pairwise_distance(torch.ones(5, 3)) == 0.0


def test_max_pairwise_distance_images_any_chunking():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(301, 3, 4, 4, generator=g)
    expected = brute_force(x)
    for chunk in (1, 7, 100, 301, 5000):
        assert max_pairwise_distance(x, chunk_size=chunk) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize(
    ("x", "kwargs", "error", "match"),
    [
        (torch.zeros(1, 3), {}, ValueError, "at least 2 points"),
        (torch.zeros(3, 2, dtype=torch.int64), {}, TypeError, "floating-point"),
        (torch.tensor([[0.0], [math.nan]]), {}, ValueError, "finite"),
        (torch.zeros(3, 2), {"chunk_size": 0}, ValueError, "chunk_size"),
        (torch.zeros(3, 2), {"chunk_size": 2.5}, TypeError, "chunk_size"),
        ([[0.0], [1.0]], {}, TypeError, "torch.Tensor"),
    ],
)
def test_max_pairwise_distance_rejects(x, kwargs, error, match):
    with pytest.raises(error, match=match):
        max_pairwise_distance(x, **kwargs)


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(2, 80),
    dim=st.integers(1, 6),
    anchors=st.integers(1, 10),
    seed=st.integers(0, 2**31),
)
def test_estimate_brackets_the_exact_value(n, dim, anchors, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g, dtype=torch.float64) ** 3
    exact = brute_force(x)
    est = estimate_max_pairwise_distance(x, anchors, generator=g)
    assert isinstance(est, PairwiseDistanceEstimate)
    assert est.estimate <= exact * (1 + 1e-12)
    assert exact <= est.upper_bound * (1 + 1e-12)
    assert est.upper_bound <= 2 * est.estimate * (1 + 1e-12)


def test_estimate_with_every_point_as_anchor_is_exact():
    x = torch.randn(200, 5, generator=torch.Generator().manual_seed(3))
    est = estimate_max_pairwise_distance(x, 200, chunk_size=17)
    assert est.estimate == pytest.approx(brute_force(x), rel=1e-10)


def test_estimate_is_reproducible_and_usually_exact():
    x = torch.rand(2000, 64, generator=torch.Generator().manual_seed(0))
    a = estimate_max_pairwise_distance(x, 8, generator=torch.Generator().manual_seed(5))
    b = estimate_max_pairwise_distance(x, 8, generator=torch.Generator().manual_seed(5))
    assert a == b
    # The double sweep from 8 anchors finds the diameter of uniform data to within 2%.
    assert a.estimate == pytest.approx(max_pairwise_distance(x), rel=0.02)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_anchors": 0}, ValueError, "num_anchors"),
        ({"chunk_size": 0}, ValueError, "chunk_size"),
        ({"num_anchors": True}, TypeError, "num_anchors"),
    ],
)
def test_estimate_rejects(kwargs, error, match):
    with pytest.raises(error, match=match):
        estimate_max_pairwise_distance(torch.zeros(4, 2), **kwargs)


def test_estimate_rejects_single_point():
    with pytest.raises(ValueError, match="at least 2 points"):
        estimate_max_pairwise_distance(torch.zeros(1, 2))


@pytest.mark.parametrize("scale", [2.0**600, 2.0**-600, 1e300], ids=["huge", "tiny", "1e300"])
def test_sigma_max_of_data_of_any_finite_scale(scale):
    # Squares of data near 1e180 overflowed float64 and σ₁ came out NaN; the data are divided by
    # a power of two before squaring (exactly) and the distance multiplied back.
    x = torch.randn(60, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = max_pairwise_distance(x)
    estimate = estimate_max_pairwise_distance(x, 8, generator=torch.Generator().manual_seed(1))
    big = max_pairwise_distance(x * scale)
    big_estimate = estimate_max_pairwise_distance(
        x * scale, 8, generator=torch.Generator().manual_seed(1)
    )
    if math.log2(scale).is_integer():
        assert big == exact * scale
        assert big_estimate == (estimate.estimate * scale, estimate.upper_bound * scale)
    else:
        assert big == pytest.approx(exact * scale, rel=1e-12)
        assert big_estimate.estimate == pytest.approx(estimate.estimate * scale, rel=1e-12)


# ---------------------------------------------------------------- Technique 2


def test_default_target_cifar10_gives_220_levels():
    assert ncsnv2_num_levels(3072, 50.0, 0.01) == 220
    sigmas = ncsnv2_sigmas(3072, 50.0, 0.01, dtype=torch.float64)
    torch.testing.assert_close(sigmas, geometric_sigmas(50.0, 0.01, 220, dtype=torch.float64))


@pytest.mark.parametrize(
    ("dim", "sigma_max", "levels"),
    [(3072, 50.0, 232), (12288, 90.0, 500), (49152, 190.0, 1086), (196608, 348.0, 2311)],
    ids=["cifar10", "celeba64", "lsun128", "ffhq256"],
)
def test_published_ncsnv2_configurations(dim, sigma_max, levels):
    got = ncsnv2_num_levels(dim, sigma_max, 0.01, target=0.5669, rounding="nearest")
    assert got == levels


def test_overlap_matches_an_independent_normal_cdf():
    phi = torch.special.ndtr
    for dim in (5, 100, 3072, 196608):
        for gamma in (1.0, 1.001, 1.01, 1.04, 1.3, 3.0):
            a = math.sqrt(2 * dim) * (gamma - 1)
            expected = float(
                phi(torch.tensor(a + 3 * gamma, dtype=torch.float64))
                - phi(torch.tensor(a - 3 * gamma, dtype=torch.float64))
            )
            assert ncsnv2_overlap(gamma, dim) == pytest.approx(expected, rel=1e-9, abs=1e-15)


@settings(max_examples=50, deadline=None)
@given(dim=st.integers(5, 10**6), target=st.floats(0.01, 0.99))
def test_gamma_solves_the_overlap_equation(dim, target):
    gamma = ncsnv2_gamma(dim, target=target)
    assert gamma > 1.0
    assert ncsnv2_overlap(gamma, dim) == pytest.approx(target, abs=1e-9)
    # It is the largest such γ: any larger ratio overlaps less.
    assert ncsnv2_overlap(gamma * (1 + 1e-6), dim) < target


@settings(max_examples=50, deadline=None)
@given(
    dim=st.integers(5, 10**5),
    target=st.floats(0.05, 0.95),
    log_ratio=st.floats(0.1, 12.0),
)
def test_rounding_up_keeps_every_overlap_above_target(dim, target, log_ratio):
    sigma_min = 0.01
    sigma_max = sigma_min * math.exp(log_ratio)
    up = ncsnv2_num_levels(dim, sigma_max, sigma_min, target=target)
    nearest = ncsnv2_num_levels(dim, sigma_max, sigma_min, target=target, rounding="nearest")
    assert up >= 2 and nearest >= 2
    assert up - 1 <= nearest <= up
    realised = math.exp(log_ratio / (up - 1))
    assert ncsnv2_overlap(realised, dim) >= target - 1e-9
    if up > 2:  # one level fewer would break the target
        assert ncsnv2_overlap(math.exp(log_ratio / (up - 2)), dim) < target


def test_more_dimensions_need_more_levels():
    levels = [ncsnv2_num_levels(d, 50.0, 0.01) for d in (64, 784, 3072, 12288)]
    assert levels == sorted(levels) and len(set(levels)) == 4


def test_targets_between_the_start_and_the_peak_of_the_overlap_are_solved():
    # Above Φ(3) − Φ(−3) ≈ 0.9973 but below the peak of the overlap curve (≈ 0.99850 at D = 5).
    dim = 5
    gamma = ncsnv2_gamma(dim, target=0.998)
    assert ncsnv2_overlap(gamma, dim) == pytest.approx(0.998, abs=1e-9)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: ncsnv2_gamma(3072, target=0.0), ValueError, "target"),
        (lambda: ncsnv2_gamma(3072, target=1.0), ValueError, r"target must lie in \(0, 1\)"),
        (lambda: ncsnv2_gamma(3072, target=1.5), ValueError, "target"),
        (lambda: ncsnv2_gamma(3072, target=math.nan), ValueError, "target"),
        (lambda: ncsnv2_gamma(3072, target="0.5"), TypeError, "target"),
        (lambda: ncsnv2_gamma(0), ValueError, "dim"),
        (lambda: ncsnv2_gamma(4), ValueError, "dim must be >= 5"),
        (lambda: ncsnv2_gamma(3.0), TypeError, "dim"),
        (lambda: ncsnv2_gamma(5, target=0.9999), ValueError, "unattainable"),
        (lambda: ncsnv2_num_levels(3072, 0.01, 50.0), ValueError, "sigma_min must be smaller"),
        (lambda: ncsnv2_num_levels(3072, 1.0, 1.0), ValueError, "sigma_min must be smaller"),
        (lambda: ncsnv2_num_levels(3072, -1.0, 0.01), ValueError, "sigma_max"),
        (lambda: ncsnv2_num_levels(3072, 50.0, 0.0), ValueError, "sigma_min"),
        (
            lambda: ncsnv2_num_levels(3072, 50.0, 0.01, rounding="down"),
            ValueError,
            "rounding",
        ),
        (lambda: ncsnv2_overlap(0.9, 10), ValueError, "gamma must be >= 1"),
        (lambda: ncsnv2_sigmas(3072, 50.0, 0.01, target=2.0), ValueError, "target"),
    ],
)
def test_technique2_rejects(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ---------------------------------------------------------------- Technique 4

CIFAR_GAMMA = (50.0 / 0.01) ** (1.0 / 231.0)


def test_cifar10_step_size_matches_ncsnv2_in_our_convention():
    sigmas = geometric_sigmas(50.0, 0.01, 232, dtype=torch.float64)
    eps = ncsnv2_step_size(sigmas, 5)
    # NCSNv2 publishes 6.2e-6 in its x + α·s + √(2α)·z convention, i.e. ε/2.
    assert eps == pytest.approx(2 * 6.2e-6, rel=0.02)
    ratio = langevin_variance_ratio(eps, 5, 0.01, CIFAR_GAMMA)
    for factor in (0.9, 0.99, 1.01, 1.1):
        assert langevin_variance_ratio(eps * factor, 5, 0.01, CIFAR_GAMMA) > ratio


def test_step_size_from_two_levels_equals_geometric_schedule():
    full = ncsnv2_step_size(geometric_sigmas(50.0, 0.01, 232, dtype=torch.float64), 5)
    short = ncsnv2_step_size([0.01 * CIFAR_GAMMA, 0.01], 5)
    assert short == pytest.approx(full, rel=1e-6)


def ncsnv2_written_formula(eps_v2: float, steps: int, sigma_min: float, gamma: float) -> float:
    """The spec's formula, transcribed literally in NCSNv2's convention."""
    s2 = sigma_min**2
    k = 1 - eps_v2 / s2
    c = 2 * eps_v2 / (s2 - s2 * k**2)
    return k ** (2 * steps) * (gamma**2 - c) + c


@pytest.mark.parametrize("steps", [1, 5, 100])
@pytest.mark.parametrize("eps", [1e-9, 1e-6, 1.24e-5, 1e-4, 3.9e-4])
def test_ratio_equals_ncsnv2_formula_with_half_step(eps, steps):
    ours = langevin_variance_ratio(eps, steps, 0.01, CIFAR_GAMMA)
    assert ours == pytest.approx(
        ncsnv2_written_formula(eps / 2, steps, 0.01, CIFAR_GAMMA), rel=1e-9
    )


@pytest.mark.parametrize(
    ("eps", "steps", "gamma"),
    [(1e-5, 3, 1.5), (5e-5, 1, 1.5), (1.5e-4, 2, 1.2), (3e-4, 1, 2.0), (1.24e-5, 5, CIFAR_GAMMA)],
)
def test_ratio_matches_simulated_gaussian_case(eps, steps, gamma):
    """Point mass at 0: the level-σ score is exactly −x/σ². Run the recursion on many chains."""
    sigma_min, sigma_i = 0.01, 0.3  # the ratio does not depend on the level σ_i
    n = 200_000
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(n, generator=g, dtype=torch.float64) * (gamma * sigma_i)
    step = eps * sigma_i**2 / sigma_min**2
    for _ in range(steps):
        score = -x / sigma_i**2
        x = (
            x
            + step / 2 * score
            + math.sqrt(step) * torch.randn(n, generator=g, dtype=torch.float64)
        )
    simulated = float(x.var()) / sigma_i**2
    predicted = langevin_variance_ratio(eps, steps, sigma_min, gamma)
    # Sample variance of n Gaussians: standard error = variance·√(2/(n−1)).
    tolerance = 5 * predicted * math.sqrt(2 / (n - 1))
    assert abs(simulated - predicted) < tolerance
    # The test can fail: NCSNv2's formula read in our convention (ε not halved) is far off.
    if steps < 5:
        assert abs(simulated - ncsnv2_written_formula(eps, steps, sigma_min, gamma)) > tolerance


def test_ratio_matches_exact_variance_recursion_across_levels():
    # Propagate the variance exactly, v ← (1 − ε_i/(2σ_i²))²·v + ε_i, at every level of a
    # geometric schedule, starting each level from σ_{i-1}² as Proposition 3 assumes.
    sigmas = geometric_sigmas(1.0, 0.01, 12, dtype=torch.float64).tolist()
    gamma = sigmas[0] / sigmas[1]
    eps, steps = 2e-5, 4
    for prev, sigma in itertools.pairwise(sigmas):
        var = prev**2
        step = eps * sigma**2 / sigmas[-1] ** 2
        for _ in range(steps):
            var = (1 - step / (2 * sigma**2)) ** 2 * var + step
        assert var / sigma**2 == pytest.approx(
            langevin_variance_ratio(eps, steps, sigmas[-1], gamma), rel=1e-12
        )


def test_ratio_is_above_one_and_optimum_improves_with_more_steps():
    sigmas = geometric_sigmas(50.0, 0.01, 232, dtype=torch.float64)
    best = []
    for steps in (1, 5, 25, 125, 625):
        eps = ncsnv2_step_size(sigmas, steps)
        best.append(langevin_variance_ratio(eps, steps, 0.01, CIFAR_GAMMA))
    assert all(r > 1 for r in best)
    assert best == sorted(best, reverse=True)
    assert best[-1] < 1.005


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: langevin_variance_ratio(4e-4, 5, 0.01, 1.1),
            ValueError,
            "step_size must be below",
        ),
        (lambda: langevin_variance_ratio(0.0, 5, 0.01, 1.1), ValueError, "step_size"),
        (lambda: langevin_variance_ratio(1e-5, 0, 0.01, 1.1), ValueError, "steps_per_level"),
        (lambda: langevin_variance_ratio(1e-5, 5, -0.01, 1.1), ValueError, "sigma_min"),
        (lambda: langevin_variance_ratio(1e-5, 5, 0.01, "1.1"), TypeError, "gamma"),
        (lambda: ncsnv2_step_size([0.01], 5), ValueError, "at least 2 levels"),
        (lambda: ncsnv2_step_size([0.01, 0.1], 5), ValueError, "strictly decreasing"),
        (lambda: ncsnv2_step_size([1.0, 0.01], 0), ValueError, "steps_per_level"),
        (lambda: ncsnv2_step_size([1.0, 0.01], 5, grid_size=8), ValueError, "grid_size"),
    ],
)
def test_technique4_rejects(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_max_pairwise_distance_of_a_tensor_without_values_names_the_argument() -> None:
    with pytest.raises(ValueError, match=r"x must hold values; got a tensor on the meta device"):
        max_pairwise_distance(torch.zeros(4, 2, device="meta"))
