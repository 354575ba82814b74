"""Mapping noise values σ to level indices for networks conditioned on a finite schedule."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ncsn._checks import as_sigmas

__all__ = ["LevelLookup"]


def _traced(t: Tensor) -> bool:
    functorch = getattr(torch._C, "_functorch", None)
    check = getattr(functorch, "is_functorch_wrapped_tensor", None)
    return True if check is None else bool(check(t))


class LevelLookup(nn.Module):
    """Maps each σ of a batch to its index in a fixed schedule.

    A σ whose relative distance to every level exceeds ``rtol`` raises a :class:`ValueError` that
    names the σ and the schedule. Samplers call a model many times with the *same* σ tensor, so the
    last lookup is cached (keyed on the tensor's identity and version): repeated calls make no host
    synchronisation.

    Args:
        sigmas: ``[L]`` strictly decreasing positive levels (stored as a buffer).
        rtol: relative tolerance for matching a σ to a level.
    """

    sigmas: Tensor

    def __init__(self, sigmas: Tensor, rtol: float = 1e-4) -> None:
        super().__init__()
        sigmas = as_sigmas(sigmas).detach().clone()
        self.register_buffer("sigmas", sigmas, persistent=False)
        self.rtol = rtol
        self._last: tuple[Tensor, int, Tensor] | None = None

    @property
    def num_levels(self) -> int:
        return self.sigmas.numel()

    @torch.compiler.disable  # type: ignore[untyped-decorator]  # data-dependent: not compiled
    def forward(self, sigma: Tensor) -> Tensor:
        """``sigma: [B]`` (or a scalar) → ``LongTensor [B]`` of level indices."""
        last = self._last
        if last is not None and last[0] is sigma and last[1] == sigma._version:
            return last[2]
        levels = self.sigmas.to(device=sigma.device, dtype=torch.float64)
        s = sigma.detach().to(torch.float64).reshape(-1)
        rel = (s[:, None] - levels[None, :]).abs() / levels[None, :]
        best, index = rel.min(dim=1)
        bad = ~(best <= self.rtol)
        if bool(bad.any()):
            first = s[bad][0].item()
            raise ValueError(
                f"sigma={first!r} is not one of this network's noise levels "
                f"(relative tolerance {self.rtol}); schedule: {self.sigmas.tolist()}"
            )
        if not _traced(index):  # a tensor of a torch.func transform must not outlive it
            self._last = (sigma, sigma._version, index)
        return index
