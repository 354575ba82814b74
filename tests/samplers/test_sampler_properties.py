"""Property tests of every sampler and kernel of :mod:`ncsn.samplers`, over random batch and event
shapes, dtypes, σ grids and settings: the output has the input's shape, dtype and device, is finite
and leaves the input unchanged; the same generator seed gives the same result; bad settings raise
naming the argument."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import ncsn
from contracts import gaussian_score
from ncsn.samplers import (
    AnnealedLangevin,
    Langevin,
    langevin_step,
)
from strategies import batches, events, float_dtypes, schedules, seeds

# Properties that run a sampler: a modest number of examples keeps the suite fast.
runs = settings(max_examples=20, deadline=None)


def _x(batch: int, event: tuple[int, ...], dtype: torch.dtype, seed: int) -> torch.Tensor:
    return torch.rand((batch, *event), dtype=dtype, generator=torch.Generator().manual_seed(seed))


@runs
@given(
    batches,
    events,
    float_dtypes,
    seeds,
    schedules(),
    st.floats(1e-6, 2.0),
    st.integers(1, 4),
    st.booleans(),
)
def test_sampler_properties(
    batch: int,
    event: tuple[int, ...],
    dtype: torch.dtype,
    seed: int,
    params: tuple[float, float, int],
    relative_step: float,
    steps: int,
    denoise: bool,
) -> None:
    """Step sizes are drawn relative to the schedule: ε = r·σ_L² with r < 4 keeps every level's
    α_i = ε(σ_i/σ_L)² below the stability bound 4(1 + σ_i²) of the Gaussian score."""
    x0 = _x(batch, event, dtype, seed)
    sigmas = ncsn.geometric_sigmas(*params)
    step = relative_step * sigmas[-1].item() ** 2
    sigma = sigmas[-1].item()
    for sampler in (
        AnnealedLangevin(sigmas, step, steps, denoise=denoise),
        Langevin(sigma, relative_step, steps),
    ):
        a = sampler(gaussian_score, x0, generator=torch.Generator().manual_seed(seed))
        b = sampler(gaussian_score, x0, generator=torch.Generator().manual_seed(seed))
        assert a.shape == x0.shape and a.dtype == dtype and a.device == x0.device
        assert torch.isfinite(a).all() and torch.equal(a, b)
    one = langevin_step(
        gaussian_score, x0, sigma, relative_step, generator=torch.Generator().manual_seed(seed)
    )
    assert one.shape == x0.shape and one.dtype == dtype and torch.isfinite(one).all()


@runs
@given(batches, events, float_dtypes, seeds)
def test_inpainting_keeps_shape_and_is_reproducible(
    batch: int, event: tuple[int, ...], dtype: torch.dtype, seed: int
) -> None:
    x = _x(batch, event, dtype, seed)
    mask = torch.rand(x.shape, generator=torch.Generator().manual_seed(seed)) < 0.5
    if mask.all():
        mask.view(-1)[0] = False
    sampler = AnnealedLangevin([1.0, 0.1], 0.01, 2)
    a = ncsn.samplers.inpaint(
        sampler, gaussian_score, x, mask, generator=torch.Generator().manual_seed(seed)
    )
    b = ncsn.samplers.inpaint(
        sampler, gaussian_score, x, mask, generator=torch.Generator().manual_seed(seed)
    )
    assert a.shape == x.shape and a.dtype == dtype and torch.equal(a, b) and torch.isfinite(a).all()


@given(st.floats(-1e3, 0.0) | st.just(float("nan")) | st.just(float("inf")))
def test_invalid_step_sizes_name_the_argument(step: float) -> None:

    with pytest.raises(ValueError, match="step_size"):
        AnnealedLangevin([1.0], step, 1)
    with pytest.raises(ValueError, match="step_size"):
        Langevin(1.0, step, 1)
