"""Annealed Langevin dynamics (Algorithm 1 of Song & Ermon, 2019): :class:`AnnealedLangevin`, a loop
over :func:`~ncsn.samplers.langevin_step` at decreasing noise levels.

The loop runs under :func:`torch.no_grad`, steps the chain in place (``out=x``) and reads nothing
back from the device until the end, so that its cost is the model's (``benchmarks/sampling.py``
measures the loop against the bare model calls).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ncsn._checks import Checked, check_bool, positive_float, positive_int
from ncsn._types import ScoreModel, StepCallback, StepHook
from ncsn.samplers._common import Run, denoise_step, grid_check
from ncsn.samplers.langevin import langevin_step
from ncsn.schedules import SigmaGrid, SigmaGridLike

__all__ = ["AnnealedLangevin"]


@dataclass(frozen=True)
class AnnealedLangevin:
    """Annealed Langevin dynamics (Algorithm 1 of Song & Ermon, 2019), a :class:`~ncsn.Sampler`.

    For each level i = 1..L with α_i = ε·(σ_i/σ_L)², T times: x ← x + (α_i/2)·s_θ(x, σ_i) + √α_i·z
    (:func:`~ncsn.samplers.langevin_step`). With ``denoise=True`` a final step
    x ← x + σ_L²·s_θ(x, σ_L) removes the last level's noise (Tweedie's formula,
    :func:`~ncsn.samplers.denoise_step`; NCSNv2). Off by default, as in NCSN v1.

    A ``torch.channels_last`` chain with a ``channels_last`` network needs no option: the noise is
    drawn in logical order, so the samples equal the contiguous ones up to the network's round-off.
    For compiled, reduced-precision or CUDA-graph model calls wrap the model
    (:func:`ncsn.nets.compiled`, :func:`ncsn.nets.autocast`, :func:`ncsn.nets.cuda_graphed`).

    Args:
        sigmas: ``[L]`` strictly decreasing positive levels (a tensor, a sequence or a
            :class:`~ncsn.schedules.SigmaGrid`; kept as a grid, compared by value).
        step_size: ε > 0 (paper: 2e-5; the official code's ``step_lr`` is ε/2).
        steps_per_level: T ≥ 1 (paper: 100).
        denoise: add the final denoising step.

    Raises:
        ValueError: invalid levels (a trailing 0 is named as what ``denoise=True`` does), a
            non-positive step size, T < 1.
        TypeError: a setting of the wrong type.

    Example:
        >>> sampler = ncsn.samplers.AnnealedLangevin(ncsn.geometric_sigmas(20.0, 1.0, 10), 0.1, 100)
        >>> exact = ncsn.toy.paper_mixture().score_model()
        >>> g = torch.Generator().manual_seed(0)
        >>> x = sampler(exact, ncsn.samplers.uniform_init((1280, 2), low=-8, high=8, generator=g), generator=g)

    References:
        Song & Ermon (2019), Algorithm 1; Song & Ermon (2020) for ``denoise``.
    """

    sigmas: Checked[SigmaGrid, SigmaGridLike] = Checked(
        grid_check("drop it and pass denoise=True, the final step x + σ_L²·s_θ(x, σ_L) to σ = 0")
    )
    step_size: Checked[float] = Checked(positive_float)
    steps_per_level: Checked[int] = Checked(positive_int)
    denoise: Checked[bool] = Checked(check_bool, default=False)

    @property
    def step_sizes(self) -> tuple[float, ...]:
        """α_i = ε·(σ_i/σ_L)² for each level."""
        last = self.sigmas.values[-1]
        return tuple(self.step_size * (s / last) ** 2 for s in self.sigmas.values)

    @property
    def num_model_calls(self) -> int:
        """Model evaluations per call: L·T (+1 with ``denoise``)."""
        return len(self.sigmas) * self.steps_per_level + int(self.denoise)

    def __call__(
        self,
        model: ScoreModel,
        x: Tensor,
        *,
        generator: torch.Generator | None = None,
        callback: StepCallback | None = None,
        hook: StepHook | None = None,
    ) -> Tensor:
        """Run Algorithm 1 from ``x`` ``[B, *event]`` (left unchanged); return the last iterate.

        ``hook`` (a :class:`~ncsn.samplers.StepHook`, e.g. inpainting) is applied at the start of
        every level (with that level's σ), after every step, and after the denoising step (with
        σ = 0); ``callback`` then sees a :class:`~ncsn.samplers.StepInfo`.

        Raises:
            ValueError: an empty batch or non-finite start; a model output of the wrong shape; a
                hook or callback that changed the shape, dtype or device of the iterate.
            NonFiniteError: the chain went non-finite (a ``FloatingPointError`` saying whether
                the model's output or the iterate went first, and at which level).
        """
        run = Run(
            "AnnealedLangevin",
            model,
            x,
            generator=generator,
            callback=callback,
            hook=hook,
            advice="the step size is probably too large for this model",
        )
        with torch.no_grad():
            x = x.clone()
            for level, (sigma, alpha) in enumerate(
                zip(self.sigmas.values, self.step_sizes, strict=True)
            ):
                run.at(level, sigma)
                run.hook(x, sigma)
                for step in range(self.steps_per_level):
                    x = langevin_step(run.model, x, sigma, alpha, generator=generator, out=x)
                    run.stepped(x, step, alpha, reached=sigma)
            if self.denoise:
                x = denoise_step(run.model, x, self.sigmas.values[-1], out=x)
                run.stepped(x, self.steps_per_level, 0.0, reached=0.0)
        return run.finish(x)
