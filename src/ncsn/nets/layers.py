"""Normalisation layers and small convolution blocks of the paper's RefineNet.

The instance norms here fold the whole InstanceNorm++ map into one batch-norm kernel call over the
``B·C`` feature maps (normalise, then scale by γ and add a per-sample, per-channel shift that
already holds the α·μ̂ term); only the ``[B, C]`` channel means are computed separately. A
``torch.channels_last`` input instead gets its ``[B, C]`` statistics from two reductions and the
same per-element map ``x·scale + shift'`` by broadcasting, so the output (and the input's gradient)
stays ``channels_last`` without a copy. Either way the result equals the official code's sequence
of operations to float round-off.
"""

from __future__ import annotations

import math
from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ncsn._checks import positive_int
from ncsn.nets._conditioning import check_labels

__all__ = [
    "CondInstanceNorm2dPlus",
    "ConvMeanPool",
    "InstanceNorm2dPlus",
    "NormForm",
    "instance_norm_plus",
]

NormForm = Literal["official", "paper"]
"""Which CondInstanceNorm++ formula to use: the official code's or the paper's (see
:func:`instance_norm_plus`)."""

_FORMS: tuple[str, ...] = get_args(NormForm)
_EPS = 1e-5


def _check_form(form: str) -> NormForm:
    if form not in _FORMS:
        raise ValueError(f"form must be one of {list(_FORMS)}; got form={form!r}")
    return form  # type: ignore[return-value]


def _check_features(num_features: int) -> int:
    num_features = positive_int(num_features, "num_features")
    if num_features < 2:
        # The channel-mean statistics use the unbiased variance over channels (divides by C - 1).
        raise ValueError(
            f"num_features must be >= 2 (the ++ term needs the variance over channels); "
            f"got num_features={num_features}"
        )
    return num_features


def _check_channels(x: Tensor, num_features: int, name: str) -> None:
    """Metadata only (it compiles into no graph break)."""
    if x.ndim < 3 or x.shape[1] != num_features:
        raise ValueError(
            f"{name}({num_features}) expects x of shape [B, {num_features}, *spatial]; "
            f"got x.shape={tuple(x.shape)}"
        )


def _inside_function_transform(x: Tensor) -> bool:
    """Whether ``x`` is traced by a torch.func transform (jvp, vmap, grad)."""
    if torch.compiler.is_compiling():
        # torch.compile cannot trace the functorch query: without this short cut every norm
        # would break the compiled graph (measured: the compiled RefineNet's speed-up fell from
        # 1.9x to 1.1x on the CPU); compiled code sees no functorch wrappers here.
        return False
    functorch = getattr(torch._C, "_functorch", None)
    check = getattr(functorch, "is_functorch_wrapped_tensor", None)
    return True if check is None else bool(check(x))


def _spatial_moments(x: Tensor) -> tuple[Tensor, Tensor]:
    """``[B, C]`` means and biased variances over the spatial dimensions, in two passes."""
    spatial = tuple(range(2, x.ndim))
    # Half-precision inputs (autocast) get float32 statistics, as batch norm computes them.
    acc = torch.promote_types(x.dtype, torch.float32)
    mu = x.mean(dim=spatial, keepdim=True, dtype=acc)
    # torch.var_mean is a single-pass Welford reduction, several times slower on the CPU.
    dev = x - mu
    # In place when nothing records it (inside the autograd.Function's forward).
    var = (dev.square() if torch.is_grad_enabled() else dev.square_()).mean(dim=spatial)
    return mu.reshape(x.shape[:2]), var


class _SpatialMoments(torch.autograd.Function):
    """Per-sample, per-channel mean and biased variance over the spatial dimensions.

    The same numbers as ``torch.var_mean(x, dim=(2, ...), correction=0)`` (two passes: the mean,
    then the mean squared deviation), with a backward that returns a gradient of ``x``'s own
    memory format: autograd's decomposition of the same formula expands the ``[B, C]`` gradients
    into contiguous tensors and adds them to ``channels_last`` ones, a strided copy per norm.
    The backward is written in differentiable operations on the saved input, so second-order
    gradients (sliced score matching) still work.
    """

    @staticmethod
    def forward(x: Tensor) -> tuple[Tensor, Tensor]:
        return _spatial_moments(x)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor], output: tuple[Tensor, Tensor]) -> None:
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx: Any, grad_mu: Tensor, grad_var: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        spatial = tuple(range(2, x.ndim))
        pad = x.shape[:2] + (1,) * len(spatial)
        n = math.prod(x.shape[2:])
        mu = x.mean(dim=spatial, dtype=grad_mu.dtype).reshape(pad)
        # d mu / dx = 1/n,  d var / dx = 2 (x - mu) / n, as one fused a·x + b per element.
        a = grad_var.reshape(pad) * (2.0 / n)
        b = grad_mu.reshape(pad) / n - a * mu
        return torch.addcmul(b, x, a).to(x.dtype)


