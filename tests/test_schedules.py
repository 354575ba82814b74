"""Noise schedules: the paper's table, validation of user tensors, sampling."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

import ncsn

PAPER_TABLE = [
    1.0,
    0.599484,
    0.359381,
    0.215443,
    0.129155,
    0.077426,
    0.046416,
    0.027826,
    0.016681,
    0.01,
]


def test_default_paper_schedule_equals_the_spec_table() -> None:
    sigmas = ncsn.geometric_sigmas(1.0, 0.01, 10)
    assert sigmas.dtype == torch.float32
    torch.testing.assert_close(sigmas, torch.tensor(PAPER_TABLE), rtol=0, atol=1e-6)
    torch.testing.assert_close(ncsn.GeometricSchedule(1.0, 0.01, 10).sigmas, sigmas)


def test_toy_schedule_equals_the_spec_values() -> None:
    expected = [20, 14.337, 10.278, 7.368, 5.282, 3.787, 2.714, 1.946, 1.395, 1.0]
    torch.testing.assert_close(
        ncsn.geometric_sigmas(20.0, 1.0, 10, dtype=torch.float64),
        torch.tensor(expected, dtype=torch.float64),
        rtol=0,
        atol=1e-3,
    )


def test_geometric_sigmas_endpoints_ratio_dtype_device() -> None:
    s = ncsn.geometric_sigmas(50.0, 0.01, 232, dtype=torch.float64, device="cpu")
    assert s[0].item() == pytest.approx(50.0, rel=1e-12) and s[-1].item() == pytest.approx(
        0.01, rel=1e-12
    )
    ratios = s[:-1] / s[1:]
    torch.testing.assert_close(ratios, ratios.mean().expand(231), rtol=1e-10, atol=0)
    assert ncsn.geometric_sigmas(2.0, 1.0, 1).tolist() == [2.0]


def test_schedule_from_user_tensor() -> None:
    schedule = ncsn.Schedule(torch.tensor([3.0, 1.0, 0.2]))
    assert schedule.num_levels == 3
    draws = schedule.sample(3000, generator=torch.Generator().manual_seed(0))
    counts = torch.stack([(draws == v).sum() for v in schedule.sigmas])
    # uniform over levels: each count ~ Binomial(3000, 1/3); 4 standard errors ≈ 103
    assert ((counts - 1000).abs() < 4 * (3000 * (1 / 3) * (2 / 3)) ** 0.5).all()
    assert ncsn.Schedule([0.01]).sample(4).tolist() == pytest.approx([0.01] * 4)


def test_weighted_schedule_draws_each_level_by_its_weight() -> None:
    weights = torch.tensor([1.0, 0.0, 2.0, 7.0])
    schedule = ncsn.Schedule(torch.tensor([3.0, 1.0, 0.2, 0.05]), weights=weights)
    n = 40_000
    draws = schedule.sample(n, generator=torch.Generator().manual_seed(0))
    counts = torch.stack([(draws == v).sum() for v in schedule.sigmas]).double()
    p = weights.double() / weights.sum()
    # each count ~ Binomial(n, p_i): within 5 standard errors; a zero weight is never drawn
    assert ((counts - n * p).abs() <= 5 * (n * p * (1 - p)).sqrt()).all()
    assert counts[1] == 0
    again = schedule.sample(n, generator=torch.Generator().manual_seed(0))
    assert torch.equal(draws, again)


def test_weighted_schedule_copies_its_weights_and_shows_them() -> None:
    weights = torch.tensor([0.0, 1.0])
    schedule = ncsn.Schedule([1.0, 0.1], weights=weights)
    weights[1] = 0.0  # changing the tensor afterwards does not change the schedule
    assert schedule.sample(3).tolist() == pytest.approx([0.1] * 3)
    assert "weights=[0.0, 1.0]" in repr(schedule)
    assert ncsn.Schedule([1.0, 0.1]).weights is None


@pytest.mark.parametrize(
    "weights, error, match",
    [
        ([1.0], ValueError, r"weights must have shape \[2\] \(one per level\); got \(1,\)"),
        (torch.ones(2, 1), ValueError, r"weights must have shape \[2\]"),
        (
            [1.0, -0.5],
            ValueError,
            r"weights must be finite and non-negative; got weights=\[1.0, -0.5\]",
        ),
        ([1.0, float("nan")], ValueError, "weights must be finite and non-negative"),
        ([1.0, float("inf")], ValueError, "weights must be finite and non-negative"),
        ([0.0, 0.0], ValueError, "weights must not all be 0"),
        ("ab", TypeError, "weights must be a 1-D tensor or sequence of numbers; got str"),
        (torch.tensor([True, False]), TypeError, "weights must be real numbers"),
    ],
)
def test_weighted_schedule_validation(weights, error, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=match):
        ncsn.Schedule([1.0, 0.1], weights=weights)


def test_lognormal_weights_discretise_a_normal_in_log_sigma() -> None:
    sigmas = ncsn.geometric_sigmas(1e4, 1e-6, 401, dtype=torch.float64)  # ±8 spreads around 0.1
    weights = ncsn.schedules.lognormal_weights(sigmas, 0.1, 1.5)
    assert weights.dtype == torch.float64 and float(weights.sum()) == pytest.approx(1.0)
    logs = sigmas.log()
    mean = float((weights * logs).sum())
    std = float((weights * (logs - mean) ** 2).sum().sqrt())
    step = float(logs[0] - logs[1])
    # the discretised normal's moments: the mean exact by symmetry, the spread within step²/12
    assert mean == pytest.approx(math.log(0.1), abs=1e-9)
    assert std == pytest.approx(1.5, rel=step**2 / 12)
    # on a geometric grid the weight of each level is the normal density at it (ends: half)
    density = torch.exp(-((logs - math.log(0.1)) ** 2) / (2 * 1.5**2))
    ratio = weights[1:-1] / density[1:-1]
    torch.testing.assert_close(ratio, ratio.mean().expand_as(ratio), rtol=1e-9, atol=0)
    # the schedule draws levels by them: the median of the drawn σ is near 0.1
    drawn = ncsn.Schedule(sigmas, weights=weights).sample(
        20_000, generator=torch.Generator().manual_seed(1)
    )
    assert drawn.log().median().item() == pytest.approx(math.log(0.1), abs=0.05)


@pytest.mark.parametrize(
    "args, error, match",
    [
        (([1.0], 0.1, 1.0), ValueError, "lognormal_weights needs two or more levels"),
        (([1.0, 0.1], 0.0, 1.0), ValueError, "median must be positive"),
        (([1.0, 0.1], 0.1, -1.0), ValueError, "spread must be positive"),
        (([1.0, 0.1], 1e300, 1e-3), ValueError, "every level lies too far from median"),
        (([0.1, 1.0], 0.1, 1.0), ValueError, "sigmas must be strictly decreasing"),
    ],
)
def test_lognormal_weights_validation(args, error, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=match):
        ncsn.schedules.lognormal_weights(*args)


def test_edm_weights_fold_karras_loss_weight_into_the_lognormal_draw() -> None:
    sigmas = ncsn.geometric_sigmas(16.88, 0.01, 96, dtype=torch.float64)
    weights = ncsn.schedules.edm_weights(sigmas, 0.31)
    assert weights.dtype == torch.float64 and float(weights.sum()) == pytest.approx(1.0)
    # the draw's ratio to the log-normal one is their loss weight against σ²: (σ² + σ_d²)/σ_d²
    ratio = weights / ncsn.schedules.lognormal_weights(sigmas, 0.15, 1.2)
    expected = (sigmas**2 + 0.31**2) / 0.31**2
    torch.testing.assert_close(ratio / ratio[0], expected / expected[0], rtol=1e-12, atol=0)
    # so the σ²-weighted DSM drawn by it has Karras et al.'s expected loss, per unit of the
    # denoiser's squared error e: Σ wᵢ·e/σᵢ² ∝ Σ lognormalᵢ·e·(σᵢ² + σ_d²)/(σᵢ·σ_d)²
    lognormal = ncsn.schedules.lognormal_weights(sigmas, 0.15, 1.2)
    ours = (weights / sigmas**2).sum()
    theirs = (lognormal * (sigmas**2 + 0.31**2) / (sigmas * 0.31) ** 2).sum()
    scale = (lognormal * expected).sum()  # the normalisation of the folded draw
    torch.testing.assert_close(ours * scale, theirs, rtol=1e-12, atol=0)
    assert float(weights[sigmas > 1].sum()) == pytest.approx(0.64, abs=0.01)
    with pytest.raises(
        ValueError, match=r"sigma_data must be positive and finite; got sigma_data=0"
    ):
        ncsn.schedules.edm_weights(sigmas, 0)
    with pytest.raises(ValueError, match="median must be positive"):
        ncsn.schedules.edm_weights(sigmas, 0.3, median=-1.0)


def test_dsm_trains_only_on_the_levels_a_weighted_schedule_draws() -> None:
    sigmas = torch.tensor([2.0, 1.0, 0.5])
    seen: list[Tensor] = []

    def model(x: Tensor, sigma: Tensor) -> Tensor:
        seen.append(sigma)
        return -x / sigma.view(-1, 1) ** 2

    loss = ncsn.losses.DenoisingScoreMatching(ncsn.Schedule(sigmas, weights=[0.0, 1.0, 0.0]))
    loss(model, torch.randn(64, 2), generator=torch.Generator().manual_seed(0))
    assert seen and bool((torch.cat(seen) == 1.0).all())


@pytest.mark.parametrize(
    "sigmas, error, match",
    [
        (torch.ones(2, 2), ValueError, r"sigmas must be 1-D; got shape \(2, 2\)"),
        (torch.tensor([]), ValueError, "at least one level"),
        (torch.tensor([1.0, float("inf")]), ValueError, r"sigmas must be finite; got \[1.0, inf\]"),
        (torch.tensor([1.0, float("nan")]), ValueError, "sigmas must be finite"),
        (torch.tensor([1.0, 0.0]), ValueError, r"sigmas must be positive; got \[1.0, 0.0\]"),
        (torch.tensor([0.1, 1.0]), ValueError, r"sigmas must be strictly decreasing; got \[0.1"),
        (torch.tensor([1.0, 1.0]), ValueError, "strictly decreasing"),
        (torch.tensor([3, 2, 1]), TypeError, "floating-point"),
        ("abc", TypeError, "sigmas must be a 1-D tensor of floats"),
    ],
)
def test_schedule_validation(sigmas, error, match: str) -> None:
    with pytest.raises(error, match=match):
        ncsn.Schedule(sigmas)


@pytest.mark.parametrize(
    "args, error, match",
    [
        (
            (0.01, 1.0, 10),
            ValueError,
            "sigma_min must be smaller than sigma_max; got sigma_min=1.0, sigma_max=0.01",
        ),
        ((1.0, 1.0, 10), ValueError, "sigma_min must be smaller than sigma_max"),
        ((1.0, 0.01, 0), ValueError, "num_levels must be >= 1; got num_levels=0"),
        ((1.0, 0.01, 2.5), TypeError, "num_levels must be an int"),
        ((-1.0, 0.01, 10), ValueError, "sigma_max must be positive and finite; got sigma_max=-1.0"),
        ((1.0, 0.0, 10), ValueError, "sigma_min must be positive and finite; got sigma_min=0.0"),
        ((float("inf"), 0.01, 10), ValueError, "sigma_max=inf"),
    ],
)
def test_geometric_validation(args, error, match: str) -> None:
    with pytest.raises(error, match=match):
        ncsn.geometric_sigmas(*args)
    with pytest.raises(error, match=match):
        ncsn.GeometricSchedule(*args)


def test_sample_errors() -> None:
    with pytest.raises(ValueError, match="batch must be >= 1; got batch=0"):
        ncsn.GeometricSchedule(1.0, 0.1, 3).sample(0)


# ---------------------------------------------------------------- SigmaGrid, the samplers' σ grid
def test_sigma_grid_is_a_checked_copy_that_compares_by_value() -> None:
    levels = torch.tensor([1.0, 0.5, 0.25], dtype=torch.float64, requires_grad=True)
    grid = ncsn.schedules.SigmaGrid(levels)
    with torch.no_grad():
        levels.mul_(2.0)  # the grid kept its own copy
    assert grid.values == (1.0, 0.5, 0.25) and grid.tolist() == [1.0, 0.5, 0.25]
    assert not grid.tensor.requires_grad and grid.tensor.dtype == torch.float64
    grid.tensor.mul_(3.0)  # a copy again: the grid cannot be changed through it
    grid[0].mul_(3.0)
    assert grid.tensor.tolist() == [1.0, 0.5, 0.25]
    same = ncsn.schedules.SigmaGrid([1.0, 0.5, 0.25])  # float32 here: equal values, equal grids
    assert grid == same and hash(grid) == hash(same) and len({grid, same}) == 1
    assert grid != ncsn.schedules.SigmaGrid([1.0, 0.5]) and grid != (1.0, 0.5, 0.25)
    assert ncsn.schedules.SigmaGrid(grid) == grid and repr(grid) == "SigmaGrid([1.0, 0.5, 0.25])"
    assert len(grid) == 3 and float(grid[-1]) == 0.25


def test_sigma_grid_pickles_and_feeds_a_schedule() -> None:
    import pickle

    grid = ncsn.schedules.SigmaGrid(ncsn.geometric_sigmas(1.0, 0.1, 4))
    assert pickle.loads(pickle.dumps(grid)) == grid
    assert torch.equal(ncsn.Schedule(grid.tensor).sigmas, grid.tensor)


@pytest.mark.parametrize(
    "sigmas, error, match",
    [
        ([1.0, 1.0], ValueError, "sigmas must be strictly decreasing"),
        ([1.0, 0.0], ValueError, r"sigmas must be positive; got \[1\.0, 0\.0\]"),
        ([], ValueError, "sigmas must hold at least one level"),
        (torch.ones(2, 2), ValueError, r"sigmas must be 1-D; got shape \(2, 2\)"),
        (torch.tensor([2, 1]), TypeError, "sigmas must be a floating-point tensor"),
        (["a"], TypeError, "sigmas must be a 1-D tensor of floats"),
        (torch.zeros(2, device="meta"), ValueError, "sigmas must hold values"),
    ],
)
def test_sigma_grid_validation(sigmas, error, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=match):
        ncsn.schedules.SigmaGrid(sigmas)
