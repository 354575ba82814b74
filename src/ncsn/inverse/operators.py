"""Linear operators y = A·x for inverse problems: the :class:`LinearOperator` protocol, closed-form
singular value decompositions (:class:`SVD`), and the operators of the usual restoration tasks.

An operator maps a batch ``x: [B, *in_shape]`` to ``y: [B, *out_shape]`` (:meth:`forward`) and
back with its transpose (:meth:`adjoint`). Where A = U·diag(s)·Vᵀ is known in closed form its
:meth:`svd` gives the four orthogonal maps and the singular values without building a matrix;
SNIPS and DDRM need it, the annealed Langevin posterior sampler and DPS do not.

==============================  ========================================  ======================
operator                        task                                      SVD
==============================  ========================================  ======================
:class:`Identity`               denoising                                 trivial
:class:`Mask`                   inpainting (Algorithm 2's masks)          trivial
:class:`Downsample`             super-resolution (average pooling ×k)     per k×k block
:class:`Blur`                   deblurring (a user kernel)                FFT (circular only)
:class:`ChannelMix`             colourisation (colour to grey)            per pixel
:class:`GaussianProjection`     compressed sensing                        numerical, once
:class:`Compose`                two operators, one after the other        none
==============================  ========================================  ======================

:func:`check_operator` checks a user's operator (the adjoint identity ⟨A·x, y⟩ = ⟨x, Aᵀ·y⟩ and its
SVD); :func:`to_matrix` builds the dense ``[M, N]`` matrix of a small one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal, NamedTuple, Protocol, runtime_checkable

import torch
from torch import Tensor
from torch.nn import functional as F

from ncsn._checks import check_generator_type, has_values, positive_float, positive_int
from ncsn.inverse import _fourier

__all__ = [
    "SVD",
    "Blur",
    "ChannelMix",
    "Compose",
    "Downsample",
    "GaussianProjection",
    "Identity",
    "LinearOperator",
    "Mask",
    "check_operator",
    "gaussian_kernel",
    "operator_svd",
    "to_matrix",
]


@runtime_checkable
class LinearOperator(Protocol):
    """A linear map y = A·x between batches of tensors, with its transpose.

    ``forward(x)`` takes ``x: [B, *in_shape]`` to ``[B, *out_shape]``; ``adjoint(y)`` takes
    ``y: [B, *out_shape]`` to ``[B, *in_shape]`` and satisfies ⟨A·x, y⟩ = ⟨x, Aᵀ·y⟩ per example.
    An operator may also have ``svd() -> SVD | None``: its singular value decomposition in
    closed form (``None`` where it has none); :func:`operator_svd` reads it.
    """

    @property
    def in_shape(self) -> tuple[int, ...]: ...

    @property
    def out_shape(self) -> tuple[int, ...]: ...

    def forward(self, x: Tensor, /) -> Tensor: ...

    def adjoint(self, y: Tensor, /) -> Tensor: ...


class SVD(NamedTuple):
    """A = U·diag(s)·Vᵀ as four maps and the singular values, in one "spectral" layout of
    N = prod(in_shape) coordinates.

    ``v_t`` takes ``x: [B, *in_shape]`` to its coordinates Vᵀ·x ``[B, N]`` and ``v`` back (V is
    orthogonal); ``singular_values`` s ``[N]`` (or ``[B, N]`` for an operator that differs per
    example) pairs coordinate j of Vᵀ·x with coordinate j of ``u_t(y)`` ``[B, N]``, so that

        u_t(A·x) = s ⊙ v_t(x),    A·x = u(s ⊙ v_t(x)),    Aᵀ·y = v(s ⊙ u_t(y)).

    ``u`` takes ``[B, N]`` to ``[B, *out_shape]`` and is an isometry on the coordinates with
    s_j > 0; ``u_t`` is its transpose (the components of y outside A's range are dropped, and the
    coordinates with s_j = 0 hold nothing a sampler reads).
    """

    singular_values: Tensor
    v_t: Callable[[Tensor], Tensor]
    v: Callable[[Tensor], Tensor]
    u_t: Callable[[Tensor], Tensor]
    u: Callable[[Tensor], Tensor]


# ------------------------------------------------------------------------------------- helpers
# Singular values below this fraction of the largest are round-off of an exact 0.
_ZERO = 1e-12


def _shape(shape: object, name: str = "shape", *, min_dims: int = 0) -> tuple[int, ...]:
    """A shape: a sequence of at least ``min_dims`` positive ints."""
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence):
        raise TypeError(f"{name} must be a sequence of ints; got {name}={shape!r}")
    dims = tuple(positive_int(d, f"{name}[{i}]") for i, d in enumerate(shape))
    if len(dims) < min_dims:
        raise ValueError(f"{name} must have at least {min_dims} dims; got {name}={list(dims)}")
    return dims


def _check_tensor(t: object, shape: tuple[int, ...], name: str, where: str) -> Tensor:
    """``t`` must be a real floating ``[B, *shape]`` tensor."""
    if not isinstance(t, Tensor):
        raise TypeError(f"{where}: {name} must be a torch.Tensor; got {type(t).__name__}")
    if not torch.is_floating_point(t):
        raise TypeError(
            f"{where}: {name} must be a real floating-point tensor; got dtype {t.dtype}"
        )
    if tuple(t.shape[1:]) != shape or t.ndim != len(shape) + 1:
        dims = ", ".join(str(d) for d in shape)
        raise ValueError(f"{where}: {name} must have shape [B, {dims}]; got {tuple(t.shape)}")
    return t


def _real_tensor(value: object, name: str) -> Tensor:
    """A parameter (a tensor, array or nested sequence of real numbers) as a float64 tensor on
    its own device, finite."""
    if isinstance(value, Tensor):
        if value.dtype == torch.bool or value.is_complex():
            raise TypeError(f"{name} must hold real numbers; got dtype {value.dtype}")
        if not has_values(value):
            raise ValueError(f"{name} must hold values; got a tensor on the meta device")
        t = value.detach().to(torch.float64)
    else:
        try:
            t = torch.as_tensor(value, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(
                f"{name} must be real numbers or a tensor of them; got {value!r}"
            ) from err
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite; got {name}={t.tolist()}")
    return t


class _Held:
    """A tensor an operator holds, cast to the device and dtype of each input once."""

    def __init__(self, tensor: Tensor) -> None:
        self.tensor = tensor
        self._cache: dict[tuple[torch.device, torch.dtype], Tensor] = {}

    def like(self, x: Tensor, dtype: torch.dtype | None = None) -> Tensor:
        key = (x.device, x.dtype if dtype is None else dtype)
        cast = self._cache.get(key)
        if cast is None:
            cast = self.tensor.to(device=key[0], dtype=key[1])
            self._cache[key] = cast
        return cast


def _fft_dtype(x: Tensor) -> torch.dtype:
    """The real dtype FFTs run in for x (float32 at least: torch has no half-precision CPU FFT)."""
    return torch.promote_types(x.dtype, torch.float32)


def _flat(x: Tensor) -> Tensor:
    return x.reshape(x.shape[0], -1)


def operator_svd(operator: object) -> SVD | None:
    """The closed-form :class:`SVD` of ``operator``, or ``None`` where it has none.

    Args:
        operator: a :class:`LinearOperator`; one without an ``svd`` method has none.

    Returns:
        ``operator.svd()`` (an :class:`SVD` or ``None``), or ``None``.

    Raises:
        TypeError: ``svd()`` returned something other than an :class:`SVD` or ``None``.

    Example:
        >>> ncsn.inverse.operator_svd(ncsn.inverse.Blur((1, 8, 8), torch.ones(3, 3) / 9)) is None
        False
        >>> ncsn.inverse.operator_svd(ncsn.inverse.Blur((1, 8, 8), torch.ones(3, 3) / 9, padding="zeros"))
    """
    method = getattr(operator, "svd", None)
    if method is None:
        return None
    if not callable(method):
        raise TypeError(f"operator.svd must be a method; got {method!r}")
    result = method()
    if result is not None and not isinstance(result, SVD):
        raise TypeError(
            f"operator.svd() must return an ncsn.inverse.SVD or None; got {type(result).__name__}"
        )
    return result


# ----------------------------------------------------------------------------------- operators
class Identity:
    """A = I: denoising, y = x + σ_y·n.

    Args:
        shape: the event shape of x (and y), e.g. ``(1, 28, 28)``, ``(2,)`` or ``()``.

    Raises:
        ValueError, TypeError: a shape that is not a sequence of positive ints.

    Example:
        >>> A = ncsn.inverse.Identity((2,))
        >>> A.forward(torch.ones(3, 2)).shape
        torch.Size([3, 2])
    """

    def __init__(self, shape: Sequence[int]) -> None:
        self._shape = _shape(shape)

    @property
    def in_shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self._shape

    def forward(self, x: Tensor, /) -> Tensor:
        """x itself ``[B, *shape]`` (a copy)."""
        return _check_tensor(x, self._shape, "x", "Identity.forward").clone()

    def adjoint(self, y: Tensor, /) -> Tensor:
        """y itself ``[B, *shape]`` (a copy)."""
        return _check_tensor(y, self._shape, "y", "Identity.adjoint").clone()

    def svd(self) -> SVD:
        """U = V = I, s = 1."""
        shape = self._shape
        return SVD(
            torch.ones(math.prod(shape), dtype=torch.float64),
            _flat,
            lambda c: c.reshape(c.shape[0], *shape),
            _flat,
            lambda c: c.reshape(c.shape[0], *shape),
        )

    def __repr__(self) -> str:
        return f"Identity({list(self._shape)})"


class Mask:
    """A = diag(m) with a 0/1 mask m: inpainting. y has x's shape, 0 where m = 0.

    ``Mask(inpainting_mask(...))`` is the operator of Algorithm 2: with noiseless y, the
    annealed Langevin posterior sampler with ``projection=True`` is
    :func:`ncsn.samplers.inpaint` with :class:`~ncsn.samplers.AnnealedLangevin`.

    Args:
        mask: bool or 0/1 tensor of the event shape (1 = known), or ``[B, *event]`` with
            ``batched=True`` (one mask per example; the batch of x must then be B).
        batched: whether the first dim of ``mask`` is the batch.

    Raises:
        TypeError: a mask that is not a tensor of bools or real numbers.
        ValueError: values other than 0 and 1, a 0-d mask, or an empty one.

    Example:
        >>> A = ncsn.inverse.Mask(torch.tensor([True, False]))
        >>> A.forward(torch.tensor([[2.0, 3.0]]))
        tensor([[2., 0.]])
    """

    def __init__(self, mask: Tensor, *, batched: bool = False) -> None:
        if not isinstance(mask, Tensor):
            raise TypeError(
                f"mask must be a tensor of bools or 0/1 values; got {type(mask).__name__}"
            )
        if mask.is_complex():
            raise TypeError(f"mask must hold bools or real 0/1 values; got dtype {mask.dtype}")
        if not isinstance(batched, bool):
            raise TypeError(f"batched must be a bool; got batched={batched!r}")
        if mask.ndim < int(batched) or mask.numel() == 0:
            raise ValueError(
                f"mask must have {'[B, *event]' if batched else 'the event shape'} with at least "
                f"one entry; got shape {tuple(mask.shape)}"
            )
        if mask.dtype != torch.bool:
            if has_values(mask) and not bool(((mask == 0) | (mask == 1)).all()):
                bad = mask[(mask != 0) & (mask != 1)][:5].tolist()
                raise ValueError(
                    f"mask must hold only 0 and 1 (1 = known); got values such as {bad}"
                )
            mask = mask == 1
        self.mask = mask
        self.batched = batched
        self._shape = tuple(mask.shape[1:] if batched else mask.shape)
        self._values = _Held(mask)

    @property
    def in_shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self._shape

    def _m(self, t: Tensor, name: str, where: str) -> Tensor:
        _check_tensor(t, self._shape, name, where)
        if self.batched and t.shape[0] != self.mask.shape[0]:
            raise ValueError(
                f"{where}: {name} must have the batch of the mask, {self.mask.shape[0]}; got "
                f"{tuple(t.shape)}"
            )
        m = self._values.like(t)
        return m if self.batched else m[None]

    def forward(self, x: Tensor, /) -> Tensor:
        """m ⊙ x ``[B, *event]``."""
        return x * self._m(x, "x", "Mask.forward")

    def adjoint(self, y: Tensor, /) -> Tensor:
        """m ⊙ y ``[B, *event]`` (A is symmetric)."""
        return y * self._m(y, "y", "Mask.adjoint")

    def svd(self) -> SVD:
        """U = V = I, s = m (per example when ``batched``)."""
        shape = self._shape
        values = self.mask.to(torch.float64)
        s = values.reshape(values.shape[0], -1) if self.batched else values.reshape(-1)
        return SVD(
            s,
            _flat,
            lambda c: c.reshape(c.shape[0], *shape),
            _flat,
            lambda c: c.reshape(c.shape[0], *shape),
        )

    def __repr__(self) -> str:
        known = int(self.mask.sum()) if has_values(self.mask) else "?"
        batch = f", batched (B = {self.mask.shape[0]})" if self.batched else ""
        return f"Mask(event {list(self._shape)}, {known} known entries{batch})"


def _householder(k: int) -> Tensor:
    """A symmetric orthogonal k²×k² matrix whose first column is the block mean direction 1/k.

    The reflection Q = I − 2wwᵀ/‖w‖² with w = e₁ − 1/k maps e₁ to 1/k (the all-ones unit vector
    of a k×k block); Q = I for k = 1.
    """
    n = k * k
    unit = torch.full((n,), 1.0 / k, dtype=torch.float64)
    w = -unit
    w[0] += 1.0
    norm2 = float(w @ w)
    q = torch.eye(n, dtype=torch.float64)
    if norm2 > 0.0:
        q -= 2.0 * torch.outer(w, w) / norm2
    return q


class Downsample:
    """Average pooling by k over the last two dims: super-resolution ×k.

    y[..., i, j] = (1/k²)·Σ of the k×k block of x at (i, j). Any leading event dims (channels)
    are kept: x ``[B, *lead, H, W]`` → y ``[B, *lead, H/k, W/k]``.

    SVD. Each block's row is (1/k²)·1ᵀ = (1/k)·eᵀ with e = 1/k the unit all-ones vector of the
    block (‖1‖ = k): one singular value 1/k with right singular vector e; the other k² − 1
    directions of the block are its null space. V applies, per block, a reflection Q whose first
    column is e (a Householder matrix); s = 1/k on each block's first coordinate; U = I.

    Args:
        shape: the event shape of x, at least ``[H, W]``; H and W divisible by ``factor``.
        factor: k ≥ 1.

    Raises:
        ValueError: H or W not divisible by k, a shape of fewer than two dims.

    Example:
        >>> A = ncsn.inverse.Downsample((1, 4, 4), 2)
        >>> A.forward(torch.arange(16.0).reshape(1, 1, 4, 4))
        tensor([[[[ 2.5000,  4.5000],
                  [10.5000, 12.5000]]]])
    """

    def __init__(self, shape: Sequence[int], factor: int) -> None:
        self._shape = _shape(shape, min_dims=2)
        self.factor = positive_int(factor, "factor")
        *lead, h, w = self._shape
        if h % self.factor or w % self.factor:
            raise ValueError(
                f"factor={self.factor} must divide the image height and width; got shape "
                f"{list(self._shape)}"
            )
        self._out = (*lead, h // self.factor, w // self.factor)
        self._q = _Held(_householder(self.factor))

    @property
    def in_shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self._out

    def forward(self, x: Tensor, /) -> Tensor:
        """The k×k block means ``[B, *lead, H/k, W/k]``."""
        _check_tensor(x, self._shape, "x", "Downsample.forward")
        return self._blocks(x).mean(-1)

    def adjoint(self, y: Tensor, /) -> Tensor:
        """Each value spread over its block, divided by k² ``[B, *lead, H, W]``."""
        _check_tensor(y, self._out, "y", "Downsample.adjoint")
        k = self.factor
        blocks = (y / (k * k))[..., None].expand(*y.shape, k * k)
        return self._unblocks(blocks)

    def _blocks(self, x: Tensor) -> Tensor:
        """``[B, *lead, H, W]`` → ``[B, *lead, H/k, W/k, k²]``."""
        k = self.factor
        *front, h, w = x.shape
        x = x.reshape(*front, h // k, k, w // k, k).transpose(-3, -2)
        return x.reshape(*front, h // k, w // k, k * k)

    def _unblocks(self, blocks: Tensor) -> Tensor:
        k = self.factor
        *front, hk, wk, _ = blocks.shape
        x = blocks.reshape(*front, hk, wk, k, k).transpose(-3, -2)
        return x.reshape(*front, hk * k, wk * k)

    def svd(self) -> SVD:
        """Per block: V = Q (first column 1/k), s = (1/k, 0, …, 0), U = I."""
        k = self.factor
        s = torch.zeros((*self._out, k * k), dtype=torch.float64)
        s[..., 0] = 1.0 / k
        out = self._out

        def v_t(x: Tensor) -> Tensor:
            return _flat(self._blocks(x) @ self._q.like(x))  # Q symmetric: Qᵀ = Q

        def v(c: Tensor) -> Tensor:
            blocks = c.reshape(c.shape[0], *out, k * k) @ self._q.like(c)
            return self._unblocks(blocks)

        def u_t(y: Tensor) -> Tensor:
            c = torch.zeros((*y.shape, k * k), dtype=y.dtype, device=y.device)
            c[..., 0] = y
            return _flat(c)

        def u(c: Tensor) -> Tensor:
            return c.reshape(c.shape[0], *out, k * k)[..., 0].clone()

        return SVD(s.reshape(-1), v_t, v, u_t, u)

    def __repr__(self) -> str:
        return f"Downsample({list(self._shape)}, factor={self.factor})"


def gaussian_kernel(size: int, std: float) -> Tensor:
    """A ``[size, size]`` Gaussian blur kernel with standard deviation ``std`` pixels, summing to 1.

    Args:
        size: odd kernel width ≥ 1.
        std: σ > 0 in pixels.

    Returns:
        A float64 ``[size, size]`` tensor, exp(−(i² + j²)/(2σ²)) normalised, centred.

    Raises:
        ValueError: an even or non-positive size, a non-positive std.

    Example:
        >>> k = ncsn.inverse.gaussian_kernel(3, 1.0)
        >>> k.shape, round(float(k.sum()), 6)
        (torch.Size([3, 3]), 1.0)
    """
    size = positive_int(size, "size")
    std = positive_float(std, "std")
    if size % 2 == 0:
        raise ValueError(f"size must be odd (the kernel is centred); got size={size}")
    r = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * std * std))
    return g / g.sum()


class Blur:
    """Convolution with a user kernel over the last two dims: deblurring.

    y[i, j] = Σ_{a,b} k[a, b]·x[i − a + c_h, j − b + c_w], with the kernel's centre
    (c_h, c_w) = (k_h // 2, k_w // 2), the same kernel for every leading index (channel). With
    ``padding="circular"`` the indices wrap around (its SVD is the FFT's, see below); with
    ``"zeros"`` x is 0 outside the image (the adjoint is the transposed convolution, cropped; no
    closed-form SVD).

    SVD (circular). A circular convolution is diagonal in the Fourier basis: Y = K̂·X with K̂ the
    DFT of the kernel placed with its centre at index 0. In the real orthonormal Fourier basis
    V (each frequency pair (k, −k) as √2·Re and √2·Im), A scales the pair by |K̂_k| and rotates
    it by the phase of K̂_k: s = |K̂| and U = V rotated by that phase.

    Args:
        shape: event shape of x, at least ``[H, W]``.
        kernel: ``[k_h, k_w]`` real, finite, with k_h ≤ H and k_w ≤ W.
        padding: ``"circular"`` or ``"zeros"``.

    Raises:
        ValueError: a kernel that is not 2-D, larger than the image or not finite; an unknown
            padding.
        TypeError: a kernel that is not real numbers.

    Example:
        >>> A = ncsn.inverse.Blur((1, 8, 8), ncsn.inverse.gaussian_kernel(3, 1.0))
        >>> A.forward(torch.ones(2, 1, 8, 8)).mean().item()     # a normalised kernel keeps a constant
        1.0
    """

    def __init__(
        self,
        shape: Sequence[int],
        kernel: Tensor | Sequence[Sequence[float]],
        *,
        padding: Literal["circular", "zeros"] = "circular",
    ) -> None:
        self._shape = _shape(shape, min_dims=2)
        k = _real_tensor(kernel, "kernel")
        if k.ndim != 2 or k.numel() == 0:
            raise ValueError(
                f"kernel must be a non-empty 2-D tensor [kh, kw]; got shape {tuple(k.shape)}"
            )
        h, w = self._shape[-2:]
        if k.shape[0] > h or k.shape[1] > w:
            raise ValueError(
                f"kernel of shape {tuple(k.shape)} must fit in the image {h}x{w} of shape "
                f"{list(self._shape)}"
            )
        if padding not in ("circular", "zeros"):
            raise ValueError(f"padding must be 'circular' or 'zeros'; got padding={padding!r}")
        self.kernel = k
        self.padding = padding
        self._weight = _Held(k.flip(0, 1)[None, None])  # correlation with the flipped kernel
        centre = (k.shape[0] // 2, k.shape[1] // 2)
        placed = torch.zeros((h, w), dtype=torch.float64)
        placed[: k.shape[0], : k.shape[1]] = k
        spectrum = torch.fft.fft2(torch.roll(placed, (-centre[0], -centre[1]), (0, 1)))
        magnitude = spectrum.abs()
        # Frequencies the kernel removes come out at round-off (1e-17), not 0: they are 0.
        magnitude = torch.where(magnitude > _ZERO * magnitude.max(), magnitude, 0.0)
        phase = torch.where(magnitude > 0, spectrum / magnitude.clamp_min(1e-300), 1.0 + 0j)
        self._spectrum = _Held(spectrum)
        self._magnitude = magnitude
        self._phase = _Held(phase)
        first, second, negate = _fourier.halves(h, w, torch.device("cpu"))
        self._first, self._second, self._negate = _Held(first), _Held(second), negate
        kh, kw = k.shape
        # pad (left, right, top, bottom) so that the correlation with the flipped kernel keeps H×W
        self._pads = (kw - 1 - centre[1], centre[1], kh - 1 - centre[0], centre[0])

    @property
    def in_shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self._shape

    def _planes(self, t: Tensor) -> Tensor:
        h, w = self._shape[-2:]
        return t.reshape(-1, 1, h, w)

    def _spectral(self, t: Tensor, complex_factor: Tensor) -> Tensor:
        dtype = _fft_dtype(t)
        spectrum = torch.fft.fft2(t.to(dtype))
        return torch.fft.ifft2(spectrum * complex_factor).real.to(t.dtype)

    def forward(self, x: Tensor, /) -> Tensor:
        """k ∗ x ``[B, *shape]`` (circular or zero-padded)."""
        _check_tensor(x, self._shape, "x", "Blur.forward")
        if self.padding == "circular":
            cdtype = _complex(x)
            return self._spectral(x, self._spectrum.like(x, cdtype))
        weight = self._weight.like(x)
        return F.conv2d(F.pad(self._planes(x), self._pads), weight).reshape(x.shape)

    def adjoint(self, y: Tensor, /) -> Tensor:
        """The transposed convolution ``[B, *shape]`` (correlation with the kernel)."""
        _check_tensor(y, self._shape, "y", "Blur.adjoint")
        if self.padding == "circular":
            cdtype = _complex(y)
            return self._spectral(y, self._spectrum.like(y, cdtype).conj())
        h, w = self._shape[-2:]
        left, _, top, _ = self._pads
        full = F.conv_transpose2d(self._planes(y), self._weight.like(y))
        return full[..., top : top + h, left : left + w].reshape(y.shape)

    def svd(self) -> SVD | None:
        """The real Fourier SVD (circular padding); ``None`` for zero padding."""
        if self.padding != "circular":
            return None
        shape = self._shape
        lead = shape[:-2]
        s = self._magnitude.expand(*lead, *shape[-2:]).reshape(-1).clone()

        def coords(t: Tensor, rotate: bool) -> Tensor:
            cdtype = _complex(t)
            spectrum = torch.fft.fft2(t.to(_fft_dtype(t)), norm="ortho")
            if rotate:
                spectrum = spectrum * self._phase.like(t, cdtype).conj()
            first, second = self._first.like(t, torch.bool), self._second.like(t, torch.bool)
            return _flat(_fourier.pack(spectrum, first, second).to(t.dtype))

        def image(c: Tensor, rotate: bool) -> Tensor:
            planes = c.reshape(c.shape[0], *shape).to(_fft_dtype(c))
            first, second = self._first.like(c, torch.bool), self._second.like(c, torch.bool)
            negate = self._negate.to(c.device)
            spectrum = _fourier.unpack(planes, first, second, negate)
            if rotate:
                spectrum = spectrum * self._phase.like(c, _complex(c))
            return torch.fft.ifft2(spectrum, norm="ortho").real.to(c.dtype)

        return SVD(
            s,
            lambda x: coords(x, False),
            lambda c: image(c, False),
            lambda y: coords(y, True),
            lambda c: image(c, True),
        )

    def __repr__(self) -> str:
        return (
            f"Blur({list(self._shape)}, kernel {tuple(self.kernel.shape)}, "
            f"padding={self.padding!r})"
        )


def _complex(t: Tensor) -> torch.dtype:
    return torch.complex128 if _fft_dtype(t) == torch.float64 else torch.complex64


class _Dense:
    """A dense matrix W ``[M, C]`` applied along one axis of ``[B, C, P]``, with its SVD.

    W = U_w·diag(s_w)·V_wᵀ (``torch.linalg.svd``, computed once in float64): the spectral
    coordinates are V_wᵀ along the axis, the r = min(M, C) singular values padded with zeros to
    C; ``u_t`` keeps the first min(M, C) rows of U_wᵀ·y (padded to C), ``u`` inverts that.
    """

    def __init__(self, matrix: Tensor) -> None:
        self.matrix = matrix
        self._w = _Held(matrix)
        self._svd: tuple[Tensor, _Held, _Held] | None = None

    def apply(self, x: Tensor) -> Tensor:  # [B, C, P] -> [B, M, P]
        return torch.einsum("mc,bcp->bmp", self._w.like(x), x)

    def transpose(self, y: Tensor) -> Tensor:  # [B, M, P] -> [B, C, P]
        return torch.einsum("mc,bmp->bcp", self._w.like(y), y)

    def decomposition(self) -> tuple[Tensor, _Held, _Held]:
        if self._svd is None:
            u, s, vh = torch.linalg.svd(self.matrix, full_matrices=True)
            s = torch.where(s > _ZERO * s.max(), s, 0.0)  # a rank deficiency at round-off is 0
            padded = torch.zeros(self.matrix.shape[1], dtype=torch.float64)
            padded[: s.numel()] = s
            self._svd = padded, _Held(u), _Held(vh)
        return self._svd

    def v_t(self, x: Tensor) -> Tensor:  # [B, C, P] -> [B, C, P]
        _, _, vh = self.decomposition()
        return torch.einsum("dc,bcp->bdp", vh.like(x), x)

    def v(self, c: Tensor) -> Tensor:
        _, _, vh = self.decomposition()
        return torch.einsum("dc,bdp->bcp", vh.like(c), c)

    def u_t(self, y: Tensor) -> Tensor:  # [B, M, P] -> [B, C, P]
        _, u, _ = self.decomposition()
        m, c = self.matrix.shape
        rows = torch.einsum("md,bmp->bdp", u.like(y), y)
        if m >= c:
            return rows[:, :c]
        return F.pad(rows, (0, 0, 0, c - m))

    def u(self, coords: Tensor) -> Tensor:  # [B, C, P] -> [B, M, P]
        _, u, _ = self.decomposition()
        m, c = self.matrix.shape
        rows = coords[:, :m] if m <= c else F.pad(coords, (0, 0, 0, m - c))
        return torch.einsum("md,bdp->bmp", u.like(coords), rows)


class ChannelMix:
    """A matrix W ``[C_out, C_in]`` applied to the channels of every pixel: colourisation.

    y[:, o, ...] = Σ_c W[o, c]·x[:, c, ...] for x ``[B, C_in, *spatial]`` (``spatial`` may be
    empty: vectors ``[B, C_in]``). The default W is one row of 1/C_in: the grey image as the mean
    of the channels, DDRM's colourisation operator.

    SVD. W = U_w·diag(s_w)·V_wᵀ, computed once; applied per pixel, V = V_w ⊗ I and U = U_w ⊗ I.

    Args:
        shape: event shape ``[C_in, *spatial]``.
        weights: ``[C_out, C_in]`` or ``[C_in]`` (one output channel); default ``[1/C_in] * C_in``.

    Raises:
        ValueError: weights whose last dim is not C_in, or that are not finite.
        TypeError: weights that are not real numbers.

    Example:
        >>> A = ncsn.inverse.ChannelMix((3, 2, 2))                 # colour to grey
        >>> A.forward(torch.ones(1, 3, 2, 2)).shape
        torch.Size([1, 1, 2, 2])
    """

    def __init__(
        self,
        shape: Sequence[int],
        weights: Tensor | Sequence[float] | Sequence[Sequence[float]] | None = None,
    ) -> None:
        self._shape = _shape(shape, min_dims=1)
        channels = self._shape[0]
        w = (
            torch.full((1, channels), 1.0 / channels, dtype=torch.float64)
            if weights is None
            else _real_tensor(weights, "weights")
        )
        if w.ndim == 1:
            w = w[None]
        if w.ndim != 2 or w.shape[1] != channels or w.shape[0] == 0:
            raise ValueError(
                f"weights must have shape [C_out, {channels}] or [{channels}] for shape "
                f"{list(self._shape)}; got {tuple(w.shape)}"
            )
        self.weights = w
        self._dense = _Dense(w)
        self._out = (w.shape[0], *self._shape[1:])

    @property
    def in_shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self._out

    def _rows(self, t: Tensor) -> Tensor:
        return t.reshape(t.shape[0], t.shape[1], -1)

    def forward(self, x: Tensor, /) -> Tensor:
        """W·x per pixel ``[B, C_out, *spatial]``."""
        _check_tensor(x, self._shape, "x", "ChannelMix.forward")
        return self._dense.apply(self._rows(x)).reshape(x.shape[0], *self._out)

    def adjoint(self, y: Tensor, /) -> Tensor:
        """Wᵀ·y per pixel ``[B, C_in, *spatial]``."""
        _check_tensor(y, self._out, "y", "ChannelMix.adjoint")
        return self._dense.transpose(self._rows(y)).reshape(y.shape[0], *self._shape)

    def svd(self) -> SVD:
        """V = V_w, s = s_w (padded with zeros to C_in), U = U_w, per pixel."""
        s, _, _ = self._dense.decomposition()
        pixels = math.prod(self._shape[1:])
        shape, out = self._shape, self._out
        return SVD(
            s[:, None].expand(-1, pixels).reshape(-1).clone(),
            lambda x: _flat(self._dense.v_t(self._rows(x))),
            lambda c: self._dense.v(c.reshape(c.shape[0], shape[0], -1)).reshape(-1, *shape),
            lambda y: _flat(self._dense.u_t(self._rows(y))),
            lambda c: self._dense.u(c.reshape(c.shape[0], shape[0], -1)).reshape(-1, *out),
        )

    def __repr__(self) -> str:
        return f"ChannelMix({list(self._shape)}, weights={self.weights.tolist()})"


class GaussianProjection:
    """A random Gaussian matrix ``[M, N]`` with entries N(0, 1/M): compressed sensing.

    y = G·vec(x), with N = prod(shape) and M measurements; E‖G·x‖² = ‖x‖². Drawn once, in float64,
    from ``generator`` (so one seed fixes the operator).

    SVD. Computed once numerically (``torch.linalg.svd``) when first asked for.

    Args:
        shape: event shape of x.
        measurements: M ≥ 1.
        generator: source of G (its device is where G lives).

    Raises:
        ValueError, TypeError: a bad shape or M; a generator that is not a ``torch.Generator``.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> A = ncsn.inverse.GaussianProjection((1, 8, 8), 16, generator=g)
        >>> A.matrix.shape, A.out_shape
        (torch.Size([16, 64]), (16,))
    """

    def __init__(
        self, shape: Sequence[int], measurements: int, *, generator: torch.Generator | None = None
    ) -> None:
        self._shape = _shape(shape)
        m = positive_int(measurements, "measurements")
        check_generator_type(generator)
        device = generator.device if generator is not None else torch.device("cpu")
        n = math.prod(self._shape)
        g = torch.randn((m, n), generator=generator, dtype=torch.float64, device=device)
        self.matrix = g / math.sqrt(m)
        self._dense = _Dense(self.matrix)

    @property
    def in_shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def out_shape(self) -> tuple[int, ...]:
        return (self.matrix.shape[0],)

    def forward(self, x: Tensor, /) -> Tensor:
        """G·vec(x) ``[B, M]``."""
        _check_tensor(x, self._shape, "x", "GaussianProjection.forward")
        return self._dense.apply(_flat(x)[..., None])[..., 0]

    def adjoint(self, y: Tensor, /) -> Tensor:
        """Gᵀ·y reshaped to ``[B, *shape]``."""
        _check_tensor(y, self.out_shape, "y", "GaussianProjection.adjoint")
        return self._dense.transpose(y[..., None])[..., 0].reshape(y.shape[0], *self._shape)

    def svd(self) -> SVD:
        """The numerical SVD of G (computed once)."""
        s, _, _ = self._dense.decomposition()
        shape = self._shape
        return SVD(
            s.clone(),
            lambda x: self._dense.v_t(_flat(x)[..., None])[..., 0],
            lambda c: self._dense.v(c[..., None])[..., 0].reshape(c.shape[0], *shape),
            lambda y: self._dense.u_t(y[..., None])[..., 0],
            lambda c: self._dense.u(c[..., None])[..., 0],
        )

    def __repr__(self) -> str:
        m, n = self.matrix.shape
        return f"GaussianProjection({list(self._shape)}, measurements={m}) of N = {n}"


class Compose:
    """A = outer ∘ inner: ``inner`` first, then ``outer`` (e.g. a blur, then downsampling).

    Aᵀ = innerᵀ ∘ outerᵀ. A composition has no closed-form SVD.

    Args:
        outer: the operator applied second.
        inner: the operator applied first; its ``out_shape`` must be ``outer.in_shape``.

    Raises:
        TypeError: an argument that is not a :class:`LinearOperator`.
        ValueError: shapes that do not chain.

    Example:
        >>> blur = ncsn.inverse.Blur((1, 8, 8), ncsn.inverse.gaussian_kernel(3, 1.0))
        >>> A = ncsn.inverse.Compose(ncsn.inverse.Downsample((1, 8, 8), 2), blur)
        >>> A.forward(torch.rand(2, 1, 8, 8)).shape
        torch.Size([2, 1, 4, 4])
    """

    def __init__(self, outer: LinearOperator, inner: LinearOperator) -> None:
        for name, op in (("outer", outer), ("inner", inner)):
            check_linear_operator(op, name)
        if tuple(inner.out_shape) != tuple(outer.in_shape):
            raise ValueError(
                f"inner.out_shape {list(inner.out_shape)} must equal outer.in_shape "
                f"{list(outer.in_shape)} (inner={inner!r}, outer={outer!r})"
            )
        self.outer = outer
        self.inner = inner

    @property
    def in_shape(self) -> tuple[int, ...]:
        return tuple(self.inner.in_shape)

    @property
    def out_shape(self) -> tuple[int, ...]:
        return tuple(self.outer.out_shape)

    def forward(self, x: Tensor, /) -> Tensor:
        """outer(inner(x))."""
        return self.outer.forward(self.inner.forward(x))

    def adjoint(self, y: Tensor, /) -> Tensor:
        """innerᵀ(outerᵀ(y))."""
        return self.inner.adjoint(self.outer.adjoint(y))

    def __repr__(self) -> str:
        return f"Compose({self.outer!r}, {self.inner!r})"


# ------------------------------------------------------------------------------------ checks
def check_linear_operator(operator: object, name: str = "operator") -> None:
    """``operator`` must have ``forward``, ``adjoint``, ``in_shape`` and ``out_shape`` (the
    :class:`LinearOperator` protocol), with shapes that are tuples of positive ints."""
    missing = [
        member
        for member in ("forward", "adjoint", "in_shape", "out_shape")
        if not hasattr(operator, member)
    ]
    if missing or not callable(getattr(operator, "forward", None)):
        raise TypeError(
            f"{name} must be a LinearOperator (forward, adjoint, in_shape, out_shape); "
            f"{type(operator).__name__} {operator!r} lacks {missing or ['a callable forward']}"
        )
    for attr in ("in_shape", "out_shape"):
        _shape(tuple(getattr(operator, attr)), f"{name}.{attr}")


def to_matrix(operator: LinearOperator, *, dtype: torch.dtype = torch.float64) -> Tensor:
    """The dense matrix ``[M, N]`` of a (small) operator, M = prod(out_shape), N = prod(in_shape).

    Column j is A applied to the j-th unit vector of x in row-major order.

    Raises:
        TypeError: ``operator`` is not a :class:`LinearOperator`.

    Example:
        >>> ncsn.inverse.to_matrix(ncsn.inverse.Downsample((2, 2), 2))
        tensor([[0.2500, 0.2500, 0.2500, 0.2500]], dtype=torch.float64)
    """
    check_linear_operator(operator)
    n = math.prod(operator.in_shape)
    basis = torch.eye(n, dtype=dtype).reshape(n, *operator.in_shape)
    return operator.forward(basis).reshape(n, -1).T.contiguous()


def _relative(a: Tensor, b: Tensor) -> float:
    scale = max(float(a.abs().max()), float(b.abs().max()), 1e-300)
    return float((a - b).abs().max()) / scale


def check_operator(
    operator: LinearOperator,
    *,
    batch: int = 2,
    tolerance: float = 1e-8,
    generator: torch.Generator | None = None,
) -> None:
    """Check a :class:`LinearOperator` numerically, in float64, on random x and y: shapes, the
    adjoint identity ⟨A·x, y⟩ = ⟨x, Aᵀ·y⟩, and, if it has one, its :class:`SVD` (V orthogonal,
    U an isometry on the coordinates with s > 0, u(s ⊙ v_t(x)) = A·x, v(s ⊙ u_t(y)) = Aᵀ·y).

    Use it on an operator of your own before handing it to a sampler.

    Args:
        operator: the operator.
        batch: examples per check (an operator that differs per example needs its own B).
        tolerance: largest relative error allowed (float64 round-off is ~1e-15).
        generator: source of the random x and y.

    Raises:
        TypeError: not a :class:`LinearOperator`.
        ValueError: a wrong output shape or a failed identity, naming it and its error.

    Example:
        >>> ncsn.inverse.check_operator(ncsn.inverse.Downsample((3, 8, 8), 4))   # passes: None
    """
    check_linear_operator(operator)
    batch = positive_int(batch, "batch")
    tolerance = positive_float(tolerance, "tolerance")
    check_generator_type(generator)
    where = f"check_operator({operator!r})"
    device = generator.device if generator is not None else torch.device("cpu")
    x = torch.randn(
        (batch, *operator.in_shape), generator=generator, dtype=torch.float64, device=device
    )
    y = torch.randn(
        (batch, *operator.out_shape), generator=generator, dtype=torch.float64, device=device
    )
    ax, aty = operator.forward(x), operator.adjoint(y)
    for got, want, what in ((ax, y, "forward(x)"), (aty, x, "adjoint(y)")):
        if not isinstance(got, Tensor) or got.shape != want.shape:
            shape = tuple(got.shape) if isinstance(got, Tensor) else type(got).__name__
            raise ValueError(f"{where}: {what} has shape {shape}; expected {tuple(want.shape)}")
    left, right = (_flat(ax) * _flat(y)).sum(1), (_flat(x) * _flat(aty)).sum(1)
    error = _relative(left, right)
    if error > tolerance:
        raise ValueError(f"{where}: ⟨A·x, y⟩ ≠ ⟨x, Aᵀ·y⟩ (relative error {error:.3g})")
    svd = operator_svd(operator)
    if svd is None:
        return
    s = svd.singular_values.to(device=device, dtype=torch.float64)
    n = math.prod(operator.in_shape)
    if s.shape not in ((n,), (batch, n)) or not bool((s >= 0).all() & torch.isfinite(s).all()):
        raise ValueError(
            f"{where}: singular_values must be finite, >= 0, of shape [{n}] or [{batch}, {n}]; "
            f"got shape {tuple(s.shape)}"
        )
    c = svd.v_t(x)
    observed = (s > 0).expand(batch, n)
    coords = torch.randn((batch, n), generator=generator, dtype=torch.float64, device=device)
    coords = torch.where(observed, coords, torch.zeros((), dtype=torch.float64, device=device))
    checks = (
        (svd.v(c), x, "v(v_t(x)) = x"),
        (c.norm(dim=1), _flat(x).norm(dim=1), "‖v_t(x)‖ = ‖x‖"),
        (svd.v_t(svd.v(coords)), coords, "v_t(v(c)) = c"),
        (torch.where(observed, svd.u_t(svd.u(coords)), 0.0), coords, "u_t(u(c)) = c where s > 0"),
        (svd.u(s * c), ax, "u(s ⊙ v_t(x)) = A·x"),
        (svd.v(s * svd.u_t(y)), aty, "v(s ⊙ u_t(y)) = Aᵀ·y"),
    )
    for got, want, what in checks:
        if got.shape != want.shape:
            raise ValueError(
                f"{where}: SVD: {what} has shape {tuple(got.shape)}; expected {tuple(want.shape)}"
            )
        error = _relative(got, want)
        if error > tolerance:
            raise ValueError(f"{where}: SVD: {what} fails (relative error {error:.3g})")
