"""What every sampler shares: the step record, the step-hook protocol and the start/end checks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

import torch
from torch import Tensor

from ncsn._checks import (
    as_sigmas,
    check_batch,
    check_callable,
    check_generator,
    check_nonempty,
    check_optional_callable,
    check_output,
    has_values,
    pad_event,
    same_device,
)
from ncsn._checks import sigma_vector as sigma_vector  # re-exported for the samplers
from ncsn._types import ScoreModel

__all__ = ["StepHook", "StepInfo", "denoise_step"]


class StepInfo(NamedTuple):
    """What a sampler's ``callback`` sees after each step.

    Attributes:
        level: index of the noise level (0 = largest σ; always 0 for plain Langevin).
        step: index of the step within the level.
        sigma: σ given to the model at this step.
        step_size: the step's size in the sampler's own convention (α for Langevin steps, the
            σ² decrement for the diffusion and ODE steps; 0.0 for a final denoising step).
        x: the iterate after the step (and after the step hook) ``[B, *event]``; a sampler's
            buffer may be reused by the next step: clone it to keep it.
        score: the model output used by the step ``[B, *event]``.
    """

    level: int
    step: int
    sigma: float
    step_size: float
    x: Tensor
    score: Tensor


class StepHook(Protocol):
    """Changes the iterate in place whenever it is taken to be at noise level σ.

    Every sampler of :mod:`ncsn.samplers` calls ``hook(x, sigma)`` on its starting point (at the
    first level's σ) and after every step, with the noise level the iterate then stands for
    (``sigma = 0.0`` after a final denoising step), before the ``callback`` sees it. Inpainting
    (:class:`~ncsn.samplers.Inpainting`) is such a hook: it replaces the known entries by the
    observations perturbed at σ. A hook must not change the shape, dtype or device of ``x``.
    """

    def __call__(self, x: Tensor, sigma: float, /) -> None: ...


def check_start(
    x: Tensor,
    generator: torch.Generator | None,
    *,
    model: object,
    callback: object = None,
    hook: object = None,
) -> None:
    """The starting point: a floating ``[B, *event]`` tensor, finite, with a matching generator;
    a callable model, callback and hook (or None), checked before any step."""
    check_callable(model, "model")
    check_optional_callable(callback, "callback")
    check_optional_callable(hook, "hook")
    check_batch(x)
    check_generator(generator, x)
    check_nonempty(x)
    if has_values(x) and not bool(torch.isfinite(x).all()):
        raise ValueError("x (the initial points) contains NaN or infinite values")


def check_kernel(model: object, x: Tensor) -> None:
    """What every step kernel checks (metadata only: kernels run once per step)."""
    check_callable(model, "model")
    check_batch(x)
    check_nonempty(x)


def check_end(x: Tensor, what: str, advice: str = "the step size is probably too large") -> None:
    """Refuse a non-finite final iterate (the one host sync at the end of a chain)."""
    if not bool(torch.isfinite(x).all()):
        raise FloatingPointError(f"{what} produced non-finite values; {advice} for this model")


def check_noise(noise: Tensor | None, x: Tensor, name: str = "noise") -> None:
    """An optional given noise tensor must have x's shape (checked before any model call)."""
    if noise is None:
        return
    if not isinstance(noise, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or None; got {type(noise).__name__}")
    if not torch.is_floating_point(noise):
        raise TypeError(f"{name} must be a floating-point tensor; got dtype {noise.dtype}")
    if noise.shape != x.shape:
        raise ValueError(
            f"{name} must have the shape of x {tuple(x.shape)}; got {tuple(noise.shape)}"
        )
    if not same_device(noise.device, x.device) and not (has_values(noise) and has_values(x)):
        raise ValueError(
            f"{name} is on device {noise.device} but x is on device {x.device}; move {name} "
            f"to {x.device}"
        )


def check_out(out: Tensor | None, x: Tensor) -> None:
    """An optional ``out=`` buffer must match x in shape, dtype and device."""
    if out is None:
        return
    if not isinstance(out, Tensor):
        raise TypeError(f"out must be a torch.Tensor or None; got {type(out).__name__}")
    if out.shape != x.shape or out.dtype != x.dtype or out.device != x.device:
        raise ValueError(
            f"out must match x (shape {tuple(x.shape)}, {x.dtype}, {x.device}); got shape "
            f"{tuple(out.shape)}, {out.dtype}, {out.device}"
        )


def score_of(model: ScoreModel, x: Tensor, sigma: Tensor) -> Tensor:
    """The model's score at (x, σ), its shape checked at every call (metadata only, no sync)."""
    out = model(x, sigma)
    check_output(out, x)
    return out


def noise_like(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """N(0, I) of x's shape, drawn in x's logical (row-major) order whatever its memory format,
    so that a ``channels_last`` chain draws the same noise as a contiguous one."""
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)


def levels(sigmas: Tensor | Sequence[float]) -> tuple[Tensor, tuple[float, ...]]:
    """A validated σ grid and its values as Python floats (read once, at construction)."""
    grid = as_sigmas(sigmas)
    return grid, tuple(float(s) for s in grid.tolist())


class Recorder:
    """Wraps a model and keeps its last output, so that a loop over a kernel can hand the score
    the kernel used to ``callback`` without the kernel returning it."""

    def __init__(self, model: ScoreModel) -> None:
        self.model = model
        self._last: Tensor | None = None

    def __call__(self, x: Tensor, sigma: Tensor) -> Tensor:
        self._last = self.model(x, sigma)
        return self._last

    @property
    def last(self) -> Tensor:
        """The output of the latest call."""
        if self._last is None:
            raise RuntimeError("the model has not been called yet")
        return self._last


def denoise_step(
    model: ScoreModel, x: Tensor, sigma: Tensor | float, *, out: Tensor | None = None
) -> Tensor:
    """Tweedie's denoising step x + σ²·s_θ(x, σ): the posterior mean E[x₀ | x] of the clean data
    given x perturbed by N(0, σ²I), exact for the true score (Robbins 1956; Efron 2011).

    NCSNv2 (Song & Ermon, 2020) ends annealed Langevin with it at σ_L; every sampler here offers
    it as ``denoise=``.

    Args:
        model: a :class:`~ncsn.ScoreModel`.
        x: ``[B, *event]`` iterate at noise level σ.
        sigma: scalar or ``[B]`` σ > 0.
        out: optional buffer of x's shape, dtype and device for the result (may be x itself).

    Returns:
        The denoised ``[B, *event]`` tensor (``out`` when given).

    Example:
        >>> gauss = ncsn.toy.Gaussian(torch.zeros(2), torch.eye(2))
        >>> x = torch.ones(3, 2, dtype=torch.float64)
        >>> ncsn.samplers.denoise_step(gauss.score_model(), x, 1.0)   # E[x0 | x] = x / 2
        tensor([[0.5000, 0.5000],
                [0.5000, 0.5000],
                [0.5000, 0.5000]], dtype=torch.float64)
    """
    check_kernel(model, x)
    check_out(out, x)
    sig = sigma_vector(sigma, x, allow_zero=False)
    with torch.no_grad():
        score = score_of(model, x, sig)
        # A Python σ scales by the double σ², as the configured samplers always did.
        scale = pad_event(sig * sig, x) if isinstance(sigma, Tensor) else float(sigma) ** 2
        return torch.add(x, score * scale, out=out)
