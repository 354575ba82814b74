"""Bad inputs to the public API: each is a ``TypeError``/``ValueError`` that names the argument.

One table of single cases (``CASES``) and hypothesis properties where the space of bad values is
large (dtypes, σ vectors, shapes, non-generators). Empty batches follow one rule everywhere, the
samplers' one: ``ValueError("x must hold at least one example; got shape (0, ...)")``.
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


class _Posterior:
    """A mixture stand-in whose ``component_posterior`` returns a fixed value."""

    def __init__(self, value: object) -> None:
        self.value = value

    def component_posterior(self, x: torch.Tensor, sigma: torch.Tensor | float = 0.0) -> Any:
        return self.value


class _BadSchedule:
    """A schedule whose draw has the wrong shape (or is no tensor)."""

    def __init__(self, draw: Callable[[int], object]) -> None:
        self.sigmas = SIGMAS
        self.draw = draw

    def sample(self, batch: int, *, generator: torch.Generator | None = None) -> Any:
        return self.draw(batch)


class _Features:
    def features(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1)


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
    # --- metrics ---------------------------------------------------------------------------
    (
        "mode_weights/NaN samples",
        lambda: metrics.mode_weights(NAN, GMM),
        ValueError,
        r"x must be finite",
    ),
    (
        "mode_weights/infinite samples",
        lambda: metrics.mode_weights(torch.full((4, 2), math.inf), GMM),
        ValueError,
        r"x must be finite",
    ),
    (
        "mode_weights/sigma as a string",
        lambda: metrics.mode_weights(X, GMM, sigma="a"),  # type: ignore[arg-type]
        TypeError,
        r"sigma must be a real number; got sigma='a'",
    ),
    (
        "mode_weights/posterior not a tensor",
        lambda: metrics.mode_weights(X, _Posterior(1)),
        TypeError,
        r"component_posterior must return a torch\.Tensor; got int",
    ),
    (
        "mode_weights/NaN posteriors",
        lambda: metrics.mode_weights(X, _Posterior(torch.full((4, 2), math.nan))),
        ValueError,
        r"component_posterior returned non-finite values",
    ),
    (
        "score_error/empty batch",
        lambda: metrics.score_error(gaussian_score, gaussian_score, torch.zeros(0, 2), SIGMAS),
        ValueError,
        EMPTY_RULE,
    ),
    (
        "score_error/NaN x",
        lambda: metrics.score_error(gaussian_score, gaussian_score, NAN, SIGMAS),
        ValueError,
        r"x must be finite",
    ),
    (
        "score_error/perturb as a string",
        lambda: metrics.score_error(
            gaussian_score,
            gaussian_score,
            X,
            SIGMAS,
            perturb="no",  # type: ignore[arg-type]
        ),
        TypeError,
        r"perturb must be a bool; got perturb='no'",
    ),
    (
        "score_error/model not callable",
        lambda: metrics.score_error(None, gaussian_score, X, SIGMAS),  # type: ignore[arg-type]
        TypeError,
        r"model must be a callable score model; got None",
    ),
    (
        "score_error/exact_score not callable",
        lambda: metrics.score_error(gaussian_score, 1.0, X, SIGMAS),  # type: ignore[arg-type]
        TypeError,
        r"exact_score must be a callable score model; got 1\.0",
    ),
    (
        "extract_features/empty batch",
        lambda: metrics.extract_features(_Features(), torch.zeros(0, 2)),
        ValueError,
        EMPTY_RULE,
    ),
    (
        "inception_score/no rows",
        lambda: metrics.inception_score(torch.zeros(0, 3), splits=1),
        ValueError,
        r"probs must hold at least one example; got shape \(0, 3\)",
    ),
    (
        "frechet_distance_from_statistics/negative-definite covariance",
        lambda: metrics.frechet_distance_from_statistics(
            (torch.zeros(2), -torch.eye(2)), (torch.zeros(2), torch.eye(2))
        ),
        ValueError,
        r"a covariance must be positive semi-definite; got an eigenvalue -1",
    ),
    (
        "DigitsEvaluator.accuracy/labels as a list",
        lambda: metrics.DigitsEvaluator(None, 0.0, 0).accuracy(  # type: ignore[arg-type]
            torch.zeros(1, 1, 8, 8),
            [1],  # type: ignore[arg-type]
        ),
        TypeError,
        r"labels must be a torch\.Tensor; got list",
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


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a second device")
def test_two_sample_metrics_take_y_to_x_device() -> None:
    x, y = torch.randn(16, 2), torch.randn(16, 2).cuda()
    assert metrics.mmd_rbf(x, y) == pytest.approx(metrics.mmd_rbf(x, y.cpu()))
    g = torch.Generator().manual_seed(0)
    sw = metrics.sliced_wasserstein(x, y, generator=g)
    assert sw == pytest.approx(metrics.sliced_wasserstein(x, y.cpu(), generator=g.manual_seed(0)))


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
