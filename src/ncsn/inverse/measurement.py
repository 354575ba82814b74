"""A linear measurement y = A·x + σ_y·n and the two ways of imposing it that work with every sampler:
:class:`PosteriorScore`, a :class:`~ncsn.ScoreModel` that adds the measurement term to the score
(Jalal et al., 2021), and :class:`Projection`, a :class:`~ncsn.samplers.StepHook` that sets the
measured components of the iterate (Algorithm 2 of Song & Ermon, 2019, for any operator with an
SVD; inpainting is its mask case).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ncsn._checks import (
    Checked,
    call_model,
    check_generator,
    check_generator_type,
    has_values,
    non_negative_float,
    pad_event,
    sigma_vector,
    to_device_of,
)
from ncsn._types import ScoreModel
from ncsn.inverse.operators import SVD, LinearOperator, check_linear_operator, operator_svd

__all__ = ["Measurement", "PosteriorScore", "Projection", "measure"]


def _operator(operator: LinearOperator, name: str) -> LinearOperator:
    check_linear_operator(operator, name)
    return operator


def _observations(y: Tensor, name: str) -> Tensor:
    if not isinstance(y, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(y).__name__}")
    if not torch.is_floating_point(y):
        raise TypeError(f"{name} must be a real floating-point tensor; got dtype {y.dtype}")
    if y.ndim < 1 or y.shape[0] == 0:
        raise ValueError(f"{name} must be [B, *out_shape] with B >= 1; got shape {tuple(y.shape)}")
    if has_values(y) and not bool(torch.isfinite(y).all()):
        raise ValueError(f"{name} (the measurements) contains NaN or infinite values")
    return y.detach()


@dataclass(frozen=True, eq=False)
class Measurement:
    """Noisy linear measurements y = A·x + σ_y·n, n ~ N(0, I): what a posterior sampler conditions on.

    Two measurements compare equal only when they are the same object (they hold data).

    Args:
        operator: the :class:`~ncsn.inverse.LinearOperator` A.
        y: ``[B, *operator.out_shape]``: one measurement per chain, or B = 1 for one measurement
            shared by every chain (to draw many posterior samples of one y).
        noise_std: σ_y ≥ 0, the standard deviation of the measurement noise (in the units of y).

    Raises:
        TypeError: an operator that is not a LinearOperator, a y that is not a real tensor.
        ValueError: a y of the wrong shape or not finite, a negative or non-finite σ_y.

    Example:
        >>> A = ncsn.inverse.Mask(torch.tensor([True, False]))
        >>> m = ncsn.inverse.Measurement(A, torch.tensor([[0.5, 0.0]]), noise_std=0.1)
        >>> m.residual(torch.zeros(3, 2))          # y − A·x, broadcast over 3 chains
        tensor([[0.5000, 0.0000],
                [0.5000, 0.0000],
                [0.5000, 0.0000]])
    """

    operator: Checked[LinearOperator] = Checked(_operator)
    y: Checked[Tensor] = Checked(_observations)
    noise_std: Checked[float] = Checked(non_negative_float, default=0.0)
    _cache: dict[tuple[torch.device, torch.dtype], Tensor] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        out = tuple(self.operator.out_shape)
        if tuple(self.y.shape[1:]) != out:
            dims = ", ".join(str(d) for d in out)
            raise ValueError(
                f"y must have shape [B, {dims}] (the operator's out_shape); got "
                f"{tuple(self.y.shape)} for operator={self.operator!r}"
            )

    @property
    def batch(self) -> int:
        """B, the number of measurements (1: shared by every chain)."""
        return int(self.y.shape[0])

    def observations(self, x: Tensor) -> Tensor:
        """y on x's device, in x's dtype (cast once per device and dtype)."""
        key = (x.device, x.dtype)
        y = self._cache.get(key)
        if y is None:
            y = to_device_of(self.y, x, "y").to(x.dtype)
            self._cache[key] = y
        return y

    def check_fits(self, x: Tensor, where: str) -> None:
        """x must be ``[B, *operator.in_shape]`` with B equal to y's batch (or y's batch 1)."""
        shape = tuple(self.operator.in_shape)
        if tuple(x.shape[1:]) != shape:
            dims = ", ".join(str(d) for d in shape)
            raise ValueError(
                f"{where}: x must have shape [B, {dims}] (the operator's in_shape); got "
                f"{tuple(x.shape)}"
            )
        if self.batch not in (1, x.shape[0]):
            raise ValueError(
                f"{where}: y holds {self.batch} measurements but x {x.shape[0]} chains; give one "
                "measurement per chain, or one (B = 1) for all"
            )

    def residual(self, x: Tensor) -> Tensor:
        """y − A·x ``[B, *out_shape]``."""
        self.check_fits(x, "Measurement.residual")
        return self.observations(x) - self.operator.forward(x)

    def chains(self, batch: int | None = None) -> int:
        """The number of chains a sampler starts: ``batch``, else y's batch.

        Raises:
            ValueError: a batch that is not an int >= 1, or that y's batch does not fit.
        """
        if batch is None:
            return self.batch
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch must be an int >= 1 or None; got batch={batch!r}")
        if self.batch not in (1, batch):
            raise ValueError(
                f"batch={batch} chains do not fit y's {self.batch} measurements (give "
                f"batch=None or {self.batch}, or one measurement for all)"
            )
        return batch


def measure(
    operator: LinearOperator,
    x: Tensor,
    noise_std: float = 0.0,
    *,
    generator: torch.Generator | None = None,
) -> Measurement:
    """Simulate measurements of ``x``: y = A·x + σ_y·n with n ~ N(0, I) from ``generator``.

    Args:
        operator: the :class:`~ncsn.inverse.LinearOperator` A.
        x: ``[B, *operator.in_shape]`` clean data.
        noise_std: σ_y ≥ 0.
        generator: source of n (on x's device).

    Returns:
        The :class:`Measurement` (y ``[B, *out_shape]``, on x's device and in its dtype).

    Raises:
        ValueError, TypeError: as :class:`Measurement`; an x of the wrong shape.

    Example:
        >>> A = ncsn.inverse.Downsample((1, 8, 8), 2)
        >>> x = ncsn.data.load_digits("test")[0][:4]
        >>> m = ncsn.inverse.measure(A, x, 0.05, generator=torch.Generator().manual_seed(0))
        >>> m.y.shape, m.noise_std
        (torch.Size([4, 1, 4, 4]), 0.05)
    """
    check_linear_operator(operator)
    noise_std = non_negative_float(noise_std, "noise_std")
    if not isinstance(x, Tensor) or not torch.is_floating_point(x):
        raise TypeError(f"x must be a real floating-point tensor; got {x!r:.80}")
    check_generator(generator, x)
    with torch.no_grad():
        y = operator.forward(x.detach())
        if noise_std > 0:
            y = y + noise_std * torch.randn(
                y.shape, generator=generator, dtype=y.dtype, device=y.device
            )
    return Measurement(operator, y, noise_std)


@dataclass(frozen=True, eq=False)
class PosteriorScore:
    """The score of the posterior as a :class:`~ncsn.ScoreModel`: the prior's plus the measurement
    term of Jalal et al. (2021),

        s(x, σ) = s_θ(x, σ) + Aᵀ(y − A·x) / (σ_y² + σ²).

    Why σ_y² + σ². ∇ log p_σ(x | y) = ∇ log p_σ(x) + ∇ log p(y | x_σ). Given the noisy x_σ = x + σ·z,
    y = A·x_σ − σ·A·z + σ_y·n; treating x_σ as uninformative about z (a flat prior), y | x_σ is
    N(A·x_σ, σ_y²·I + σ²·AAᵀ), whose score in x_σ is Aᵀ(σ_y²I + σ²AAᵀ)⁻¹(y − A·x_σ). For operators
    with orthonormal rows (AAᵀ = I: masks, the identity) that is the term above; Jalal et al. use it
    for every A (their γ_i = σ_i, the annealing level). As σ → 0 it is the exact likelihood score
    Aᵀ(y − A·x)/σ_y², so a chain at a small last level σ_L targets the posterior p(x | y).

    Any sampler takes it as its model; :class:`~ncsn.inverse.PosteriorLangevin` is annealed
    Langevin over it.

    Args:
        model: the prior's :class:`~ncsn.ScoreModel`.
        measurement: the :class:`Measurement`.

    Example:
        >>> prior = ncsn.toy.Gaussian(torch.zeros(2), torch.eye(2)).score_model()
        >>> A = ncsn.inverse.Identity((2,))
        >>> post = ncsn.inverse.PosteriorScore(prior, ncsn.inverse.Measurement(A, torch.ones(1, 2), 1.0))
        >>> post(torch.zeros(1, 2, dtype=torch.float64), torch.tensor([1.0], dtype=torch.float64))
        tensor([[0.5000, 0.5000]], dtype=torch.float64)
    """

    model: ScoreModel
    measurement: Measurement

    def __post_init__(self) -> None:
        if not callable(self.model):
            raise TypeError(f"model must be a callable score model; got {self.model!r}")
        if not isinstance(self.measurement, Measurement):
            raise TypeError(
                f"measurement must be an ncsn.inverse.Measurement; got {self.measurement!r:.80}"
            )

    def __call__(self, x: Tensor, sigma: Tensor, /) -> Tensor:
        m = self.measurement
        m.check_fits(x, "PosteriorScore")
        sig = sigma_vector(sigma, x, allow_zero=m.noise_std > 0)
        score = call_model(self.model, x, sig)
        variance = pad_event(sig * sig + m.noise_std**2, x)
        return score + m.operator.adjoint(m.observations(x) - m.operator.forward(x)) / variance


class Projection:
    """A step hook that imposes noiseless measurements, perturbed at the current σ: Algorithm 2
    of Song & Ermon (2019) for any operator with an SVD.

    ``hook(x, σ)`` writes, in place, x ← V·c with c = Vᵀ·x except on the measured coordinates
    (s_j > 0), where c_j = ȳ_j/s_j + σ·z̃_j: the measured part of the clean image, ȳ = u_t(y),
    perturbed as the iterate is. z̃ ~ N(0, I) is drawn from ``generator`` each time σ changes (once
    per level); σ = 0 (after a final denoising step) gives the clean measured part.

    For a :class:`~ncsn.inverse.Mask` (V = U = I, s = the mask) this is inpainting exactly:
    :class:`~ncsn.samplers.Inpainting` is this hook, with the same draws.

    Args:
        measurement: a :class:`Measurement` with σ_y = 0 whose operator has an SVD.
        generator: source of z̃ (the sampler's generator, so that one seed fixes the run).

    Raises:
        ValueError: σ_y > 0 (noisy measurements are not to be imposed exactly: use
            :class:`PosteriorScore` or SNIPS), or an operator without an SVD.

    Example:
        >>> A = ncsn.inverse.Mask(torch.tensor([True, False]))
        >>> hook = ncsn.inverse.Projection(ncsn.inverse.Measurement(A, torch.tensor([[0.5, 0.0]])))
        >>> x = torch.ones(2, 2)
        >>> hook(x, 0.0)
        >>> x
        tensor([[0.5000, 1.0000],
                [0.5000, 1.0000]])
    """

    def __init__(
        self, measurement: Measurement, *, generator: torch.Generator | None = None
    ) -> None:
        if not isinstance(measurement, Measurement):
            raise TypeError(
                f"measurement must be an ncsn.inverse.Measurement; got {measurement!r:.80}"
            )
        if measurement.noise_std != 0.0:
            raise ValueError(
                "Projection imposes noiseless measurements; got noise_std="
                f"{measurement.noise_std!r} (use PosteriorScore/PosteriorLangevin or SNIPS for "
                "noisy ones)"
            )
        svd = operator_svd(measurement.operator)
        if svd is None:
            raise ValueError(
                f"Projection needs an operator with an SVD; {measurement.operator!r} has none "
                "(use PosteriorScore/PosteriorLangevin or DPS)"
            )
        check_generator_type(generator)
        self.measurement = measurement
        self.generator = generator
        self.svd: SVD = svd
        y = measurement.y
        s = svd.singular_values.to(device=y.device, dtype=y.dtype)
        self.measured = s > 0
        safe = torch.where(self.measured, s, torch.ones((), dtype=s.dtype, device=s.device))
        self.clean = svd.u_t(y) / safe  # ȳ/s where s > 0 (unread elsewhere)
        self._sigma: float | None = None
        self._target = self.clean

    def __call__(self, x: Tensor, sigma: float, /) -> None:
        self.measurement.check_fits(x, "Projection")
        if sigma != self._sigma:
            if sigma == 0:
                self._target = self.clean
            else:
                clean = self.clean
                z = torch.randn(
                    (x.shape[0], clean.shape[1]),
                    generator=self.generator,
                    dtype=clean.dtype,
                    device=clean.device,
                )
                self._target = clean + sigma * z
            self._sigma = sigma
        measured = self.measured.to(x.device)
        coords = torch.where(measured, self._target.to(x), self.svd.v_t(x))
        x.copy_(self.svd.v(coords))

    def __repr__(self) -> str:
        return f"Projection({self.measurement.operator!r})"
