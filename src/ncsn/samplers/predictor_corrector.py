"""Predictor-corrector sampling of the variance-exploding SDE on a discrete σ grid (Song et al.,
ICLR 2021, Algorithm 2): the kernels :func:`reverse_diffusion_step` (predictor) and
:func:`langevin_corrector_step` (corrector), and :class:`PredictorCorrector`, the loop over them.

Predictor, the reverse diffusion of the discretised VE SDE from σ to σ' < σ:

    x ← x + (σ² − σ'²)·s_θ(x, σ) + √(σ² − σ'²)·z.

Corrector, one Langevin step at σ whose size is set by a signal-to-noise ratio r:

    ε = 2·(r·‖z‖ / ‖s_θ(x, σ)‖)²,    x ← x + ε·s_θ(x, σ) + √(2ε)·z,

with ‖·‖ the per-example norms over the event dimensions averaged over the batch, as in the
official code: one ε for the whole batch. A per-example ratio grows without bound where an
example's score is nearly zero (close to a mode, at small σ), which distorts the samples
(measured in the docs' "Choose a sampler" page). So samples depend on how the examples are
batched: fixed-size batches keep a sample set independent of the number of processes.
"""

from __future__ import annotations

import math
from dataclasses import KW_ONLY, dataclass

import torch
from torch import Tensor

from ncsn._checks import (
    Checked,
    call_model,
    check_bool,
    check_generator,
    finite_float,
    non_negative_int,
    positive_float,
    randn_like,
    sigma_vector,
)
from ncsn._types import ScoreModel, StepCallback, StepHook
from ncsn.samplers._common import (
    Run,
    check_kernel,
    check_noise,
    check_out,
    denoise_step,
    grid_check,
)
from ncsn.schedules import SigmaGrid, SigmaGridLike

__all__ = ["PredictorCorrector", "langevin_corrector_step", "reverse_diffusion_step"]


def reverse_diffusion_step(
    model: ScoreModel,
    x: Tensor,
    sigma: float,
    next_sigma: float,
    *,
    generator: torch.Generator | None = None,
    noise: Tensor | None = None,
    out: Tensor | None = None,
) -> Tensor:
    """The reverse-diffusion predictor of the VE SDE, σ → σ':
    x + (σ² − σ'²)·s_θ(x, σ) + √(σ² − σ'²)·z.

    The reverse-time SDE dx = −d[σ²]·∇ log p_σ(x) + dw̄ discretised on the grid (Song et al.,
    2021, Eq. 47, App. E); exact in the limit of small steps. Pure unless ``out`` is given
    (``out=x`` steps in place); no autograd graph.

    Args:
        model: a :class:`~ncsn.ScoreModel`.
        x: ``[B, *event]`` iterate at noise level σ.
        sigma: σ > 0, a Python number.
        next_sigma: 0 ≤ σ' < σ (σ' = 0 still adds σ·z; its noise-free part is
            :func:`~ncsn.samplers.denoise_step`).
        generator: source of z (drawn in x's logical order).
        noise: optional z of x's shape (used instead of drawing it; never modified).
        out: optional buffer of x's shape, dtype and device for the result (may be ``x``).

    Returns:
        The ``[B, *event]`` iterate at σ' (``out`` when given).

    Raises:
        ValueError: σ not positive, σ' not in [0, σ), a ``noise`` or ``out`` that does not match
            x, or a model output of another shape than x.

    Example:
        >>> exact = ncsn.toy.paper_mixture().score_model()
        >>> x = 10.0 * torch.randn(4, 2)
        >>> ncsn.samplers.reverse_diffusion_step(exact, x, 10.0, 9.0).shape
        torch.Size([4, 2])
    """
    check_kernel(model, x)
    check_generator(generator, x)
    sigma = positive_float(sigma, "sigma")
    next_sigma = finite_float(next_sigma, "next_sigma")
    if not 0.0 <= next_sigma < sigma:
        raise ValueError(
            f"next_sigma must lie in [0, sigma) = [0, {sigma}); got next_sigma={next_sigma}"
        )
    check_noise(noise, x)
    check_out(out, x)
    with torch.no_grad():
        score = call_model(model, x, sigma_vector(sigma, x))
        decrement = sigma * sigma - next_sigma * next_sigma
        root = math.sqrt(decrement)
        kick = randn_like(x, generator).mul_(root) if noise is None else noise.to(x) * root
        return torch.add(x, score * decrement, out=out).add_(kick)


