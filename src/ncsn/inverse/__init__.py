"""Linear inverse problems with any score model: operators, measurements, posterior samplers
checked against exact posteriors, and restoration metrics.

Measure y = A·x + σ_y·n with a :class:`LinearOperator` A (:func:`measure` simulates it), then sample
the posterior p(x | y) with a pretrained unconditional score model and no retraining. Each
posterior sampler is a :class:`~ncsn.Sampler` (a pure kernel and the configured loop over it, as in
:mod:`ncsn.samplers`) holding the :class:`Measurement`; ``sampler.start()`` gives its starting
point:

======================================  =====================  ==========  ====================
sampler                                 kernel                 operators   exact in the limit
======================================  =====================  ==========  ====================
:class:`PosteriorLangevin` (Jalal)      posterior_langevin_…   any         yes (σ_L → 0, ε → 0)
:class:`SNIPS`                          :func:`snips_step`     with SVD    yes (σ_L → 0, ε → 0)
:class:`DDRM` (VE grid)                 :func:`ddrm_step`      with SVD    no (bias measured)
:class:`DPS` (VE grid)                  :func:`dps_step`       any         no (bias measured)
======================================  =====================  ==========  ====================

Composition: :class:`PosteriorScore` is the posterior's score as a :class:`~ncsn.ScoreModel` (any
sampler takes it), :class:`Projection` imposes noiseless measurements as a step hook (Algorithm 2;
inpainting, :func:`ncsn.samplers.inpaint`, is its mask case). :func:`gaussian_posterior` and
:func:`mixture_posterior` are the exact posteriors of the toy priors; :func:`psnr`, :func:`ssim`
and :func:`consistency` score restorations.
"""

from ncsn.inverse.ddrm import DDRM, ddrm_step
from ncsn.inverse.dps import DPS, dps_step
from ncsn.inverse.exact import MixturePosterior, gaussian_posterior, mixture_posterior
from ncsn.inverse.langevin import PosteriorLangevin, posterior_langevin_step
from ncsn.inverse.measurement import Measurement, PosteriorScore, Projection, measure
from ncsn.inverse.metrics import consistency, psnr, ssim
from ncsn.inverse.operators import (
    SVD,
    Blur,
    ChannelMix,
    Compose,
    Downsample,
    GaussianProjection,
    Identity,
    LinearOperator,
    Mask,
    check_operator,
    gaussian_kernel,
    operator_svd,
    to_matrix,
)
from ncsn.inverse.snips import SNIPS, snips_step

__all__ = [
    "DDRM",
    "DPS",
    "SNIPS",
    "SVD",
    "Blur",
    "ChannelMix",
    "Compose",
    "Downsample",
    "GaussianProjection",
    "Identity",
    "LinearOperator",
    "Mask",
    "Measurement",
    "MixturePosterior",
    "PosteriorLangevin",
    "PosteriorScore",
    "Projection",
    "check_operator",
    "consistency",
    "ddrm_step",
    "dps_step",
    "gaussian_kernel",
    "gaussian_posterior",
    "measure",
    "mixture_posterior",
    "operator_svd",
    "posterior_langevin_step",
    "psnr",
    "snips_step",
    "ssim",
    "to_matrix",
]
