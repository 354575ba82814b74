"""Property tests of every sampler and kernel of :mod:`ncsn.samplers`, over random batch and event
shapes, dtypes, σ grids and settings: the output has the input's shape, dtype and device, is finite
and leaves the input unchanged; the same generator seed gives the same result; bad settings raise
naming the argument."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import Tensor

import ncsn
from contracts import gaussian_score
from ncsn.samplers import (
    AnnealedLangevin,
    ConsistentAnnealedSampling,
    Langevin,
    PredictorCorrector,
    ProbabilityFlowODE,
    consistent_step,
    denoise_step,
    langevin_corrector_step,
    langevin_step,
    ode_step,
    reverse_diffusion_step,
)
from strategies import bad_sigma_vectors, batches, events, float_dtypes, schedules, seeds

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
    import pytest

    with pytest.raises(ValueError, match="step_size"):
        AnnealedLangevin([1.0], step, 1)
    with pytest.raises(ValueError, match="step_size"):
        Langevin(1.0, step, 1)


# ---------------------------------------------------------------- every sampler, any shape
def _geometric(params: tuple[float, float, int]) -> Tensor:
    return ncsn.geometric_sigmas(*params, dtype=torch.float64)


def _annealed(sigmas: Tensor, draw: st.DrawFn) -> ncsn.Sampler:
    # ε = r·σ_L² with r < 4 keeps α_i below the stability bound of the Gaussian score
    step = draw(st.floats(1e-4, 2.0)) * sigmas[-1].item() ** 2
    return AnnealedLangevin(sigmas, step, draw(st.integers(1, 3)), denoise=draw(st.booleans()))


def _langevin(sigmas: Tensor, draw: st.DrawFn) -> ncsn.Sampler:
    return Langevin(sigmas[-1].item(), draw(st.floats(1e-4, 2.0)), draw(st.integers(1, 3)))


def _consistent(sigmas: Tensor, draw: st.DrawFn) -> ncsn.Sampler:
    levels = sigmas.tolist()
    low = max((1 - b / a for a, b in itertools.pairwise(levels)), default=0.0)
    eta = draw(st.floats(min(low + 1e-6, 1.0), 1.0))
    return ConsistentAnnealedSampling(sigmas, eta, denoise=draw(st.booleans()) and eta < 1.0)


def _predictor_corrector(sigmas: Tensor, draw: st.DrawFn) -> ncsn.Sampler:
    return PredictorCorrector(
        sigmas,
        snr=draw(st.floats(0.01, 0.3)),
        corrector_steps=draw(st.integers(0, 2)),
        denoise=draw(st.booleans()),
    )


def _ode(sigmas: Tensor, draw: st.DrawFn) -> ncsn.Sampler:
    assume(len(sigmas) >= 2)
    solver = draw(st.sampled_from(["heun", "euler"]))
    return ProbabilityFlowODE(sigmas, solver=solver, denoise=draw(st.booleans()))


SAMPLERS = [_annealed, _langevin, _consistent, _predictor_corrector, _ode]


@pytest.mark.parametrize("build", SAMPLERS, ids=[b.__name__[1:] for b in SAMPLERS])
@runs
@given(batches, events, float_dtypes, seeds, schedules(), st.data())
def test_every_sampler_keeps_shape_dtype_device_and_is_reproducible(
    build: Callable[[Tensor, st.DrawFn], ncsn.Sampler],
    batch: int,
    event: tuple[int, ...],
    dtype: torch.dtype,
    seed: int,
    params: tuple[float, float, int],
    data: st.DataObject,
) -> None:
    sampler = build(_geometric(params), data.draw)
    x0 = _x(batch, event, dtype, seed)
    before = x0.clone()
    a = sampler(gaussian_score, x0, generator=torch.Generator().manual_seed(seed))
    b = sampler(gaussian_score, x0, generator=torch.Generator().manual_seed(seed))
    assert a.shape == x0.shape and a.dtype == dtype and a.device == x0.device
    assert torch.isfinite(a).all() and torch.equal(a, b) and torch.equal(x0, before)


@pytest.mark.parametrize("build", SAMPLERS, ids=[b.__name__[1:] for b in SAMPLERS])
@settings(max_examples=10, deadline=None)
@given(batches, events, schedules(), st.data())
def test_every_sampler_follows_its_input_to_another_device(
    build: Callable[[Tensor, st.DrawFn], ncsn.Sampler],
    batch: int,
    event: tuple[int, ...],
    params: tuple[float, float, int],
    data: st.DataObject,
) -> None:
    """On the meta device (shapes only, no values): the result stays there, shape and dtype kept."""
    x0 = torch.zeros((batch, *event), dtype=torch.float64, device="meta")
    out = build(_geometric(params), data.draw)(gaussian_score, x0)
    assert out.device == x0.device and out.shape == x0.shape and out.dtype == x0.dtype


# ---------------------------------------------------------------- every kernel, any shape
def _pair(params: tuple[float, float, int]) -> tuple[float, float]:
    sigma_max, sigma_min, _ = params
    return sigma_max, sigma_min


KERNELS: list[tuple[str, Callable[..., Tensor]]] = [
    ("langevin_step", lambda x, s, t, **kw: langevin_step(gaussian_score, x, s, 0.1 * t * t, **kw)),
    ("consistent_step", lambda x, s, t, **kw: consistent_step(gaussian_score, x, s, t, 1.0, **kw)),
    (
        "reverse_diffusion_step",
        lambda x, s, t, **kw: reverse_diffusion_step(gaussian_score, x, s, t, **kw),
    ),
    (
        "langevin_corrector_step",
        lambda x, s, t, **kw: langevin_corrector_step(gaussian_score, x, s, 0.16, **kw),
    ),
    ("ode_step_heun", lambda x, s, t, **kw: ode_step(gaussian_score, x, s, t, out=kw.get("out"))),
    (
        "ode_step_euler",
        lambda x, s, t, **kw: ode_step(gaussian_score, x, s, t, solver="euler", out=kw.get("out")),
    ),
    ("denoise_step", lambda x, s, t, **kw: denoise_step(gaussian_score, x, s, out=kw.get("out"))),
]


@pytest.mark.parametrize("name, step", KERNELS, ids=[n for n, _ in KERNELS])
@runs
@given(batches, events, float_dtypes, seeds, schedules())
def test_every_kernel_keeps_shape_dtype_device_and_is_reproducible(
    name: str,
    step: Callable[..., Tensor],
    batch: int,
    event: tuple[int, ...],
    dtype: torch.dtype,
    seed: int,
    params: tuple[float, float, int],
) -> None:
    sigma, next_sigma = _pair(params)
    x = _x(batch, event, dtype, seed)
    before = x.clone()
    a = step(x, sigma, next_sigma, generator=torch.Generator().manual_seed(seed))
    b = step(x, sigma, next_sigma, generator=torch.Generator().manual_seed(seed))
    assert a.shape == x.shape and a.dtype == dtype and a.device == x.device
    assert torch.isfinite(a).all() and torch.equal(a, b) and torch.equal(x, before)
    out = torch.empty_like(x)  # the in-place form gives the same result
    got = step(x, sigma, next_sigma, generator=torch.Generator().manual_seed(seed), out=out)
    assert got is out and torch.equal(out, a)


# ---------------------------------------------------------------- bad settings name the argument
_NOT_POSITIVE = st.floats(-1e3, 0.0) | st.sampled_from([math.nan, math.inf, -math.inf])
_NOT_REAL = st.sampled_from([True, "0.1", None, torch.tensor(0.1), [0.1]])
_NOT_COUNT = st.sampled_from([0.5, "3", None, True]) | st.integers(-5, -1)
_NOT_BOOL = st.sampled_from(["yes", 1, 0, None, 1.0])

GRID = [1.0, 0.5, 0.25]
# (sampler, the argument, a strategy of bad values, how to build the sampler with one)
BAD_SETTINGS: list[tuple[str, str, st.SearchStrategy[Any], Callable[[Any], object]]] = [
    (
        "AnnealedLangevin",
        "step_size",
        _NOT_POSITIVE | _NOT_REAL,
        lambda v: AnnealedLangevin(GRID, v, 1),
    ),
    ("AnnealedLangevin", "steps_per_level", _NOT_COUNT, lambda v: AnnealedLangevin(GRID, 0.1, v)),
    ("AnnealedLangevin", "denoise", _NOT_BOOL, lambda v: AnnealedLangevin(GRID, 0.1, 1, denoise=v)),
    ("Langevin", "sigma", st.floats(-1e3, -1e-9) | _NOT_REAL, lambda v: Langevin(v, 0.1, 1)),
    ("Langevin", "step_size", _NOT_POSITIVE | _NOT_REAL, lambda v: Langevin(0.1, v, 1)),
    ("Langevin", "num_steps", _NOT_COUNT, lambda v: Langevin(0.1, 0.1, v)),
    (
        "ConsistentAnnealedSampling",
        "eta",
        _NOT_POSITIVE | _NOT_REAL | st.floats(1.0001, 10.0) | st.floats(1e-3, 0.49),
        lambda v: ConsistentAnnealedSampling(GRID, v),
    ),
    (
        "ConsistentAnnealedSampling",
        "denoise",
        _NOT_BOOL,
        lambda v: ConsistentAnnealedSampling(GRID, 0.9, denoise=v),
    ),
    (
        "PredictorCorrector",
        "snr",
        _NOT_POSITIVE | _NOT_REAL,
        lambda v: PredictorCorrector(GRID, snr=v),
    ),
    (
        "PredictorCorrector",
        "corrector_steps",
        st.sampled_from([0.5, "3", None, True]) | st.integers(-5, -1),
        lambda v: PredictorCorrector(GRID, corrector_steps=v),
    ),
    ("PredictorCorrector", "denoise", _NOT_BOOL, lambda v: PredictorCorrector(GRID, denoise=v)),
    (
        "ProbabilityFlowODE",
        "solver",
        st.sampled_from(["rk4", "Heun", "", None, 2]),
        lambda v: ProbabilityFlowODE(GRID, solver=v),
    ),
    ("ProbabilityFlowODE", "denoise", _NOT_BOOL, lambda v: ProbabilityFlowODE(GRID, denoise=v)),
]


@pytest.mark.parametrize(
    "argument, bad, build",
    [b[1:] for b in BAD_SETTINGS],
    ids=[f"{b[0]}.{b[1]}" for b in BAD_SETTINGS],
)
@given(data=st.data())
def test_a_bad_setting_raises_naming_the_argument(
    argument: str, bad: st.SearchStrategy[Any], build: Callable[[Any], object], data: st.DataObject
) -> None:
    value = data.draw(bad)
    with pytest.raises((TypeError, ValueError), match=rf"\b{argument}\b"):
        build(value)


GRID_SAMPLERS: list[tuple[str, Callable[[Any], object]]] = [
    ("AnnealedLangevin", lambda s: AnnealedLangevin(s, 0.1, 1)),
    ("ConsistentAnnealedSampling", lambda s: ConsistentAnnealedSampling(s, 1.0)),
    ("PredictorCorrector", lambda s: PredictorCorrector(s)),
    ("ProbabilityFlowODE", lambda s: ProbabilityFlowODE(s)),
    ("log_prob", lambda s: ncsn.likelihood.log_prob(gaussian_score, torch.rand(2, 2), s)),
]


@pytest.mark.parametrize("name, build", GRID_SAMPLERS, ids=[n for n, _ in GRID_SAMPLERS])
@given(bad_sigma_vectors())
def test_a_bad_sigma_grid_raises_naming_sigmas(
    name: str, build: Callable[[Any], object], levels: list[float]
) -> None:
    with pytest.raises(ValueError, match=r"^sigmas must be"):
        build(levels)


KERNEL_SIGMAS: list[tuple[str, Callable[[float], object]]] = [
    ("langevin_step", lambda s: langevin_step(gaussian_score, torch.rand(2, 2), s, 0.1)),
    ("consistent_step", lambda s: consistent_step(gaussian_score, torch.rand(2, 2), s, 0.0, 1.0)),
    (
        "reverse_diffusion_step",
        lambda s: reverse_diffusion_step(gaussian_score, torch.rand(2, 2), s, 0.0),
    ),
    (
        "langevin_corrector_step",
        lambda s: langevin_corrector_step(gaussian_score, torch.rand(2, 2), s, 0.16),
    ),
    ("ode_step", lambda s: ode_step(gaussian_score, torch.rand(2, 2), s, 0.5)),
    ("denoise_step", lambda s: denoise_step(gaussian_score, torch.rand(2, 2), s)),
]


@pytest.mark.parametrize("name, step", KERNEL_SIGMAS, ids=[n for n, _ in KERNEL_SIGMAS])
@given(st.floats(-1e3, -1e-9) | st.sampled_from([math.nan, math.inf, -math.inf]))
def test_a_bad_sigma_of_a_kernel_raises_naming_sigma(
    name: str, step: Callable[[float], object], sigma: float
) -> None:
    with pytest.raises(ValueError, match=r"^sigma\b"):
        step(sigma)
