"""Diffusion posterior sampling, DPS (Chung, Kim, McCann, Klasky & Ye, ICLR 2023), on the
variance-exploding σ grid: the kernel :func:`dps_step` and :class:`DPS`, the loop over it. Any
operator (no SVD needed); one model call and one backward pass through the model per level.

One step σ → σ' < σ.

1. The unconditional step is VE ancestral sampling (Song et al., 2021, App. F; the VE form of the
   DDPM step DPS builds on). With Tweedie's estimate x̂₀ = x + σ²·s_θ(x, σ), draw x_{σ'} from
   q(x_{σ'} | x_σ = x, x₀ = x̂₀) of the VE process x_σ = x₀ + σ·ε. Writing x_σ = x_{σ'} + √(σ² − σ'²)·ε'
   and conditioning the Gaussian pair on its sum gives mean x̂₀ + (σ'²/σ²)(x − x̂₀) and variance
   σ'²(σ² − σ'²)/σ², i.e.

       x' = x + (σ² − σ'²)·s_θ(x, σ) + (σ'/σ)·√(σ² − σ'²)·z.

   At σ' = 0 it is Tweedie's step x̂₀, with no noise.
2. The measurement step approximates p(y | x_σ) by p(y | x₀ = x̂₀(x_σ)) and moves down the gradient
   of the residual norm through the denoiser:

       x' ← x' − ζ·∇ₓ ‖y − A·x̂₀(x)‖.

   The paper's Algorithm 1 writes ζ_i∇‖y − A·x̂₀‖² with ζ_i = ζ'/‖y − A·x̂₀‖, which is this step
   with ζ = 2ζ'; the official code's ``scale`` is ζ (its norm is taken over the whole batch, here
   over each example, so that chains are independent). For a Gaussian p(y | x̂₀) with variance
   σ_y² the exact weight of ∇‖·‖² in the reverse SDE step would be (σ² − σ'²)/(2σ_y²): the
   normalised step trades that (unstable as σ_y → 0) for a fixed length.

DPS is not exact in any limit (p(y | x_σ) is approximated and ζ is a free constant); its bias on
Gaussian priors at the default settings is measured in the tests and stated in the docs.
"""

from __future__ import annotations

import math
from dataclasses import KW_ONLY, dataclass

import torch
from torch import Tensor

from ncsn._checks import (
    Checked,
    call_model,
    check_generator,
    finite_float,
    positive_float,
    sigma_vector,
)
from ncsn._types import ScoreModel, StepCallback, StepHook
from ncsn.inverse._common import check_measurement, normal_start
from ncsn.inverse.measurement import Measurement
from ncsn.samplers._common import Run, check_kernel, check_noise, check_out, grid_check
from ncsn.schedules import SigmaGrid, SigmaGridLike

__all__ = ["DPS", "dps_step"]


def _non_negative(value: float, name: str) -> float:
    number = finite_float(value, name)
    if number < 0:
        raise ValueError(f"{name} must be non-negative; got {name}={value!r}")
    return number


def dps_step(
    model: ScoreModel,
    x: Tensor,
    sigma: float,
    next_sigma: float,
    measurement: Measurement,
    *,
    zeta: float = 1.0,
    generator: torch.Generator | None = None,
    noise: Tensor | None = None,
    out: Tensor | None = None,
) -> Tensor:
    """One DPS step σ → σ' (derived in :mod:`ncsn.inverse.dps`):
    x + (σ² − σ'²)·s_θ(x, σ) + (σ'/σ)·√(σ² − σ'²)·z − ζ·∇ₓ‖y − A·(x + σ²·s_θ(x, σ))‖.

    The model is called with gradients enabled (one backward pass to x, not to its parameters'
    ``.grad``); the result is detached.

    Args:
        model: the prior's :class:`~ncsn.ScoreModel` (differentiable in x).
        x: ``[B, *in_shape]`` iterate at level σ.
        sigma: σ > 0, a Python number.
        next_sigma: 0 ≤ σ' < σ.
        measurement: the :class:`~ncsn.inverse.Measurement` (any operator).
        zeta: ζ ≥ 0, the length of the measurement step (0: unconditional sampling).
        generator: source of z.
        noise: optional z of x's shape.
        out: optional buffer for the result (may be ``x``).

    Returns:
        The iterate at σ' ``[B, *in_shape]``.

    Raises:
        ValueError: σ not positive, σ' not in [0, σ), a negative ζ, an x that does not fit the
            operator, a ``noise`` or ``out`` that does not match x.

    Example:
        >>> prior = ncsn.toy.Gaussian(torch.zeros(2), torch.eye(2)).score_model()
        >>> m = ncsn.inverse.Measurement(ncsn.inverse.Identity((2,)), torch.ones(1, 2), 0.5)
        >>> ncsn.inverse.dps_step(prior, torch.zeros(4, 2, dtype=torch.float64), 1.0, 0.5, m).shape
        torch.Size([4, 2])
    """
    check_kernel(model, x)
    check_generator(generator, x)
    measurement = check_measurement(measurement, "measurement")
    sigma = positive_float(sigma, "sigma")
    next_sigma = finite_float(next_sigma, "next_sigma")
    if not 0.0 <= next_sigma < sigma:
        raise ValueError(
            f"next_sigma must lie in [0, sigma) = [0, {sigma}); got next_sigma={next_sigma}"
        )
    zeta = _non_negative(zeta, "zeta")
    measurement.check_fits(x, "dps_step")
    check_noise(noise, x)
    check_out(out, x)
    with torch.enable_grad():
        inputs = x.detach().requires_grad_(True)
        score = call_model(model, inputs, sigma_vector(sigma, inputs))
        denoised = inputs + score * (sigma * sigma)
        residual = measurement.observations(x) - measurement.operator.forward(denoised)
        norms = residual.reshape(residual.shape[0], -1).norm(dim=1)
        (gradient,) = torch.autograd.grad(norms.sum(), inputs)
    with torch.no_grad():
        score = score.detach()
        result = torch.add(x, score * (sigma * sigma - next_sigma * next_sigma), out=out)
        if next_sigma > 0.0:
            scale = next_sigma * math.sqrt(sigma * sigma - next_sigma * next_sigma) / sigma
            z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            result.add_(z if noise is None else noise.to(x), alpha=scale)
        return result.sub_(gradient, alpha=zeta)