def langevin_corrector_step(
    model: ScoreModel,
    x: Tensor,
    sigma: Tensor | float,
    snr: float,
    *,
    generator: torch.Generator | None = None,
    noise: Tensor | None = None,
    out: Tensor | None = None,
) -> Tensor:
    """The Langevin corrector of Song et al. (2021), Alg. 2 (VE): a Langevin step at σ whose size
    makes the ratio of drift to noise, ‖ε·s‖/‖√(2ε)·z‖ = √(ε/2)·‖s‖/‖z‖, equal to ``snr``.

    ε = 2·(r·mean‖z‖/mean‖s_θ(x, σ)‖)² with the norms over the event dimensions averaged over
    the batch (one ε for the batch, as in the official code; why not per example:
    :mod:`ncsn.samplers.predictor_corrector`), then x ← x + ε·s_θ(x, σ) + √(2ε)·z. A batch
    whose scores are all exactly zero is left unchanged (ε = 0). Pure unless ``out`` is given
    (``out=x`` steps in place); no autograd graph and no host synchronisation.

    Args:
        model: a :class:`~ncsn.ScoreModel`.
        x: ``[B, *event]`` iterate at noise level σ.
        sigma: scalar or ``[B]`` σ ≥ 0 given to the model.
        snr: r > 0 (Song et al. use 0.16 for CIFAR-10 with the VE SDE).
        generator: source of z (drawn in x's logical order).
        noise: optional z of x's shape (used instead of drawing it; never modified).
        out: optional buffer of x's shape, dtype and device for the result (may be ``x``).

    Returns:
        The corrected ``[B, *event]`` iterate (``out`` when given).

    Raises:
        ValueError: a non-positive snr, an invalid σ, a ``noise`` or ``out`` that does not match
            x, or a model output of another shape than x.

    Example:
        >>> exact = ncsn.toy.paper_mixture().score_model()
        >>> x = torch.randn(4, 2) + 5.0
        >>> ncsn.samplers.langevin_corrector_step(exact, x, 0.1, 0.16).shape
        torch.Size([4, 2])
    """
    check_kernel(model, x)
    check_generator(generator, x)
    snr = positive_float(snr, "snr")
    sig = sigma_vector(sigma, x)
    check_noise(noise, x)
    check_out(out, x)
    with torch.no_grad():
        score = call_model(model, x, sig)
        z = randn_like(x, generator) if noise is None else noise.to(x)
        z_norm = z.reshape(x.shape[0], -1).norm(dim=1).mean()
        s_norm = score.reshape(x.shape[0], -1).norm(dim=1).mean()
        eps = 2.0 * (snr * z_norm / s_norm).square()
        eps = torch.where(s_norm > 0, eps, torch.zeros_like(eps))
        kick = z * (2.0 * eps).sqrt()
        return torch.add(x, score * eps, out=out).add_(kick)


