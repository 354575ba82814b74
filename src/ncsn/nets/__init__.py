"""Score networks: the paper's RefineNet, its unconditional baseline, the toy MLP, adapters."""

from ncsn.nets.mlp import ScoreMLP

__all__ = ["ScoreMLP"]
