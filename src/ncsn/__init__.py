"""ncsn: Noise Conditional Score Networks (Song & Ermon, NeurIPS 2019) in PyTorch.

Perturb data with Gaussian noise at many levels σ, train one noise-conditional score network with
denoising or sliced score matching, and sample with annealed Langevin dynamics. Every part speaks one
of four small protocols (:class:`ScoreModel`, :class:`NoiseSchedule`, :class:`ScoreLoss`,
:class:`Sampler`), so any estimator works with any sampler.
"""

from ncsn import (
    data,
    guidance,
    likelihood,
    losses,
    metrics,
    ncsnv2,
    nets,
    presets,
    samplers,
    sharing,
    toy,
    training,
    viz,
)
from ncsn._checks import CheckpointError
from ncsn._loading import LoadedModel, load
from ncsn._types import (
    ConditionalScoreModel,
    NoiseSchedule,
    NoisyClassifier,
    Sampler,
    ScoreLoss,
    ScoreModel,
)
from ncsn._version import __version__ as __version__
from ncsn.ncsnv2 import (
    estimate_max_pairwise_distance,
    max_pairwise_distance,
    ncsnv2_num_levels,
    ncsnv2_sigmas,
    ncsnv2_step_size,
)
from ncsn.schedules import GeometricSchedule, Schedule, geometric_sigmas
from ncsn.sharing import pretrained, save_model

__all__ = [
    "CheckpointError",
    "ConditionalScoreModel",
    "GeometricSchedule",
    "LoadedModel",
    "NoiseSchedule",
    "NoisyClassifier",
    "Sampler",
    "Schedule",
    "ScoreLoss",
    "ScoreModel",
    "data",
    "estimate_max_pairwise_distance",
    "geometric_sigmas",
    "guidance",
    "likelihood",
    "load",
    "losses",
    "max_pairwise_distance",
    "metrics",
    "ncsnv2",
    "ncsnv2_num_levels",
    "ncsnv2_sigmas",
    "ncsnv2_step_size",
    "nets",
    "presets",
    "pretrained",
    "samplers",
    "save_model",
    "sharing",
    "toy",
    "training",
    "viz",
]
