"""A real orthonormal basis in which every real circular convolution is diagonal up to a rotation
(private; the SVD of :class:`~ncsn.inverse.Blur` with ``padding="circular"``).

The unitary 2-D DFT X = F·x of a real image is Hermitian, X_k = conj(X_{−k}). Pairing each
frequency k with −k, the real coordinates

    r_k = √2·Re X_k  (k in the first half),  √2·Im X_k  (k in the second half),  Re X_k  (k = −k)

are an orthonormal change of basis of the real images (Parseval: Σ r_k² = Σ |X_k|² = ‖x‖²), with
"halves" ordered by the flat index of k and −k. A circular convolution multiplies X_k by its
kernel's K̂_k = |K̂_k|·e^{iφ_k} (Hermitian too): in the pair (k, −k) it scales by |K̂_k| and rotates
by φ_k. So with V the basis above and U the same basis rotated by φ, A = U·diag(|K̂|)·Vᵀ.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__: list[str] = []

_SQRT2 = math.sqrt(2.0)


def halves(height: int, width: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """``(first, second, negate)``: bool ``[H, W]`` masks of the frequencies k whose flat index is
    below (above) that of −k, and the ``[H·W]`` flat index of −k for each k."""
    rows = torch.arange(height, device=device)
    cols = torch.arange(width, device=device)
    flat = (rows[:, None] * width + cols[None, :]).reshape(-1)
    negate = (((-rows) % height)[:, None] * width + ((-cols) % width)[None, :]).reshape(-1)
    first = (flat < negate).reshape(height, width)
    second = (flat > negate).reshape(height, width)
    return first, second, negate


def pack(spectrum: Tensor, first: Tensor, second: Tensor) -> Tensor:
    """The real coordinates r of a Hermitian ``[..., H, W]`` spectrum (see the module)."""
    return torch.where(
        first,
        _SQRT2 * spectrum.real,
        torch.where(second, _SQRT2 * spectrum.imag, spectrum.real),
    )


def unpack(coords: Tensor, first: Tensor, second: Tensor, negate: Tensor) -> Tensor:
    """The Hermitian spectrum whose real coordinates are ``coords`` ``[..., H, W]``."""
    shape = coords.shape
    flat = coords.reshape(*shape[:-2], -1)
    mirrored = flat[..., negate].reshape(shape)  # r_{−k}
    low = torch.complex(coords, -mirrored) / _SQRT2  # k in the first half
    high = torch.complex(mirrored, coords) / _SQRT2  # k in the second half
    real = torch.complex(coords, torch.zeros_like(coords))
    return torch.where(first, low, torch.where(second, high, real))
