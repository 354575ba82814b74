"""Samplers for score models, one module per algorithm family, all speaking :class:`~ncsn.Sampler`.

Each family is a public, pure kernel (one step) and a small configured object that loops over that
same kernel, so the loop a reader finds is the loop that runs:

=====================================  ==========================================  =============
sampler                                kernel                                      module
=====================================  ==========================================  =============
:class:`Langevin`                      :func:`langevin_step`                       ``langevin``
:class:`AnnealedLangevin` (Alg. 1)     :func:`langevin_step`                       ``annealed``
:class:`ConsistentAnnealedSampling`    :func:`consistent_step`                     ``consistent``
:class:`PredictorCorrector`            :func:`reverse_diffusion_step`,             ``predictor_corrector``
                                       :func:`langevin_corrector_step`
:class:`ProbabilityFlowODE`            :func:`ode_step`                            ``ode``
=====================================  ==========================================  =============

Every sampler is a frozen dataclass of its settings (its σ grid a
:class:`~ncsn.schedules.SigmaGrid`, so equal settings compare and hash equal) and takes
``generator=``, ``callback=`` (a :class:`StepInfo` after each step) and ``hook=`` (a
:class:`StepHook` applied after each step; inpainting, Algorithm 2, is one: :func:`inpaint` works
with every sampler). :func:`denoise_step` is the shared final Tweedie step; a chain that goes
non-finite raises :class:`NonFiniteError`, which says whether the model or the chain did.
Starting points and masks: :func:`uniform_init`, :func:`gaussian_init`, :func:`inpainting_mask`.
Faster model calls are model wrappers that work with every sampler: :func:`ncsn.nets.compiled`,
:func:`ncsn.nets.autocast`, :func:`ncsn.nets.cuda_graphed`.
"""

from ncsn._types import StepCallback, StepHook, StepInfo
from ncsn.samplers._common import NonFiniteError, denoise_step
from ncsn.samplers.annealed import AnnealedLangevin
from ncsn.samplers.consistent import ConsistentAnnealedSampling, consistent_step
from ncsn.samplers.inits import MASK_PRESETS, gaussian_init, inpainting_mask, uniform_init
from ncsn.samplers.inpainting import Inpainting, inpaint
from ncsn.samplers.langevin import Langevin, langevin_step
from ncsn.samplers.ode import ProbabilityFlowODE, ode_step
from ncsn.samplers.predictor_corrector import (
    PredictorCorrector,
    langevin_corrector_step,
    reverse_diffusion_step,
)

__all__ = [
    "MASK_PRESETS",
    "AnnealedLangevin",
    "ConsistentAnnealedSampling",
    "Inpainting",
    "Langevin",
    "NonFiniteError",
    "PredictorCorrector",
    "ProbabilityFlowODE",
    "StepCallback",
    "StepHook",
    "StepInfo",
    "consistent_step",
    "denoise_step",
    "gaussian_init",
    "inpaint",
    "inpainting_mask",
    "langevin_corrector_step",
    "langevin_step",
    "ode_step",
    "reverse_diffusion_step",
    "uniform_init",
]
