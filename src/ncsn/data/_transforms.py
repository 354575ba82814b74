"""Transforms of the official NCSN data pipeline, for any ``[B, *event]`` batch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ncsn._checks import (
    check_batch,
    check_generator,
    check_nonempty,
    finite_float,
    pad_event,
    positive_int,
)
from ncsn.data._common import float_dtype

__all__ = [
    "ImageTransform",
    "dequantize",
    "grey_levels",
    "inverse_logit_transform",
    "logit_transform",
    "random_flip",
    "to_unit_range",
]


def to_unit_range(
    x: Tensor | np.ndarray, *, max_value: float = 255.0, dtype: torch.dtype = torch.float32
) -> Tensor:
    """Scale pixel values from ``[0, max_value]`` to ``[0, 1]``: ``x / max_value``.

    With ``max_value=255`` on ``uint8`` data this is torchvision's ``ToTensor`` scaling, which the
    official code applies to every image. Values outside ``[0, max_value]`` are an error rather
    than being clipped (a wrong ``max_value`` would otherwise go unnoticed).

    Args:
        x: ``[*shape]`` integer or floating pixels (a tensor or a numpy array).
        max_value: the value that maps to 1 (255 for 8-bit images, 16 for the UCI digits).
        dtype: the floating dtype of the result.

    Returns:
        ``[*shape]`` tensor of ``dtype`` on ``x``'s device, values in ``[0, 1]``.

    Raises:
        TypeError: ``x`` is neither a tensor nor an array of numbers, or ``dtype`` is not floating.
        ValueError: ``max_value`` is not positive, or a value lies outside ``[0, max_value]``.

    Example:
        >>> ncsn.data.to_unit_range(torch.tensor([0, 51, 255], dtype=torch.uint8))
        tensor([0.0000, 0.2000, 1.0000])
    """
    float_dtype(dtype)
    if not isinstance(max_value, (int, float)) or isinstance(max_value, bool) or max_value <= 0:
        raise ValueError(f"max_value must be a positive number; got max_value={max_value!r}")
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in "uif":
            raise TypeError(f"x must hold integers or floats; got numpy dtype {x.dtype}")
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor or numpy array; got {type(x).__name__}")
    if x.dtype in (torch.bool, torch.complex64, torch.complex128):
        raise TypeError(f"x must hold integers or floats; got dtype {x.dtype}")
    if not (x.dtype == torch.uint8 and max_value == 255) and x.numel() > 0:
        low, high = float(x.min()), float(x.max())
        if low < 0 or high > max_value:
            raise ValueError(
                f"x must lie in [0, max_value={max_value}] to scale to [0, 1]; "
                f"got values in [{low}, {high}]"
            )
    return x.to(dtype) / max_value


def dequantize(x: Tensor, *, levels: int = 256, generator: torch.Generator | None = None) -> Tensor:
    """Uniform dequantisation of ``[0, 1]`` pixels with ``levels`` grey levels.

    ``x ← x / levels · (levels − 1) + u / levels`` with ``u ~ U(0, 1)`` per element, which spreads
    each of the ``levels`` values ``k / (levels − 1)`` uniformly over ``[k / levels, (k+1) / levels)``.
    With 256 levels this is exactly the official code's ``X / 256 * 255 + rand / 256``, applied to
    train and test batches before the noise of the loss.

    A batch transform, called once per training step, so it reads no values (that would wait for
    an accelerator): x outside ``[0, 1]`` is dequantised all the same, and NaN stays NaN (the
    loss is then NaN and the Trainer raises :class:`~ncsn.training.NonFiniteLossError`).

    Args:
        x: ``[B, *event]`` floating batch in ``[0, 1]``, at least one example.
        levels: number of grey levels in the data (256 for 8-bit images, 17 for the UCI digits).
        generator: source of the uniform noise; on ``x``'s device.

    Returns:
        ``[B, *event]``, ``x``'s dtype and device, values in ``[0, 1)``.

    Raises:
        TypeError: ``x`` is not a floating tensor, or ``levels`` is not an int.
        ValueError: ``levels < 2``, an empty batch, or the generator is on another device.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> ncsn.data.dequantize(torch.ones(2, 1, 8, 8), generator=g).max() < 1
        tensor(True)

    References:
        Song & Ermon (2019), official code ``anneal_runner.py`` L136.
    """
    check_batch(x)
    check_nonempty(x)
    positive_int(levels, "levels")
    if levels < 2:
        raise ValueError(f"levels must be >= 2; got levels={levels}")
    check_generator(generator, x)
    u = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return x / levels * (levels - 1) + u / levels


def random_flip(x: Tensor, *, p: float = 0.5, generator: torch.Generator | None = None) -> Tensor:
    """Flip each example along its last axis (horizontally, for images) with probability ``p``.

    The official code's ``RandomHorizontalFlip(p=0.5)`` for CIFAR-10 and CelebA, batched: one
    uniform draw per example decides whether that whole example is mirrored.

    Args:
        x: ``[B, *event]`` with at least one event dimension; ``[B, C, H, W]`` flips ``W``.
        p: probability of flipping each example, in ``[0, 1]``.
        generator: source of the per-example draws; on ``x``'s device.

    Returns:
        ``[B, *event]``, a new tensor of ``x``'s dtype and device.

    Raises:
        TypeError: ``x`` is not a tensor.
        ValueError: ``x`` has no event dimension or no example, ``p`` is outside ``[0, 1]``, or
            the generator is on another device.

    Example:
        >>> x = torch.arange(4.0).reshape(1, 1, 1, 4)
        >>> ncsn.data.random_flip(x, p=1.0)
        tensor([[[[3., 2., 1., 0.]]]])
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor; got {type(x).__name__}")
    if x.ndim < 2:
        raise ValueError(f"x must have shape [B, *event] with an event axis; got {tuple(x.shape)}")
    check_nonempty(x)
    p = finite_float(p, "p")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must lie in [0, 1]; got p={p!r}")
    check_generator(generator, x)
    flip = torch.rand(x.shape[0], generator=generator, device=x.device) < p
    return torch.where(pad_event(flip, x), x.flip(-1), x)


