"""What every sampler shares: the run bookkeeping around a loop over a kernel (checks at the
start, the step hook and callback, the check of the last iterate), the argument checks of the
kernels, and the final denoising step."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import torch
from torch import Tensor

from ncsn._checks import (
    call_model,
    check_batch,
    check_callable,
    check_generator,
    check_nonempty,
    check_optional_callable,
    has_values,
    pad_event,
    same_device,
    sigma_vector,
)
from ncsn._types import ScoreModel, StepCallback, StepHook, StepInfo
from ncsn.schedules import SigmaGrid

__all__ = ["denoise_step"]

Levels: TypeAlias = SigmaGrid | Tensor | Sequence[float]


class Run:
    """One call of a configured sampler: the bookkeeping around its loop over a kernel.

    It checks the arguments before any step; :meth:`model` calls the model and keeps its last
    output (the ``score`` of :class:`StepInfo`); :meth:`hook` and :meth:`stepped` apply the step
    hook and the callback; :meth:`finish` checks the last iterate (the one host synchronisation
    of a chain).
    """

    def __init__(
        self,
        where: str,
        model: ScoreModel,
        x: Tensor,
        *,
        generator: torch.Generator | None,
        callback: StepCallback | None,
        hook: StepHook | None,
        advice: str,
    ) -> None:
        check_start(x, generator, model=model, callback=callback, hook=hook)
        self.where, self.advice = where, advice
        self.callback, self.step_hook = callback, hook
        self.level, self.sigma = 0, 0.0
        self.last: Tensor | None = None
        self._model = model

    def model(self, x: Tensor, sigma: Tensor) -> Tensor:
        """The model; its output is kept for the callback."""
        self.last = self._model(x, sigma)
        return self.last

    def at(self, level: int, sigma: float) -> None:
        """The level the next model calls belong to (for :class:`StepInfo`)."""
        self.level, self.sigma = level, sigma

    def hook(self, x: Tensor, sigma: float) -> None:
        """Apply the step hook (if any) with the noise level x now stands for."""
        if self.step_hook is not None:
            self.step_hook(x, sigma)

    def stepped(self, x: Tensor, step: int, step_size: float, reached: float) -> None:
        """After a step: the hook (at the level ``reached``), then the callback's StepInfo."""
        self.hook(x, reached)
        if self.callback is not None:
            if self.last is None:
                raise RuntimeError("a sampler step must call the model before its callback")
            self.callback(StepInfo(self.level, step, self.sigma, step_size, x, self.last))

    def finish(self, x: Tensor) -> Tensor:
        """Return x if it is finite; otherwise raise a ``FloatingPointError`` with the advice."""
        if has_values(x) and not bool(torch.isfinite(x).all()):
            raise FloatingPointError(
                f"{self.where} produced non-finite values; {self.advice} for this model"
            )
        return x


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

    Raises:
        ValueError: a σ that is not positive and finite or of the wrong shape, an ``out`` that
            does not match x, or a model output of another shape than x.

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
        score = call_model(model, x, sig)
        # A Python σ scales in double precision, as every kernel's Python step sizes do.
        scale = pad_event(sig * sig, x) if isinstance(sigma, Tensor) else float(sigma) ** 2
        return torch.add(x, score * scale, out=out)
