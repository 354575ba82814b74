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
    names the σ and the schedule. Checking needs the values on the host, so a lookup of a CUDA σ
    synchronises; samplers call a model many times with the *same* σ tensor, so the last lookup is
    cached and repeated calls make no host synchronisation.

    The cache is keyed on the tensor's identity, its version counter (bumped by every in-place
    operation) and its data pointer (``sigma.data = other``). On the CPU, where reading values
    costs no synchronisation, the values are also compared with the cached copy, so any change
    is checked again. Limitation: on other devices a write that bypasses the version counter,
    ``sigma.data.copy_(...)`` or ``sigma.data.mul_(...)``, is not seen, and the cached levels
    are returned for the changed values without the check. Pass a new tensor (or write in place
    without ``.data``) to change σ.

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
        # (σ, its version, its data pointer, a copy of its values on the CPU, the levels)
        self._last: tuple[Tensor, int, int, Tensor | None, Tensor] | None = None

    @property
    def num_levels(self) -> int:
        return self.sigmas.numel()

    @torch.compiler.disable  # type: ignore[untyped-decorator]  # data-dependent: not compiled
    def forward(self, sigma: Tensor) -> Tensor:
        """``sigma: [B]`` (or a scalar) → ``LongTensor [B]`` of level indices."""
        last = self._last
        if (
            last is not None
            and last[0] is sigma
            and last[1] == sigma._version
            and last[2] == sigma.data_ptr()
            and (last[3] is None or torch.equal(last[3], sigma))
        ):
            return last[4]
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
            values = sigma.detach().clone() if sigma.device.type == "cpu" else None
            self._last = (sigma, sigma._version, sigma.data_ptr(), values, index)
        return index
