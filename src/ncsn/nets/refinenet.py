"""The paper's score network: a 4-cascade dilated RefineNet with CondInstanceNorm++.

:class:`RefineNet` is the official ``CondRefineNetDilated`` (Song & Ermon, 2019, App. A): the same
topology, the same numerics and the same module names, so the official ``state_dict`` loads
without renaming (see :func:`ncsn.nets.load_official_checkpoint`). :class:`RefineNetBaseline` is
the same network with unconditional InstanceNorm++ (the single-σ baseline of App. C.1).

Data flow (``ngf`` = base width, one real downsampling, then dilations 2 and 4)::

    x ─ 2x−1 ─ begin_conv ─ res1 ──── res2 (↓2) ─ res3 (dil 2) ─ res4 (dil 4)
                             │          │            │              │
                          refine4 ◄─ refine3 ◄──── refine2 ◄───── refine1
                             └─ normalizer ─ ELU ─ end_conv ─ score
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ncsn._checks import (
    as_sigmas,
    check_float_tensor,
    check_nonempty,
    check_same_device,
    positive_int,
    to_device_of,
)
from ncsn.nets._conditioning import LevelLookup, check_labels, level_indices
from ncsn.nets._upsample import upsample_bilinear
from ncsn.nets.layers import (
    CondInstanceNorm2dPlus,
    ConvMeanPool,
    InstanceNorm2dPlus,
    NormForm,
    _check_form,
    _inside_function_transform,
)

__all__ = ["RefineNet", "RefineNetBaseline"]

_NormFactory = Callable[[int], nn.Module]


def _act(x: Tensor) -> Tensor:
    # The official network shares one nn.ELU() (alpha = 1) between every block.
    return F.elu(x)


def _act_(x: Tensor) -> Tensor:
    # In place, for a fresh norm output that nothing else holds: batch norm's backward needs its
    # input, not its output, and ELU's backward can use its result.
    return F.elu(x, inplace=True)


def _conv3x3(in_channels: int, out_channels: int, *, bias: bool, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, padding=dilation, dilation=dilation, bias=bias)


class _ResidualBlock(nn.Module):
    """Pre-activation ``ConditionalResidualBlock``: ``shortcut(x) + conv2(act(norm2(conv1(act(
    norm1(x))))))``. ``down`` without dilation halves the resolution (ConvMeanPool); with a
    dilation it only changes the width (the official "down" at dilation 2 and 4)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        make_norm: _NormFactory,
        *,
        down: bool = False,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        # Registration order reproduces the official state_dict order.
        self.shortcut: nn.Module | None = None
        if down:
            self.conv1 = _conv3x3(in_channels, in_channels, bias=True, dilation=dilation)
            self.normalize2 = make_norm(in_channels)
            if dilation > 1:
                self.conv2: nn.Module = _conv3x3(
                    in_channels, out_channels, bias=True, dilation=dilation
                )
                self.shortcut = _conv3x3(in_channels, out_channels, bias=True, dilation=dilation)
            else:
                self.conv2 = ConvMeanPool(in_channels, out_channels, 3)
                self.shortcut = ConvMeanPool(in_channels, out_channels, 1)
        else:
            if in_channels != out_channels:
                raise ValueError(  # unreachable in the paper's topology (a latent official bug)
                    f"a non-resampling block needs in_channels == out_channels; "
                    f"got {in_channels} and {out_channels}"
                )
            self.conv1 = _conv3x3(in_channels, out_channels, bias=True, dilation=dilation)
            self.normalize2 = make_norm(out_channels)
            self.conv2 = _conv3x3(out_channels, out_channels, bias=True, dilation=dilation)
        self.normalize1 = make_norm(in_channels)

    def forward(self, x: Tensor, labels: Tensor | None) -> Tensor:
        h = self.conv1(_act_(self.normalize1(x, labels)))
        h = self.conv2(_act_(self.normalize2(h, labels)))
        skip = x if self.shortcut is None else self.shortcut(x)
        return h.add_(skip)  # h is a fresh conv (or pooling) output


