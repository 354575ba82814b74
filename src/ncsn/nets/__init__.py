"""Score networks: the paper's RefineNet, its unconditional baseline, the toy MLP, adapters."""

from ncsn.nets.adapters import DenoiserScore, NoisePredictorScore, ScaledByInverseSigma
from ncsn.nets.config import build_model, model_config
from ncsn.nets.layers import CondInstanceNorm2dPlus, InstanceNorm2dPlus
from ncsn.nets.mlp import ScoreMLP
from ncsn.nets.official import CheckpointError, load_official_checkpoint
from ncsn.nets.refinenet import RefineNet, RefineNetBaseline

__all__ = [
    "CheckpointError",
    "CondInstanceNorm2dPlus",
    "DenoiserScore",
    "InstanceNorm2dPlus",
    "NoisePredictorScore",
    "RefineNet",
    "RefineNetBaseline",
    "ScaledByInverseSigma",
    "ScoreMLP",
    "build_model",
    "load_official_checkpoint",
    "model_config",
]
