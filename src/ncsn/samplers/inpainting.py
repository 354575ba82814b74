"""Inpainting (Algorithm 2 of Song & Ermon, 2019) as a step hook that works with every sampler.

:class:`Inpainting` is a :class:`~ncsn.samplers.StepHook`: whenever the sampler's iterate stands
for noise level σ, the known entries are replaced by the observations perturbed at that σ,
y = x_obs + σ·z̃ (z̃ drawn once per level); the unknown entries follow the sampler. :func:`inpaint`
builds the hook and runs any :class:`~ncsn.Sampler` with it: ``hook=`` is part of the protocol.

Inpainting is the mask case of a linear inverse problem: the hook is
:class:`ncsn.inverse.Projection` for the operator :class:`ncsn.inverse.Mask` and noiseless
measurements, and ``inpaint`` with :class:`~ncsn.samplers.AnnealedLangevin` is
:class:`ncsn.inverse.PosteriorLangevin` with ``projection=True``, draw for draw.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from ncsn._checks import (
    check_batch,
    check_callable,
    check_float_tensor,
    check_generator,
    check_nonempty,
    has_values,
    to_device_of,
)
from ncsn._types import Sampler, ScoreModel, StepCallback
from ncsn.inverse.measurement import Measurement, Projection
from ncsn.inverse.operators import Mask
from ncsn.samplers.inits import uniform_init

__all__ = ["Inpainting", "inpaint"]


class Inpainting:
    """A step hook that re-imposes the known entries, perturbed at the current σ (Algorithm 2).

    ``hook(x, σ)`` sets ``x[mask] = y[mask]`` in place with y = x_obs + σ·z̃; a new z̃ is drawn
    from ``generator`` each time σ changes (once per level), and σ = 0 (after a final denoising
    step) gives the clean observations.

    Args:
        x: ``[B, *event]`` observations. Only the known entries are read: the unknown ones may
            hold placeholders such as NaN.
        mask: boolean or 0/1 tensor broadcastable to x (per-example masks allowed); 1 = known.
        generator: source of z̃ (the sampler's generator, so that one seed fixes the whole run).

    Raises:
        ValueError: a mask that cannot broadcast to x, holds values other than 0/1, or has no
            unknown entry; NaN or infinite values in x at known entries; an empty batch.

    Example:
        >>> obs = torch.zeros(2, 4)
        >>> hook = ncsn.samplers.Inpainting(obs, torch.tensor([1, 1, 0, 0]))
        >>> x = torch.ones(2, 4)
        >>> hook(x, 0.0)
        >>> x
        tensor([[0., 0., 1., 1.],
                [0., 0., 1., 1.]])
    """

    def __init__(
        self, x: Tensor, mask: Tensor, *, generator: torch.Generator | None = None
    ) -> None:
        check_batch(x)
        check_generator(generator, x)
        check_nonempty(x)
        mask = _as_mask(mask)
        mask = to_device_of(mask, x, "mask")
        try:
            expanded = mask.expand(x.shape)
        except RuntimeError as err:
            raise ValueError(
                f"mask of shape {tuple(mask.shape)} cannot broadcast to x of shape {tuple(x.shape)}"
            ) from err
        if expanded.dtype != torch.bool:
            # (a meta tensor has shapes only: nothing to check or observe)
            if has_values(expanded) and not bool(((expanded == 0) | (expanded == 1)).all()):
                bad = expanded[(expanded != 0) & (expanded != 1)][:5].tolist()
                raise ValueError(
                    f"mask must hold only 0 and 1 (1 = known); got values such as {bad}"
                )
            expanded = expanded == 1
        if has_values(x) and bool(expanded.all()):
            raise ValueError("mask marks every entry as known (1): there is nothing to inpaint")
        if has_values(x) and not bool((torch.isfinite(x) | ~expanded).all()):
            raise ValueError(
                "x (the observations) contains NaN or infinite values at known entries "
                "(mask = 1); only the unknown entries (mask = 0) are ignored"
            )
        self.mask = expanded
        # The unknown entries set to 0, so that a NaN placeholder there never enters the chain.
        self.observed = torch.where(expanded, x, torch.zeros((), dtype=x.dtype, device=x.device))
        self.generator = generator
        measurement = Measurement(Mask(expanded, batched=True), self.observed)
        self._projection = Projection(measurement, generator=generator)

    def __call__(self, x: Tensor, sigma: float, /) -> None:
        if not isinstance(x, Tensor) or x.shape != self.mask.shape:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(
                f"x must have the shape of the observations {tuple(self.mask.shape)}; got {got}"
            )
        self._projection(x, sigma)

    def start(self, init: Tensor | None = None) -> Tensor:
        """A starting point: ``init``'s unknown entries (default U[0, 1], as in the paper), the
        clean observations elsewhere (the sampler's first hook call perturbs them).

        Raises:
            TypeError: an ``init`` that is not a tensor.
            ValueError: an ``init`` of another shape than x, or non-finite at unknown entries.
        """
        obs = self.observed
        if init is None:
            init = uniform_init(
                tuple(obs.shape), generator=self.generator, dtype=obs.dtype, device=obs.device
            )
        else:
            if not isinstance(init, Tensor):
                raise TypeError(f"init must be a torch.Tensor or None; got {type(init).__name__}")
            check_float_tensor(init, "init")
            if init.shape != obs.shape:
                raise ValueError(
                    f"init must have the shape of x {tuple(obs.shape)}; got {tuple(init.shape)}"
                )
            init = to_device_of(init.detach(), obs, "init").to(obs.dtype)
            if has_values(init) and not bool((torch.isfinite(init) | self.mask).all()):
                raise ValueError(
                    "init (the starting point) contains NaN or infinite values at unknown "
                    "entries (mask = 0)"
                )
        return torch.where(self.mask, obs, init)


def _as_mask(mask: object) -> Tensor:
    """A mask as a tensor: a tensor, numpy array or nested sequence of bools or real numbers."""
    if not isinstance(mask, Tensor):
        if isinstance(mask, (str, bytes)) or not isinstance(mask, (Sequence, np.ndarray)):
            raise TypeError(
                f"mask must be a tensor of bools or 0/1 values; got {type(mask).__name__} {mask!r}"
            )
        try:
            mask = torch.as_tensor(mask)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(
                f"mask must be a tensor of bools or 0/1 values; got {mask!r} ({err})"
            ) from err
    if mask.is_complex():
        raise TypeError(f"mask must hold bools or real 0/1 values; got dtype {mask.dtype}")
    return mask


def inpaint(
    sampler: Sampler,
    model: ScoreModel,
    x: Tensor,
    mask: Tensor,
    *,
    init: Tensor | None = None,
    generator: torch.Generator | None = None,
    callback: StepCallback | None = None,
) -> Tensor:
    """Inpainting with any sampler (Algorithm 2 of Song & Ermon, 2019, generalised).

    Runs ``sampler(model, start, generator=, callback=, hook=Inpainting(x, mask))``: whenever the
    iterate stands for noise level σ the known entries (``mask`` = 1) are set to
    y = x + σ·z̃ (z̃ drawn once per level); the unknown entries (``mask`` = 0) follow the
    sampler's dynamics. No retraining: any unconditional score model works. With
    :class:`~ncsn.samplers.AnnealedLangevin` this is the paper's Algorithm 2 exactly;
    :class:`~ncsn.samplers.Langevin` has one level, σ.

    Args:
        sampler: any :class:`~ncsn.Sampler` (it takes ``hook=``, a
            :class:`~ncsn.samplers.StepHook`).
        model: a :class:`~ncsn.ScoreModel`.
        x: ``[B, *event]`` observations. Only the known entries are read: the unknown ones are
            replaced by 0 before the chain starts, so they may hold placeholders such as NaN.
        mask: boolean or 0/1 tensor broadcastable to x (per-example masks allowed); 1 = known.
        init: ``[B, *event]`` starting point of the unknown entries (default: U[0, 1], as in the
            paper); its known entries are ignored, its unknown ones must be finite.
        generator: source of all randomness.
        callback: receives a :class:`~ncsn.samplers.StepInfo` after every step.

    Returns:
        ``[B, *event]`` completions. The known entries of the result are the last level's noisy
        observations y_L = x + σ_L·z̃_L (as in Alg. 2), except after a final denoising step
        (``denoise=True``), which re-imposes the clean observations, so the known entries equal x
        exactly. ``torch.where(mask, x, result)`` gives the clean observations in every case.

    Raises:
        ValueError: a mask that cannot broadcast to x, holds values other than 0/1, or has no
            unknown entry; NaN or infinite values in x at known entries, or in ``init`` at
            unknown entries; an ``init`` of another shape than x.
        TypeError: a sampler that is not callable (one without ``hook=`` is not a
            :class:`~ncsn.Sampler`: Python's own ``TypeError`` names the keyword); a mask that is
            not a tensor (or array or sequence) of bools or real numbers; an ``init`` that is not
            a floating tensor.
        NonFiniteError: the chain produced non-finite values (a ``FloatingPointError``; see the
            sampler).

    Example:
        >>> images = ncsn.data.load_digits("test")[0][:4]                      # [4, 1, 8, 8]
        >>> net = ncsn.nets.RefineNet(1, 4, ncsn.geometric_sigmas(1.0, 0.01, 10))  # train it first
        >>> # the paper takes 100 steps per level; 2 keep this example quick
        >>> sampler = ncsn.samplers.AnnealedLangevin(net.sigmas, 2e-5, 2, denoise=True)
        >>> mask = ncsn.samplers.inpainting_mask("right_half", images.shape)   # right half unknown
        >>> g = torch.Generator().manual_seed(0)
        >>> completions = ncsn.samplers.inpaint(sampler, net, images, mask, generator=g)
        >>> torch.equal(completions[mask], images[mask])      # denoise=True: the clean left half
        True
    """
    check_callable(sampler, "sampler", "a Sampler")
    hook = Inpainting(x, mask, generator=generator)
    start = hook.start(init)
    return sampler(model, start, generator=generator, callback=callback, hook=hook)
