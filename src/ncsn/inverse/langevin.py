"""Annealed Langevin dynamics on the posterior (Jalal et al., NeurIPS 2021): the kernel
:func:`posterior_langevin_step` and :class:`PosteriorLangevin`, the loop over it.

Algorithm 1 of Song & Ermon (2019) with the score replaced by the posterior's
(:class:`~ncsn.inverse.PosteriorScore`): at level i with α_i = ε·(σ_i/σ_L)²,

    x ← x + (α_i/2)·[s_θ(x, σ_i) + Aᵀ(y − A·x)/(σ_y² + σ_i²)] + √α_i·z.

With ``projection=True`` (noiseless measurements, an operator with an SVD) the measurement is
imposed instead by the :class:`~ncsn.inverse.Projection` hook: Algorithm 2 for any such operator;
with a :class:`~ncsn.inverse.Mask` it is the paper's inpainting, :func:`ncsn.samplers.inpaint`.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass

import torch
from torch import Tensor

from ncsn._checks import (
    Checked,
    check_bool,
    check_optional_callable,
    positive_float,
    positive_int,
)
from ncsn._types import ScoreModel, StepCallback, StepHook
from ncsn.inverse._common import Chained, check_measurement, require_svd, uniform_start
from ncsn.inverse.measurement import Measurement, PosteriorScore, Projection
from ncsn.samplers._common import Run, denoise_step, grid_check
from ncsn.samplers.langevin import langevin_step
from ncsn.schedules import SigmaGrid, SigmaGridLike

__all__ = ["PosteriorLangevin", "posterior_langevin_step"]


def posterior_langevin_step(
    model: ScoreModel,
    x: Tensor,
    sigma: Tensor | float,
    step_size: float,
    measurement: Measurement,
    *,
    generator: torch.Generator | None = None,
    noise: Tensor | None = None,
    out: Tensor | None = None,
) -> Tensor:
    """One Langevin step on the posterior at noise level σ (Jalal et al., 2021):
    x + (α/2)·[s_θ(x, σ) + Aᵀ(y − A·x)/(σ_y² + σ²)] + √α·z.

    :func:`~ncsn.samplers.langevin_step` with the model replaced by
    :class:`~ncsn.inverse.PosteriorScore` (whose docstring derives the measurement term).

    Args:
        model: the prior's :class:`~ncsn.ScoreModel`.
        x: ``[B, *in_shape]`` iterate.
        sigma: scalar or ``[B]`` σ (σ_y² + σ² must be > 0).
        step_size: α > 0.
        measurement: the :class:`~ncsn.inverse.Measurement` y = A·x + σ_y·n.
        generator: source of z.
        noise: optional z of x's shape.
        out: optional buffer for the result (may be ``x``).

    Returns:
        The next iterate ``[B, *in_shape]``.

    Raises:
        ValueError: as :func:`~ncsn.samplers.langevin_step`; an x that does not fit the
            operator or y's batch.
        TypeError: a measurement that is not a :class:`~ncsn.inverse.Measurement`.

    Example:
        >>> prior = ncsn.toy.Gaussian(torch.zeros(2), torch.eye(2)).score_model()
        >>> m = ncsn.inverse.Measurement(ncsn.inverse.Identity((2,)), torch.ones(1, 2), 0.5)
        >>> x = torch.zeros(4, 2, dtype=torch.float64)
        >>> ncsn.inverse.posterior_langevin_step(prior, x, 0.1, 0.01, m).shape
        torch.Size([4, 2])
    """
    measurement = check_measurement(measurement, "measurement")
    score = PosteriorScore(model, measurement)
    return langevin_step(score, x, sigma, step_size, generator=generator, noise=noise, out=out)


@dataclass(frozen=True)
class PosteriorLangevin:
    """Annealed Langevin dynamics on the posterior p(x | y) (Jalal et al., 2021), a
    :class:`~ncsn.Sampler` for any :class:`~ncsn.ScoreModel` and any operator.

    For each level i = 1..L with α_i = ε·(σ_i/σ_L)², T times,
    x ← x + (α_i/2)·[s_θ(x, σ_i) + Aᵀ(y − A·x)/(σ_y² + σ_i²)] + √α_i·z
    (:func:`posterior_langevin_step`). Level i targets p_{σ_i}(x)·N(y; A·x, (σ_y² + σ_i²)I), which
    tends to the posterior p(x)·N(y; A·x, σ_y²I) as σ_i → 0: the sampler is exact in the limit of a
    small last level, small ε and many steps (checked against the closed-form Gaussian posterior in
    the tests). ``denoise=True`` ends with Tweedie's step x + σ_L²·s(x, σ_L) on the posterior
    score.

    ``projection=True`` (σ_y = 0 and an operator with an SVD) drops the measurement term and
    applies :class:`~ncsn.inverse.Projection` at the start of each level and after every step
    (Algorithm 2 of Song & Ermon for this operator; with a :class:`~ncsn.inverse.Mask` it is
    :func:`ncsn.samplers.inpaint` with :class:`~ncsn.samplers.AnnealedLangevin`, draw for draw).

    Args:
        sigmas: ``[L]`` strictly decreasing positive levels (those the model takes).
        step_size: ε > 0 (α_L, the step at the last level; paper: 2e-5 for CIFAR-10).
        steps_per_level: T ≥ 1.
        measurement: the :class:`~ncsn.inverse.Measurement` (keyword).
        denoise: add the final denoising step.
        projection: impose noiseless measurements exactly (see above).

    Raises:
        ValueError: invalid levels, step size or T; ``projection=True`` with σ_y > 0 or an
            operator without an SVD.
        TypeError: a setting of the wrong type; a measurement that is not a Measurement.

    Example:
        >>> A = ncsn.inverse.Mask(torch.tensor([True, False]))
        >>> m = ncsn.inverse.measure(A, torch.tensor([[4.0, 4.0]]), 0.5, generator=torch.Generator().manual_seed(0))
        >>> sampler = ncsn.inverse.PosteriorLangevin(ncsn.geometric_sigmas(20.0, 0.1, 10), 0.01, 50, measurement=m)
        >>> prior = ncsn.toy.paper_mixture().score_model()
        >>> g = torch.Generator().manual_seed(0)
        >>> x = sampler(prior, sampler.start(256, generator=g).double(), generator=g)   # [256, 2]

    References:
        Jalal, Arvinte, Daras, Price, Dimakis & Tamir (2021), "Robust compressed sensing MRI with
        deep generative priors", NeurIPS, Algorithm 1; Song & Ermon (2019), Algorithms 1 and 2.
    """

    sigmas: Checked[SigmaGrid, SigmaGridLike] = Checked(
        grid_check("drop it and pass denoise=True, the final step x + σ_L²·s(x, σ_L) to σ = 0")
    )
    step_size: Checked[float] = Checked(positive_float)
    steps_per_level: Checked[int] = Checked(positive_int)
    _: KW_ONLY
    measurement: Checked[Measurement] = Checked(check_measurement)
    denoise: Checked[bool] = Checked(check_bool, default=False)
    projection: Checked[bool] = Checked(check_bool, default=False)

    def __post_init__(self) -> None:
        if self.projection:
            if self.measurement.noise_std != 0.0:
                raise ValueError(
                    "projection=True imposes noiseless measurements; got noise_std="
                    f"{self.measurement.noise_std!r} (keep projection=False: the measurement "
                    "term handles noise)"
                )
            require_svd(self.measurement, "PosteriorLangevin(projection=True)")

    @property
    def step_sizes(self) -> tuple[float, ...]:
        """α_i = ε·(σ_i/σ_L)² for each level."""
        last = self.sigmas.values[-1]
        return tuple(self.step_size * (s / last) ** 2 for s in self.sigmas.values)

    @property
    def num_model_calls(self) -> int:
        """Model evaluations per call: L·T (+1 with ``denoise``)."""
        return len(self.sigmas) * self.steps_per_level + int(self.denoise)

    def start(
        self, batch: int | None = None, *, generator: torch.Generator | None = None
    ) -> Tensor:
        """A starting point U[0, 1] ``[B, *in_shape]`` (the paper's), in y's dtype.

        Args:
            batch: the number of chains (default: y's batch).
            generator: source of the draw (its device is the start's).

        Raises:
            ValueError: a batch that does not fit y's.
        """
        return uniform_start(self.measurement, batch, generator)

    def __call__(
        self,
        model: ScoreModel,
        x: Tensor,
        *,
        generator: torch.Generator | None = None,
        callback: StepCallback | None = None,
        hook: StepHook | None = None,
    ) -> Tensor:
        """Run the sampler from ``x`` ``[B, *in_shape]`` (left unchanged); return the last iterate.

        ``hook`` is applied (after the projection, if any) at the start of every level, after
        every step and after the denoising step (σ = 0); ``callback`` then sees a
        :class:`~ncsn.samplers.StepInfo` whose ``score`` is the model's output (the prior score).

        Raises:
            ValueError: an x that does not fit the operator or y's batch; as
                :class:`~ncsn.samplers.AnnealedLangevin`.
            NonFiniteError: the chain went non-finite.
        """
        check_optional_callable(hook, "hook")
        chain: StepHook | None = hook
        if self.projection:
            chain = Chained(Projection(self.measurement, generator=generator), hook)
        run = Run(
            "PosteriorLangevin",
            model,
            x,
            generator=generator,
            callback=callback,
            hook=chain,
            advice="the step size is probably too large for this model and measurement",
        )
        self.measurement.check_fits(x, "PosteriorLangevin")
        score: ScoreModel = (
            run.model if self.projection else PosteriorScore(run.model, self.measurement)
        )
        with torch.no_grad():
            x = x.clone()
            for level, (sigma, alpha) in enumerate(
                zip(self.sigmas.values, self.step_sizes, strict=True)
            ):
                run.at(level, sigma)
                run.hook(x, sigma)
                for step in range(self.steps_per_level):
                    x = langevin_step(score, x, sigma, alpha, generator=generator, out=x)
                    run.stepped(x, step, alpha, reached=sigma)
            if self.denoise:
                x = denoise_step(score, x, self.sigmas.values[-1], out=x)
                run.stepped(x, self.steps_per_level, 0.0, reached=0.0)
        return run.finish(x)
