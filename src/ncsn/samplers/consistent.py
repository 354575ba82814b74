"""Consistent annealed sampling (Jolicoeur-Martineau et al., ICLR 2021): the kernel
:func:`consistent_step` and :class:`ConsistentAnnealedSampling`, the loop over it.

One model call per level. At level i, with the iterate standing for noise level σ_i:

    x ← x + α_i·s_θ(x, σ_i) + β_i·σ_{i+1}·z,    α_i = η·σ_i²,    z ~ N(0, I).

Here α_i multiplies the score itself (not α_i/2 as in :func:`~ncsn.samplers.langevin_step`), and
η ∈ (0, 1] is the fraction of Tweedie's denoising step x + σ_i²·s taken (η = 1 is the full step).

Where β comes from. Take x = x₀ + σ_i·n (data x₀ with noise of level σ_i) and the exact score of
a point mass at x₀, s = −(x − x₀)/σ_i². The drift gives x₀ + (1 − η)·σ_i·n; the added noise is
independent, so the noise variance after the step is (1 − η)²σ_i² + β_i²σ_{i+1}². Asking it to be
σ_{i+1}², the next level's (the "consistency" of the paper), gives

    β_i = √(1 − ((1 − η)·σ_i/σ_{i+1})²) = √(1 − (1 − η)²/γ_i²),    γ_i = σ_{i+1}/σ_i < 1,

the paper's β with γ the ratio of adjacent levels (one constant on a geometric grid; here it is
computed per level, so any decreasing grid is consistent). β_i is real iff (1 − η) ≤ γ_i, i.e.
1 − γ_i ≤ η ≤ 1 for every level (η > 1 would also give a real β up to 1 + γ_i, but steps past
the posterior mean; it is refused).

The last level. As in the paper, σ_{L+1} = 0: the L-th step is x ← x + η·σ_L²·s_θ(x, σ_L) with
no noise, leaving (1 − η)·σ_L of the noise for the point mass (none for η = 1, where the step is
Tweedie's). ``denoise=True`` removes that remainder with one more call,
:func:`~ncsn.samplers.denoise_step` at σ_L, x + σ_L²·s_θ(x, σ_L), as the official code does (so it
needs η < 1). The model is asked at σ_L, a level it was trained on (a level-conditioned network
knows no other); for the point mass the step lands on the point exactly wherever x is, since
σ_L²·s(x, σ_L) = x₀ − x.
"""

from __future__ import annotations

import itertools
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

__all__ = ["ConsistentAnnealedSampling", "consistent_step"]

# Round-off slack when (1 − η)·σ/σ' lands on 1 (η = 1 − γ on a geometric grid).
_SLACK = 1e-12


def _beta(eta: float, sigma: float, next_sigma: float) -> float:
    """β = √(1 − ((1 − η)·σ/σ')²) (0.0 for σ' = 0, where it multiplies nothing)."""
    if next_sigma == 0.0:
        return 0.0
    ratio = (1.0 - eta) * sigma / next_sigma
    return math.sqrt(max(0.0, 1.0 - ratio * ratio))


def _check_eta(eta: float, sigma: float, next_sigma: float) -> float:
    eta = positive_float(eta, "eta")
    low = 0.0 if next_sigma == 0.0 else 1.0 - next_sigma / sigma
    if eta > 1.0 or (next_sigma > 0.0 and (1.0 - eta) * sigma > next_sigma * (1.0 + _SLACK)):
        raise ValueError(
            f"eta must lie in [{max(low, 0.0)!r}, 1] (1 − σ'/σ ≤ η ≤ 1, for a real β) with "
            f"sigma={sigma}, next_sigma={next_sigma}; got eta={eta!r}"
        )
    return eta


