"""Bad inputs to ``ncsn.losses``: each a typed error that names the argument and the value (the
cases of the hostile audits, issue 12); the rule for NaN and inf in the losses' inputs (the
module docstring of ``ncsn.losses``); empty batches."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import ncsn
from bad_inputs import (
    EMPTY_RULE,
    GMM,
    NAN,
    SIGMAS,
    BadSchedule,
    Call,
    Case,
    Error,
    X,
    cases,
    detached,
    dsm_loss,
    fast,
    meta,
    mlp,
    raises_naming,
    re_shape,
    ssm_loss,
)
from contracts import gaussian_score
from ncsn import losses
from strategies import empty_batches

# (id, call, exception type, regex the message must match: it names the argument)
CASES: list[Case] = [
    # --- losses: schedules -----------------------------------------------------------------
    (
        "DenoisingScoreMatching/list schedule",
        lambda: losses.DenoisingScoreMatching([1.0, 0.1]),  # type: ignore[arg-type]
        TypeError,
        r"schedule must be a NoiseSchedule .*; got list \[1\.0, 0\.1\].*ncsn\.Schedule",
    ),
    (
        "DenoisingScoreMatching/float schedule",
        lambda: losses.DenoisingScoreMatching(1.0),  # type: ignore[arg-type]
        TypeError,
        r"schedule must be a NoiseSchedule .*; got float 1\.0",
    ),
    (
        "DenoisingScoreMatching/tensor schedule",
        lambda: losses.DenoisingScoreMatching(SIGMAS),  # type: ignore[arg-type]
        TypeError,
        r"schedule must be a NoiseSchedule .*; got Tensor",
    ),
    (
        "SlicedScoreMatching/list schedule",
        lambda: losses.SlicedScoreMatching([1.0, 0.1]),  # type: ignore[arg-type]
        TypeError,
        r"schedule must be a NoiseSchedule",
    ),
    (
        "SlicedScoreMatching/float schedule",
        lambda: losses.SlicedScoreMatching(0.5),  # type: ignore[arg-type]
        TypeError,
        r"schedule must be a NoiseSchedule",
    ),
    (
        "SlicedScoreMatching/variance_reduction as a string",
        lambda: losses.SlicedScoreMatching(
            ncsn.Schedule(SIGMAS),
            variance_reduction="no",  # type: ignore[arg-type]
        ),
        TypeError,
        r"variance_reduction must be a bool; got variance_reduction='no'",
    ),
    (
        "DenoisingScoreMatching()/schedule draws [B, 1]",
        lambda: losses.DenoisingScoreMatching(BadSchedule(lambda b: torch.ones(b, 1)))(
            gaussian_score, X
        ),
        ValueError,
        r"schedule\.sample\(batch\) must return a \[batch\] tensor .*got \(4, 1\) for batch=4",
    ),
    (
        "SlicedScoreMatching()/schedule draws a list",
        lambda: losses.SlicedScoreMatching(BadSchedule(lambda b: [1.0] * b))(gaussian_score, X),
        ValueError,
        r"schedule\.sample\(batch\) must return a \[batch\] tensor .*got list",
    ),
    (
        "dsm/model not callable",
        lambda: losses.dsm(None, X, 1.0),  # type: ignore[arg-type]
        TypeError,
        r"model must be a callable score model; got None",
    ),
    (
        "ssm/model not callable",
        lambda: losses.ssm("net", X, 1.0),  # type: ignore[arg-type]
        TypeError,
        r"model must be a callable score model; got 'net'",
    ),
    (
        "annealed_ssm/model not callable",
        lambda: losses.annealed_ssm(0, X, 1.0),  # type: ignore[arg-type]
        TypeError,
        r"model must be a callable score model; got 0",
    ),
    (
        "DenoisingScoreMatching()/model not callable",
        lambda: dsm_loss()(None, X),  # type: ignore[arg-type]
        TypeError,
        r"model must be a callable score model; got None",
    ),
    # --- losses: empty batches -------------------------------------------------------------
    (
        "dsm/empty batch",
        lambda: losses.dsm(gaussian_score, torch.zeros(0, 2), 1.0),
        ValueError,
        EMPTY_RULE,
    ),
    (
        "ssm/empty batch",
        lambda: losses.ssm(gaussian_score, torch.zeros(0, 2), 1.0),
        ValueError,
        EMPTY_RULE,
    ),
    (
        "annealed_ssm/empty batch",
        lambda: losses.annealed_ssm(gaussian_score, torch.zeros(0, 2), 1.0),
        ValueError,
        EMPTY_RULE,
    ),
    (
        "projections_like/empty batch",
        lambda: losses.projections_like(torch.zeros(0, 2)),
        ValueError,
        EMPTY_RULE,
    ),
    (
        "DenoisingScoreMatching()/empty batch",
        lambda: dsm_loss()(gaussian_score, torch.zeros(0, 2)),
        ValueError,
        EMPTY_RULE,
    ),
    (
        "SlicedScoreMatching()/empty batch",
        lambda: ssm_loss()(gaussian_score, torch.zeros(0, 2)),
        ValueError,
        EMPTY_RULE,
    ),
    # --- losses: other arguments -----------------------------------------------------------
    (
        "dsm/sigma as a string",
        lambda: losses.dsm(gaussian_score, X, "a"),  # type: ignore[arg-type]
        TypeError,
        r"sigma must be a real number or a tensor of them; got sigma='a'",
    ),
    (
        "ssm/sigma as a string",
        lambda: losses.ssm(gaussian_score, X, "a"),  # type: ignore[arg-type]
        TypeError,
        r"sigma must be a real number or a tensor of them; got sigma='a'",
    ),
    (
        "dsm/noise as a list",
        lambda: losses.dsm(gaussian_score, X, 1.0, noise=[[0.0, 0.0]] * 4),  # type: ignore[arg-type]
        TypeError,
        r"noise must be a torch\.Tensor; got list",
    ),
    (
        "dsm/integer noise",
        lambda: losses.dsm(gaussian_score, X, 1.0, noise=torch.zeros(4, 2, dtype=torch.int64)),
        TypeError,
        r"noise must be a floating-point tensor; got dtype torch\.int64",
    ),
    (
        "annealed_ssm/noise as a list",
        lambda: losses.annealed_ssm(gaussian_score, X, 1.0, noise=[0.0]),  # type: ignore[arg-type]
        TypeError,
        r"noise must be a torch\.Tensor; got list",
    ),
    (
        "ssm/directions as a list",
        lambda: losses.ssm(gaussian_score, X, 1.0, directions=[1.0]),  # type: ignore[arg-type]
        TypeError,
        r"directions must be a torch\.Tensor; got list",
    ),
    (
        "ssm/variance_reduction as a string",
        lambda: losses.ssm(gaussian_score, X, 1.0, variance_reduction="no"),  # type: ignore[arg-type]
        TypeError,
        r"variance_reduction must be a bool; got variance_reduction='no'",
    ),
    # --- losses: values of the kernels' inputs, devices, model outputs -----------------------
    (
        "dsm/NaN x",
        lambda: losses.dsm(gaussian_score, NAN, 1.0),
        ValueError,
        r"x must be finite; got 8 NaN or infinite value\(s\) in x of shape \(4, 2\), the first x\[0, 0\]=nan",
    ),
    (
        "ssm/inf x",
        lambda: losses.ssm(gaussian_score, torch.full((4, 2), math.inf), 1.0),
        ValueError,
        r"x must be finite; .* the first x\[0, 0\]=inf",
    ),
    (
        "annealed_ssm/NaN x",
        lambda: losses.annealed_ssm(gaussian_score, NAN, 1.0),
        ValueError,
        r"x must be finite",
    ),
    (
        "dsm/NaN noise",
        lambda: losses.dsm(gaussian_score, X, 1.0, noise=NAN),
        ValueError,
        r"noise must be finite; .* noise\[0, 0\]=nan",
    ),
    (
        "ssm/NaN directions",
        lambda: losses.ssm(gaussian_score, X, 1.0, directions=NAN[None]),
        ValueError,
        r"directions must be finite; .* directions\[0, 0, 0\]=nan",
    ),
    (
        "dsm/noise on another device",
        lambda: losses.dsm(gaussian_score, X, 1.0, noise=meta()),
        ValueError,
        r"noise is on device meta but x is on device cpu",
    ),
    (
        "ssm/directions on another device",
        lambda: losses.ssm(gaussian_score, X, 1.0, directions=meta((1, 4, 2))),
        ValueError,
        r"directions is on device meta but x is on device cpu",
    ),
    (
        "dsm/sigma on another device",
        lambda: losses.dsm(gaussian_score, X, meta((4,))),
        ValueError,
        r"sigma is on device meta but x is on device cpu",
    ),
    (
        "DenoisingScoreMatching()/schedule draws on another device",
        lambda: losses.DenoisingScoreMatching(BadSchedule(lambda b: meta((b,))))(gaussian_score, X),
        ValueError,
        r"schedule\.sample\(batch\) is on device meta but x is on device cpu",
    ),
    (
        "dsm/model returns complex",
        lambda: losses.dsm(lambda x, s: x.to(torch.complex64), X, 1.0),
        TypeError,
        r"model must return a real floating-point tensor; got dtype torch\.complex64",
    ),
    (
        "dsm/model returns int64",
        lambda: losses.dsm(lambda x, s: x.long(), X, 1.0),
        TypeError,
        r"model must return a real floating-point tensor; got dtype torch\.int64",
    ),
    (
        "DenoisingScoreMatching()/model returns on another device",
        lambda: dsm_loss()(lambda x, s: x.to("meta"), X),
        ValueError,
        r"model returned a tensor on device meta but its input x is on device cpu",
    ),
    (
        "ssm/model detaches its output",
        lambda: losses.ssm(detached, X, 1.0),
        ValueError,
        r"model output does not depend differentiably on x",
    ),
    (
        "SlicedScoreMatching()/model detaches its output",
        lambda: ssm_loss()(detached, X),
        ValueError,
        r"model output does not depend differentiably on x",
    ),
    (
        "ssm/jacobian forward, a module that detaches its output",
        lambda: losses.ssm(_Detaching(), X, 0.5, jacobian="forward"),
        ValueError,
        r"model output does not depend differentiably on x",
    ),
]


@cases(CASES)
def test_bad_input_raises_naming_the_argument(call: Call, error: Error, match: str) -> None:
    raises_naming(call, error, match)


class _Detaching(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(2, 2)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return self.linear(x).detach()


_V = torch.randn(1, 4, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)


def test_forward_mode_ssm_still_takes_a_parameter_free_exact_score() -> None:
    """The detached-output check does not refuse a plain function (its output needs no grad)."""
    x = X.double()
    forward = losses.ssm(GMM.score_model(), x, 0.5, jacobian="forward", directions=_V)
    backward = losses.ssm(GMM.score_model(), x, 0.5, jacobian="backward", directions=_V)
    torch.testing.assert_close(forward, backward)


# --- the rule for NaN and inf in the losses' inputs (losses.py's module docstring) -----------


def test_configured_losses_read_no_values_so_nan_x_gives_a_nan_loss() -> None:
    for loss in (dsm_loss(), ssm_loss()):
        value = loss(mlp(sigmas=SIGMAS), NAN, generator=torch.Generator().manual_seed(0))
        assert value.ndim == 0 and torch.isnan(value)


def test_loss_kernels_read_no_values_of_a_meta_tensor() -> None:
    """Shapes only: a meta x (the stand-in for an accelerator here) gives a meta loss."""
    assert losses.dsm(gaussian_score, meta(), 1.0).device.type == "meta"
    assert dsm_loss()(gaussian_score, meta()).device.type == "meta"


@fast
@given(
    empty_batches(),
    st.sampled_from(["dsm", "ssm", "annealed_ssm", "projections_like", "DSM", "SSM"]),
)
def test_losses_refuse_empty_batches(shape: tuple[int, ...], which: str) -> None:
    x = torch.zeros(shape)
    calls: dict[str, Callable[[], object]] = {
        "dsm": lambda: losses.dsm(gaussian_score, x, 1.0),
        "ssm": lambda: losses.ssm(gaussian_score, x, 1.0),
        "annealed_ssm": lambda: losses.annealed_ssm(gaussian_score, x, 1.0),
        "projections_like": lambda: losses.projections_like(x),
        "DSM": lambda: dsm_loss()(gaussian_score, x),
        "SSM": lambda: ssm_loss()(gaussian_score, x),
    }
    with pytest.raises(
        ValueError, match=rf"x must hold at least one example; got shape {re_shape(shape)}"
    ):
        calls[which]()
