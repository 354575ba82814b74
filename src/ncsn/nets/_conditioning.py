"""Mapping noise values σ to level indices for networks conditioned on a finite schedule."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ncsn._checks import as_sigma_tensor, as_sigmas, to_device_of

__all__ = ["LevelLookup", "check_labels", "level_indices"]


def check_labels(labels: object, batch: int, num_levels: int, name: str = "labels") -> Tensor:
    """``labels`` checked as ``[batch]`` integer indices in ``[0, num_levels)`` (level indices,
    or class labels with ``name="y"``).

    The range is checked on the CPU only, outside compiled code (reading values elsewhere would
    synchronise with the device or break the graph; on CUDA an index out of range still fails,
    with a device-side assertion).
    """
    if not isinstance(labels, Tensor) or labels.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"{name} must be an int64 or int32 tensor; got {labels!r}")
    if labels.shape != (batch,):
        raise ValueError(
            f"{name} must have shape [B]={[batch]}; got {name}.shape={tuple(labels.shape)}"
        )
    if labels.device.type == "cpu" and batch > 0 and not torch.compiler.is_compiling():
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= num_levels:
            raise ValueError(f"{name} must lie in [0, {num_levels}); got {name}={labels.tolist()}")
    return labels


def level_indices(lookup: LevelLookup, sigma: Tensor | float, x: Tensor) -> Tensor:
    """The ``[B]`` level indices of ``sigma`` (a scalar or ``[B]``) in ``lookup``'s schedule, on
    x's device. A σ tensor is looked up where it is (a CPU σ is checked at once, even for x on an
    accelerator), in its own floating dtype; bool and complex are refused."""
    if isinstance(sigma, Tensor):
        if sigma.dtype == torch.bool or sigma.is_complex():
            raise TypeError(f"sigma must hold real numbers; got dtype {sigma.dtype}")
    else:
        sigma = as_sigma_tensor(sigma, x, dtype=torch.float64)
    if sigma.ndim == 0:
        sigma = sigma.expand(x.shape[0])
    elif sigma.shape != (x.shape[0],):
        raise ValueError(
            f"sigma must be a scalar or have shape [B]={[x.shape[0]]}; "
            f"got sigma.shape={tuple(sigma.shape)}"
        )
    return to_device_of(lookup(sigma), x, "sigma")


class LevelLookup(nn.Module):
    """Maps each σ of a batch to the index of the nearest level of a fixed schedule.

    A σ whose relative distance to every level exceeds ``rtol`` is an error naming the σ and the
    schedule. One rule on every device: the lookup itself (nearest level) never reads values
    back to the host; the check does so only where that is free. On the CPU a bad σ raises
    :class:`ValueError` at once. On an accelerator the check is asynchronous
    (:func:`torch._assert_async`): a training step or sampler loop on CUDA makes no host
    synchronisation per forward pass, and a bad σ fails the next time the host waits for the
    device, with a device-side assertion instead of a ``ValueError``.

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

    @property
    def num_levels(self) -> int:
        return self.sigmas.numel()

    @torch.compiler.disable  # type: ignore[untyped-decorator]  # data-dependent: not compiled
    def forward(self, sigma: Tensor) -> Tensor:
        """``sigma: [B]`` (or a scalar) → ``LongTensor [B]`` of level indices."""
        dtype = torch.float32 if sigma.device.type == "mps" else torch.float64
        levels = self.sigmas.to(device=sigma.device, dtype=dtype)
        s = sigma.detach().to(dtype).reshape(-1)
        rel = (s[:, None] - levels[None, :]).abs() / levels[None, :]
        best, index = rel.min(dim=1)
        bad = ~(best <= self.rtol)
        if s.device.type == "cpu":
            if bool(bad.any()):
                first = s[bad][0].item()
                raise ValueError(
                    f"sigma={first!r} is not one of this network's noise levels "
                    f"(relative tolerance {self.rtol}); schedule: {self.sigmas.tolist()}"
                )
        else:
            torch._assert_async(
                ~bad.any(),
                f"a sigma is not one of this network's noise levels (relative tolerance "
                f"{self.rtol}); schedule: {self.sigmas.tolist()}",
            )
        return index
