"""SNIPS (Kawar, Vaksman & Elad, NeurIPS 2021): annealed Langevin dynamics in the SVD domain of the
operator. The kernel :func:`snips_step` and :class:`SNIPS`, the loop over it.

Setting. A = U·diag(s)·Vᵀ (:class:`~ncsn.inverse.SVD`); in spectral coordinates x̄ = Vᵀx and
ȳ = u_t(y), the measurement is ȳ_j = s_j·x̄_j + σ_0·n_j (σ_0 = σ_y) for every j with s_j > 0.

The level-i target. Let x_i = x + σ_i·ν with ν ~ N(0, I) independent of x, constructed in each
measured coordinate from part of the measurement noise:

- σ_i·s_j < σ_0 (the measurement is noisier than the level): ȳ_j/s_j = x̄_ij + e_j with e_j
  independent of x_i and of variance σ_0²/s_j² − σ_i², so
  ∇ log p(ȳ_j | x_i) = s_j·(ȳ_j − s_j·x̄_ij)/(σ_0² − σ_i²s_j²), added to the prior score;
- σ_i·s_j ≥ σ_0: x̄_ij = ȳ_j/s_j + e_j with e_j ~ N(0, σ_i² − σ_0²/s_j²) independent of the rest
  given y, so the coordinate's score is s_j·(ȳ_j − s_j·x̄_ij)/(σ_i²s_j² − σ_0²) alone;
- s_j = 0: the prior score [Vᵀ·s_θ(x_i, σ_i)]_j alone.

At the last level σ_L → 0 every measured coordinate is in the first case with
e_j ~ N(0, σ_0²/s_j²): the target is the posterior, so SNIPS is exact in that limit.

The preconditioner. The first two scores blow up where σ_i·s_j → σ_0; SNIPS steps each coordinate
with α_i·Λ_j, Λ_j = 1 − σ_i²s_j²/σ_0² (first case), 1 − σ_0²/(σ_i²s_j²) (second), 1 (s_j = 0), a
constant diagonal preconditioner per level (it keeps the target). The preconditioned drifts are
then bounded and meet at σ_i·s_j = σ_0 (where Λ_j = 0):

    Λ_j·g_j = Λ_j·[Vᵀs_θ]_j + s_j·(ȳ_j − s_j·x̄_j)/σ_0²    (σ_i·s_j < σ_0)
    Λ_j·g_j = (ȳ_j/s_j − x̄_j)/σ_i²                          (σ_i·s_j ≥ σ_0)
    Λ_j·g_j = [Vᵀs_θ]_j                                     (s_j = 0)

and one step, in the paper convention of this library (the official code's step_lr is α/2), is

    x̄ ← x̄ + (α_i/2)·Λ·g + √(α_i·Λ)·z,    α_i = ε·(σ_i/σ_L)²,    z ~ N(0, I) in the spectral
    coordinates (V is orthogonal: white noise either way).
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass

import torch
from torch import Tensor

from ncsn._checks import (
    Checked,
    call_model,
    check_generator,
    positive_float,
    positive_int,
    sigma_vector,
)
from ncsn._types import ScoreModel, StepCallback, StepHook
from ncsn.inverse._common import Spectral, check_measurement, require_svd, uniform_start
from ncsn.inverse.measurement import Measurement
from ncsn.samplers._common import Run, check_kernel, check_noise, check_out, grid_check
from ncsn.schedules import SigmaGrid, SigmaGridLike

__all__ = ["SNIPS", "snips_step"]


def _drift(
    spectral: Spectral, coords: Tensor, prior: Tensor, sigma: float, noise_std: float
) -> tuple[Tensor, Tensor]:
    """(Λ·g, Λ) of the module docstring, ``[B, N]`` and ``[N]`` or ``[B, N]``."""
    s, safe = spectral.s, spectral.safe_s
    y_bar = spectral.y_bar
    zero = torch.zeros((), dtype=s.dtype, device=s.device)
    one = torch.ones((), dtype=s.dtype, device=s.device)
    below = spectral.measured & (sigma * s < noise_std)
    above = spectral.measured & ~below
    ratio = sigma * s / noise_std if noise_std > 0 else zero  # σ·s/σ_0 (used where below)
    lam = torch.where(
        below, 1.0 - ratio * ratio, torch.where(above, 1.0 - (noise_std / (sigma * safe)) ** 2, one)
    )
    residual = y_bar - s * coords  # ȳ − s·x̄
    weight = 1.0 / noise_std**2 if noise_std > 0 else 0.0
    drift = torch.where(
        below,
        lam * prior + s * residual * weight,
        torch.where(above, residual / (safe * sigma * sigma), prior),
    )
    return drift, lam


def snips_step(
    model: ScoreModel,
    x: Tensor,
    sigma: float,
    step_size: float,
    measurement: Measurement,
    *,
    generator: torch.Generator | None = None,
    noise: Tensor | None = None,
    out: Tensor | None = None,
) -> Tensor:
    """One SNIPS step at level σ: x̄ ← x̄ + (α/2)·Λ·g + √(α·Λ)·z in the spectral coordinates
    x̄ = Vᵀx (Λ and Λ·g derived in :mod:`ncsn.inverse.snips`).

    Args:
        model: the prior's :class:`~ncsn.ScoreModel`.
        x: ``[B, *in_shape]`` iterate at level σ.
        sigma: σ > 0, a Python number.
        step_size: α > 0.
        measurement: the :class:`~ncsn.inverse.Measurement`; its operator needs an SVD.
        generator: source of z.
        noise: optional z of x's shape, read as the spectral coordinates in ``v_t``'s order.
        out: optional buffer for the result (may be ``x``).

    Returns:
        The next iterate ``[B, *in_shape]``.

    Raises:
        ValueError: a non-positive σ or α, an operator without an SVD, an x that does not fit the
            operator, a ``noise`` or ``out`` that does not match x.

    Example:
        >>> prior = ncsn.toy.Gaussian(torch.zeros(2), torch.eye(2)).score_model()
        >>> m = ncsn.inverse.Measurement(ncsn.inverse.Identity((2,)), torch.ones(1, 2), 0.5)
        >>> ncsn.inverse.snips_step(prior, torch.zeros(4, 2, dtype=torch.float64), 0.1, 0.01, m).shape
        torch.Size([4, 2])
    """
    check_kernel(model, x)
    check_generator(generator, x)
    measurement = check_measurement(measurement, "measurement")
    sigma = positive_float(sigma, "sigma")
    step_size = positive_float(step_size, "step_size")
    measurement.check_fits(x, "snips_step")
    svd = require_svd(measurement, "snips_step")
    check_noise(noise, x)
    check_out(out, x)
    with torch.no_grad():
        spectral = Spectral(svd, measurement, x)
        score = call_model(model, x, sigma_vector(sigma, x))
        coords = svd.v_t(x)
        drift, lam = _drift(spectral, coords, svd.v_t(score), sigma, measurement.noise_std)
        if noise is None:
            z = torch.randn(coords.shape, generator=generator, dtype=x.dtype, device=x.device)
        else:
            z = noise.to(x).reshape(coords.shape)
        coords = coords + drift * (step_size / 2) + (lam * step_size).sqrt() * z
        result = svd.v(coords)
        if out is None:
            return result
        return out.copy_(result)


@dataclass(frozen=True)
class SNIPS:
    """SNIPS: annealed Langevin dynamics in the SVD domain of A (Kawar, Vaksman & Elad, 2021), a
    :class:`~ncsn.Sampler` for operators with an SVD.

    For each level i = 1..L with α_i = ε·(σ_i/σ_L)², T times, :func:`snips_step`
    (x̄ ← x̄ + (α_i/2)·Λ·g + √(α_i·Λ)·z). Level i targets p(x_i | y) for x_i = x + σ_i·ν, a
    noisy version of the posterior; the last level tends to the posterior itself as σ_L → 0
    (derivation in :mod:`ncsn.inverse.snips`), so SNIPS is exact in that limit.

    Args:
        sigmas: ``[L]`` strictly decreasing positive levels.
        step_size: ε > 0 (α_L; the official code's ``step_lr`` is ε/2).
        steps_per_level: T ≥ 1.
        measurement: the :class:`~ncsn.inverse.Measurement` (keyword); its operator needs an SVD.

    Raises:
        ValueError: invalid levels, step size or T, an operator without an SVD.
        TypeError: a setting of the wrong type.

    Example:
        >>> A = ncsn.inverse.Downsample((1, 8, 8), 2)
        >>> x, _ = ncsn.data.load_digits("test")
        >>> m = ncsn.inverse.measure(A, x[:4], 0.05, generator=torch.Generator().manual_seed(0))
        >>> net = ncsn.nets.RefineNet(1, 4, ncsn.geometric_sigmas(1.0, 0.01, 10))  # train it first
        >>> sampler = ncsn.inverse.SNIPS(net.sigmas, 2e-5, 2, measurement=m)   # paper: T = 100
        >>> g = torch.Generator().manual_seed(0)
        >>> sampler(net, sampler.start(generator=g), generator=g).shape
        torch.Size([4, 1, 8, 8])

    References:
        Kawar, Vaksman & Elad (2021), "SNIPS: Solving noisy inverse problems stochastically",
        NeurIPS, Algorithm 1.
    """

    sigmas: Checked[SigmaGrid, SigmaGridLike] = Checked(
        grid_check("drop it: SNIPS ends at its last positive level")
    )
    step_size: Checked[float] = Checked(positive_float)
    steps_per_level: Checked[int] = Checked(positive_int)
    _: KW_ONLY
    measurement: Checked[Measurement] = Checked(check_measurement)

    def __post_init__(self) -> None:
        require_svd(self.measurement, "SNIPS")

    @property
    def step_sizes(self) -> tuple[float, ...]:
        """α_i = ε·(σ_i/σ_L)² for each level."""
        last = self.sigmas.values[-1]
        return tuple(self.step_size * (s / last) ** 2 for s in self.sigmas.values)

    @property
    def num_model_calls(self) -> int:
        """Model evaluations per call: L·T."""
        return len(self.sigmas) * self.steps_per_level

    def start(
        self, batch: int | None = None, *, generator: torch.Generator | None = None
    ) -> Tensor:
        """A starting point U[0, 1] ``[B, *in_shape]`` (as the official code), in y's dtype.

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
        """Run SNIPS from ``x`` ``[B, *in_shape]`` (left unchanged); return the last iterate.

        ``hook`` is applied at the start of every level and after every step; ``callback`` then
        sees a :class:`~ncsn.samplers.StepInfo` (``score``: the model's output).

        Raises:
            ValueError: an x that does not fit the operator or y's batch; as
                :class:`~ncsn.samplers.AnnealedLangevin`.
            NonFiniteError: the chain went non-finite.
        """
        run = Run(
            "SNIPS",
            model,
            x,
            generator=generator,
            callback=callback,
            hook=hook,
            advice="the step size is probably too large for this model and measurement",
        )
        self.measurement.check_fits(x, "SNIPS")
        with torch.no_grad():
            x = x.clone()
            for level, (sigma, alpha) in enumerate(
                zip(self.sigmas.values, self.step_sizes, strict=True)
            ):
                run.at(level, sigma)
                run.hook(x, sigma)
                for step in range(self.steps_per_level):
                    x = snips_step(
                        run.model, x, sigma, alpha, self.measurement, generator=generator, out=x
                    )
                    run.stepped(x, step, alpha, reached=sigma)
        return run.finish(x)
