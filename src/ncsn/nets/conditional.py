"""Class-conditional score networks and a noise-conditional classifier, for :mod:`ncsn.guidance`.

* :class:`ConditionalRefineNet` — the paper's RefineNet with the class joined to the noise level
  in every CondInstanceNorm++;
* :class:`ConditionalScoreMLP` — the toy ScoreMLP with a label input;
* :class:`NoisyClassifierMLP` — ``p(y | x, σ)`` for classifier guidance.

Both score networks are :class:`~ncsn.ConditionalScoreModel` s, called ``net(x, sigma, y)`` with
labels ``y: [B]`` in ``0 … K``; ``K = num_classes`` is the null label, the unconditional score
learnt from label dropout (:func:`ncsn.guidance.drop_labels`). :func:`ncsn.guidance.condition`
fixes the labels and returns a plain :class:`~ncsn.ScoreModel`.

How the class enters: **level and class embeddings, added.** Each conditional norm holds the
official per-level table ``[γ | α | β]`` (L rows) and a per-class table of offsets
``[Δγ | Δα | Δβ]`` (K + 1 rows, the null label's included), and uses the sum of the two rows.
Not one row per (level, class) pair, because

* the parameters grow as L + K + 1 instead of L·(K + 1), and every class row is trained at
  every level (a pair's row would see 1/(L·(K + 1)) of the examples);
* the class rows start at zero, so a new conditional network computes exactly what the
  unconditional :class:`~ncsn.nets.RefineNet` with the same level rows computes, for every
  label, and the level table keeps the official layout (``embed.weight``: an unconditional
  network's norms load into it unchanged);
* the class acts where the paper's noise level acts, on each channel's scale and shift, with
  no extra network.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ncsn._checks import (
    as_sigmas,
    check_batch,
    check_generator_type,
    check_nonempty,
    positive_int,
    same_device,
    sigma_vector,
    to_device_of,
)
from ncsn.nets._conditioning import LevelLookup, check_labels, level_indices
from ncsn.nets.layers import NormForm, _check_form, instance_norm_plus
from ncsn.nets.refinenet import RefineNetTopology

__all__ = [
    "ClassCondInstanceNorm2dPlus",
    "ConditionalRefineNet",
    "ConditionalScoreMLP",
    "NoisyClassifierMLP",
]


def _num_classes(num_classes: int) -> int:
    return positive_int(num_classes, "num_classes")


class ClassCondInstanceNorm2dPlus(nn.Module):
    """CondInstanceNorm++ conditioned on the noise level and the class: per-level ``[γ | α | β]``
    plus per-class offsets ``[Δγ | Δα | Δβ]``.

    ``embed`` holds one row per level (the official layout and initialisation, γ, α ~ N(1, 0.02),
    β = 0); ``class_embed`` one row per class and one for the null label (zeros at
    initialisation). The norm applies :func:`~ncsn.nets.layers.instance_norm_plus` with the sum
    of the level's row and the class's row.

    Shapes: ``x: [B, C, H, W]``, ``labels: [B, 2]`` integer (level index, class) pairs →
    ``[B, C, H, W]``.

    Args:
        num_features: C, the number of channels (at least 2).
        num_levels: L, the number of noise levels.
        num_classes: K; the class table has K + 1 rows, row K the null label.
        form: ``"official"`` (default) or ``"paper"`` (see
            :func:`~ncsn.nets.layers.instance_norm_plus`).
        generator: optional generator for the level rows' initialisation.

    Example:
        >>> norm = ncsn.nets.conditional.ClassCondInstanceNorm2dPlus(8, num_levels=10, num_classes=3)
        >>> norm(torch.randn(2, 8, 4, 4), torch.tensor([[0, 1], [9, 3]])).shape
        torch.Size([2, 8, 4, 4])
    """

    def __init__(
        self,
        num_features: int,
        num_levels: int,
        num_classes: int,
        *,
        form: NormForm = "official",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.num_features = positive_int(num_features, "num_features")
        if num_features < 2:
            raise ValueError(f"num_features must be >= 2; got num_features={num_features}")
        self.num_levels = positive_int(num_levels, "num_levels")
        self.num_classes = _num_classes(num_classes)
        self.form: NormForm = _check_form(form)
        self.embed = nn.Embedding(num_levels, 3 * num_features)
        self.class_embed = nn.Embedding(num_classes + 1, 3 * num_features)
        self.reset_parameters(generator=generator)

    def reset_parameters(self, *, generator: torch.Generator | None = None) -> None:
        """Level rows γ, α ~ N(1, 0.02), β = 0 (the official initialisation); class rows 0."""
        c = self.num_features
        with torch.no_grad():
            nn.init.normal_(self.embed.weight[:, : 2 * c], 1.0, 0.02, generator=generator)
            nn.init.zeros_(self.embed.weight[:, 2 * c :])
            nn.init.zeros_(self.class_embed.weight)

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        if x.ndim < 3 or x.shape[1] != self.num_features:
            raise ValueError(
                f"{type(self).__name__}({self.num_features}) expects x of shape "
                f"[B, {self.num_features}, *spatial]; got x.shape={tuple(x.shape)}"
            )
        if labels.shape != (x.shape[0], 2):
            raise ValueError(
                f"labels must be [B, 2] (level, class) pairs; got labels.shape={tuple(labels.shape)}"
            )
        rows = self.embed(labels[:, 0]) + self.class_embed(labels[:, 1])
        gamma, alpha, beta = rows.chunk(3, dim=-1)
        return instance_norm_plus(x, gamma, alpha, beta, self.form)

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, num_levels={self.num_levels}, num_classes={self.num_classes}, "
            f"form={self.form!r}"
        )


class ConditionalRefineNet(RefineNetTopology):
    """The paper's RefineNet conditioned on the class as well as the noise level.

    The :class:`~ncsn.nets.RefineNet` topology with every CondInstanceNorm++ replaced by a
    :class:`ClassCondInstanceNorm2dPlus`: the level's row plus the class's row of offsets (why
    added, and not one row per pair: the module docstring). With the class rows at zero, as
    initialised, it computes what a RefineNet with the same weights computes.

    It is a :class:`~ncsn.ConditionalScoreModel`: ``net(x, sigma, y)`` maps each σ to its index
    in ``sigmas`` as :class:`~ncsn.nets.RefineNet` does, and ``y: [B]`` holds classes
    ``0 … K − 1`` or the null label ``K``. Sample it through :mod:`ncsn.guidance`
    (``condition(net, 7)``, ``ClassifierFreeGuidance(net, 7, weight=2.0)``).

    Shapes: ``x: [B, channels, H, W]`` with even H, W ≥ 4, ``sigma: [B]``, ``y: [B]`` →
    ``[B, channels, H, W]``.

    Args:
        channels: image channels C.
        ngf: base width; at least 2.
        sigmas: ``[L]`` strictly decreasing noise levels.
        num_classes: K, the number of classes (the null label is K).
        logit_transform: skip the ``2x − 1`` rescaling.
        norm: ``"official"`` (default) or ``"paper"`` CondInstanceNorm++.
        generator: optional generator for the initial weights.
        gradient_checkpointing: recompute the stages' activations in backward (see
            :class:`~ncsn.nets.RefineNet`).

    Example:
        >>> sigmas = ncsn.geometric_sigmas(1.0, 0.01, 10)
        >>> net = ncsn.nets.ConditionalRefineNet(1, 4, sigmas, num_classes=10)
        >>> net(torch.rand(2, 1, 8, 8), sigmas[[0, 9]], torch.tensor([7, 10])).shape
        torch.Size([2, 1, 8, 8])
    """

    def __init__(
        self,
        channels: int,
        ngf: int,
        sigmas: Tensor | Sequence[float],
        num_classes: int,
        *,
        logit_transform: bool = False,
        norm: NormForm = "official",
        generator: torch.Generator | None = None,
        gradient_checkpointing: bool = False,
    ) -> None:
        lookup = LevelLookup(as_sigmas(sigmas))
        form = _check_form(norm)
        levels, classes = lookup.num_levels, _num_classes(num_classes)

        def make_norm(num_features: int) -> nn.Module:
            return ClassCondInstanceNorm2dPlus(num_features, levels, classes, form=form)

        super().__init__(
            channels,
            ngf,
            make_norm,
            logit_transform=logit_transform,
            generator=generator,
            gradient_checkpointing=gradient_checkpointing,
        )
        if generator is not None:  # the topology initialises convolutions and its own norms
            for module in self.modules():
                if isinstance(module, ClassCondInstanceNorm2dPlus):
                    module.reset_parameters(generator=generator)
        self.norm: NormForm = form
        self.lookup = lookup
        self.num_classes = classes

    @property
    def sigmas(self) -> Tensor:
        """The ``[L]`` noise levels the network is conditioned on."""
        return self.lookup.sigmas

    @property
    def num_levels(self) -> int:
        """L, the number of noise levels."""
        return self.lookup.num_levels

    def forward(self, x: Tensor, sigma: Tensor | float, y: Tensor) -> Tensor:
        """Score estimate at noise levels ``sigma`` for the classes ``y``.

        Args:
            x: ``[B, channels, H, W]`` noisy images.
            sigma: ``[B]`` (or a scalar) noise values, each one of ``self.sigmas``.
            y: ``[B]`` int64 or int32 labels in ``0 … K`` (K the null label).

        Returns:
            ``[B, channels, H, W]``.

        Raises:
            TypeError: as :meth:`ncsn.nets.RefineNet.forward`; ``y`` not an integer tensor.
            ValueError: as :meth:`ncsn.nets.RefineNet.forward`; ``y`` not ``[B]`` or, on the
                CPU, outside ``0 … K``.
        """
        self._check_input(x)
        levels = level_indices(self.lookup, sigma, x)
        return self._features(x, self._pairs(levels, y, x))

    def forward_levels(self, x: Tensor, labels: Tensor, y: Tensor) -> Tensor:
        """Score estimate at level *indices* (no σ lookup) for the classes ``y``.

        Args:
            x: ``[B, channels, H, W]`` noisy images.
            labels: ``[B]`` integer indices into ``self.sigmas`` (0 is the largest σ).
            y: ``[B]`` labels in ``0 … K``.

        Returns:
            ``[B, channels, H, W]``.

        Example:
            >>> net = ncsn.nets.ConditionalRefineNet(1, 4, ncsn.geometric_sigmas(1.0, 0.01, 10), 3)
            >>> net.forward_levels(torch.rand(2, 1, 8, 8), torch.tensor([0, 9]), torch.tensor([0, 3])).shape
            torch.Size([2, 1, 8, 8])
        """
        self._check_input(x)
        check_labels(labels, x.shape[0], self.num_levels)
        return self._features(x, self._pairs(to_device_of(labels, x, "labels"), y, x))

    def _pairs(self, levels: Tensor, y: Tensor, x: Tensor) -> Tensor:
        check_labels(y, x.shape[0], self.num_classes + 1, name="y")
        return torch.stack([levels.long(), to_device_of(y, x, "y").long()], dim=1)


class ConditionalScoreMLP(nn.Module):
    """The toy :class:`~ncsn.nets.ScoreMLP` with a label input: a
    :class:`~ncsn.ConditionalScoreModel` for vector data.

    Linear(D, H) → Softplus → Linear(H, H) → Softplus → Linear(H, D), each hidden layer scaled and
    shifted by the level's and the class's rows added, ``h ← (γ[i] + Δγ[y])·h + β[i] + Δβ[y]``
    (γ initialised to 1, β, Δγ and Δβ to 0: at initialisation it is the ScoreMLP, for every
    label), ``i`` the index of σ in ``sigmas``.

    Shapes: ``x: [B, D]``, ``sigma: [B]``, ``y: [B]`` → ``[B, D]``.

    Args:
        dim: D, the data dimension.
        num_classes: K; labels are ``0 … K − 1`` and the null label K.
        hidden: H, the hidden width.
        sigmas: ``[L]`` the schedule to condition on.
        generator: optional generator for the initial weights.

    Example:
        >>> net = ncsn.nets.ConditionalScoreMLP(2, 2, sigmas=ncsn.geometric_sigmas(20.0, 1.0, 10))
        >>> net(torch.zeros(3, 2), net.sigmas[:3], torch.tensor([0, 1, 2])).shape
        torch.Size([3, 2])
    """

    def __init__(
        self,
        dim: int,
        num_classes: int,
        hidden: int = 128,
        *,
        sigmas: Tensor | Sequence[float],
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.dim = positive_int(dim, "dim")
        self.num_classes = _num_classes(num_classes)
        self.hidden = positive_int(hidden, "hidden")
        check_generator_type(generator)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, dim)
        if generator is not None:
            _init_linear((self.fc1, self.fc2, self.fc3), generator)
        self.act = nn.Softplus()
        self.lookup = LevelLookup(as_sigmas(sigmas).to(torch.get_default_dtype()))
        levels = self.lookup.num_levels
        self.gain = nn.Parameter(torch.ones(levels, 2, hidden))
        self.bias = nn.Parameter(torch.zeros(levels, 2, hidden))
        self.class_gain = nn.Parameter(torch.zeros(num_classes + 1, 2, hidden))
        self.class_bias = nn.Parameter(torch.zeros(num_classes + 1, 2, hidden))

    @property
    def sigmas(self) -> Tensor:
        """The ``[L]`` schedule the network is conditioned on."""
        return self.lookup.sigmas

    def forward(self, x: Tensor, sigma: Tensor | float, y: Tensor) -> Tensor:
        """Score estimate ``[B, D]``.

        Args:
            x: ``[B, D]`` points, in the dtype and on the device of the parameters.
            sigma: ``[B]`` (or a scalar) noise values, each one of ``self.sigmas``.
            y: ``[B]`` int64 or int32 labels in ``0 … K``.

        Raises:
            TypeError: ``x`` not a floating tensor or of another dtype than the parameters;
                ``y`` not an integer tensor.
            ValueError: ``x`` not ``[B, D]``, empty or on another device than the parameters;
                a σ not in the schedule; ``y`` not ``[B]`` or (on the CPU) outside ``0 … K``.
        """
        _check_vectors(x, self.dim, self.fc1.weight, type(self).__name__)
        check_labels(y, x.shape[0], self.num_classes + 1, name="y")
        index = level_indices(self.lookup, sigma, x)
        label = to_device_of(y, x, "y")
        gain = self.gain[index] + self.class_gain[label]
        bias = self.bias[index] + self.class_bias[label]
        h = self.act(gain[:, 0] * self.fc1(x) + bias[:, 0])
        h = self.act(gain[:, 1] * self.fc2(h) + bias[:, 1])
        return self.fc3(h)


class NoisyClassifierMLP(nn.Module):
    """A noise-conditional classifier ``p(y | x, σ)`` for any event shape: a
    :class:`~ncsn.NoisyClassifier` for :class:`ncsn.guidance.ClassifierGuidance`.

    The example is flattened and scaled by ``1/√(1 + σ²)`` (so that its scale stays of order one
    at every σ), then Linear → SiLU → Linear → SiLU → Linear to K logits; each hidden layer adds a
    linear map of the noise features ``[log σ, sin(k log σ), cos(k log σ)]`` (k = 1 … 4). σ is
    continuous (any σ ≥ 0, values below 1e-4 taken as 1e-4), so the classifier guides samplers
    on any σ grid. SiLU keeps ``∇ₓ log p`` smooth.

    Shapes: ``x: [B, *event]``, ``sigma: [B]`` → ``[B, K]`` logits.

    Args:
        event_shape: the shape of one example (an int D for vectors).
        num_classes: K.
        hidden: the hidden width.
        generator: optional generator for the initial weights.

    Example:
        >>> net = ncsn.nets.NoisyClassifierMLP((1, 8, 8), num_classes=10, hidden=32)
        >>> net(torch.rand(4, 1, 8, 8), torch.full((4,), 0.5)).shape
        torch.Size([4, 10])
    """

    _FREQUENCIES = 4

    def __init__(
        self,
        event_shape: int | Sequence[int],
        num_classes: int,
        hidden: int = 256,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        shape = (event_shape,) if isinstance(event_shape, int) else tuple(event_shape)
        if not shape:
            raise ValueError(f"event_shape must name at least one dimension; got {event_shape!r}")
        self.event_shape = tuple(positive_int(d, "event_shape") for d in shape)
        self.num_classes = _num_classes(num_classes)
        self.hidden = positive_int(hidden, "hidden")
        check_generator_type(generator)
        features = 1 + 2 * self._FREQUENCIES
        dim = math.prod(self.event_shape)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, num_classes)
        self.noise1 = nn.Linear(features, hidden)
        self.noise2 = nn.Linear(features, hidden)
        if generator is not None:
            _init_linear((self.fc1, self.fc2, self.fc3, self.noise1, self.noise2), generator)

    def forward(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        """Logits ``[B, K]`` of ``p(y | x, σ)``.

        Args:
            x: ``[B, *event_shape]`` noisy examples.
            sigma: ``[B]`` or a scalar, finite and ≥ 0.

        Raises:
            TypeError: ``x`` not a floating tensor or of another dtype than the parameters.
            ValueError: ``x`` not ``[B, *event_shape]``, empty or on another device; a negative
                or non-finite σ, or one of another shape than ``[B]``.
        """
        check_batch(x)
        if tuple(x.shape[1:]) != self.event_shape:
            raise ValueError(
                f"NoisyClassifierMLP expects x of shape [B, {', '.join(map(str, self.event_shape))}]"
                f"; got x.shape={tuple(x.shape)}"
            )
        flat = x.reshape(x.shape[0], -1)
        _check_vectors(flat, flat.shape[1], self.fc1.weight, type(self).__name__, name="x")
        sig = sigma_vector(sigma, x)
        log_sigma = sig.clamp_min(1e-4).log()[:, None]
        k = torch.arange(1, self._FREQUENCIES + 1, device=x.device, dtype=x.dtype)
        noise = torch.cat([log_sigma, (k * log_sigma).sin(), (k * log_sigma).cos()], dim=1)
        h = F.silu(self.fc1(flat * torch.rsqrt(1 + sig.square())[:, None]) + self.noise1(noise))
        h = F.silu(self.fc2(h) + self.noise2(noise))
        return self.fc3(h)


def _init_linear(layers: Sequence[nn.Linear], generator: torch.Generator) -> None:
    """PyTorch's default Linear initialisation, drawn from ``generator``."""
    for layer in layers:
        nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
        bound = 1 / math.sqrt(layer.in_features)
        nn.init.uniform_(layer.bias, -bound, bound, generator=generator)


def _check_vectors(x: Tensor, dim: int, weight: Tensor, owner: str, name: str = "x") -> None:
    """Metadata checks of ``[B, D]`` inputs (no device synchronisation)."""
    check_batch(x, name)
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"{owner} expects {name} of shape [B, {dim}]; got {tuple(x.shape)}")
    check_nonempty(x, name)
    if x.dtype != weight.dtype:
        raise TypeError(
            f"{name} has dtype {x.dtype} but the {owner} parameters have dtype {weight.dtype}; "
            f"convert one of them (e.g. net.to({x.dtype}))"
        )
    if not same_device(x.device, weight.device):
        raise ValueError(
            f"{name} is on device {x.device} but the {owner} parameters are on device "
            f"{weight.device}; move one of them (e.g. net.to({str(x.device)!r}))"
        )