def _is_channels_last(x: Tensor) -> bool:
    return (
        x.ndim == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
    )


def instance_norm_plus(
    x: Tensor,
    gamma: Tensor,
    alpha: Tensor,
    beta: Tensor,
    form: NormForm = "official",
    eps: float = _EPS,
) -> Tensor:
    """InstanceNorm++ with given per-channel parameters.

    With ``μ_k`` and ``s_k²`` the spatial mean and biased variance of channel ``k`` of one sample,
    ``m`` and ``v²`` the mean and **unbiased** variance of the ``μ_k`` over channels,
    ``h_k = (x_k − μ_k)/√(s_k² + eps)`` and ``μ̂_k = (μ_k − m)/√(v² + eps)``:

    * ``form="official"`` (the official code, the default): ``γ_k · (h_k + α_k · μ̂_k) + β_k``;
    * ``form="paper"`` (App. A of the paper): ``γ_k · h_k + β_k + α_k · μ̂_k``.

    The two have the same expressive power (α_paper = γ · α_official) but differ at initialisation.

    Args:
        x: ``[B, C, *spatial]`` feature maps, ``C >= 2``.
        gamma: ``[B, C]`` or ``[C]`` scales γ.
        alpha: ``[B, C]`` or ``[C]`` weights α of the channel-mean term.
        beta: ``[B, C]`` or ``[C]`` shifts β.
        form: ``"official"`` or ``"paper"``.
        eps: added to both variances before the square root (official: 1e-5).

    Returns:
        ``[B, C, *spatial]``, the input's shape and dtype; a ``channels_last`` input gives a
        ``channels_last`` output.

    Example:
        >>> x = torch.randn(2, 4, 8, 8)
        >>> ones, zeros = torch.ones(4), torch.zeros(4)
        >>> out = ncsn.nets.layers.instance_norm_plus(x, ones, zeros, zeros)
        >>> out.mean(dim=(2, 3)).abs().max() < 1e-5
        tensor(True)
    """
    batch, channels = x.shape[0], x.shape[1]
    spatial = tuple(range(2, x.ndim))
    channels_last = _is_channels_last(x) and not _inside_function_transform(x)
    if channels_last:
        # Compiled code differentiates the plain formula (the compiler picks the layouts; and
        # dynamo warns about every autograd.Function it traces).
        compiling = torch.compiler.is_compiling()
        # [B, C] each; Function.apply is untyped in torch
        mu, var = _spatial_moments(x) if compiling else _SpatialMoments.apply(x)  # type: ignore[no-untyped-call]
    else:
        mu = x.mean(dim=spatial)  # [B, C]
    chan_var, chan_mean = torch.var_mean(mu, dim=1, correction=1, keepdim=True)
    mu_hat = (mu - chan_mean) * torch.rsqrt(chan_var + eps)
    gamma = gamma.expand(batch, channels)
    shift = beta + (gamma * alpha if form == "official" else alpha) * mu_hat
    if _inside_function_transform(x):
        # PyTorch's batch_norm has a forward-mode derivative whose own gradient is wrong
        # (reverse-over-forward, as in sliced score matching with jacobian="forward"): use the
        # explicit formula under torch.func transforms.
        var = x.var(dim=spatial, correction=0)
        scale = gamma * torch.rsqrt(var + eps)
        pad = (batch, channels) + (1,) * len(spatial)
        return (x - mu.reshape(pad)) * scale.reshape(pad) + shift.reshape(pad)
    if channels_last:
        # Batch norm over a (1, B·C, H, W) reshape would copy the input into NCHW order. The same
        # per-element map ``x·scale + (shift − μ·scale)`` as batch norm's, broadcast from [B, C],
        # keeps the input's memory format (and is faster on the CPU).
        scale = gamma * torch.rsqrt(var + eps)
        pad = (batch, channels, 1, 1)
        out = torch.addcmul((shift - mu * scale).reshape(pad), x, scale.reshape(pad))
        return out.to(x.dtype)
    # Instance norm with a per-sample affine is batch norm over the B·C "channels" of a batch of
    # one: a single optimised kernel that normalises and applies γ and the shift in one pass.
    out = torch.batch_norm(
        x.reshape(1, batch * channels, *x.shape[2:]),
        gamma.reshape(-1),
        shift.reshape(-1),
        None,
        None,
        True,
        0.0,
        eps,
        torch.backends.cudnn.enabled,
    )
    return out.view_as(x)


