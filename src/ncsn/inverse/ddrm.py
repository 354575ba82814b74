"""DDRM, denoising diffusion restoration models (Kawar, Elad, Ermon & Song, NeurIPS 2022), on the
variance-exploding σ grid of a score model: the kernel :func:`ddrm_step` and :class:`DDRM`, the
loop over it. One model call per level; about 20 levels suffice.

Setting. x_σ = x₀ + σ·ε (the VE forward process); A = U·diag(s)·Vᵀ, spectral coordinates
x̄ = Vᵀx, ȳ = u_t(y) = s ⊙ x̄₀ + σ_y·n on the measured coordinates (s_j > 0).

One step σ → σ' < σ. Tweedie's formula gives the denoised estimate x̂₀ = x + σ²·s_θ(x, σ) (exact
for the true score: E[x₀ | x_σ]), c = Vᵀx̂₀. Each spectral coordinate is then drawn from DDRM's
q(x̄_{σ'} | x_σ, x₀ = x̂₀, y), chosen so that its marginal given x₀ is N(x̄₀, σ'²) (a consistent
VE process) with as much of its noise as possible taken from what is known:

- s_j = 0 (unmeasured): x̄'_j = c_j + √(1 − η²)·σ'·(x̄_j − c_j)/σ + η·σ'·z_j. The noise
  direction (x̄_j − c_j)/σ ~ N(0, 1) is kept with weight √(1 − η²), fresh noise added with η:
  total variance (1 − η²)σ'² + η²σ'² = σ'². η = 0 is DDIM's deterministic step.
- σ'·s_j < σ_y (the measurement is noisier than σ'): x̄'_j = c_j + √(1 − η²)·σ'·(ȳ_j − s_j·c_j)/σ_y
  + η·σ'·z_j. Here (ȳ_j/s_j − x̄₀_j)/(σ_y/s_j) = n_j ~ N(0, 1) is the measurement's own noise,
  reused as the diffusion's: variance σ'² again.
- σ'·s_j ≥ σ_y: x̄'_j = (1 − η_b)·c_j + η_b·ȳ_j/s_j + √(σ'² − η_b²σ_y²/s_j²)·z_j. ȳ_j/s_j is x̄₀_j
  plus noise of variance σ_y²/s_j², so η_b·ȳ_j/s_j carries η_b²σ_y²/s_j² of it; the fresh noise
  tops the variance up to σ'² (real for η_b ≤ 1 since σ' ≥ σ_y/s_j).

The last step goes to σ' = 0: every coordinate becomes c_j (or (1 − η_b)c_j + η_b·ȳ_j/s_j for
noiseless measurements) and no noise is drawn.

The start (:meth:`DDRM.start`) is q(x̄_{σ₁} | y): x̄_j = ȳ_j/s_j + √(σ₁² − σ_y²/s_j²)·z_j where
σ₁·s_j ≥ σ_y, and σ₁·z_j elsewhere (x̄₀ is unknown there; σ₁ is taken large against the data).

DDRM is not exact: x̂₀ is the *prior's* posterior mean E[x₀ | x_σ], not E[x₀ | x_σ, y], and η > 0
re-draws a fraction of the noise at every level, so refining the grid does not take it to the
posterior; its bias on Gaussian priors is measured in the tests and the docs.
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
    check_generator_type,
    finite_float,
    positive_float,
    sigma_vector,
)
from ncsn._types import ScoreModel, StepCallback, StepHook
from ncsn.inverse._common import Spectral, check_measurement, require_svd
from ncsn.inverse.measurement import Measurement
from ncsn.samplers._common import Run, check_kernel, check_noise, check_out, grid_check
from ncsn.schedules import SigmaGrid, SigmaGridLike

__all__ = ["DDRM", "ddrm_step"]


def _unit(value: float, name: str) -> float:
    """A number in [0, 1]."""
    number = finite_float(value, name)
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1]; got {name}={value!r}")
    return number


def ddrm_step(
    model: ScoreModel,
    x: Tensor,
    sigma: float,
    next_sigma: float,
    measurement: Measurement,
    *,
    eta: float = 0.85,
    eta_b: float = 1.0,
    generator: torch.Generator | None = None,
    noise: Tensor | None = None,
    out: Tensor | None = None,
) -> Tensor:
    """One DDRM step σ → σ' on the VE grid (the three spectral cases are derived in
    :mod:`ncsn.inverse.ddrm`).

    Args:
        model: the prior's :class:`~ncsn.ScoreModel`.
        x: ``[B, *in_shape]`` iterate at level σ.
        sigma: σ > 0, a Python number.
        next_sigma: 0 ≤ σ' < σ (0: the last step, no noise).
        measurement: the :class:`~ncsn.inverse.Measurement`; its operator needs an SVD.
        eta: η ∈ [0, 1], the fraction of fresh noise (paper: 0.85).
        eta_b: η_b ∈ [0, 1], the weight of the measurement where it is cleaner than σ' (paper: 1).
        generator: source of z.
        noise: optional z of x's shape, read as spectral coordinates in ``v_t``'s order.
        out: optional buffer for the result (may be ``x``).

    Returns:
        The iterate at σ' ``[B, *in_shape]``.

    Raises:
        ValueError: σ not positive, σ' not in [0, σ), η or η_b outside [0, 1], an operator without
            an SVD, an x that does not fit it, a ``noise`` or ``out`` that does not match x.

    Example:
        >>> prior = ncsn.toy.Gaussian(torch.zeros(2), torch.eye(2)).score_model()
        >>> m = ncsn.inverse.Measurement(ncsn.inverse.Identity((2,)), torch.ones(1, 2), 0.5)
        >>> x = 3.0 * torch.randn(4, 2, dtype=torch.float64)
        >>> ncsn.inverse.ddrm_step(prior, x, 3.0, 0.0, m)      # σ' = 0: deterministic
        tensor(...)
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
    eta, eta_b = _unit(eta, "eta"), _unit(eta_b, "eta_b")
    measurement.check_fits(x, "ddrm_step")
    svd = require_svd(measurement, "ddrm_step")
    check_noise(noise, x)
    check_out(out, x)
    noise_std = measurement.noise_std
    with torch.no_grad():
        spectral = Spectral(svd, measurement, x)
        s, safe, y_bar = spectral.s, spectral.safe_s, spectral.y_bar
        score = call_model(model, x, sigma_vector(sigma, x))
        c = svd.v_t(x + score * (sigma * sigma))  # Vᵀ x̂₀
        coords = svd.v_t(x)
        noisy = spectral.measured & (next_sigma * s < noise_std)
        clean = spectral.measured & ~noisy
        keep = math.sqrt(1.0 - eta * eta) * next_sigma
        unmeasured = c + (keep / sigma) * (coords - c)
        # (with σ_y = 0 every measured coordinate is clean: `noisy` selects nothing)
        measured = c + (keep / noise_std) * (y_bar - s * c) if noise_std > 0 else c
        clean_mean = (1.0 - eta_b) * c + eta_b * (y_bar / safe)
        mean = torch.where(clean, clean_mean, torch.where(noisy, measured, unmeasured))
        if next_sigma > 0.0:
            top_up = (next_sigma**2 - (eta_b * noise_std / safe) ** 2).clamp_min(0.0).sqrt()
            scale = torch.where(clean, top_up, torch.full_like(top_up, eta * next_sigma))
            if noise is None:
                z = torch.randn(c.shape, generator=generator, dtype=x.dtype, device=x.device)
            else:
                z = noise.to(x).reshape(c.shape)
            mean = mean + scale * z
        result = svd.v(mean)
        if out is None:
            return result
        return out.copy_(result)


