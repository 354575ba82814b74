"""Langevin dynamics at one noise level: the kernel :func:`langevin_step` (Eq. 4 of Song & Ermon,
2019) and :class:`Langevin`, the loop over it.

Paper convention throughout: one step at noise level σ with step size α is

    x ← x + (α/2) · s_θ(x, σ) + √α · z,    z ~ N(0, I).

The official image code writes the same step as ``x + step_lr·s + sqrt(2·step_lr)·z``, so its
``step_lr`` is α/2: use ``step_size = 2 * step_lr`` to reproduce it exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ncsn._checks import (
    Checked,
    call_model,
    check_generator,
    non_negative_float,
    positive_float,
    positive_int,
    randn_like,
    sigma_vector,
)
from ncsn._types import ScoreModel, StepCallback, StepHook
from ncsn.samplers._common import Run, check_kernel, check_noise, check_out

__all__ = ["Langevin", "langevin_step"]


def langevin_step(
    model: ScoreModel,
    x: Tensor,
    sigma: Tensor | float,
    step_size: float,
    *,
    generator: torch.Generator | None = None,
    noise: Tensor | None = None,
    out: Tensor | None = None,
) -> Tensor:
    """One Langevin step, x + (α/2)·s_θ(x, σ) + √α·z (Eq. 4 of Song & Ermon, 2019).

    Pure unless ``out`` is given: it returns a new tensor and leaves ``x`` unchanged. With
    ``out=x`` the step is taken in place (what :class:`Langevin` and
    :class:`~ncsn.samplers.AnnealedLangevin` do). No autograd graph is built.

    Args:
        model: a :class:`~ncsn.ScoreModel`.
        x: current iterate ``[B, *event]``.
        sigma: scalar or ``[B]`` σ given to the model (finite, ≥ 0; 0 asks an exact model for
            the data score). A tensor's values are checked on the CPU only, so that a loop on an
            accelerator never waits for the device.
        step_size: α > 0.
        generator: source of z (drawn in x's logical order).
        noise: optional z of x's shape (used instead of drawing it; cast to x's dtype and
            device; never modified).
        out: optional buffer of x's shape, dtype and device for the result (may be ``x``).

    Returns:
        The next iterate ``[B, *event]``, in x's dtype and on x's device (``out`` when given).

    Raises:
        ValueError: a negative or non-finite σ, a σ of the wrong shape, a non-positive step size,
            a ``noise`` or ``out`` that does not match x (checked before the model is called), or
            a model output whose shape differs from x's.

    Example:
        >>> exact = ncsn.toy.paper_mixture().score_model()
        >>> x = ncsn.samplers.uniform_init((4, 2), low=-8, high=8)
        >>> ncsn.samplers.langevin_step(exact, x, 0.0, 0.1).shape
        torch.Size([4, 2])
    """
    check_kernel(model, x)
    check_generator(generator, x)
    step_size = positive_float(step_size, "step_size")
    sig = sigma_vector(sigma, x)
    check_noise(noise, x)
    check_out(out, x)
    with torch.no_grad():
        score = call_model(model, x, sig)
        root = math.sqrt(step_size)
        kick = randn_like(x, generator).mul_(root) if noise is None else noise.to(x) * root
        # Products are rounded before the sums, as in the official code, so that
        # step_size = 2 * step_lr reproduces its update bit for bit.
        return torch.add(x, score * (step_size / 2), out=out).add_(kick)


@dataclass(frozen=True)
class Langevin:
    """Langevin dynamics at one noise level (Eq. 4 of Song & Ermon, 2019), a :class:`~ncsn.Sampler`.

    ``num_steps`` times, in place on a copy of x: ``x = langevin_step(model, x, σ, α, out=x)``.

    Args:
        sigma: σ given to the model at every step (σ ≥ 0; 0 asks an exact model for the data score).
        step_size: α > 0 (paper convention; the official code's ``step_lr`` is α/2).
        num_steps: T ≥ 1.

    Raises:
        ValueError: a negative or non-finite σ, a non-positive step size, T < 1.
        TypeError: a setting that is not a number (T: not an int).

    Example:
        >>> exact = ncsn.toy.paper_mixture().score_model()
        >>> g = torch.Generator().manual_seed(0)
        >>> x0 = ncsn.samplers.uniform_init((1280, 2), low=-8, high=8, generator=g)
        >>> x = ncsn.samplers.Langevin(sigma=0.0, step_size=0.1, num_steps=1000)(exact, x0, generator=g)
    """

    sigma: Checked[float] = Checked(non_negative_float)
    step_size: Checked[float] = Checked(positive_float)
    num_steps: Checked[int] = Checked(positive_int)

    @property
    def num_model_calls(self) -> int:
        """Model evaluations per call: T."""
        return self.num_steps

    def __call__(
        self,
        model: ScoreModel,
        x: Tensor,
        *,
        generator: torch.Generator | None = None,
        callback: StepCallback | None = None,
        hook: StepHook | None = None,
    ) -> Tensor:
        """Run the chain from ``x`` ``[B, *event]`` (left unchanged); return the last iterate.

        ``hook`` (a :class:`~ncsn.samplers.StepHook`, e.g. inpainting) is applied to the start
        and after every step; ``callback`` then sees a :class:`~ncsn.samplers.StepInfo`.

        Raises:
            ValueError: an empty batch or non-finite start; a model output of the wrong shape; a
                hook or callback that changed the shape, dtype or device of the iterate.
            NonFiniteError: the chain went non-finite (a ``FloatingPointError`` saying whether
                the model's output or the iterate went first).
        """
        advice = "the step size is probably too large for this model"
        run = Run(
            "Langevin", model, x, generator=generator, callback=callback, hook=hook, advice=advice
        )
        sigma = self.sigma
        run.at(0, sigma)
        with torch.no_grad():
            x = x.clone()
            run.hook(x, sigma)
            for step in range(self.num_steps):
                x = langevin_step(run.model, x, sigma, self.step_size, generator=generator, out=x)
                run.stepped(x, step, self.step_size, reached=sigma)
        return run.finish(x)