class _ResidualStage(nn.ModuleList):
    def forward(self, x: Tensor, labels: Tensor | None) -> Tensor:
        for block in self:
            x = block(x, labels)
        return x


class _RCUBlock(nn.Module):
    """``CondRCUBlock``: ``n_blocks`` residual units of ``n_stages`` × (norm → ELU → conv3x3, no
    bias); attributes ``'{i}_{j}_norm'`` / ``'{i}_{j}_conv'`` as in the official code."""

    def __init__(
        self, channels: int, n_blocks: int, n_stages: int, make_norm: _NormFactory
    ) -> None:
        super().__init__()
        self.n_blocks = n_blocks
        self.n_stages = n_stages
        # Only the names are kept: forward looks the modules up where nn.Module registered them,
        # so a replaced submodule, a deepcopy and a DataParallel replica each run their own.
        self._names = [
            [(f"{i}_{j}_norm", f"{i}_{j}_conv") for j in range(1, n_stages + 1)]
            for i in range(1, n_blocks + 1)
        ]
        for units in self._names:
            for norm, conv in units:
                self.add_module(norm, make_norm(channels))
                self.add_module(conv, _conv3x3(channels, channels, bias=False))

    def forward(self, x: Tensor, labels: Tensor | None) -> Tensor:
        modules = self._modules
        for units in self._names:
            residual = x
            for norm, conv in units:
                x = modules[conv](_act_(modules[norm](x, labels)))  # type: ignore[misc]
            x = x.add_(residual)  # x is a fresh conv output
        return x


def _avg_pool5(x: Tensor) -> Tensor:
    """The official ``AvgPool2d(5, stride=1, padding=2)`` (zero padding counted in the mean).

    On the CPU, PyTorch's eager bfloat16/float16 kernels for this pooling take twice float32's
    time (27% of a bf16 training step of the 1/σ-scaled width-16 network at 28×28, against 10% in
    float32), and their backward rounds every accumulation to the half type. Eagerly on the CPU a
    half-precision input is pooled in float32 and rounded once: the forward is bit-identical, the
    gradient is float32's rounded once, and the pooling takes float32's time. Elsewhere (a GPU, a
    compiled region, whose compiler writes its own kernel) the input's own dtype.
    """
    widen = (
        x.device.type == "cpu"
        and x.dtype in (torch.bfloat16, torch.float16)
        and not torch.compiler.is_compiling()
    )
    h = x.float() if widen else x
    return F.avg_pool2d(h, 5, stride=1, padding=2, count_include_pad=True).to(x.dtype)


class _CRPBlock(nn.Module):
    """``CondCRPBlock``: chained residual pooling, ``p ← conv(avgpool5(norm(p))); x ← x + p``."""

    def __init__(self, channels: int, n_stages: int, make_norm: _NormFactory) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            _conv3x3(channels, channels, bias=False) for _ in range(n_stages)
        )
        self.norms = nn.ModuleList(make_norm(channels) for _ in range(n_stages))

    def forward(self, x: Tensor, labels: Tensor | None) -> Tensor:
        x = _act(x)
        path = x
        for norm, conv in zip(self.norms, self.convs, strict=True):
            path = _avg_pool5(norm(path, labels))
            path = conv(path)
            x = x + path
        return x


class _MSFBlock(nn.Module):
    """``CondMSFBlock``: ``Σ_i upsample(conv3x3_bias(norm_i(x_i)))`` to the output size
    (bilinear, ``align_corners=True``; the identity when the sizes already agree)."""

    def __init__(self, in_channels: Sequence[int], channels: int, make_norm: _NormFactory) -> None:
        super().__init__()
        self.convs = nn.ModuleList(_conv3x3(c, channels, bias=True) for c in in_channels)
        self.norms = nn.ModuleList(make_norm(c) for c in in_channels)

    def forward(self, xs: list[Tensor], labels: Tensor | None, size: tuple[int, int]) -> Tensor:
        out: Tensor | None = None
        for x, norm, conv in zip(xs, self.norms, self.convs, strict=True):
            h = conv(norm(x, labels))
            if tuple(h.shape[-2:]) != size:
                h = upsample_bilinear(h, size)
            out = h if out is None else out.add_(h)  # out is a fresh conv/upsampling output
        assert out is not None  # at least two inputs by construction
        return out


