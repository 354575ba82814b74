"""Property-based tests over random batch and event shapes, dtypes and schedules (the samplers'
in tests/samplers/test_sampler_properties.py)."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import ncsn
from contracts import gaussian_score
from ncsn.losses import annealed_ssm, dsm, ssm

batches = st.integers(1, 4)
events = st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple)
dtypes = st.sampled_from([torch.float32, torch.float64])
seeds = st.integers(0, 2**31 - 1)


@st.composite
def schedules(draw: st.DrawFn) -> tuple[float, float, int]:
    sigma_min = draw(st.floats(1e-3, 10.0))
    ratio = draw(st.floats(1.01, 1e3))
    return sigma_min * ratio, sigma_min, draw(st.integers(1, 12))


def _x(batch: int, event: tuple[int, ...], dtype: torch.dtype, seed: int) -> torch.Tensor:
    return torch.rand((batch, *event), dtype=dtype, generator=torch.Generator().manual_seed(seed))


def _levels(
    params: tuple[float, float, int], batch: int, dtype: torch.dtype, seed: int
) -> torch.Tensor:
    """σ per example drawn from the geometric schedule (σ_max, σ_min, L)."""
    schedule = ncsn.GeometricSchedule(*params)
    return schedule.sample(batch, generator=torch.Generator().manual_seed(seed)).to(dtype)


# Properties that run a loss or a sampler: a modest number of examples keeps the suite fast.
runs = settings(max_examples=20, deadline=None)


@given(schedules())
def test_geometric_schedule_properties(params: tuple[float, float, int]) -> None:
    sigma_max, sigma_min, levels = params
    s = ncsn.geometric_sigmas(sigma_max, sigma_min, levels, dtype=torch.float64)
    assert s.shape == (levels,)
    assert math.isclose(s[0].item(), sigma_max, rel_tol=1e-12)
    if levels > 1:
        assert math.isclose(s[-1].item(), sigma_min, rel_tol=1e-12)
        assert (s[1:] < s[:-1]).all()
        ratios = s[:-1] / s[1:]
        assert torch.allclose(ratios, ratios[0].expand_as(ratios), rtol=1e-9, atol=0)
    assert isinstance(ncsn.GeometricSchedule(sigma_max, sigma_min, levels), ncsn.NoiseSchedule)


@runs
@given(batches, events, dtypes, seeds, st.floats(0.0, 4.0), schedules())
def test_dsm_properties(
    batch: int,
    event: tuple[int, ...],
    dtype: torch.dtype,
    seed: int,
    power: float,
    params: tuple[float, float, int],
) -> None:
    x = _x(batch, event, dtype, seed)
    sigma = _levels(params, batch, dtype, seed)
    a = dsm(gaussian_score, x, sigma, power=power, generator=torch.Generator().manual_seed(seed))
    b = dsm(gaussian_score, x, sigma, power=power, generator=torch.Generator().manual_seed(seed))
    assert a.shape == (batch,) and a.dtype == dtype and a.device == x.device
    assert torch.isfinite(a).all() and (a >= 0).all() and torch.equal(a, b)
    z = torch.randn(x.shape, dtype=dtype, generator=torch.Generator().manual_seed(seed + 1))
    whole = dsm(gaussian_score, x, sigma, noise=z, power=power)
    parts = torch.cat(
        [
            dsm(gaussian_score, x[i : i + 1], sigma[i : i + 1], noise=z[i : i + 1], power=power)
            for i in range(batch)
        ]
    )
    torch.testing.assert_close(whole, parts)
    loss = ncsn.losses.DenoisingScoreMatching(ncsn.GeometricSchedule(*params), power=power)
    value = loss(gaussian_score, x, generator=torch.Generator().manual_seed(seed))
    assert value.ndim == 0 and value.dtype == dtype and torch.isfinite(value)


@runs
@given(
    batches,
    events,
    dtypes,
    seeds,
    st.integers(1, 3),
    st.sampled_from(["gaussian", "rademacher", "sphere"]),
    st.booleans(),
    schedules(),
)
def test_ssm_properties(
    batch: int,
    event: tuple[int, ...],
    dtype: torch.dtype,
    seed: int,
    projections: int,
    distribution: str,
    vr: bool,
    params: tuple[float, float, int],
) -> None:
    x = _x(batch, event, dtype, seed)
    sigma = _levels(params, batch, dtype, seed)
    kw = dict(projections=projections, distribution=distribution, variance_reduction=vr)
    a = annealed_ssm(gaussian_score, x, sigma, generator=torch.Generator().manual_seed(seed), **kw)  # type: ignore[arg-type]
    b = annealed_ssm(gaussian_score, x, sigma, generator=torch.Generator().manual_seed(seed), **kw)  # type: ignore[arg-type]
    assert (
        a.shape == (batch,) and a.dtype == dtype and torch.isfinite(a).all() and torch.equal(a, b)
    )
    v = torch.randn(
        (projections, *x.shape), dtype=dtype, generator=torch.Generator().manual_seed(seed + 2)
    )
    whole = ssm(
        gaussian_score, x, sigma, projections=projections, variance_reduction=vr, directions=v
    )
    parts = torch.cat(
        [
            ssm(
                gaussian_score,
                x[i : i + 1],
                sigma[i : i + 1],
                projections=projections,
                variance_reduction=vr,
                directions=v[:, i : i + 1],
            )
            for i in range(batch)
        ]
    )
    torch.testing.assert_close(whole, parts)
    loss = ncsn.losses.SlicedScoreMatching(ncsn.GeometricSchedule(*params), **kw)  # type: ignore[arg-type]
    value = loss(gaussian_score, x, generator=torch.Generator().manual_seed(seed))
    assert value.ndim == 0 and value.dtype == dtype and torch.isfinite(value)
