"""ncsn: Noise Conditional Score Networks (Song & Ermon, NeurIPS 2019) in PyTorch.

Perturb data with Gaussian noise at many levels σ, train one noise-conditional score network with
denoising or sliced score matching, and sample with annealed Langevin dynamics. Every part speaks one
of four small protocols (:class:`ScoreModel`, :class:`NoiseSchedule`, :class:`ScoreLoss`,
:class:`Sampler`), so any estimator works with any sampler.
"""

from ncsn import data, losses, nets, samplers, toy, viz
from ncsn._types import NoiseSchedule, Sampler, ScoreLoss, ScoreModel
from ncsn.schedules import GeometricSchedule, Schedule, geometric_sigmas

__version__ = "0.1.0"

__all__ = [
    "GeometricSchedule",
    "NoiseSchedule",
    "Sampler",
    "Schedule",
    "ScoreLoss",
    "ScoreModel",
    "geometric_sigmas",
    "data",
    "losses",
    "nets",
    "samplers",
    "toy",
    "viz",
]
