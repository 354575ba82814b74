"""Contract tables: every implementation of each protocol, so that every check runs on each.

Each entry is ``(name, factory)``; factories build a fresh object. Score-model entries also say which
event shapes they accept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

import ncsn

SIGMAS = ncsn.geometric_sigmas(1.0, 0.1, 4, dtype=torch.float64)


def gaussian_score(x: Tensor, sigma: Tensor) -> Tensor:
    """Exact score of N(0, I) perturbed by N(0, σ²I), for any event shape (a plain function)."""
    return -x / (1 + sigma.reshape(-1, *([1] * (x.ndim - 1))) ** 2)


@dataclass(frozen=True)
class ModelCase:
    name: str
    factory: Callable[[], ncsn.ScoreModel]
    event_shape: tuple[int, ...]
    sigmas: Tensor = SIGMAS  # levels the model accepts


def _mlp() -> ncsn.ScoreModel:
    torch.manual_seed(0)  # test-side seeding of weight init only
    return ncsn.nets.ScoreMLP(3, hidden=16, sigmas=SIGMAS).double()


def _mlp_unconditional() -> ncsn.ScoreModel:
    torch.manual_seed(0)
    return ncsn.nets.ScoreMLP(3, hidden=16).double()


def _mixture() -> ncsn.ScoreModel:
    return ncsn.toy.GaussianMixture(
        [0.3, 0.7], [[-1.0, 0.0, 1.0], [1.0, 2.0, 0.0]], [0.5, 1.0]
    ).score_model()


def _refinenet() -> ncsn.ScoreModel:
    g = torch.Generator().manual_seed(0)
    return ncsn.nets.RefineNet(channels=1, ngf=4, sigmas=SIGMAS, generator=g).double()


def _refinenet_baseline() -> ncsn.ScoreModel:
    g = torch.Generator().manual_seed(0)
    return ncsn.nets.RefineNetBaseline(channels=1, ngf=2, generator=g).double()


def _scaled_by_inverse_sigma() -> ncsn.ScoreModel:
    g = torch.Generator().manual_seed(0)
    return ncsn.nets.ScaledByInverseSigma(ncsn.nets.ScoreMLP(3, hidden=16, generator=g).double())


def _preconditioned() -> ncsn.ScoreModel:
    g = torch.Generator().manual_seed(0)
    net = ncsn.nets.ScoreMLP(3, hidden=16, generator=g).double()
    return ncsn.nets.Preconditioned(net, sigma_data=0.5)


def _conditional_mixture() -> ncsn.toy.GaussianMixture:
    return ncsn.toy.GaussianMixture([0.3, 0.7], [[-1.0, 0.0, 1.0], [1.0, 2.0, 0.0]], [0.5, 1.0])


def _conditioned_mixture() -> ncsn.ScoreModel:
    return ncsn.guidance.condition(_conditional_mixture().conditional_score_model(), 1)


def _classifier_free_mixture() -> ncsn.ScoreModel:
    model = _conditional_mixture().conditional_score_model()
    return ncsn.guidance.ClassifierFreeGuidance(model, 0, weight=1.5)


def _classifier_guidance_mixture() -> ncsn.ScoreModel:
    gmm = _conditional_mixture()
    return ncsn.guidance.ClassifierGuidance(gmm.score_model(), gmm.classifier(), 1, weight=2.0)


def _classifier_free_mlp() -> ncsn.ScoreModel:
    g = torch.Generator().manual_seed(0)
    net = ncsn.nets.ConditionalScoreMLP(3, 2, 16, sigmas=SIGMAS, generator=g).double()
    return ncsn.guidance.ClassifierFreeGuidance(net, 1, weight=1.0)


def _classifier_free_refinenet() -> ncsn.ScoreModel:
    g = torch.Generator().manual_seed(0)
    net = ncsn.nets.ConditionalRefineNet(1, 4, SIGMAS, 3, generator=g).double()
    return ncsn.guidance.ClassifierFreeGuidance(net, 2, weight=0.5)


def _classifier_guidance_mlp() -> ncsn.ScoreModel:
    g = torch.Generator().manual_seed(0)
    classifier = ncsn.nets.NoisyClassifierMLP(3, 2, 8, generator=g).double()
    return ncsn.guidance.ClassifierGuidance(_mlp(), classifier, 0, weight=2.0)


ALL_SCORE_MODELS: list[ModelCase] = [
    ModelCase("gaussian_function", lambda: gaussian_score, (2, 3)),
    ModelCase("mixture_exact", _mixture, (3,)),
    ModelCase("score_mlp", _mlp, (3,)),
    ModelCase("score_mlp_unconditional", _mlp_unconditional, (3,)),
    ModelCase("scaled_by_inverse_sigma_mlp", _scaled_by_inverse_sigma, (3,)),
    ModelCase("preconditioned_mlp", _preconditioned, (3,)),
    ModelCase("refinenet_tiny", _refinenet, (1, 8, 8)),
    ModelCase("refinenet_baseline_tiny", _refinenet_baseline, (1, 4, 4)),
    ModelCase("conditioned_mixture_exact", _conditioned_mixture, (3,)),
    ModelCase("classifier_free_mixture_exact", _classifier_free_mixture, (3,)),
    ModelCase("classifier_guidance_mixture_exact", _classifier_guidance_mixture, (3,)),
    ModelCase("classifier_free_conditional_mlp", _classifier_free_mlp, (3,)),
    ModelCase("classifier_free_conditional_refinenet_tiny", _classifier_free_refinenet, (1, 8, 8)),
    ModelCase("classifier_guidance_mlp", _classifier_guidance_mlp, (3,)),
]

ALL_SCHEDULES: list[tuple[str, Callable[[], ncsn.NoiseSchedule]]] = [
    ("geometric_paper", lambda: ncsn.GeometricSchedule(1.0, 0.01, 10)),
    ("geometric_toy", lambda: ncsn.GeometricSchedule(20.0, 1.0, 10)),
    ("schedule_from_tensor", lambda: ncsn.Schedule(torch.tensor([3.0, 1.0, 0.5, 0.1]))),
    ("single_level", lambda: ncsn.Schedule([0.01])),
    (
        "lognormal_weights",
        lambda: ncsn.Schedule(
            ncsn.geometric_sigmas(20.0, 0.01, 30),
            weights=ncsn.schedules.lognormal_weights(
                ncsn.geometric_sigmas(20.0, 0.01, 30), 0.5, 3.0
            ),
        ),
    ),
]

ALL_LOSSES: list[tuple[str, Callable[[ncsn.NoiseSchedule], ncsn.ScoreLoss]]] = [
    ("dsm", lambda s: ncsn.losses.DenoisingScoreMatching(s)),
    ("dsm_power0", lambda s: ncsn.losses.DenoisingScoreMatching(s, power=0.0)),
    ("ssm_vr", lambda s: ncsn.losses.SlicedScoreMatching(s)),
    (
        "ssm_rademacher",
        lambda s: ncsn.losses.SlicedScoreMatching(
            s, variance_reduction=False, projections=2, distribution="rademacher"
        ),
    ),
    ("ssm_sphere", lambda s: ncsn.losses.SlicedScoreMatching(s, distribution="sphere")),
]

ALL_SAMPLERS: list[tuple[str, Callable[[Tensor], ncsn.Sampler]]] = [
    ("langevin", lambda sigmas: ncsn.samplers.Langevin(float(sigmas[-1]), 1e-2, 3)),
    ("annealed", lambda sigmas: ncsn.samplers.AnnealedLangevin(sigmas, 1e-2, 2)),
    (
        "annealed_denoise",
        lambda sigmas: ncsn.samplers.AnnealedLangevin(sigmas, 1e-2, 2, denoise=True),
    ),
    ("cas", lambda sigmas: ncsn.samplers.ConsistentAnnealedSampling(sigmas, eta=0.9)),
    (
        "cas_denoise",
        lambda sigmas: ncsn.samplers.ConsistentAnnealedSampling(sigmas, eta=0.9, denoise=True),
    ),
    ("pc", lambda sigmas: ncsn.samplers.PredictorCorrector(sigmas)),
    (
        "pc_predictor_only",
        lambda sigmas: ncsn.samplers.PredictorCorrector(sigmas, corrector_steps=0, denoise=False),
    ),
    ("ode_heun", lambda sigmas: ncsn.samplers.ProbabilityFlowODE(sigmas)),
    (
        "ode_euler_denoise",
        lambda sigmas: ncsn.samplers.ProbabilityFlowODE(sigmas, solver="euler", denoise=True),
    ),
]
