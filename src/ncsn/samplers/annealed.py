"""Annealed Langevin dynamics (Algorithm 1 of Song & Ermon, 2019): :class:`AnnealedLangevin`, a loop
over :func:`~ncsn.samplers.langevin_step` at decreasing noise levels.

Speed. A sampler costs L·T model evaluations, so the loop around them is kept at its floor: it runs
under :func:`torch.no_grad` (not :func:`torch.inference_mode`: measured no faster here, and its
tensors could not later enter autograd), steps the chain in place (``out=x``) and computes each
level's step size once (``benchmarks/sampling.py`` measures the loop against the bare model calls).
The loop itself reads nothing back from the device: the sampler synchronises when it checks x for
finite values, once before the first step and once after the last. Faster model calls
(``torch.compile``, autocast, CUDA graphs) are model wrappers that work with every sampler:
:func:`ncsn.nets.compiled`, :func:`ncsn.nets.autocast`, :func:`ncsn.nets.cuda_graphed`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ncsn._checks import positive_float, positive_int
from ncsn._types import ScoreModel, StepCallback
from ncsn.samplers._common import (
    Recorder,
    StepHook,
    StepInfo,
    check_end,
    check_start,
    denoise_step,
    levels,
)
from ncsn.samplers.langevin import langevin_step

__all__ = ["AnnealedLangevin"]


@dataclass(frozen=True, eq=False)
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
        sigmas: ``[L]`` strictly decreasing positive levels.
        step_size: ε > 0 (paper: 2e-5; the official code's ``step_lr`` is ε/2).
        steps_per_level: T ≥ 1 (paper: 100).
        denoise: add the final denoising step.

    Raises:
        ValueError: invalid levels, step size or steps.

    Example:
        >>> sampler = ncsn.samplers.AnnealedLangevin(ncsn.geometric_sigmas(20.0, 1.0, 10), 0.1, 100)
        >>> exact = ncsn.toy.paper_mixture().score_model()
        >>> g = torch.Generator().manual_seed(0)
        >>> x = sampler(exact, ncsn.samplers.uniform_init((1280, 2), low=-8, high=8, generator=g), generator=g)

    References:
        Song & Ermon (2019), Algorithm 1; Song & Ermon (2020) for ``denoise``.
    """

    sigmas: Tensor
    step_size: float
    steps_per_level: int
    denoise: bool = False
    _floats: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __init__(
        self,
        sigmas: Tensor | Sequence[float],
        step_size: float,
        steps_per_level: int,
        denoise: bool = False,
    ) -> None:
        grid, floats = levels(sigmas)
        object.__setattr__(self, "sigmas", grid)
        object.__setattr__(self, "step_size", positive_float(step_size, "step_size"))
        object.__setattr__(
            self, "steps_per_level", positive_int(steps_per_level, "steps_per_level")
        )
        if not isinstance(denoise, bool):
            raise TypeError(f"denoise must be a bool; got denoise={denoise!r}")
        object.__setattr__(self, "denoise", denoise)
        object.__setattr__(self, "_floats", floats)

    def _key(self) -> tuple[object, ...]:
        # The levels by value: two samplers with the same σ values run the same chain whatever
        # the dtype or device of the tensors they were given.
        return (self._floats, self.step_size, self.steps_per_level, self.denoise)

    def __eq__(self, other: object) -> bool:
        """Equal settings: the same σ values, step size, steps and ``denoise``."""
        if not isinstance(other, AnnealedLangevin):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    @property
    def step_sizes(self) -> tuple[float, ...]:
        """α_i = ε·(σ_i/σ_L)² for each level (computed once)."""
        last = self._floats[-1]
        return tuple(self.step_size * (s / last) ** 2 for s in self._floats)

    @property
    def num_model_calls(self) -> int:
        """Model evaluations per call: L·T (+1 with ``denoise``)."""
        return len(self._floats) * self.steps_per_level + int(self.denoise)

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
            ValueError: an empty batch or non-finite start; a model output of the wrong shape.
            FloatingPointError: the chain produced non-finite values (step size too large).
        """
        check_start(x, generator, model=model, callback=callback, hook=hook)
        call = Recorder(model)
        with torch.no_grad():
            x = x.clone()
            for level, (value, alpha) in enumerate(zip(self._floats, self.step_sizes, strict=True)):
                if hook is not None:
                    hook(x, value)
                for step in range(self.steps_per_level):
                    x = langevin_step(call, x, value, alpha, generator=generator, out=x)
                    if hook is not None:
                        hook(x, value)
                    if callback is not None:
                        callback(StepInfo(level, step, value, alpha, x, call.last))
            if self.denoise:
                last = len(self._floats) - 1
                x = denoise_step(call, x, self._floats[-1], out=x)
                if hook is not None:
                    hook(x, 0.0)
                if callback is not None:
                    step = self.steps_per_level
                    callback(StepInfo(last, step, self._floats[-1], 0.0, x, call.last))
        check_end(x, "AnnealedLangevin")
        return x