@dataclass(frozen=True)
class DDRM:
    """DDRM (Kawar, Elad, Ermon & Song, 2022) on a variance-exploding σ grid, a
    :class:`~ncsn.Sampler` for operators with an SVD.

    For i = 1..L, :func:`ddrm_step` from σ_i to σ_{i+1} (σ_{L+1} = 0): one model call per level
    (the paper uses 20). Start from :meth:`start`, DDRM's q(x_{σ₁} | y), or any x at σ₁. Not exact
    (see :mod:`ncsn.inverse.ddrm`): its bias on Gaussian priors is stated in the docs.

    Args:
        sigmas: ``[L]`` strictly decreasing positive levels (σ₁ large against the data).
        measurement: the :class:`~ncsn.inverse.Measurement` (keyword); its operator needs an SVD.
        eta: η ∈ [0, 1] (paper: 0.85).
        eta_b: η_b ∈ [0, 1] (paper: 1).

    Raises:
        ValueError: invalid levels, η or η_b outside [0, 1], an operator without an SVD.
        TypeError: a setting of the wrong type.

    Example:
        >>> A = ncsn.inverse.ChannelMix((3, 4, 4))                      # colour to grey
        >>> m = ncsn.inverse.measure(A, torch.rand(2, 3, 4, 4), 0.05, generator=torch.Generator().manual_seed(0))
        >>> sampler = ncsn.inverse.DDRM(ncsn.geometric_sigmas(5.0, 0.01, 20), measurement=m)
        >>> g = torch.Generator().manual_seed(0)
        >>> gauss = ncsn.toy.Gaussian(torch.full((48,), 0.5), 0.1 * torch.eye(48))
        >>> prior = lambda x, sigma: gauss.score(x.flatten(1), sigma).view_as(x)
        >>> sampler(prior, sampler.start(generator=g), generator=g).shape
        torch.Size([2, 3, 4, 4])

    References:
        Kawar, Elad, Ermon & Song (2022), "Denoising diffusion restoration models", NeurIPS,
        Eqs. (7)-(8) and Appendix.
    """

    sigmas: Checked[SigmaGrid, SigmaGridLike] = Checked(
        grid_check("drop it: the last step already goes to σ = 0")
    )
    _: KW_ONLY
    measurement: Checked[Measurement] = Checked(check_measurement)
    eta: Checked[float] = Checked(_unit, default=0.85)
    eta_b: Checked[float] = Checked(_unit, default=1.0)

    def __post_init__(self) -> None:
        require_svd(self.measurement, "DDRM")

    @property
    def num_model_calls(self) -> int:
        """Model evaluations per call: L."""
        return len(self.sigmas)

    def start(
        self, batch: int | None = None, *, generator: torch.Generator | None = None
    ) -> Tensor:
        """DDRM's start at σ₁, q(x_{σ₁} | y): x̄_j = ȳ_j/s_j + √(σ₁² − σ_y²/s_j²)·z_j where
        σ₁·s_j ≥ σ_y, σ₁·z_j elsewhere; ``[B, *in_shape]`` in y's dtype on the generator's device.

        Raises:
            ValueError: a batch that does not fit y's.
        """
        check_generator_type(generator)
        m = self.measurement
        chains = m.chains(batch)
        device = generator.device if generator is not None else m.y.device
        like = torch.empty((chains, *m.operator.in_shape), dtype=m.y.dtype, device=device)
        spectral = Spectral(require_svd(m, "DDRM"), m, like)
        sigma = self.sigmas.values[0]
        s, safe = spectral.s, spectral.safe_s
        z = torch.randn(
            (chains, spectral.y_bar.shape[1]), generator=generator, dtype=like.dtype, device=device
        )
        informed = spectral.measured & (sigma * s >= m.noise_std)
        spread = (sigma**2 - (m.noise_std / safe) ** 2).clamp_min(0.0).sqrt()
        coords = torch.where(informed, spectral.y_bar / safe + spread * z, sigma * z)
        return spectral.svd.v(coords)

    def __call__(
        self,
        model: ScoreModel,
        x: Tensor,
        *,
        generator: torch.Generator | None = None,
        callback: StepCallback | None = None,
        hook: StepHook | None = None,
    ) -> Tensor:
        """Run DDRM from ``x`` ``[B, *in_shape]`` at σ₁ (left unchanged); return the restoration.

        ``hook`` is applied to the start (σ₁) and after step i with σ_{i+1} (0.0 after the
        last); ``callback`` then sees ``StepInfo(level=i, step=0, sigma=σ_i,
        step_size=σ_i² − σ_{i+1}², x, score)``.

        Raises:
            ValueError: an x that does not fit the operator or y's batch; a model output of the
                wrong shape; a hook or callback that changed the iterate's shape.
            NonFiniteError: the chain went non-finite.
        """
        run = Run(
            "DDRM",
            model,
            x,
            generator=generator,
            callback=callback,
            hook=hook,
            advice="check the σ grid (σ₁ large against the data) and the measurement's noise_std",
        )
        self.measurement.check_fits(x, "DDRM")
        levels = self.sigmas.values
        nexts = (*levels[1:], 0.0)
        with torch.no_grad():
            x = x.clone()
            run.hook(x, levels[0])
            for level, (sigma, next_sigma) in enumerate(zip(levels, nexts, strict=True)):
                run.at(level, sigma)
                x = ddrm_step(
                    run.model,
                    x,
                    sigma,
                    next_sigma,
                    self.measurement,
                    eta=self.eta,
                    eta_b=self.eta_b,
                    generator=generator,
                    out=x,
                )
                run.stepped(x, 0, sigma * sigma - next_sigma * next_sigma, reached=next_sigma)
        return run.finish(x)
