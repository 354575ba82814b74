"""Static protocol conformance: a type checker proves each implementation fits its protocol.

Checked by `mypy src/ncsn tests/typing_conformance.py` (the `typecheck` nox session and
tests/test_typing.py). It is never imported by the test suite at run time.
"""

from __future__ import annotations

import torch

import ncsn
from ncsn import NoiseSchedule, Sampler, ScoreLoss, ScoreModel
from ncsn.samplers import StepCallback, StepHook, StepInfo

sigmas = ncsn.geometric_sigmas(1.0, 0.01, 10)
schedule_a: NoiseSchedule = ncsn.GeometricSchedule(1.0, 0.01, 10)
schedule_b: NoiseSchedule = ncsn.Schedule(sigmas)

loss_a: ScoreLoss = ncsn.losses.DenoisingScoreMatching(schedule_a)
loss_b: ScoreLoss = ncsn.losses.SlicedScoreMatching(schedule_a)

sampler_a: Sampler = ncsn.samplers.Langevin(0.01, 2e-5, 10)
sampler_b: Sampler = ncsn.samplers.AnnealedLangevin(sigmas, 2e-5, 10)
sampler_c: Sampler = ncsn.samplers.ConsistentAnnealedSampling(sigmas, 0.9, denoise=True)
sampler_d: Sampler = ncsn.samplers.PredictorCorrector(sigmas, snr=0.16, corrector_steps=1)
sampler_e: Sampler = ncsn.samplers.ProbabilityFlowODE(sigmas, solver="euler", denoise=True)
# the settings are typed as given (a tensor, a list or a grid of levels) and as kept
grid: ncsn.schedules.SigmaGrid = ncsn.samplers.AnnealedLangevin([1.0, 0.1], 2e-5, 10).sigmas
step_size: float = ncsn.samplers.AnnealedLangevin(grid, 2e-5, 10).step_size

hook: StepHook = ncsn.samplers.Inpainting(torch.zeros(2, 3), torch.tensor([1, 0, 0]))


def print_step(info: StepInfo, /) -> None:
    print(info.level, info.sigma)


callback: StepCallback = print_step


def plain_function(x: torch.Tensor, sigma: torch.Tensor, /) -> torch.Tensor:
    return -x


model_a: ScoreModel = plain_function
model_b: ScoreModel = ncsn.nets.ScoreMLP(2, sigmas=sigmas)
model_c: ScoreModel = ncsn.nets.RefineNet(channels=1, ngf=4, sigmas=sigmas)
model_d: ScoreModel = ncsn.nets.RefineNetBaseline(channels=1, ngf=4)
model_e: ScoreModel = ncsn.toy.paper_mixture().score_model()
model_f: ScoreModel = ncsn.toy.Gaussian(torch.zeros(2), torch.eye(2)).score_model()
model_g: ScoreModel = ncsn.nets.ScaledByInverseSigma(torch.nn.Identity())
