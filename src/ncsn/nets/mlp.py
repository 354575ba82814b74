"""The paper's toy score network (Fig. 2): a 3-layer softplus MLP for vector data."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ncsn._checks import positive_int
from ncsn.nets._conditioning import LevelLookup

__all__ = ["ScoreMLP"]


class ScoreMLP(nn.Module):
    """Linear(D, H) → Softplus → Linear(H, H) → Softplus → Linear(H, D), optionally σ-conditioned.

    Without ``sigmas`` this is exactly the network of the paper's Fig. 2 (it ignores σ). With
    ``sigmas`` it becomes noise-conditional in the way the paper's RefineNet is: each hidden layer
    gets a per-level gain and bias, ``h ← γ[i]·h + β[i]`` (γ initialised to 1, β to 0), where ``i``
    is the index of σ in ``sigmas``; a σ outside the schedule raises :class:`ValueError`.

    Shapes: ``x: [B, D]``, ``sigma: [B]`` → ``[B, D]``.

    Args:
        dim: D, the data dimension.
        hidden: H, the hidden width (paper: 128).
        sigmas: optional ``[L]`` schedule to condition on.
        generator: optional generator for the initial weights (PyTorch's default initialisation);
            without it the global RNG is used, as in any ``nn.Module``.

    Example:
        >>> net = ncsn.nets.ScoreMLP(2, sigmas=ncsn.geometric_sigmas(20.0, 1.0, 10))
        >>> net(torch.zeros(5, 2), net.sigmas[:1].expand(5)).shape
        torch.Size([5, 2])

    References:
        Song & Ermon (2019), §3.2 and Fig. 2.
    """

    def __init__(
        self,
        dim: int,
        hidden: int = 128,
        sigmas: Tensor | Sequence[float] | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.dim = positive_int(dim, "dim")
        self.hidden = positive_int(hidden, "hidden")
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, dim)
        if generator is not None:  # PyTorch's default Linear initialisation, drawn from generator
            for layer in (self.fc1, self.fc2, self.fc3):
                nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
                bound = 1 / math.sqrt(layer.in_features)
                nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
        self.act = nn.Softplus()
        self.lookup: LevelLookup | None = None
        if sigmas is not None:
            self.lookup = LevelLookup(torch.as_tensor(sigmas, dtype=torch.get_default_dtype()))
            levels = self.lookup.num_levels
            self.gain = nn.Parameter(torch.ones(levels, 2, hidden))
            self.bias = nn.Parameter(torch.zeros(levels, 2, hidden))

    @property
    def sigmas(self) -> Tensor | None:
        """The schedule the network is conditioned on (``None`` when unconditional)."""
        return None if self.lookup is None else self.lookup.sigmas

    def forward(self, x: Tensor, sigma: Tensor | None = None) -> Tensor:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"ScoreMLP expects x of shape [B, {self.dim}]; got {tuple(x.shape)}")
        if self.lookup is None:
            return self.fc3(self.act(self.fc2(self.act(self.fc1(x)))))
        if sigma is None:
            raise ValueError("this ScoreMLP is noise-conditional: pass sigma of shape [B]")
        sigma = torch.as_tensor(sigma, device=x.device)
        index = self.lookup(sigma.expand(x.shape[0]) if sigma.ndim == 0 else sigma)
        gain, bias = self.gain[index], self.bias[index]
        h = self.act(gain[:, 0] * self.fc1(x) + bias[:, 0])
        h = self.act(gain[:, 1] * self.fc2(h) + bias[:, 1])
        return self.fc3(h)