class CondInstanceNorm2dPlus(nn.Module):
    """Conditional InstanceNorm++ (CondInstanceNorm++): InstanceNorm++ with per-level γ, α, β.

    One embedding row per noise level holds ``[γ | α | β]`` (the official layout, so official
    weights load unchanged). See :func:`instance_norm_plus` for the two formulas.

    Shapes: ``x: [B, C, H, W]``, ``labels: [B]`` integer level indices → ``[B, C, H, W]``. On
    the CPU an index outside ``[0, L)`` raises :class:`ValueError` naming ``labels``.

    Args:
        num_features: C, the number of channels (at least 2).
        num_levels: L, the number of noise levels (embedding rows).
        form: ``"official"`` (default, what the published checkpoints use) or ``"paper"``.
        generator: optional generator for the initialisation γ, α ~ N(1, 0.02), β = 0.

    Example:
        >>> norm = ncsn.nets.CondInstanceNorm2dPlus(8, num_levels=10)
        >>> norm(torch.randn(4, 8, 16, 16), torch.tensor([0, 3, 6, 9])).shape
        torch.Size([4, 8, 16, 16])

    References:
        Song & Ermon (2019), App. A; official code ``ConditionalInstanceNorm2dPlus``.
    """

    def __init__(
        self,
        num_features: int,
        num_levels: int,
        *,
        form: NormForm = "official",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.num_features = _check_features(num_features)
        self.num_levels = positive_int(num_levels, "num_levels")
        self.form: NormForm = _check_form(form)
        self.embed = nn.Embedding(num_levels, 3 * num_features)
        self.reset_parameters(generator=generator)

    def reset_parameters(self, *, generator: torch.Generator | None = None) -> None:
        """γ, α ~ N(1, 0.02) and β = 0 (the official initialisation)."""
        c = self.num_features
        with torch.no_grad():
            nn.init.normal_(self.embed.weight[:, : 2 * c], 1.0, 0.02, generator=generator)
            nn.init.zeros_(self.embed.weight[:, 2 * c :])

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        _check_channels(x, self.num_features, type(self).__name__)
        check_labels(labels, x.shape[0], self.num_levels)
        gamma, alpha, beta = self.embed(labels).chunk(3, dim=-1)
        return instance_norm_plus(x, gamma, alpha, beta, self.form)

    def extra_repr(self) -> str:
        return f"{self.num_features}, num_levels={self.num_levels}, form={self.form!r}"


class InstanceNorm2dPlus(nn.Module):
    """Unconditional InstanceNorm++ with learnable per-channel γ, α, β (the baseline's norm).

    Equivalent to :class:`CondInstanceNorm2dPlus` with a single level. ``labels`` is accepted
    and ignored so that both norms fit the same blocks.

    Shapes: ``x: [B, C, H, W]`` → ``[B, C, H, W]``.

    Args:
        num_features: C, the number of channels (at least 2).
        form: ``"official"`` (default) or ``"paper"``.
        generator: optional generator for the initialisation γ, α ~ N(1, 0.02), β = 0.

    Example:
        >>> ncsn.nets.InstanceNorm2dPlus(8)(torch.randn(4, 8, 16, 16)).shape
        torch.Size([4, 8, 16, 16])

    References:
        Song & Ermon (2019), App. C.1; official code ``InstanceNorm2dPlus``.
    """

    def __init__(
        self,
        num_features: int,
        *,
        form: NormForm = "official",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.num_features = _check_features(num_features)
        self.form: NormForm = _check_form(form)
        self.gamma = nn.Parameter(torch.empty(num_features))
        self.alpha = nn.Parameter(torch.empty(num_features))
        self.beta = nn.Parameter(torch.empty(num_features))
        self.reset_parameters(generator=generator)

    def reset_parameters(self, *, generator: torch.Generator | None = None) -> None:
        """γ, α ~ N(1, 0.02) and β = 0 (the official initialisation)."""
        nn.init.normal_(self.gamma, 1.0, 0.02, generator=generator)
        nn.init.normal_(self.alpha, 1.0, 0.02, generator=generator)
        nn.init.zeros_(self.beta)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        _check_channels(x, self.num_features, type(self).__name__)
        return instance_norm_plus(x, self.gamma, self.alpha, self.beta, self.form)

    def extra_repr(self) -> str:
        return f"{self.num_features}, form={self.form!r}"


class ConvMeanPool(nn.Module):
    """A ``k×k`` convolution (padding ``k // 2``, bias) followed by 2×2 average pooling.

    The official code averages the four strided sub-grids ``[::2, ::2]``, ``[1::2, ::2]``,
    ``[::2, 1::2]``, ``[1::2, 1::2]``; on even sizes that is exactly 2×2 average pooling.

    Shapes: ``[B, C_in, H, W]`` → ``[B, C_out, H/2, W/2]`` (H and W even).

    Args:
        in_channels: C_in.
        out_channels: C_out.
        kernel_size: k (3 for the main path, 1 for the shortcut).

    Example:
        >>> ncsn.nets.layers.ConvMeanPool(4, 8, 3)(torch.randn(2, 4, 16, 16)).shape
        torch.Size([2, 8, 8, 8])
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(self.conv(x), 2)
