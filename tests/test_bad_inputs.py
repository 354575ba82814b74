"""Bad inputs to the public API: each is a ``TypeError``/``ValueError`` that names the argument.

Second hostile audit (issue 12) of the Python API, every public module but ``cli`` and
``metrics`` (schedules, losses, nets, samplers, likelihood, toy, data, viz, ncsnv2, training):

==========================================================  =====
cases tried (calls with bad or edge-case inputs)              679
clear typed errors already (type, argument and value named)   417
fine already (a correct result, e.g. any even image size)     123
untyped errors or tracebacks found (RuntimeError,             102
NotImplementedError, AttributeError, IndexError, or a
TypeError/ValueError whose message names no argument)
  ... fixed: a typed error naming the argument                 99
  ... fixed: now correct (meta tensors: no values read)         3
  ... left                                                      0
silent wrong results found (a value returned, no error)        37
  ... fixed                                                    37
  ... left                                                      0
stricter now (a NaN kernel input, an integer model output)      9
==========================================================  =====

The last two left by the first pass are fixed too: ``CondInstanceNorm2dPlus`` checks its labels
(one check shared with ``RefineNet.forward_levels``: on the CPU, outside compiled code, so
compiled graphs do not break and accelerators do not synchronise), and forward-mode ``ssm``
refuses a module with trainable parameters whose output has no ``grad_fn`` (forward mode alone
cannot tell a detached output from a constant one).

A third pass audited ``ncsn.metrics`` (77 calls: bad sizes, ``k``, ``splits``, ``p``,
bandwidths, chunk sizes, non-finite features, non-statistics, foreign extractors): 74 were typed
errors naming the argument or correct results already; one silent result (``load_sums`` took a
negative, fractional or non-finite count) and two errors naming no argument (``load_sums`` of a
list, ``digits_evaluator`` with a seed beyond 64 bits) are fixed; their cases, with the other
metrics cases, sit beside the metrics tests in ``tests/metrics/``.

``AUDIT_CASES`` holds one case per defect fixed (each failed before its fix). The rule for NaN and
inf chosen there is in ``ncsn.losses``' module docstring and ``docs/gotchas.md``: the loss
kernels raise a ``ValueError`` naming the argument, the configured losses and ``train_step``
read no values (a NaN loss, which the Trainer raises as ``NonFiniteLossError``).

One table of single cases (``CASES``, ``AUDIT_CASES``) and hypothesis properties where the space
of bad values is large (dtypes, σ vectors, shapes, non-generators). Empty batches follow one rule
everywhere, the samplers' one: ``ValueError("x must hold at least one example; got shape (0,
...)")``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import ncsn
from contracts import gaussian_score
from ncsn import losses, metrics, nets
from strategies import (
    bad_model_outputs,
    bad_sigma_vectors,
    colliding_schedules,
    empty_batches,
    non_float_dtypes,
    non_generators,
    other_float_dtypes,
    wrong_sigma_shapes,
)

fast = settings(max_examples=25, deadline=None)

SIGMAS = ncsn.geometric_sigmas(1.0, 0.1, 3)
X = torch.rand(4, 2)
NAN = torch.full((4, 2), float("nan"))
GMM = ncsn.toy.paper_mixture()
EMPTY_RULE = r"x must hold at least one example; got shape \(0, 2\)"


def _mlp(**kwargs: Any) -> nets.ScoreMLP:
    return nets.ScoreMLP(2, hidden=8, generator=torch.Generator().manual_seed(0), **kwargs)


def _refinenet() -> nets.RefineNet:
    return nets.RefineNet(1, 4, SIGMAS, generator=torch.Generator().manual_seed(0))


def _dsm_loss() -> losses.DenoisingScoreMatching:
    return losses.DenoisingScoreMatching(ncsn.Schedule(SIGMAS))


def _ssm_loss() -> losses.SlicedScoreMatching:
    return losses.SlicedScoreMatching(ncsn.Schedule(SIGMAS))


class _BadSchedule:
    """A schedule whose draw has the wrong shape (or is no tensor)."""

    def __init__(self, draw: Callable[[int], object]) -> None:
        self.sigmas = SIGMAS
        self.draw = draw

    def sample(self, batch: int, *, generator: torch.Generator | None = None) -> Any:
        return self.draw(batch)


# (id, call, exception type, regex the message must match: it names the argument)
CASES: list[tuple[str, Callable[[], object], type[Exception], str]] = [
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
        lambda: losses.DenoisingScoreMatching(_BadSchedule(lambda b: torch.ones(b, 1)))(
            gaussian_score, X
        ),
        ValueError,
        r"schedule\.sample\(batch\) must return a \[batch\] tensor .*got \(4, 1\) for batch=4",
    ),
    (
        "SlicedScoreMatching()/schedule draws a list",
        lambda: losses.SlicedScoreMatching(_BadSchedule(lambda b: [1.0] * b))(gaussian_score, X),
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
        lambda: _dsm_loss()(None, X),  # type: ignore[arg-type]
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
        lambda: _dsm_loss()(gaussian_score, torch.zeros(0, 2)),
        ValueError,
        EMPTY_RULE,
    ),
    (
        "SlicedScoreMatching()/empty batch",
        lambda: _ssm_loss()(gaussian_score, torch.zeros(0, 2)),
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
    # --- ScoreMLP --------------------------------------------------------------------------
    (
        "ScoreMLP/float64 x, float32 parameters",
        lambda: _mlp(sigmas=SIGMAS)(X.double(), SIGMAS[:1].expand(4)),
        TypeError,
        r"x has dtype torch\.float64 but the ScoreMLP parameters have dtype torch\.float32",
    ),
    (
        "ScoreMLP/unconditional, float16 x",
        lambda: _mlp()(X.half()),
        TypeError,
        r"x has dtype torch\.float16 but the ScoreMLP parameters have dtype torch\.float32",
    ),
    (
        "ScoreMLP/integer x",
        lambda: _mlp()(torch.zeros(4, 2, dtype=torch.int64)),
        TypeError,
        r"x must be a floating-point tensor; got dtype torch\.int64",
    ),
    (
        "ScoreMLP/x as a list",
        lambda: _mlp()([[0.0, 0.0]]),
        TypeError,
        r"x must be a torch\.Tensor; got list",
    ),
    (
        "ScoreMLP/x on another device",
        lambda: _mlp()(torch.zeros(4, 2, device="meta")),
        ValueError,
        r"x is on device meta but the ScoreMLP parameters are on device cpu",
    ),
    (
        "ScoreMLP/sigma of the wrong length",
        lambda: _mlp(sigmas=SIGMAS)(X, SIGMAS[:1].expand(3)),
        ValueError,
        r"sigma must be a scalar or have shape \[B\]=\[4\]; got sigma\.shape=\(3,\)",
    ),
    (
        "ScoreMLP/sigma [B, 1]",
        lambda: _mlp(sigmas=SIGMAS)(X, SIGMAS[:1].expand(4, 1)),
        ValueError,
        r"sigma must be a scalar or have shape \[B\]=\[4\]; got sigma\.shape=\(4, 1\)",
    ),
    (
        "ScoreMLP/sigma as a string",
        lambda: _mlp(sigmas=SIGMAS)(X, "a"),
        TypeError,
        r"sigma must be a real number or a tensor of them; got sigma='a'",
    ),
    (
        "ScoreMLP/empty batch",
        lambda: _mlp(sigmas=SIGMAS)(torch.zeros(0, 2), torch.zeros(0)),
        ValueError,
        EMPTY_RULE,
    ),
    (
        "ScoreMLP/unconditional, empty batch",
        lambda: _mlp()(torch.zeros(0, 2)),
        ValueError,
        EMPTY_RULE,
    ),
    (
        "ScoreMLP/int generator",
        lambda: nets.ScoreMLP(2, generator=0),  # type: ignore[arg-type]
        TypeError,
        r"generator must be a torch\.Generator or None; got 0",
    ),
    (
        "ScoreMLP/integer sigmas",
        lambda: nets.ScoreMLP(2, sigmas=torch.tensor([2, 1])),
        TypeError,
        r"sigmas must be a floating-point tensor; got dtype torch\.int64",
    ),
    (
        "ScoreMLP/sigmas of strings",
        lambda: nets.ScoreMLP(2, sigmas=["a"]),  # type: ignore[list-item]
        TypeError,
        r"sigmas must be a 1-D tensor of floats",
    ),
    # --- RefineNet -------------------------------------------------------------------------
    (
        "RefineNet/empty batch",
        lambda: _refinenet()(torch.zeros(0, 1, 8, 8), torch.zeros(0)),
        ValueError,
        r"x must hold at least one example; got shape \(0, 1, 8, 8\)",
    ),
    (
        "RefineNet.forward_levels/empty batch",
        lambda: _refinenet().forward_levels(
            torch.zeros(0, 1, 8, 8), torch.zeros(0, dtype=torch.int64)
        ),
        ValueError,
        r"x must hold at least one example; got shape \(0, 1, 8, 8\)",
    ),
    (
        "RefineNetBaseline/empty batch",
        lambda: nets.RefineNetBaseline(1, 2)(torch.zeros(0, 1, 8, 8)),
        ValueError,
        r"x must hold at least one example; got shape \(0, 1, 8, 8\)",
    ),
]


@pytest.mark.parametrize(
    ("call", "error", "match"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_raises_naming_the_argument(
    call: Callable[[], object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        call()


def _meta(shape: tuple[int, ...] = (4, 2)) -> torch.Tensor:
    """A tensor on another device than the CPU models (meta: shapes, no values)."""
    return torch.zeros(shape, device="meta")


def _detached(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    return (-x).detach()


AL = ncsn.samplers.AnnealedLangevin(SIGMAS, 0.01, 1)
OBS = torch.rand(4, 2)
KNOWN_LEFT = torch.tensor([1, 0])

# The second audit (see the module docstring): each case was an untyped error, a traceback or a
# silent wrong result before its fix.
AUDIT_CASES: list[tuple[str, Callable[[], object], type[Exception], str]] = [
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
        lambda: losses.dsm(gaussian_score, X, 1.0, noise=_meta()),
        ValueError,
        r"noise is on device meta but x is on device cpu",
    ),
    (
        "ssm/directions on another device",
        lambda: losses.ssm(gaussian_score, X, 1.0, directions=_meta((1, 4, 2))),
        ValueError,
        r"directions is on device meta but x is on device cpu",
    ),
    (
        "dsm/sigma on another device",
        lambda: losses.dsm(gaussian_score, X, _meta((4,))),
        ValueError,
        r"sigma is on device meta but x is on device cpu",
    ),
    (
        "DenoisingScoreMatching()/schedule draws on another device",
        lambda: losses.DenoisingScoreMatching(_BadSchedule(lambda b: _meta((b,))))(
            gaussian_score, X
        ),
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
        lambda: _dsm_loss()(lambda x, s: x.to("meta"), X),
        ValueError,
        r"model returned a tensor on device meta but its input x is on device cpu",
    ),
    (
        "ssm/model detaches its output",
        lambda: losses.ssm(_detached, X, 1.0),
        ValueError,
        r"model output does not depend differentiably on x",
    ),
    (
        "SlicedScoreMatching()/model detaches its output",
        lambda: _ssm_loss()(_detached, X),
        ValueError,
        r"model output does not depend differentiably on x",
    ),
    # --- nets ----------------------------------------------------------------------------
    (
        "RefineNet/x on another device",
        lambda: _refinenet()(_meta((2, 1, 8, 8)), SIGMAS[:1]),
        ValueError,
        r"x is on device meta but the RefineNet parameters are on device cpu",
    ),
    (
        "RefineNet.forward_levels/x on another device",
        lambda: _refinenet().forward_levels(_meta((2, 1, 8, 8)), torch.zeros(2, dtype=torch.int64)),
        ValueError,
        r"x is on device meta but the RefineNet parameters are on device cpu",
    ),
    (
        "RefineNetBaseline/x on another device",
        lambda: nets.RefineNetBaseline(1, 2)(_meta((2, 1, 8, 8))),
        ValueError,
        r"x is on device meta but the RefineNetBaseline parameters are on device cpu",
    ),
    (
        "ScaledByInverseSigma(RefineNetBaseline)/x on another device",
        lambda: nets.ScaledByInverseSigma(nets.RefineNetBaseline(1, 2))(_meta((2, 1, 8, 8)), 1.0),
        ValueError,
        r"x is on device meta but the RefineNetBaseline parameters are on device cpu",
    ),
    (
        "RefineNet/sigma on another device",
        lambda: _refinenet()(torch.rand(2, 1, 8, 8), SIGMAS[:1].expand(2).to("meta")),
        ValueError,
        r"sigma is on device meta but x is on device cpu",
    ),
    (
        "RefineNet.forward_levels/labels on another device",
        lambda: _refinenet().forward_levels(
            torch.rand(2, 1, 8, 8), torch.zeros(2, dtype=torch.int64, device="meta")
        ),
        ValueError,
        r"labels is on device meta but x is on device cpu",
    ),
    (
        "RefineNet/sigma as a string",
        lambda: _refinenet()(torch.rand(2, 1, 8, 8), "a"),
        TypeError,
        r"sigma must be a real number or a tensor of them; got sigma='a'",
    ),
    (
        "RefineNet/sigma None",
        lambda: _refinenet()(torch.rand(2, 1, 8, 8), None),
        TypeError,
        r"sigma must be a real number or a tensor of them; got sigma=None",
    ),
    (
        "RefineNet/bool sigma (silently level 0)",
        lambda: _refinenet()(torch.rand(2, 1, 8, 8), torch.ones(2, dtype=torch.bool)),
        TypeError,
        r"sigma must hold real numbers; got dtype torch\.bool",
    ),
    (
        "RefineNet/complex sigma (imaginary part dropped)",
        lambda: _refinenet()(torch.rand(2, 1, 8, 8), torch.ones(2, dtype=torch.complex64)),
        TypeError,
        r"sigma must hold real numbers; got dtype torch\.complex64",
    ),
    (
        "RefineNet/integer x",
        lambda: _refinenet()(torch.zeros(2, 1, 8, 8, dtype=torch.int64), 1.0),
        TypeError,
        r"x must be a floating-point tensor; got dtype torch\.int64",
    ),
    (
        "RefineNet/sigmas None",
        lambda: nets.RefineNet(1, 4, None),
        TypeError,  # type: ignore[arg-type]
        r"sigmas must be a 1-D tensor of floats; got None",
    ),
    (
        "CondInstanceNorm2dPlus/wrong channel count",
        lambda: nets.CondInstanceNorm2dPlus(4, 2)(torch.rand(2, 3, 4, 4), torch.tensor([0, 1])),
        ValueError,
        r"CondInstanceNorm2dPlus\(4\) expects x of shape \[B, 4, \*spatial\]; got x\.shape=\(2, 3, 4, 4\)",
    ),
    (
        "InstanceNorm2dPlus/wrong channel count",
        lambda: nets.InstanceNorm2dPlus(4)(torch.rand(2, 3, 4, 4)),
        ValueError,
        r"InstanceNorm2dPlus\(4\) expects x of shape \[B, 4, \*spatial\]",
    ),
    (
        "Preconditioned/sigma 0 (inf score)",
        lambda: nets.Preconditioned(torch.tanh, sigma_data=0.3)(X, 0.0),
        ValueError,
        r"sigma must be positive and finite; got sigma=0\.0",
    ),
    (
        "Preconditioned/sigma on another device",
        lambda: nets.Preconditioned(torch.tanh, sigma_data=0.3)(X, _meta((4,))),
        ValueError,
        r"sigma is on device meta but x is on device cpu",
    ),
    (
        "Preconditioned/empty batch",
        lambda: nets.Preconditioned(torch.tanh, sigma_data=0.3)(torch.zeros(0, 2), 1.0),
        ValueError,
        EMPTY_RULE,
    ),
    (
        "Preconditioned/sigma_data 0",
        lambda: nets.Preconditioned(torch.tanh, sigma_data=0.0),
        ValueError,
        r"sigma_data must be positive and finite; got sigma_data=0\.0",
    ),
    (
        "ScaledByInverseSigma/sigma 0 (inf score)",
        lambda: nets.ScaledByInverseSigma(torch.tanh)(X, 0.0),
        ValueError,
        r"sigma must be positive and finite; got sigma=0\.0",
    ),
    (
        "ScaledByInverseSigma/negative sigma tensor (flipped score)",
        lambda: nets.ScaledByInverseSigma(torch.tanh)(X, torch.tensor([-1.0, 1.0, 1.0, 1.0])),
        ValueError,
        r"sigma must be positive and finite; got sigma=\[-1\.0, 1\.0, 1\.0, 1\.0\]",
    ),
    (
        "ScaledByInverseSigma/sigma on another device",
        lambda: nets.ScaledByInverseSigma(torch.tanh)(X, _meta((4,))),
        ValueError,
        r"sigma is on device meta but x is on device cpu",
    ),
    (
        "ScaledByInverseSigma/empty batch",
        lambda: nets.ScaledByInverseSigma(torch.tanh)(torch.zeros(0, 2), 1.0),
        ValueError,
        EMPTY_RULE,
    ),
    (
        "DenoiserScore/sigma 0",
        lambda: nets.DenoiserScore(lambda x, s: x)(X, 0.0),
        ValueError,
        r"sigma must be positive and finite; got sigma=0\.0",
    ),
    (
        "NoisePredictorScore/NaN sigma",
        lambda: nets.NoisePredictorScore(lambda x, s: x)(X, math.nan),
        ValueError,
        r"sigma must be positive and finite; got sigma=nan",
    ),
    (
        "NoisePredictorScore/empty batch",
        lambda: nets.NoisePredictorScore(lambda x, s: x)(torch.zeros(0, 2), 1.0),
        ValueError,
        EMPTY_RULE,
    ),
    (
        "autocast/x as a list",
        lambda: nets.autocast(_mlp())([[0.0, 0.0]], 1.0),
        TypeError,  # type: ignore[arg-type]
        r"x must be a torch\.Tensor; got list",
    ),
    (
        "compiled/x as a list",
        lambda: nets.compiled(_mlp())([[0.0, 0.0]], 1.0),
        TypeError,  # type: ignore[arg-type]
        r"x must be a torch\.Tensor; got list",
    ),
    (
        "compiled/unknown option (deferred to the first call)",
        lambda: nets.compiled(_mlp(), moed="max-autotune"),
        TypeError,
        r"options must be keyword arguments of torch\.compile; got \['moed'\]",
    ),
    (
        "cuda_graphed/x as a list",
        lambda: nets.cuda_graphed(_mlp())([[0.0]], 1.0),
        TypeError,  # type: ignore[arg-type]
        r"x must be a torch\.Tensor; got list",
    ),
    # --- toy -----------------------------------------------------------------------------
    (
        "GaussianMixture/means as a string",
        lambda: ncsn.toy.GaussianMixture([1.0], "a"),
        TypeError,  # type: ignore[arg-type]
        r"means must be real numbers or a tensor of them; got 'a'",
    ),
    (
        "Gaussian/complex cov",
        lambda: ncsn.toy.Gaussian([0.0], torch.ones(1, 1, dtype=torch.complex64)),
        TypeError,
        r"cov must hold real numbers; got dtype torch\.complex64",
    ),
    (
        "GaussianMixture.score/sigma as a string",
        lambda: GMM.score(X, sigma="a"),
        TypeError,  # type: ignore[arg-type]
        r"sigma must be a real number or a tensor of them; got sigma='a'",
    ),
    (
        "GaussianMixture.log_prob/empty batch",
        lambda: GMM.log_prob(torch.zeros(0, 2)),
        ValueError,
        EMPTY_RULE,
    ),
    (
        "Gaussian.score/empty batch",
        lambda: ncsn.toy.Gaussian([0.0, 0.0], torch.eye(2)).score(torch.zeros(0, 2)),
        ValueError,
        EMPTY_RULE,
    ),
    (
        "ExactScore/not a distribution",
        lambda: ncsn.toy.ExactScore(3),
        TypeError,  # type: ignore[arg-type]
        r"distribution must be a toy distribution with an exact \.score\(x, sigma\) .*got int 3",
    ),
    # --- viz (the data cases are in tests/data/) ------------------------------------------
    (
        "image_grid/images as a list",
        lambda: ncsn.viz.image_grid([1.0]),
        TypeError,  # type: ignore[arg-type]
        r"images must be a torch\.Tensor; got list",
    ),
    (
        "image_grid/uint8 images (clamped to white)",
        lambda: ncsn.viz.image_grid(torch.full((1, 1, 4, 4), 128, dtype=torch.uint8)),
        TypeError,
        r"images must be a floating-point tensor with values in \[0, 1\]; got dtype torch\.uint8",
    ),
    (
        "image_grid/no image",
        lambda: ncsn.viz.image_grid(torch.zeros(0, 1, 4, 4)),
        ValueError,
        r"images must hold at least one example; got shape \(0, 1, 4, 4\)",
    ),
    (
        "image_grid/negative padding",
        lambda: ncsn.viz.image_grid(torch.rand(2, 1, 4, 4), padding=-1),
        ValueError,
        r"padding must be an int >= 0; got padding=-1",
    ),
    (
        "image_grid/NaN images (garbage pixels)",
        lambda: ncsn.viz.image_grid(torch.full((2, 1, 4, 4), math.nan)),
        ValueError,
        r"images must be finite; got 32 NaN or infinite values in images of shape \(2, 1, 4, 4\)",
    ),
    (
        "save_image_grid/unknown extension",
        lambda: ncsn.viz.save_image_grid(torch.rand(1, 1, 4, 4), "/tmp/ncsn-audit-grid.xyz"),
        ValueError,
        r"path must end in an image extension such as \.png; got path='/tmp/ncsn-audit-grid\.xyz'",
    ),
    (
        "save_image_grid/path is a folder",
        lambda: ncsn.viz.save_image_grid(torch.rand(1, 1, 4, 4), "/tmp"),
        IsADirectoryError,
        r"path is a folder, not an image file: '/tmp'",
    ),
    (
        "plot_toy_samples/3-D points (first two plotted)",
        lambda: ncsn.viz.plot_toy_samples([("a", torch.rand(4, 3))], "/tmp/ncsn-audit-toy.png"),
        ValueError,
        r"panel 'a' must hold 2-D points \[N, 2\]; got \(4, 3\)",
    ),
    (
        "max_pairwise_distance/x on the meta device",
        lambda: ncsn.max_pairwise_distance(_meta()),
        ValueError,
        r"x must hold values; got a tensor on the meta device",
    ),
    (
        "CondInstanceNorm2dPlus/labels beyond the levels",
        lambda: nets.CondInstanceNorm2dPlus(4, 10)(torch.rand(2, 4, 4, 4), torch.tensor([0, 10])),
        ValueError,
        r"labels must lie in \[0, 10\); got labels=\[0, 10\]",
    ),
    (
        "CondInstanceNorm2dPlus/negative labels",
        lambda: nets.CondInstanceNorm2dPlus(4, 10)(torch.rand(2, 4, 4, 4), torch.tensor([-1, 0])),
        ValueError,
        r"labels must lie in \[0, 10\); got labels=\[-1, 0\]",
    ),
    (
        "CondInstanceNorm2dPlus/float labels",
        lambda: nets.CondInstanceNorm2dPlus(4, 10)(torch.rand(2, 4, 4, 4), torch.tensor([0.0, 1])),
        TypeError,
        r"labels must be an int64 or int32 tensor",
    ),
    (
        "ssm/jacobian forward, a module that detaches its output",
        lambda: losses.ssm(_Detaching(), X, 0.5, jacobian="forward"),
        ValueError,
        r"model output does not depend differentiably on x",
    ),
]


class _Detaching(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(2, 2)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return self.linear(x).detach()


def test_forward_mode_ssm_still_takes_a_parameter_free_exact_score() -> None:
    """The detached-output check does not refuse a plain function (its output needs no grad)."""
    x = X.double()
    forward = losses.ssm(GMM.score_model(), x, 0.5, jacobian="forward", directions=_V)
    backward = losses.ssm(GMM.score_model(), x, 0.5, jacobian="backward", directions=_V)
    torch.testing.assert_close(forward, backward)


_V = torch.randn(1, 4, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)


@pytest.mark.parametrize(
    ("call", "error", "match"), [c[1:] for c in AUDIT_CASES], ids=[c[0] for c in AUDIT_CASES]
)
def test_second_audit_case_raises_naming_the_argument(
    call: Callable[[], object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        call()


# --- the rule for NaN and inf in the losses' inputs (losses.py's module docstring) -----------


def test_configured_losses_read_no_values_so_nan_x_gives_a_nan_loss() -> None:
    for loss in (_dsm_loss(), _ssm_loss()):
        value = loss(_mlp(sigmas=SIGMAS), NAN, generator=torch.Generator().manual_seed(0))
        assert value.ndim == 0 and torch.isnan(value)


def test_loss_kernels_read_no_values_of_a_meta_tensor() -> None:
    """Shapes only: a meta x (the stand-in for an accelerator here) gives a meta loss."""
    assert losses.dsm(gaussian_score, _meta(), 1.0).device.type == "meta"
    assert _dsm_loss()(gaussian_score, _meta()).device.type == "meta"


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


# --- properties over large spaces of bad values ------------------------------------------


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


@fast
@given(st.data())
def test_score_mlp_refuses_sigma_of_a_wrong_shape(data: st.DataObject) -> None:
    batch = data.draw(st.integers(1, 4))
    shape = data.draw(wrong_sigma_shapes(batch))
    net = _mlp(sigmas=SIGMAS)
    with pytest.raises(
        ValueError, match=rf"sigma must be a scalar or have shape \[B\]=\[{batch}\]"
    ):
        net(torch.rand(batch, 2), torch.full(shape, float(SIGMAS[0])))


@fast
@given(other_float_dtypes, st.booleans())
def test_score_mlp_refuses_a_dtype_other_than_its_parameters(
    dtype: torch.dtype, conditional: bool
) -> None:
    net = _mlp(sigmas=SIGMAS) if conditional else _mlp()
    x = torch.rand(3, 2).to(dtype)
    with pytest.raises(
        TypeError,
        match=rf"x has dtype {dtype} but the ScoreMLP parameters have dtype torch\.float32",
    ):
        net(x, SIGMAS[:1].expand(3))


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
        "DSM": lambda: _dsm_loss()(gaussian_score, x),
        "SSM": lambda: _ssm_loss()(gaussian_score, x),
    }
    with pytest.raises(
        ValueError, match=rf"x must hold at least one example; got shape {re_shape(shape)}"
    ):
        calls[which]()


def re_shape(shape: tuple[int, ...]) -> str:
    """A regex for ``str(shape)``."""
    return str(shape).replace("(", r"\(").replace(")", r"\)")


# Every public function that takes generator=: a non-generator is a TypeError naming it.
GENERATOR_CALLS: list[Any] = [
    pytest.param(lambda g: ncsn.Schedule(SIGMAS).sample(2, generator=g), id="Schedule.sample"),
    pytest.param(
        lambda g: ncsn.GeometricSchedule(1.0, 0.1, 3).sample(2, generator=g),
        id="GeometricSchedule.sample",
    ),
    pytest.param(lambda g: losses.dsm(gaussian_score, X, 1.0, generator=g), id="dsm"),
    pytest.param(lambda g: losses.ssm(gaussian_score, X, 1.0, generator=g), id="ssm"),
    pytest.param(
        lambda g: losses.annealed_ssm(gaussian_score, X, 1.0, generator=g), id="annealed_ssm"
    ),
    pytest.param(lambda g: losses.projections_like(X, generator=g), id="projections_like"),
    pytest.param(
        lambda g: _dsm_loss()(gaussian_score, X, generator=g), id="DenoisingScoreMatching"
    ),
    pytest.param(lambda g: _ssm_loss()(gaussian_score, X, generator=g), id="SlicedScoreMatching"),
    pytest.param(lambda g: nets.ScoreMLP(2, generator=g), id="ScoreMLP"),
    pytest.param(lambda g: nets.RefineNet(1, 4, SIGMAS, generator=g), id="RefineNet"),
    pytest.param(lambda g: nets.RefineNetBaseline(1, 2, generator=g), id="RefineNetBaseline"),
    pytest.param(lambda g: metrics.sliced_wasserstein(X, X, generator=g), id="sliced_wasserstein"),
    pytest.param(
        lambda g: metrics.score_error(gaussian_score, gaussian_score, X, SIGMAS, generator=g),
        id="score_error",
    ),
    pytest.param(lambda g: GMM.sample(2, generator=g), id="GaussianMixture.sample"),
    pytest.param(
        lambda g: ncsn.toy.Gaussian(torch.zeros(2), torch.eye(2)).sample(2, generator=g),
        id="Gaussian.sample",
    ),
    pytest.param(
        lambda g: ncsn.estimate_max_pairwise_distance(X, 2, generator=g),
        id="estimate_max_pairwise_distance",
    ),
    pytest.param(lambda g: ncsn.samplers.uniform_init((2, 2), generator=g), id="uniform_init"),
    pytest.param(
        lambda g: ncsn.samplers.gaussian_init((2, 2), 1.0, generator=g), id="gaussian_init"
    ),
    pytest.param(
        lambda g: ncsn.samplers.langevin_step(gaussian_score, X, 1.0, 0.1, generator=g),
        id="langevin_step",
    ),
    pytest.param(
        lambda g: ncsn.samplers.AnnealedLangevin(SIGMAS, 0.1, 1)(gaussian_score, X, generator=g),
        id="AnnealedLangevin",
    ),
    pytest.param(lambda g: ncsn.data.dequantize(X, generator=g), id="dequantize"),
    pytest.param(
        lambda g: ncsn.data.random_flip(torch.rand(2, 1, 4, 4), generator=g), id="random_flip"
    ),
    pytest.param(lambda g: ncsn.presets.ncsn_paper(1, 4, generator=g), id="presets.ncsn_paper"),
]


@pytest.mark.parametrize("call", GENERATOR_CALLS)
@fast
@given(generator=non_generators)
def test_non_generator_is_a_type_error_naming_generator(
    call: Callable[[object], object], generator: object
) -> None:
    with pytest.raises(TypeError, match=r"generator must be a torch\.Generator or None; got"):
        call(generator)


#: every configured loss and sampler, and the kernels, called with a score model.
MODEL_CALLS: list[Any] = [
    pytest.param(lambda m: losses.dsm(m, X, 1.0), id="dsm"),
    pytest.param(lambda m: losses.ssm(m, X, 1.0), id="ssm"),
    pytest.param(lambda m: _dsm_loss()(m, X), id="DenoisingScoreMatching"),
    pytest.param(lambda m: _ssm_loss()(m, X), id="SlicedScoreMatching"),
    pytest.param(lambda m: AL(m, X), id="AnnealedLangevin"),
    pytest.param(lambda m: ncsn.samplers.Langevin(0.1, 0.01, 1)(m, X), id="Langevin"),
    pytest.param(lambda m: ncsn.samplers.ConsistentAnnealedSampling(SIGMAS, 0.9)(m, X), id="CAS"),
    pytest.param(lambda m: ncsn.samplers.PredictorCorrector(SIGMAS)(m, X), id="PC"),
    pytest.param(lambda m: ncsn.samplers.ProbabilityFlowODE(SIGMAS)(m, X), id="ODE"),
    pytest.param(lambda m: ncsn.samplers.denoise_step(m, X, 1.0), id="denoise_step"),
    pytest.param(lambda m: ncsn.likelihood.log_prob(m, X, SIGMAS), id="log_prob"),
    pytest.param(lambda m: ncsn.samplers.inpaint(AL, m, OBS, KNOWN_LEFT), id="inpaint"),
]

_OUTPUT_ERRORS = {
    "type": (TypeError, r"model must return a torch\.Tensor; got"),
    "dtype": (TypeError, r"model must return a real floating-point tensor; got dtype torch\."),
    "device": (ValueError, r"model returned a tensor on device meta but its input x is on"),
    "shape": (ValueError, r"model output shape \(.*\) differs from its input shape \(4, 2\)"),
}


@pytest.mark.parametrize("call", MODEL_CALLS)
@fast
@given(bad_model_outputs())
def test_a_model_output_that_does_not_fit_x_is_refused_naming_the_model(
    call: Callable[[Callable[..., object]], object], bad: tuple[str, Callable[[Any], object]]
) -> None:
    kind, transform = bad

    def model(x: torch.Tensor, sigma: torch.Tensor) -> object:
        return transform(gaussian_score(x, sigma))

    error, match = _OUTPUT_ERRORS[kind]
    with pytest.raises(error, match=match):
        call(model)