def _check_lam(lam: float) -> float:
    lam = finite_float(lam, "lam")
    if not 0.0 <= lam < 0.5:
        raise ValueError(f"lam must lie in [0, 0.5); got lam={lam!r}")
    return lam


def logit_transform(x: Tensor, lam: float = 1e-6) -> Tensor:
    """The official optional logit transform: ``y = logit(λ + (1 − 2λ)·x)``.

    ``λ`` keeps pixels at exactly 0 or 1 finite. With the transform on, the official model skips
    its internal ``2x − 1`` rescaling, and samples are mapped back before saving (the official code
    uses a plain sigmoid there; :func:`inverse_logit_transform` is the exact inverse).

    Args:
        x: ``[B, *event]`` floating batch in ``[0, 1]`` (values outside give NaN).
        lam: λ in ``[0, 0.5)``; the official value is 1e-6.

    Returns:
        ``[B, *event]``, ``x``'s dtype and device.

    Raises:
        TypeError: ``x`` is not a floating tensor.
        ValueError: ``lam`` is outside ``[0, 0.5)``.

    Example:
        >>> ncsn.data.logit_transform(torch.tensor([[0.5]]))
        tensor([[0.]])

    References:
        Song & Ermon (2019), official code ``anneal_runner.py`` L39-41.
    """
    check_batch(x)
    lam = _check_lam(lam)
    y = lam + (1 - 2 * lam) * x
    return torch.log(y) - torch.log1p(-y)


def inverse_logit_transform(y: Tensor, lam: float = 1e-6) -> Tensor:
    """Exact inverse of :func:`logit_transform`: ``x = (sigmoid(y) − λ) / (1 − 2λ)``.

    Args:
        y: ``[B, *event]`` floating batch in logit space.
        lam: the λ used in the forward transform.

    Returns:
        ``[B, *event]``, ``y``'s dtype and device; in ``[0, 1]`` for ``y`` in the forward range.

    Raises:
        TypeError: ``y`` is not a floating tensor.
        ValueError: ``lam`` is outside ``[0, 0.5)``.

    Example:
        >>> x = torch.rand(4, 3)
        >>> torch.allclose(ncsn.data.inverse_logit_transform(ncsn.data.logit_transform(x)), x)
        True
    """
    check_batch(y, "y")
    lam = _check_lam(lam)
    return (torch.sigmoid(y) - lam) / (1 - 2 * lam)


def grey_levels(source: str) -> int:
    """The number of grey levels of a data source's pixels: 17 for the embedded digits (the
    values 0, 1/16, …, 1), 256 (8-bit) for every other source.

    This is what :class:`ImageTransform` dequantises over and what ``ncsn likelihood`` scores
    bits per dimension on.

    Args:
        source: a source name as :func:`load` takes it.

    Raises:
        TypeError: ``source`` is not a string.

    Example:
        >>> ncsn.data.grey_levels("digits"), ncsn.data.grey_levels("my_images/")
        (17, 256)
    """
    if not isinstance(source, str):
        raise TypeError(f"source must be a str; got {source!r}")
    return 17 if source == "digits" else 256


@dataclass(frozen=True)
class ImageTransform:
    """The official training transform of a batch of images in ``[0, 1]``: random horizontal
    flips, uniform dequantisation over ``levels`` grey levels, then the logit transform
    (λ = 1e-6) for a model that trains in logit space; each step optional, in that order.

    A :class:`~ncsn.training.BatchTransform`: ``transform(x [B, C, H, W], *, generator) -> [B,
    C, H, W]``.

    Args:
        flip: random horizontal flips (:func:`random_flip`; CIFAR-10, CelebA).
        dequantize: uniform dequantisation (:func:`dequantize`).
        logit: map to logit space (:func:`logit_transform`) after dequantising.
        levels: the data's grey levels (:func:`grey_levels`; 256 for 8-bit images).

    Raises:
        TypeError: a flag that is not a bool.
        ValueError: ``levels`` < 2.

    Example:
        >>> transform = ncsn.data.ImageTransform(dequantize=True, levels=17)
        >>> x = ncsn.data.load_digits("train")[0][:4]
        >>> y = transform(x, generator=torch.Generator().manual_seed(0))
        >>> bool(((y * 17).floor() == (x * 16).round()).all())  # each level spreads over 1/17
        True
    """

    flip: bool = False
    dequantize: bool = True
    logit: bool = False
    levels: int = 256

    def __post_init__(self) -> None:
        for name in ("flip", "dequantize", "logit"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool; got {name}={getattr(self, name)!r}")
        if positive_int(self.levels, "levels") < 2:
            raise ValueError(f"levels must be >= 2; got levels={self.levels}")

    def __call__(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        if self.flip:
            x = random_flip(x, generator=generator)
        if self.dequantize:
            x = dequantize(x, levels=self.levels, generator=generator)
        if self.logit:
            x = logit_transform(x)
        return x
