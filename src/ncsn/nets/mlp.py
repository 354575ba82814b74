"""The paper's toy score network (Fig. 2): a 3-layer softplus MLP for vector data."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ncsn._checks import (
    as_sigma_tensor,
    as_sigmas,
    check_batch,
    check_generator_type,
    check_nonempty,
    positive_int,
    same_device,
)
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
        check_generator_type(generator)
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
            levels_t = as_sigmas(sigmas).to(torch.get_default_dtype())
            self.lookup = LevelLookup(levels_t)
            levels = self.lookup.num_levels
            self.gain = nn.Parameter(torch.ones(levels, 2, hidden))
            self.bias = nn.Parameter(torch.zeros(levels, 2, hidden))

    @property
    def sigmas(self) -> Tensor | None:
        """The schedule the network is conditioned on (``None`` when unconditional)."""
        return None if self.lookup is None else self.lookup.sigmas

    def forward(self, x: Tensor, sigma: Tensor | float | None = None) -> Tensor:
        """Score estimate ``[B, D]``.

        Args:
            x: ``[B, D]`` points, B >= 1, in the dtype and on the device of the parameters.
            sigma: ``[B]`` (or a scalar) noise values, each one of ``self.sigmas``; ignored
                (and optional) when the network is unconditional.

        Raises:
            TypeError: ``x`` not a floating tensor, or of another dtype than the parameters.
            ValueError: ``x`` not ``[B, D]``, empty, or on another device than the parameters;
                a σ not of shape ``[B]`` or a scalar, or not in the schedule.
        """
        self._check_input(x)
        if self.lookup is None:
            return self.fc3(self.act(self.fc2(self.act(self.fc1(x)))))
        if sigma is None:
            raise ValueError("this ScoreMLP is noise-conditional: pass sigma of shape [B]")
        # σ keeps its own floating dtype for the lookup (a float64 σ is matched in float64).
        sigma = as_sigma_tensor(
            sigma, x, dtype=sigma.dtype if isinstance(sigma, Tensor) else torch.float64
        )
        if sigma.ndim == 0:
            sigma = sigma.expand(x.shape[0])
        elif sigma.shape != (x.shape[0],):
            raise ValueError(
                f"sigma must be a scalar or have shape [B]={[x.shape[0]]}; "
                f"got sigma.shape={tuple(sigma.shape)} for x.shape={tuple(x.shape)}"
            )
        index = self.lookup(sigma)
        gain, bias = self.gain[index], self.bias[index]
        h = self.act(gain[:, 0] * self.fc1(x) + bias[:, 0])
        h = self.act(gain[:, 1] * self.fc2(h) + bias[:, 1])
        return self.fc3(h)

    def _check_input(self, x: Tensor) -> None:
        """Metadata checks only (no device synchronisation)."""
        check_batch(x)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"ScoreMLP expects x of shape [B, {self.dim}]; got {tuple(x.shape)}")
        check_nonempty(x)
        weight = self.fc1.weight
        if x.dtype != weight.dtype:
            raise TypeError(
                f"x has dtype {x.dtype} but the ScoreMLP parameters have dtype {weight.dtype}; "
                f"convert one of them (e.g. net.to({x.dtype}))"
            )
        if not same_device(x.device, weight.device):
            raise ValueError(
                f"x is on device {x.device} but the ScoreMLP parameters are on device "
                f"{weight.device}; move one of them (e.g. net.to({str(x.device)!r}))"
            )
