"""Rules every public function keeps: ``generator=`` takes a ``torch.Generator`` or ``None``,
and a model output that does not fit ``x`` is refused naming the model, in every loss, sampler
and kernel that calls a score model.

The single cases of the hostile audits sit beside each module's tests
(``test_<module>_bad_inputs.py``: schedules, losses, nets, toy, viz, training; metrics and data
in their folders). The second audit (issue 12), of the Python API's every public module but
``cli`` and ``metrics`` (schedules, losses, nets, samplers, likelihood, toy, data, viz, ncsnv2,
training):

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

A third pass audited ``ncsn.metrics`` (77 calls; its cases are in ``tests/metrics/``). The rule
for NaN and inf is in ``ncsn.losses``' module docstring and ``docs/gotchas.md``: the loss kernels
raise a ``ValueError`` naming the argument, the configured losses and ``train_step`` read no
values (a NaN loss, which the Trainer raises as ``NonFiniteLossError``). Empty batches follow one
rule everywhere, the samplers' one: ``ValueError("x must hold at least one example; got shape
(0, ...)")``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import given

import ncsn
from bad_inputs import GMM, SIGMAS, X, dsm_loss, fast, ssm_loss
from contracts import gaussian_score
from ncsn import losses, metrics, nets
from strategies import bad_model_outputs, non_generators

AL = ncsn.samplers.AnnealedLangevin(SIGMAS, 0.01, 1)
OBS = torch.rand(4, 2)
KNOWN_LEFT = torch.tensor([1, 0])


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
    pytest.param(lambda g: dsm_loss()(gaussian_score, X, generator=g), id="DenoisingScoreMatching"),
    pytest.param(lambda g: ssm_loss()(gaussian_score, X, generator=g), id="SlicedScoreMatching"),
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
    pytest.param(lambda m: dsm_loss()(m, X), id="DenoisingScoreMatching"),
    pytest.param(lambda m: ssm_loss()(m, X), id="SlicedScoreMatching"),
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
