"""Samplers for score models, one module per algorithm family, all speaking :class:`~ncsn.Sampler`.

Each family is a public, pure kernel (one step) and a small configured object that loops over that
same kernel, so the loop a reader finds is the loop that runs:

=====================================  ==========================================  =============
sampler                                kernel                                      module
=====================================  ==========================================  =============
:class:`Langevin`                      :func:`langevin_step`                       ``langevin``
:class:`AnnealedLangevin` (Alg. 1)     :func:`langevin_step`                       ``annealed``
=====================================  ==========================================  =============

Every sampler takes ``generator=``, ``callback=`` (a :class:`StepInfo` after each step) and
``hook=`` (a :class:`StepHook` applied after each step; inpainting, Algorithm 2, is one:
:func:`inpaint` works with every sampler). :func:`denoise_step` is the shared final Tweedie step.
Starting points and masks: :func:`uniform_init`, :func:`gaussian_init`, :func:`inpainting_mask`.
Faster model calls are model wrappers that work with every sampler: :func:`ncsn.nets.compiled`,
:func:`ncsn.nets.autocast`, :func:`ncsn.nets.cuda_graphed`.
"""

from ncsn.samplers._common import StepHook, StepInfo, denoise_step
from ncsn.samplers.annealed import AnnealedLangevin
from ncsn.samplers.inits import MASK_PRESETS, gaussian_init, inpainting_mask, uniform_init
from ncsn.samplers.inpainting import Inpainting, inpaint
from ncsn.samplers.langevin import Langevin, langevin_step

__all__ = [
    "MASK_PRESETS",
    "AnnealedLangevin",
    "Inpainting",
    "Langevin",
    "StepHook",
    "StepInfo",
    "denoise_step",
    "gaussian_init",
    "inpaint",
    "inpainting_mask",
    "langevin_step",
    "uniform_init",
]