def consistent_step(
    model: ScoreModel,
    x: Tensor,
    sigma: float,
    next_sigma: float,
    eta: float,
    *,
    generator: torch.Generator | None = None,
    noise: Tensor | None = None,
    out: Tensor | None = None,
) -> Tensor:
    """One consistent annealed sampling step σ → σ': x + η·σ²·s_θ(x, σ) + β·σ'·z.

    β = √(1 − ((1 − η)·σ/σ')²) makes the noise level of the result σ' when x stands at σ
    (derivation in :mod:`ncsn.samplers.consistent`). For σ' = 0 no noise is drawn. Pure unless
    ``out`` is given (``out=x`` steps in place); no autograd graph.

    Args:
        model: a :class:`~ncsn.ScoreModel`.
        x: ``[B, *event]`` iterate at noise level σ.
        sigma: σ > 0, a Python number.
        next_sigma: 0 ≤ σ' < σ.
        eta: η with 1 − σ'/σ ≤ η ≤ 1 (any 0 < η ≤ 1 for σ' = 0).
        generator: source of z (drawn in x's logical order).
        noise: optional z of x's shape (used instead of drawing it; never modified).
        out: optional buffer of x's shape, dtype and device for the result (may be ``x``).

    Returns:
        The ``[B, *event]`` iterate at σ' (``out`` when given).

    Raises:
        ValueError: σ not positive, σ' not in [0, σ), η outside the range above, a ``noise`` or
            ``out`` that does not match x, or a model output of another shape than x.

    Example:
        >>> point = ncsn.toy.Gaussian(torch.zeros(2), 1e-8 * torch.eye(2))   # ≈ a point mass
        >>> x = 2.0 * torch.randn(4096, 2, dtype=torch.float64)              # noise level 2
        >>> y = ncsn.samplers.consistent_step(point.score_model(), x, 2.0, 1.0, 0.8)
        >>> round(y.std().item(), 1)                                           # noise level 1
        1.0
    """
    check_kernel(model, x)
    check_generator(generator, x)
    sigma = positive_float(sigma, "sigma")
    next_sigma = finite_float(next_sigma, "next_sigma")
    if not 0.0 <= next_sigma < sigma:
        raise ValueError(
            f"next_sigma must lie in [0, sigma) = [0, {sigma}); got next_sigma={next_sigma}"
        )
    eta = _check_eta(eta, sigma, next_sigma)
    check_noise(noise, x)
    check_out(out, x)
    with torch.no_grad():
        score = call_model(model, x, sigma_vector(sigma, x))
        result = torch.add(x, score * (eta * sigma * sigma), out=out)
        if next_sigma == 0.0:
            return result
        scale = _beta(eta, sigma, next_sigma) * next_sigma
        kick = randn_like(x, generator).mul_(scale) if noise is None else noise.to(x) * scale
        return result.add_(kick)


