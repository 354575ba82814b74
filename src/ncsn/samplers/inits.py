"""Starting points and inpainting masks: :func:`uniform_init` (the paper's U[0, 1]),
:func:`gaussian_init` (NCSNv2's N(0, σ₁²I)) and :func:`inpainting_mask` presets."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch
from torch import Tensor

from ncsn._checks import draw_device_dtype, finite_float, positive_float

__all__ = ["MASK_PRESETS", "gaussian_init", "inpainting_mask", "uniform_init"]


MASK_PRESETS = ("right_half", "left_half", "top_half", "bottom_half", "centre_box", "random")


def inpainting_mask(
    preset: str,
    shape: Sequence[int],
    *,
    fraction: float = 0.5,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """A boolean *known* mask (True = observed) for images: ``[H, W]``, ``[C, H, W]``,
    ``[B, C, H, W]`` or ``[B, C, *spatial]``.

    Presets name the *missing* region: ``"right_half"`` (the paper's Fig. 6 keeps the left half),
    ``"left_half"``, ``"top_half"``, ``"bottom_half"``, ``"centre_box"`` (a centred box covering
    ``fraction`` of the height and width is missing; these five act on the last two dims and are
    the same for every leading index) and ``"random"`` (each pixel missing independently with
    probability ``fraction``). For ``"random"`` the dims are read as ``[H, W]`` (2 dims), ``[C, H,
    W]`` (3 dims: one pixel mask shared across the C channels) or ``[B, C, *spatial]`` (4 or more
    dims: a mask per example b, shared across the C channels, over every position of
    ``*spatial``).

    Args:
        preset: one of ``"right_half"``, ``"left_half"``, ``"top_half"``, ``"bottom_half"``,
            ``"centre_box"``, ``"random"``.
        shape: the shape of the mask, at least two dims (the last two are H, W).
        fraction: in (0, 1); the box's relative size (``"centre_box"``) or the probability of a
            pixel being missing (``"random"``); unused by the halves.
        generator: source of the ``"random"`` mask.
        device: where to build the mask (default: the generator's device, else the CPU).

    Returns:
        A boolean tensor of ``shape``, True where the entry is known.

    Raises:
        ValueError: an unknown preset, a shape of fewer than two dims or with a dim < 1, or a
            ``fraction`` outside (0, 1).
        TypeError: a shape that is not a sequence of ints.

    Example:
        >>> m = ncsn.samplers.inpainting_mask("right_half", (1, 4, 4))
        >>> m[0].int()
        tensor([[1, 1, 0, 0],
                [1, 1, 0, 0],
                [1, 1, 0, 0],
                [1, 1, 0, 0]], dtype=torch.int32)
    """
    shape = _check_shape(shape, min_dims=2)
    if preset not in MASK_PRESETS:
        raise ValueError(f"preset must be one of {MASK_PRESETS}; got preset={preset!r}")
    fraction = finite_float(fraction, "fraction")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1); got fraction={fraction}")
    dev = (
        torch.device(device)
        if device is not None
        else (generator.device if generator is not None else torch.device("cpu"))
    )
    h, w = shape[-2:]
    known = torch.ones(shape, dtype=torch.bool, device=dev)
    if preset == "right_half":
        known[..., w // 2 :] = False
    elif preset == "left_half":
        known[..., : w // 2] = False
    elif preset == "top_half":
        known[..., : h // 2, :] = False
    elif preset == "bottom_half":
        known[..., h // 2 :, :] = False
    elif preset == "centre_box":
        bh, bw = max(1, round(h * fraction)), max(1, round(w * fraction))
        top, left = (h - bh) // 2, (w - bw) // 2
        known[..., top : top + bh, left : left + bw] = False
    else:
        pixel_shape: tuple[int, ...]
        if len(shape) == 2:
            pixel_shape = shape
        elif len(shape) == 3:
            pixel_shape = (1, h, w)
        else:
            pixel_shape = (shape[0], 1, *shape[2:])
        u = torch.rand(pixel_shape, generator=generator, device=dev)
        known = (u >= fraction).expand(shape).clone()
    return known


def _check_shape(shape: Sequence[int], *, min_dims: int) -> tuple[int, ...]:
    """A shape as a tuple of Python ints: at least ``min_dims`` dims, each a positive integer."""
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence):
        raise TypeError(f"shape must be a sequence of ints; got shape={shape!r}")
    given: tuple[object, ...] = tuple(shape)
    dims = [int(d) for d in given if not isinstance(d, bool) and isinstance(d, numbers.Integral)]
    if len(dims) != len(given) or len(dims) < min_dims or min(dims, default=1) < 1:
        what = (
            "a non-empty sequence of positive ints [B, *event]"
            if min_dims == 1
            else f"a sequence of at least {min_dims} positive ints ending with (H, W)"
        )
        raise ValueError(f"shape must be {what}; got shape={given}")
    return tuple(dims)


def uniform_init(
    shape: Sequence[int],
    low: float = 0.0,
    high: float = 1.0,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Initial points U[low, high]^shape (the paper's and official code's initialisation, U[0, 1]).

    Args:
        shape: ``[B, *event]``, positive ints.
        low: the lower bound (finite).
        high: the upper bound (finite, > low).
        generator: source of the draw.
        dtype: floating dtype of the result (default: torch's default dtype).
        device: where to draw (default: the generator's device, else the CPU).

    Returns:
        A ``[B, *event]`` tensor of independent U[low, high] entries.

    Raises:
        ValueError: an empty shape or one with a dim < 1; non-finite bounds or low ≥ high, or
            bounds beyond ``dtype``'s range; a ``device`` that names no device or another
            device than the generator's.
        TypeError: a shape that is not a sequence of ints; a non-floating ``dtype``.

    Example:
        >>> x0 = ncsn.samplers.uniform_init((64, 3, 32, 32), generator=torch.Generator().manual_seed(0))
        >>> x0.shape
        torch.Size([64, 3, 32, 32])
    """
    low, high = finite_float(low, "low"), finite_float(high, "high")
    if not low < high:
        raise ValueError(f"low must be smaller than high; got low={low}, high={high}")
    dev, dt = draw_device_dtype(generator, device, dtype)
    if max(abs(low), abs(high)) > torch.finfo(dt).max:
        raise ValueError(
            f"low={low} and high={high} must be representable in dtype={dt} (largest finite "
            f"{torch.finfo(dt).max:g}); use a wider dtype"
        )
    u = torch.rand(_check_shape(shape, min_dims=1), generator=generator, dtype=dt, device=dev)
    return u.mul_(high - low).add_(low)


def gaussian_init(
    shape: Sequence[int],
    sigma: float,
    *,
    mean: float = 0.0,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Initial points N(mean, σ²I) of the given shape (e.g. σ = σ₁, as in NCSNv2).

    Args:
        shape: ``[B, *event]``, positive ints.
        sigma: the standard deviation σ > 0.
        mean: the mean of every entry (finite).
        generator: source of the draw.
        dtype: floating dtype of the result (default: torch's default dtype).
        device: where to draw (default: the generator's device, else the CPU).

    Returns:
        A ``[B, *event]`` tensor of independent N(mean, σ²) entries.

    Raises:
        ValueError: an empty shape or one with a dim < 1; a non-positive or non-finite σ; a
            non-finite mean; draws that would overflow ``dtype`` (|mean| + 8σ beyond its
            range); a ``device`` that names no device or another device than the generator's.
        TypeError: a shape that is not a sequence of ints; a non-floating ``dtype``.

    Example:
        >>> x0 = ncsn.samplers.gaussian_init((16, 2), sigma=20.0, generator=torch.Generator().manual_seed(0))
        >>> x0.shape
        torch.Size([16, 2])
    """
    sigma = positive_float(sigma, "sigma")
    mean = finite_float(mean, "mean")
    dev, dt = draw_device_dtype(generator, device, dtype)
    if abs(mean) + 8 * sigma > torch.finfo(dt).max:
        # |z| > 8 has probability 1e-15: below this bound no draw overflows.
        raise ValueError(
            f"sigma={sigma} with mean={mean} overflows dtype={dt} (largest finite "
            f"{torch.finfo(dt).max:g}; |mean| + 8·sigma must stay below it); use a wider dtype"
        )
    z = torch.randn(_check_shape(shape, min_dims=1), generator=generator, dtype=dt, device=dev)
    return z.mul_(sigma).add_(mean)
