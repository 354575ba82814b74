"""Bad inputs to ``ncsn.schedules``: each a typed error that names the argument and the value
(the cases of the hostile audits, issue 12), and properties over large spaces of bad σ grids."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import ncsn
from bad_inputs import SIGMAS, Call, Case, Error, X, cases, fast, raises_naming
from contracts import gaussian_score
from ncsn import metrics, nets
from strategies import bad_sigma_vectors, colliding_schedules, non_float_dtypes

# (id, call, exception type, regex the message must match: it names the argument)
CASES: list[Case] = [
    # --- schedules -------------------------------------------------------------------------
    (
        "geometric_sigmas/int64 dtype",
        lambda: ncsn.geometric_sigmas(1.0, 0.01, 10, dtype=torch.int64),
        TypeError,
        r"dtype must be a floating-point torch\.dtype; got dtype=torch\.int64",
    ),
    (
        "geometric_sigmas/dtype as a string",
        lambda: ncsn.geometric_sigmas(1.0, 0.01, 10, dtype="float32"),  # type: ignore[arg-type]
        TypeError,
        r"dtype must be a floating-point torch\.dtype; got dtype='float32'",
    ),
    (
        "geometric_sigmas/float16 underflow to 0",
        lambda: ncsn.geometric_sigmas(1.0, 1e-10, 3, dtype=torch.float16),
        ValueError,
        r"sigma_min=1e-10 .*torch\.float16.*stored as \[1\.0, .*0\.0\]",
    ),
    (
        "geometric_sigmas/float16 subnormal",
        lambda: ncsn.geometric_sigmas(1.0, 1e-7, 3, dtype=torch.float16),
        ValueError,
        r"sigma_min=1e-07 is below the smallest normal torch\.float16",
    ),
    (
        "geometric_sigmas/float16 overflow to inf",
        lambda: ncsn.geometric_sigmas(1e6, 1.0, 3, dtype=torch.float16),
        ValueError,
        r"sigma_max=1000000\.0 overflows torch\.float16 .*stored as \[inf",
    ),
    (
        "geometric_sigmas/float16 levels round to equal values",
        lambda: ncsn.geometric_sigmas(1.0, 0.9999, 10, dtype=torch.float16),
        ValueError,
        r"num_levels=10 .*sigma_max=1\.0 .*sigma_min=0\.9999 .*torch\.float16.*\[1\.0, 1\.0",
    ),
    (
        "geometric_sigmas/float32 levels round to equal values",
        lambda: ncsn.geometric_sigmas(1.0, 1.0 - 1e-9, 10, dtype=torch.float32),
        ValueError,
        r"num_levels=10 .* not distinct in torch\.float32",
    ),
    (
        "geometric_sigmas/unknown device",
        lambda: ncsn.geometric_sigmas(1.0, 0.01, 10, device="gpu0"),
        ValueError,
        r"device must name a torch device; got device='gpu0'",
    ),
    (
        "GeometricSchedule/levels round to equal values",
        lambda: ncsn.GeometricSchedule(1.0, 1.0 - 1e-9, 10),
        ValueError,
        r"num_levels=10 .* not distinct",
    ),
    (
        "Schedule.sample/int generator",
        lambda: ncsn.Schedule(SIGMAS).sample(2, generator=0),  # type: ignore[arg-type]
        TypeError,
        r"generator must be a torch\.Generator or None; got 0",
    ),
    (
        "GeometricSchedule.sample/numpy generator",
        lambda: ncsn.GeometricSchedule(1.0, 0.1, 3).sample(
            2,
            generator=np.random.default_rng(0),  # type: ignore[arg-type]
        ),
        TypeError,
        r"generator must be a torch\.Generator or None; got Generator\(PCG64\)",
    ),
]


@cases(CASES)
def test_bad_input_raises_naming_the_argument(call: Call, error: Error, match: str) -> None:
    raises_naming(call, error, match)


def test_schedule_copies_its_tensor() -> None:
    levels = torch.tensor([1.0, 0.5, 0.1])
    schedule = ncsn.Schedule(levels)
    levels[0] = 0.01  # would make the schedule increasing if it were shared
    levels.mul_(2.0)
    assert schedule.sigmas.tolist() == pytest.approx([1.0, 0.5, 0.1])
    assert schedule.sigmas.data_ptr() != levels.data_ptr()


def test_schedule_from_a_tensor_that_requires_grad_is_a_constant() -> None:
    levels = torch.tensor([1.0, 0.1], requires_grad=True)
    assert not ncsn.Schedule(levels).sigmas.requires_grad


@fast
@given(non_float_dtypes)
def test_geometric_sigmas_refuses_non_float_dtypes(dtype: torch.dtype) -> None:
    with pytest.raises(
        TypeError, match=rf"dtype must be a floating-point torch\.dtype; got dtype={dtype}"
    ):
        ncsn.geometric_sigmas(1.0, 0.01, 10, dtype=dtype)


@fast
@given(colliding_schedules())
def test_geometric_sigmas_refuses_levels_that_round_to_equal_values(
    params: tuple[float, float, int, torch.dtype],
) -> None:
    sigma_max, sigma_min, num_levels, dtype = params
    with pytest.raises(ValueError, match=rf"num_levels={num_levels} .* not distinct in {dtype}"):
        ncsn.geometric_sigmas(sigma_max, sigma_min, num_levels, dtype=dtype)


@fast
@given(
    st.floats(1.0, 100.0),
    st.floats(-40.0, math.log10(6e-5)).map(lambda e: 10.0**e),
    st.integers(2, 12),
)
def test_geometric_sigmas_refuses_float16_underflow(
    sigma_max: float, sigma_min: float, num_levels: int
) -> None:
    with pytest.raises(ValueError, match=r"sigma_min=.* below the smallest normal torch\.float16"):
        ncsn.geometric_sigmas(sigma_max, sigma_min, num_levels, dtype=torch.float16)


@fast
@given(st.floats(65520.0, 1e300), st.integers(2, 12))
def test_geometric_sigmas_refuses_float16_overflow(sigma_max: float, num_levels: int) -> None:
    with pytest.raises(ValueError, match=r"sigma_max=.* overflows torch\.float16"):
        ncsn.geometric_sigmas(sigma_max, 1.0, num_levels, dtype=torch.float16)


@fast
@given(
    st.floats(1e-3, 1e3),
    st.floats(1.001, 1e3),
    st.integers(1, 40),
    st.sampled_from([torch.float16, torch.bfloat16, torch.float32, torch.float64]),
)
def test_geometric_sigmas_returns_a_valid_schedule_or_names_the_problem(
    sigma_min: float, ratio: float, num_levels: int, dtype: torch.dtype
) -> None:
    """Any parameters in any float dtype: a valid schedule of that dtype, or a ValueError."""
    try:
        sigmas = ncsn.geometric_sigmas(sigma_min * ratio, sigma_min, num_levels, dtype=dtype)
    except ValueError as err:
        assert any(name in str(err) for name in ("sigma_max=", "sigma_min=", "num_levels="))
        return
    assert sigmas.dtype == dtype and sigmas.shape == (num_levels,)
    ncsn.Schedule(sigmas)  # 1-D, finite, positive, strictly decreasing
    assert float(sigmas.min()) >= torch.finfo(dtype).tiny


@fast
@given(bad_sigma_vectors())
def test_bad_sigma_vectors_are_refused_by_schedules_losses_and_nets(levels: list[float]) -> None:
    with pytest.raises(ValueError, match=r"sigmas must be"):
        ncsn.Schedule(levels)
    with pytest.raises(ValueError, match=r"sigmas must be"):
        nets.ScoreMLP(2, sigmas=levels)
    with pytest.raises(ValueError, match=r"sigmas must be"):
        metrics.score_error(gaussian_score, gaussian_score, X, levels)