@dataclass(frozen=True)
class ConsistentAnnealedSampling:
    """Consistent annealed sampling (Jolicoeur-Martineau et al., 2021, Alg. 1), a
    :class:`~ncsn.Sampler`.

    For i = 1..L, in place on a copy of x, ``x = consistent_step(model, x, σ_i, σ_{i+1}, η)``
    with σ_{L+1} = 0: x ← x + η·σ_i²·s_θ(x, σ_i) + β_i·σ_{i+1}·z,
    β_i = √(1 − ((1 − η)·σ_i/σ_{i+1})²). For exact scores of a point mass, the iterate after
    step i stands at noise level σ_{i+1} exactly (σ_1 at the start, (1 − η)·σ_L at the end).
    ``denoise=True`` ends with :func:`~ncsn.samplers.denoise_step` at σ_L (the model's last
    level; see :mod:`ncsn.samplers.consistent`).

    η ↔ the paper's ε: the paper writes α_i = ε·σ_i²/σ_L², so η = ε/σ_L².

    Args:
        sigmas: ``[L]`` strictly decreasing positive levels (a tensor, a sequence or a
            :class:`~ncsn.schedules.SigmaGrid`).
        eta: η with 1 − min_i(σ_{i+1}/σ_i) ≤ η ≤ 1 (any 0 < η ≤ 1 for L = 1).
        denoise: add the final denoising step (needs η < 1: with η = 1 the last step already is
            Tweedie's).

    Raises:
        ValueError: invalid levels, η outside its range, or ``denoise=True`` with η = 1.
        TypeError: a non-bool ``denoise`` or a non-real η.

    Example:
        >>> sigmas = ncsn.geometric_sigmas(20.0, 0.01, 100)
        >>> sampler = ncsn.samplers.ConsistentAnnealedSampling(sigmas, eta=0.5)
        >>> sampler.num_model_calls
        100
        >>> exact = ncsn.toy.paper_mixture().score_model()
        >>> x = sampler(exact, 20.0 * torch.randn(1280, 2))               # [1280, 2]

    References:
        Jolicoeur-Martineau, Piché-Taillefer, Tachet des Combes & Mitliagkas (2021),
        "Adversarial score matching and improved sampling for image generation", ICLR, §3 and
        Algorithm 1.
    """

    sigmas: Checked[SigmaGrid, SigmaGridLike] = Checked(
        grid_check("drop it: the last step already goes to σ = 0 (σ_(L+1) = 0)")
    )
    eta: Checked[float] = Checked(positive_float)
    _: KW_ONLY
    denoise: Checked[bool] = Checked(check_bool, default=False)

    def __post_init__(self) -> None:
        # Every noisy step must admit a real β; the last (to σ = 0) admits any η in (0, 1].
        levels = self.sigmas.values
        for sigma, next_sigma in zip(levels, (*levels[1:], 0.0), strict=True):
            try:
                _check_eta(self.eta, sigma, next_sigma)
            except ValueError:
                ratio = min((b / a for a, b in itertools.pairwise(levels)), default=1.0)
                raise ValueError(
                    f"eta must lie in [{1.0 - ratio!r}, 1] for these sigmas (1 − γ ≤ η ≤ 1 with "
                    f"γ = min σ_(i+1)/σ_i = {ratio!r}, so that β is real); got eta={self.eta!r}"
                ) from None
        if self.denoise and self.eta == 1.0:
            raise ValueError(
                "denoise=True needs eta < 1: with eta=1 the last step is already Tweedie's "
                "denoising step; got eta=1.0"
            )

    @property
    def step_sizes(self) -> tuple[float, ...]:
        """α_i = η·σ_i² for each level."""
        return tuple(self.eta * s * s for s in self.sigmas.values)

    @property
    def betas(self) -> tuple[float, ...]:
        """β_i = √(1 − ((1 − η)·σ_i/σ_{i+1})²) for each level (0.0 for the last, σ_{L+1} = 0)."""
        levels = self.sigmas.values
        nexts = (*levels[1:], 0.0)
        return tuple(_beta(self.eta, s, n) for s, n in zip(levels, nexts, strict=True))

    @property
    def final_sigma(self) -> float:
        """(1 − η)·σ_L, the noise level the iterate stands for after the last step."""
        return (1.0 - self.eta) * self.sigmas.values[-1]

    @property
    def num_model_calls(self) -> int:
        """Model evaluations per call: L (+1 with ``denoise``)."""
        return len(self.sigmas) + int(self.denoise)

    def __call__(
        self,
        model: ScoreModel,
        x: Tensor,
        *,
        generator: torch.Generator | None = None,
        callback: StepCallback | None = None,
        hook: StepHook | None = None,
    ) -> Tensor:
        """Run the sampler from ``x`` ``[B, *event]`` at σ_1 (left unchanged).

        ``hook`` is applied to the start (σ_1), after step i with σ_{i+1}, after the last step
        with (1 − η)·σ_L and after the denoising step with 0.0; ``callback`` then sees
        ``StepInfo(level=i, step=0, sigma=σ_i, step_size=α_i, x, score)`` (step 1 and
        step_size 0.0 for the denoising step).

        Raises:
            ValueError: an empty batch or non-finite start; a model output of the wrong shape; a
                hook or callback that changed the shape, dtype or device of the iterate.
            NonFiniteError: the chain went non-finite (a ``FloatingPointError`` saying whether
                the model's output or the iterate went first, and at which level).
        """
        run = Run(
            "ConsistentAnnealedSampling",
            model,
            x,
            generator=generator,
            callback=callback,
            hook=hook,
            advice="try a smaller eta or a finer σ grid for this model",
        )
        levels = self.sigmas.values
        nexts = (*levels[1:], 0.0)
        reached = (*levels[1:], self.final_sigma)
        with torch.no_grad():
            x = x.clone()
            run.hook(x, levels[0])
            steps = zip(levels, nexts, reached, self.step_sizes, strict=True)
            for level, (sigma, next_sigma, now, alpha) in enumerate(steps):
                run.at(level, sigma)
                x = consistent_step(
                    run.model, x, sigma, next_sigma, self.eta, generator=generator, out=x
                )
                run.stepped(x, 0, alpha, reached=now)
            if self.denoise:
                x = denoise_step(run.model, x, levels[-1], out=x)
                run.stepped(x, 1, 0.0, reached=0.0)
        return run.finish(x)