class _RefineBlock(nn.Module):
    """``CondRefineBlock``: adapt (RCU ×2 per input) → fuse (MSF) → CRP → output RCU."""

    def __init__(
        self,
        in_channels: Sequence[int],
        channels: int,
        make_norm: _NormFactory,
        *,
        start: bool = False,
        end: bool = False,
    ) -> None:
        super().__init__()
        self.adapt_convs = nn.ModuleList(_RCUBlock(c, 2, 2, make_norm) for c in in_channels)
        self.output_convs = _RCUBlock(channels, 3 if end else 1, 2, make_norm)
        self.msf: _MSFBlock | None = None
        if not start:
            self.msf = _MSFBlock(in_channels, channels, make_norm)
        self.crp = _CRPBlock(channels, 2, make_norm)

    def forward(self, xs: list[Tensor], labels: Tensor | None) -> Tensor:
        hs = [adapt(x, labels) for adapt, x in zip(self.adapt_convs, xs, strict=True)]
        if self.msf is None:
            h = hs[0]
        else:
            size = (xs[0].shape[-2], xs[0].shape[-1])
            h = self.msf(hs, labels, size)
        return self.output_convs(self.crp(h, labels), labels)


def _reset_parameters(module: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default Conv2d initialisation and the InstanceNorm++ one, drawn from ``generator``."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
            if m.bias is not None:
                fan_in = m.weight[0].numel()
                bound = 1 / math.sqrt(fan_in)
                nn.init.uniform_(m.bias, -bound, bound, generator=generator)
        elif isinstance(m, (CondInstanceNorm2dPlus, InstanceNorm2dPlus)):
            m.reset_parameters(generator=generator)


class RefineNetTopology(nn.Module):
    """Modules and data flow shared by the RefineNets (:class:`RefineNet`, the baseline and
    :class:`~ncsn.nets.ConditionalRefineNet`): each builds it with its own norm factory and
    passes its own conditioning ``labels`` through every norm."""

    def __init__(
        self,
        channels: int,
        ngf: int,
        make_norm: _NormFactory,
        *,
        logit_transform: bool,
        generator: torch.Generator | None,
        gradient_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        self.channels = positive_int(channels, "channels")
        self.ngf = positive_int(ngf, "ngf")
        if ngf < 2:
            raise ValueError(f"ngf must be >= 2 (InstanceNorm++ needs two channels); got ngf={ngf}")
        if not isinstance(logit_transform, bool):
            raise TypeError(f"logit_transform must be a bool; got {logit_transform!r}")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None; got {generator!r}")
        self.logit_transform = logit_transform
        if not isinstance(gradient_checkpointing, bool):
            raise TypeError(
                f"gradient_checkpointing must be a bool; got {gradient_checkpointing!r}"
            )
        self.gradient_checkpointing = gradient_checkpointing
        if generator is None:
            self._build(channels, ngf, make_norm)
        else:
            # Allocate without initialising (no draw from the global RNG), then draw every
            # parameter from ``generator``.
            device = torch.get_default_device()
            with torch.device("meta"):
                self._build(channels, ngf, make_norm)
            self.to_empty(device=device)
            _reset_parameters(self, generator)

    def _build(self, channels: int, ngf: int, make_norm: _NormFactory) -> None:
        w = 2 * ngf
        # Registration order reproduces the official state_dict order.
        self.begin_conv = nn.Conv2d(channels, ngf, 3, padding=1)
        self.normalizer = make_norm(ngf)
        self.end_conv = nn.Conv2d(ngf, channels, 3, padding=1)
        self.res1 = _ResidualStage(
            [_ResidualBlock(ngf, ngf, make_norm), _ResidualBlock(ngf, ngf, make_norm)]
        )
        self.res2 = _ResidualStage(
            [_ResidualBlock(ngf, w, make_norm, down=True), _ResidualBlock(w, w, make_norm)]
        )
        self.res3 = _ResidualStage(
            [
                _ResidualBlock(w, w, make_norm, down=True, dilation=2),
                _ResidualBlock(w, w, make_norm, dilation=2),
            ]
        )
        self.res4 = _ResidualStage(
            [
                _ResidualBlock(w, w, make_norm, down=True, dilation=4),
                _ResidualBlock(w, w, make_norm, dilation=4),
            ]
        )
        self.refine1 = _RefineBlock([w], w, make_norm, start=True)
        self.refine2 = _RefineBlock([w, w], w, make_norm)
        self.refine3 = _RefineBlock([w, w], ngf, make_norm)
        self.refine4 = _RefineBlock([ngf, ngf], ngf, make_norm, end=True)

    def _check_input(self, x: Tensor) -> None:
        check_float_tensor(x, "x")
        name = type(self).__name__
        if x.ndim != 4 or x.shape[1] != self.channels or x.shape[2] % 2 or x.shape[3] % 2:
            raise ValueError(
                f"{name} expects x of shape [B, {self.channels}, H, W] with even H and W "
                f"(one 2x downsampling); got x.shape={tuple(x.shape)}"
            )
        if x.shape[2] < 4 or x.shape[3] < 4:
            # Below 4, the downsampled maps are 1x1: an instance norm of a single element is
            # degenerate (the official code raises "Expected more than 1 spatial element").
            raise ValueError(
                f"{name} needs H >= 4 and W >= 4 (after the 2x downsampling every feature map "
                f"must have more than one element); got H={x.shape[2]}, W={x.shape[3]} "
                f"(x.shape={tuple(x.shape)})"
            )
        check_nonempty(x)
        weight = self.begin_conv.weight
        if x.dtype != weight.dtype:
            raise TypeError(
                f"x has dtype {x.dtype} but the {name} parameters have dtype {weight.dtype}; "
                f"convert one of them (e.g. net.to({x.dtype}))"
            )
        check_same_device(weight.device, x, name)

    def _features(self, x: Tensor, labels: Tensor | None) -> Tensor:
        if not self.logit_transform:
            x = 2 * x - 1.0
        stage = self._stage
        h = self.begin_conv(x)
        layer1 = stage(self.res1, h, labels)
        layer2 = stage(self.res2, layer1, labels)
        layer3 = stage(self.res3, layer2, labels)
        layer4 = stage(self.res4, layer3, labels)
        ref1 = stage(self.refine1, [layer4], labels)
        ref2 = stage(self.refine2, [layer3, ref1], labels)
        ref3 = stage(self.refine3, [layer2, ref2], labels)
        h = stage(self.refine4, [layer1, ref3], labels)
        return self.end_conv(_act_(self.normalizer(h, labels)))

    def _stage(self, module: nn.Module, x: Tensor | list[Tensor], labels: Tensor | None) -> Tensor:
        """Run one of the eight stages, recomputing its activations in backward if asked to."""
        if not (self.gradient_checkpointing and torch.is_grad_enabled()):
            out: Tensor = module(x, labels)
            return out
        first = x if isinstance(x, Tensor) else x[0]
        if _inside_function_transform(first):
            raise RuntimeError(
                "gradient_checkpointing=True does not work under torch.func transforms (such as "
                "SlicedScoreMatching(jacobian='forward')); use jacobian='backward' or set "
                "net.gradient_checkpointing = False"
            )
        out = checkpoint(module, x, labels, use_reentrant=False)
        return out


class RefineNet(RefineNetTopology):
    """The paper's noise-conditional score network (official ``CondRefineNetDilated``).

    A 4-cascade RefineNet with pre-activation residual blocks, one 2× downsampling followed by
    dilations 2 and 4, CondInstanceNorm++ before every convolution and pooling, chained residual
    pooling with 5×5 average pooling, multi-resolution fusion and ELU. The input is rescaled to
    ``2x − 1`` (data in [0, 1]) unless ``logit_transform``. The output is the raw score estimate,
    with no 1/σ scaling.

    It is a :class:`~ncsn.ScoreModel`: ``net(x, sigma)`` maps each σ to its index in ``sigmas``
    (relative tolerance 1e-4; any other σ raises :class:`ValueError` naming σ and the schedule).
    Callers that already know the level indices can use :meth:`forward_levels`.

    Memory format: a network and input converted to ``torch.channels_last`` stay channels_last
    through every layer (the instance norms keep the format instead of copying to NCHW), and
    give the contiguous outputs up to convolution round-off. Measured on a shared 2-core CPU at
    batch 8 (``benchmarks/refinenet.py``), relative to contiguous: forward 1.00× (MNIST
    configuration) and 0.84× (CIFAR-10), forward+backward 0.83× and 0.95× (CPU time); before the
    norms kept the format it was 1.02–1.11× (slower).

    Module names and parameter shapes follow the official ``state_dict`` exactly (173 tensors,
    30,117,635 parameters for ``channels=3, ngf=128`` and 10 levels; 7,638,657 for
    ``channels=1, ngf=64``).

    Shapes: ``x: [B, channels, H, W]`` with even H, W ≥ 4, ``sigma: [B]`` → ``[B, channels, H, W]``.

    Args:
        channels: image channels C (1 for MNIST, 3 for CIFAR-10 / CelebA).
        ngf: base width (paper: 64 for MNIST, 128 for CIFAR-10 / CelebA); at least 2.
        sigmas: ``[L]`` strictly decreasing noise levels the network is conditioned on.
        logit_transform: skip the ``2x − 1`` rescaling (for inputs already in logit space).
        norm: ``"official"`` (default; the published checkpoints) or ``"paper"`` CondInstanceNorm++
            (see :func:`ncsn.nets.layers.instance_norm_plus`).
        generator: optional generator for the initial weights (PyTorch's default conv init and
            γ, α ~ N(1, 0.02), β = 0); without it the global RNG is used, as in any ``nn.Module``.
        gradient_checkpointing: when gradients are recorded, keep only the inputs of the eight
            residual and refine stages and recompute their activations during backward
            (:func:`torch.utils.checkpoint.checkpoint`): the same gradients for less memory and
            more compute (measured with DSM on the CPU, MNIST configuration: 0.38× the step's
            peak memory for 1.4× the time; with double-backprop SSM it saves little). Not under
            torch.func transforms (``jacobian="forward"``). An attribute: it can be switched on
            an existing network; the ``state_dict`` is unchanged.

    Example:
        >>> net = ncsn.nets.RefineNet(channels=1, ngf=4, sigmas=ncsn.geometric_sigmas(1.0, 0.01, 10))
        >>> x = torch.rand(2, 1, 8, 8)
        >>> net(x, net.sigmas[[0, 9]]).shape
        torch.Size([2, 1, 8, 8])

    References:
        Song & Ermon (2019), "Generative Modeling by Estimating Gradients of the Data Distribution",
        §4.1 and App. A.
    """

    def __init__(
        self,
        channels: int,
        ngf: int,
        sigmas: Tensor | Sequence[float],
        *,
        logit_transform: bool = False,
        norm: NormForm = "official",
        generator: torch.Generator | None = None,
        gradient_checkpointing: bool = False,
    ) -> None:
        lookup = LevelLookup(as_sigmas(sigmas))
        form = _check_form(norm)
        levels = lookup.num_levels

        def make_norm(num_features: int) -> nn.Module:
            return CondInstanceNorm2dPlus(num_features, levels, form=form)

        super().__init__(
            channels,
            ngf,
            make_norm,
            logit_transform=logit_transform,
            generator=generator,
            gradient_checkpointing=gradient_checkpointing,
        )
        self.norm: NormForm = form
        self.lookup = lookup

    @property
    def sigmas(self) -> Tensor:
        """The ``[L]`` noise levels the network is conditioned on."""
        return self.lookup.sigmas

    @property
    def num_levels(self) -> int:
        """L, the number of noise levels."""
        return self.lookup.num_levels

    def forward(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        """Score estimate at noise levels ``sigma``.

        Args:
            x: ``[B, channels, H, W]`` noisy images.
            sigma: ``[B]`` (or a scalar) noise values, each one of ``self.sigmas``.

        Returns:
            ``[B, channels, H, W]``.

        Raises:
            TypeError: ``x`` not a floating tensor or of another dtype than the parameters; a σ
                that is not a real number or a tensor of them (a bool or complex tensor).
            ValueError: a σ not in the schedule or of a shape other than ``[B]`` or a scalar, a
                wrong ``x`` shape, odd H or W, H or W below 4, an empty batch, ``x`` on another
                device than the parameters.
        """
        self._check_input(x)
        return self._features(x, level_indices(self.lookup, sigma, x))

    def forward_levels(self, x: Tensor, labels: Tensor) -> Tensor:
        """Score estimate at level *indices* (the fast path; no σ lookup).

        Args:
            x: ``[B, channels, H, W]`` noisy images.
            labels: ``[B]`` integer indices into ``self.sigmas`` (0 is the largest σ). On the CPU
                an index outside ``[0, L)`` raises :class:`ValueError`; elsewhere the range is not
                checked (that would synchronise with the device).

        Returns:
            ``[B, channels, H, W]``.

        Example:
            >>> net = ncsn.nets.RefineNet(1, 4, ncsn.geometric_sigmas(1.0, 0.01, 10))
            >>> net.forward_levels(torch.rand(2, 1, 8, 8), torch.tensor([0, 9])).shape
            torch.Size([2, 1, 8, 8])
        """
        self._check_input(x)
        check_labels(labels, x.shape[0], self.num_levels)
        return self._features(x, to_device_of(labels, x, "labels"))


class RefineNetBaseline(RefineNetTopology):
    """The paper's single-noise-level baseline network (official ``RefineNetDilated``).

    The :class:`RefineNet` topology with every CondInstanceNorm++ replaced by an unconditional
    InstanceNorm++ (learnable per-channel γ, α, β). It is a :class:`~ncsn.ScoreModel` that ignores
    σ; combine it with :class:`ncsn.nets.ScaledByInverseSigma` for NCSNv2's ``f(x)/σ``.
    Parameters: 29,727,107 for ``channels=3, ngf=128``; 7,443,393 for ``channels=1, ngf=64``.

    Shapes: ``x: [B, channels, H, W]`` with even H, W ≥ 4 → ``[B, channels, H, W]``.

    Args:
        channels: image channels C.
        ngf: base width; at least 2.
        logit_transform: skip the ``2x − 1`` rescaling.
        norm: ``"official"`` (default) or ``"paper"`` InstanceNorm++.
        generator: optional generator for the initial weights.
        gradient_checkpointing: recompute the stages' activations in backward (see
            :class:`RefineNet`).

    Example:
        >>> net = ncsn.nets.RefineNetBaseline(channels=1, ngf=4)
        >>> net(torch.rand(2, 1, 8, 8), torch.full((2,), 0.01)).shape
        torch.Size([2, 1, 8, 8])

    References:
        Song & Ermon (2019), App. C.1.
    """

    def __init__(
        self,
        channels: int,
        ngf: int,
        *,
        logit_transform: bool = False,
        norm: NormForm = "official",
        generator: torch.Generator | None = None,
        gradient_checkpointing: bool = False,
    ) -> None:
        form = _check_form(norm)

        def make_norm(num_features: int) -> nn.Module:
            return InstanceNorm2dPlus(num_features, form=form)

        super().__init__(
            channels,
            ngf,
            make_norm,
            logit_transform=logit_transform,
            generator=generator,
            gradient_checkpointing=gradient_checkpointing,
        )
        self.norm: NormForm = form

    def forward(self, x: Tensor, sigma: Tensor | float | None = None) -> Tensor:
        """Score estimate (σ is accepted for the :class:`~ncsn.ScoreModel` protocol and ignored).

        Args:
            x: ``[B, channels, H, W]``.
            sigma: ignored.

        Returns:
            ``[B, channels, H, W]``.
        """
        self._check_input(x)
        return self._features(x, None)
