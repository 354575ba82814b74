"""Bilinear upsampling with ``align_corners=True``, as RefineNet's multi-resolution fusion uses it.

``F.interpolate(mode="bilinear")`` is the path everywhere except inside a ``torch.compile``\\d
region with gradients enabled: there torch 2.13's inductor backend on the CPU returns **zero
gradients** through it (forward values are right), so every layer below the upsampling stops
learning with no error. Measured on RefineNet by ``benchmarks/training.py``'s output check: 129 of 173 parameters got
zero gradients in bf16 compiled training at 8×8, and in float32 compiled training at the MNIST
configuration (28×28, width 64, batch 16) 143 of 173 parameters were off (the gradient 0.75
relative to eager's); none in eager mode. The smallest reproducer found is a convolution at half
resolution, one multi-resolution fusion (``F.interpolate`` to full size) and the chained residual
pooling after it (``tests/test_train_step.py``): in float32 it fails from 16×16 up (8×8
compiles correctly), under bf16 autocast already at 8×8; a convolution and ``F.interpolate``
alone, or the fusion alone, compile correctly, and ``backend="aot_eager"`` is unaffected. In
compiled regions with gradients enabled the same map is written as two small matrix products,
which compile correctly; without gradients (sampling) the compiled forward of ``F.interpolate``
is right and faster, so it stays.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _weights(n_out: int, n_in: int, like: Tensor) -> Tensor:
    """``[n_out, n_in]`` linear-interpolation weights for ``align_corners=True``."""
    if n_out == 1 or n_in == 1:
        src = torch.zeros(n_out, dtype=torch.float64)
    else:
        src = torch.arange(n_out, dtype=torch.float64) * ((n_in - 1) / (n_out - 1))
    low = src.floor().clamp(max=n_in - 1)
    frac = src - low
    low_i = low.long()
    high_i = (low_i + 1).clamp(max=n_in - 1)
    rows = torch.arange(n_out)
    w = torch.zeros(n_out, n_in, dtype=torch.float64)
    w.index_put_((rows, low_i), 1 - frac, accumulate=True)
    w.index_put_((rows, high_i), frac, accumulate=True)
    return w.to(device=like.device, dtype=like.dtype)


def upsample_bilinear(x: Tensor, size: tuple[int, int]) -> Tensor:
    """``F.interpolate(x, size, mode="bilinear", align_corners=True)`` for ``[B, C, H, W]``,
    as matrix products where the compiler would lose its gradient (see the module docstring)."""
    if torch.compiler.is_compiling() and torch.is_grad_enabled():
        # Only where a backward may follow: the compiled forward of F.interpolate is right and
        # faster (compiled sampling 1.75x eager with the products, 1.88x without). The products
        # in at least float32, as eager's interpolation under autocast; autocast off so that
        # they are not cast back down.
        with torch.autocast(x.device.type, enabled=False):
            h = x if x.dtype == torch.float64 else x.float()
            h_weights = _weights(size[0], x.shape[-2], h)
            w_weights = _weights(size[1], x.shape[-1], h)
            return torch.einsum("ih,bchw,jw->bcij", h_weights, h, w_weights).to(x.dtype)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)