@dataclass(frozen=True)
class PredictorCorrector:
    """Predictor-corrector sampling of the VE SDE on a σ grid (Song et al., 2021, Alg. 2), a
    :class:`~ncsn.Sampler`.

    In the order of the official code, for each level i = 1..L, in place on a copy of x:
    ``corrector_steps`` times ``langevin_corrector_step(model, x, σ_i, snr)``, then, for i < L,
    ``reverse_diffusion_step(model, x, σ_i, σ_{i+1})``. The predictor of the last level goes to
    σ = 0; its noise-free part x + σ_L²·s_θ(x, σ_L) (the official ``x_mean``) is Tweedie's
    :func:`~ncsn.samplers.denoise_step`, taken when ``denoise=True`` (the default, as in the
    official sampler). With ``denoise=False`` the sampler stops after the last corrector steps,
    at σ_L (the official code would instead return x_mean + σ_L·z, a sample at σ_L again).

    Start from x ~ N(0, σ_1²I) with σ_1 large compared to the data (Song & Ermon, 2020).

    Args:
        sigmas: ``[L]`` strictly decreasing positive levels (the SDE's time grid, e.g. 1000
            geometric levels for images; a tensor, a sequence or a
            :class:`~ncsn.schedules.SigmaGrid`).
        snr: r > 0, the corrector's signal-to-noise ratio.
        corrector_steps: M ≥ 0 corrector steps per level (0: the predictor alone, reverse
            diffusion sampling).
        denoise: end with the noise-free predictor step σ_L → 0.

    Raises:
        ValueError: invalid levels, a non-positive snr or a negative ``corrector_steps``.
        TypeError: a non-int ``corrector_steps`` or a non-bool ``denoise``.

    Example:
        >>> sampler = ncsn.samplers.PredictorCorrector(ncsn.geometric_sigmas(20.0, 0.01, 100))
        >>> sampler.num_model_calls
        200
        >>> exact = ncsn.toy.paper_mixture().score_model()
        >>> x = sampler(exact, 20.0 * torch.randn(1280, 2))               # [1280, 2]

    References:
        Song, Sohl-Dickstein, Kingma, Kumar, Ermon & Poole (2021), "Score-Based Generative
        Modeling through Stochastic Differential Equations", ICLR, Algorithm 2 (VE SDE).
    """

    sigmas: Checked[SigmaGrid, SigmaGridLike] = Checked(
        grid_check("drop it: denoise=True (the default) is that last step σ_L → 0")
    )
    _: KW_ONLY
    snr: Checked[float] = Checked(positive_float, default=0.16)
    corrector_steps: Checked[int] = Checked(non_negative_int, default=1)
    denoise: Checked[bool] = Checked(check_bool, default=True)

    @property
    def num_model_calls(self) -> int:
        """Model evaluations per call: L·M + (L − 1) (+1 with ``denoise``)."""
        count = len(self.sigmas)
        return count * self.corrector_steps + count - 1 + int(self.denoise)

    def __call__(
        self,
        model: ScoreModel,
        x: Tensor,
        *,
        generator: torch.Generator | None = None,
        callback: StepCallback | None = None,
        hook: StepHook | None = None,
    ) -> Tensor:
        """Run Algorithm 2 from ``x`` ``[B, *event]`` at σ_1 (left unchanged).

        ``hook`` is applied to the start (σ_1), after each corrector step (σ_i), after each
        predictor step (σ_{i+1}) and after the denoising step (0.0). ``callback`` then sees
        ``StepInfo(level=i, step=j, sigma=σ_i, step_size, x, score)``: steps j < M are the
        corrector's (step_size = snr: the corrector's ε is one tensor for the batch, computed on
        the device, and is not read back), step M the predictor's (step_size σ_i² − σ_{i+1}², or
        σ_L² for the denoising step).

        Raises:
            ValueError: an empty batch or non-finite start; a model output of the wrong shape; a
                hook or callback that changed the shape, dtype or device of the iterate.
            NonFiniteError: the chain went non-finite (a ``FloatingPointError`` saying whether
                the model's output or the iterate went first, and at which level).
        """
        run = Run(
            "PredictorCorrector",
            model,
            x,
            generator=generator,
            callback=callback,
            hook=hook,
            advice="the snr is probably too large for this model, or the σ grid too coarse",
        )
        levels = self.sigmas.values
        steps = self.corrector_steps
        with torch.no_grad():
            x = x.clone()
            run.hook(x, levels[0])
            for level, sigma in enumerate(levels):
                run.at(level, sigma)
                for step in range(steps):
                    x = langevin_corrector_step(
                        run.model, x, sigma, self.snr, generator=generator, out=x
                    )
                    run.stepped(x, step, self.snr, reached=sigma)
                if level + 1 < len(levels):
                    next_sigma = levels[level + 1]
                    x = reverse_diffusion_step(
                        run.model, x, sigma, next_sigma, generator=generator, out=x
                    )
                    run.stepped(x, steps, sigma * sigma - next_sigma * next_sigma, next_sigma)
                elif self.denoise:
                    x = denoise_step(run.model, x, sigma, out=x)
                    run.stepped(x, steps, sigma * sigma, reached=0.0)
        return run.finish(x)
