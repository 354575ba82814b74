"""Score networks: the paper's RefineNet, its unconditional baseline, the toy MLP, their
class-conditional versions and a noisy classifier (:mod:`ncsn.nets.conditional`), adapters, and
wrappers for faster calls (:func:`compiled`, :func:`autocast`, :func:`cuda_graphed`)."""

from ncsn.nets.adapters import (
    DenoiserScore,
    DiffusersScore,
    NoisePredictorScore,
    Preconditioned,
    ScaledByInverseSigma,
    ScoreDenoiser,
)
from ncsn.nets.conditional import ConditionalRefineNet, ConditionalScoreMLP, NoisyClassifierMLP
from ncsn.nets.config import build_model, model_config
from ncsn.nets.layers import CondInstanceNorm2dPlus, InstanceNorm2dPlus
from ncsn.nets.mlp import ScoreMLP
from ncsn.nets.official import CheckpointError, load_official_checkpoint
from ncsn.nets.refinenet import RefineNet, RefineNetBaseline
from ncsn.nets.wrappers import ModelWrapper, autocast, compiled, cuda_graphed, unwrap

__all__ = [
    "CheckpointError",
    "CondInstanceNorm2dPlus",
    "ConditionalRefineNet",
    "ConditionalScoreMLP",
    "DenoiserScore",
    "DiffusersScore",
    "InstanceNorm2dPlus",
    "ModelWrapper",
    "NoisePredictorScore",
    "NoisyClassifierMLP",
    "Preconditioned",
    "RefineNet",
    "RefineNetBaseline",
    "ScaledByInverseSigma",
    "ScoreDenoiser",
    "ScoreMLP",
    "autocast",
    "build_model",
    "compiled",
    "cuda_graphed",
    "load_official_checkpoint",
    "model_config",
    "unwrap",
]