@dataclass(frozen=True)
class DPS:
    """Diffusion posterior sampling (Chung et al., 2023) on a variance-exploding σ grid, a
    :class:`~ncsn.Sampler` for any operator and any differentiable score model.

    For i = 1..L, :func:`dps_step` from σ_i to σ_{i+1} (σ_{L+1} = 0): one model call and one
    backward pass per level. Start at σ₁ (:meth:`start`: σ₁·z). Not exact (see
    :mod:`ncsn.inverse.dps`): its bias on Gaussian priors is stated in the docs.

    Args:
        sigmas: ``[L]`` strictly decreasing positive levels (σ₁ large against the data).
        measurement: the :class:`~ncsn.inverse.Measurement` (keyword).
        zeta: ζ ≥ 0, the length of each measurement step (default 1.0; the paper's ζ' = ζ/2).

    Raises:
        ValueError: invalid levels, a negative ζ.
        TypeError: a setting of the wrong type.

    Example:
        >>> A = ncsn.inverse.Compose(ncsn.inverse.Downsample((1, 8, 8), 2), ncsn.inverse.Blur((1, 8, 8), ncsn.inverse.gaussian_kernel(3, 1.0)))
        >>> x, _ = ncsn.data.load_digits("test")
        >>> m = ncsn.inverse.measure(A, x[:4], 0.05, generator=torch.Generator().manual_seed(0))
        >>> net = ncsn.nets.RefineNet(1, 4, ncsn.geometric_sigmas(1.0, 0.01, 10))  # train it first
        >>> sampler = ncsn.inverse.DPS(net.sigmas, measurement=m)
        >>> g = torch.Generator().manual_seed(0)
        >>> sampler(net, sampler.start(generator=g), generator=g).shape
        torch.Size([4, 1, 8, 8])

    References:
        Chung, Kim, McCann, Klasky & Ye (2023), "Diffusion posterior sampling for general noisy
        inverse problems", ICLR, Algorithm 1; Song et al. (2021), App. F (VE ancestral sampling).
    """

    sigmas: Checked[SigmaGrid, SigmaGridLike] = Checked(
        grid_check("drop it: the last step already goes to σ = 0")
    )
    _: KW_ONLY
    measurement: Checked[Measurement] = Checked(check_measurement)
    zeta: Checked[float] = Checked(_non_negative, default=1.0)

    @property
    def num_model_calls(self) -> int:
        """Model evaluations per call: L (each followed by one backward pass)."""
        return len(self.sigmas)

    def start(
        self, batch: int | None = None, *, generator: torch.Generator | None = None
    ) -> Tensor:
        """σ₁·z ``[B, *in_shape]`` in y's dtype on the generator's device.

        Raises:
            ValueError: a batch that does not fit y's.
        """
        return normal_start(self.measurement, self.sigmas.values[0], batch, generator)

    def __call__(
        self,
        model: ScoreModel,
        x: Tensor,
        *,
        generator: torch.Generator | None = None,
        callback: StepCallback | None = None,
        hook: StepHook | None = None,
    ) -> Tensor:
        """Run DPS from ``x`` ``[B, *in_shape]`` at σ₁ (left unchanged); return the restoration.

        ``hook`` is applied to the start (σ₁) and after step i with σ_{i+1} (0.0 after the
        last); ``callback`` then sees ``StepInfo(level=i, step=0, sigma=σ_i,
        step_size=σ_i² − σ_{i+1}², x, score)``.

        Raises:
            ValueError: an x that does not fit the operator or y's batch; a model output of the
                wrong shape; a hook or callback that changed the iterate's shape.
            NonFiniteError: the chain went non-finite.
        """
        run = Run(
            "DPS",
            model,
            x,
            generator=generator,
            callback=callback,
            hook=hook,
            advice="try a smaller zeta or a finer σ grid",
        )
        self.measurement.check_fits(x, "DPS")
        levels = self.sigmas.values
        nexts = (*levels[1:], 0.0)
        x = x.detach().clone()
        run.hook(x, levels[0])
        for level, (sigma, next_sigma) in enumerate(zip(levels, nexts, strict=True)):
            run.at(level, sigma)
            x = dps_step(
                run.model,
                x,
                sigma,
                next_sigma,
                self.measurement,
                zeta=self.zeta,
                generator=generator,
                out=x,
            )
            run.stepped(x, 0, sigma * sigma - next_sigma * next_sigma, reached=next_sigma)
        return run.finish(x)
