"""Toy distributions whose perturbed scores are known exactly.

For data ``x ~ p`` perturbed by ``N(0, σ²I)``, a Gaussian mixture stays a Gaussian mixture with every
component variance increased by σ². :class:`GaussianMixture` and :class:`Gaussian` therefore give the
exact ``log p_σ`` and ``∇ₓ log p_σ`` at every noise level, which is what the library's losses and
samplers are tested against.

Taking a mixture's components as the classes makes conditional generation exact too: the
conditional score ``∇ₓ log p_σ(x | y)`` is one component's score
(:meth:`GaussianMixture.class_score`, :class:`ExactConditionalScore`), the noisy classifier
``p(y | x, σ)`` is the component posterior (:class:`ExactClassifier`), and every guided score of
:mod:`ncsn.guidance` is a closed-form combination of the two.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ncsn._checks import (
    as_sigma_tensor,
    batch_labels,
    check_batch,
    check_generator_type,
    check_label,
    check_nonempty,
    check_sigma_values,
    draw_device_dtype,
    has_values,
    positive_int,
)

__all__ = [
    "ExactClassifier",
    "ExactConditionalScore",
    "ExactScore",
    "Gaussian",
    "GaussianMixture",
    "paper_mixture",
]

_LOG_2PI = math.log(2 * math.pi)


def _float64(value: object, name: str) -> Tensor:
    """A parameter (numbers, nested sequences, an array or a tensor) as a float64 CPU tensor."""
    if isinstance(value, Tensor) and (value.dtype == torch.bool or value.is_complex()):
        raise TypeError(f"{name} must hold real numbers; got dtype {value.dtype}")
    if isinstance(value, Tensor) and not has_values(value):
        raise ValueError(f"{name} must hold values; got a tensor on the meta device")
    try:
        return torch.as_tensor(value, dtype=torch.float64, device="cpu")
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"{name} must be real numbers or a tensor of them; got {value!r}") from err


def _check_x(x: Tensor, dim: int) -> None:
    check_batch(x)
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"x must have shape [B, {dim}]; got {tuple(x.shape)}")
    check_nonempty(x)


def _sigma_sq(sigma: Tensor | float, x: Tensor) -> Tensor:
    """σ² as ``[B, 1, 1]`` (per example) on x's device and dtype; σ must be finite and >= 0."""
    s = as_sigma_tensor(sigma, x)
    # Checked where reading the values is free: on an accelerator it would synchronise with the
    # host at every sampler step (and break CUDA-graph capture). The samplers validate their σ up
    # front and check the chain for non-finite values at the end.
    if s.device.type == "cpu":
        check_sigma_values(s, allow_zero=True)
    if s.ndim == 0:
        s = s.expand(x.shape[0])
    if s.shape != (x.shape[0],):
        raise ValueError(
            f"sigma must be a scalar or have shape [B]={[x.shape[0]]}; got {tuple(s.shape)}"
        )
    return (s * s).reshape(-1, 1, 1)


class GaussianMixture:
    """A mixture of Gaussians with isotropic or diagonal components, with exact perturbed scores.

    p(x) = Σ_k w_k N(x; μ_k, diag(s_k²)); perturbed by N(0, σ²I) it is Σ_k w_k N(x; μ_k, diag(s_k² + σ²)).
    Log-densities and scores are computed with log-sum-exp, so they stay finite far from the modes.

    Args:
        weights: ``[K]`` non-negative, summing to 1.
        means: ``[K, D]``.
        stds: a scalar, ``[K]`` (isotropic per component) or ``[K, D]`` (diagonal); positive.

    Example:
        >>> gmm = ncsn.toy.GaussianMixture([0.2, 0.8], [[-5.0, -5.0], [5.0, 5.0]], 1.0)
        >>> x = gmm.sample(1280, generator=torch.Generator().manual_seed(0))   # [1280, 2]
        >>> gmm.score(x, sigma=1.0).shape
        torch.Size([1280, 2])
    """

    def __init__(
        self,
        weights: Tensor | Sequence[float],
        means: Tensor | Sequence[Sequence[float]],
        stds: Tensor | Sequence[float] | Sequence[Sequence[float]] | float = 1.0,
    ) -> None:
        w = _float64(weights, "weights")
        mu = _float64(means, "means")
        if mu.ndim != 2:
            raise ValueError(f"means must have shape [K, D]; got {tuple(mu.shape)}")
        k, d = mu.shape
        if w.shape != (k,):
            raise ValueError(f"weights must have shape [K]=[{k}]; got {tuple(w.shape)}")
        if not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
            raise ValueError(f"weights must be finite and non-negative; got weights={w.tolist()}")
        if abs(float(w.sum()) - 1.0) > 1e-6:
            raise ValueError(
                f"weights must sum to 1; got weights={w.tolist()} (sum {float(w.sum())})"
            )
        if not bool(torch.isfinite(mu).all()):
            raise ValueError(f"means must be finite; got means={mu.tolist()}")
        s = _float64(stds, "stds")
        if s.ndim == 0:
            s = s.expand(k, d)
        elif s.shape == (k,):
            s = s[:, None].expand(k, d)
        elif s.shape != (k, d):
            raise ValueError(
                f"stds must be a scalar, [K]=[{k}] or [K, D]=[{k}, {d}]; got {tuple(s.shape)}"
            )
        if not bool(torch.isfinite(s).all()) or bool((s <= 0).any()):
            raise ValueError(f"stds must be positive and finite; got stds={s.tolist()}")
        self.weights = w
        self.means = mu
        self.stds = s.contiguous()

    @property
    def dim(self) -> int:
        """D, the data dimension."""
        return self.means.shape[1]

    @property
    def num_components(self) -> int:
        """K, the number of components."""
        return self.means.shape[0]

    def _check(self, x: Tensor) -> None:
        _check_x(x, self.dim)

    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """Draw ``n`` samples ``[n, D]`` (on the generator's device unless ``device`` is given)."""
        n = positive_int(n, "n")
        device, dtype = draw_device_dtype(generator, device, dtype)
        k = torch.multinomial(self.weights.to(device), n, replacement=True, generator=generator)
        z = torch.randn((n, self.dim), generator=generator, dtype=torch.float64, device=device)
        x = self.means.to(device)[k] + self.stds.to(device)[k] * z
        return x.to(dtype)

    def _component_log_normal(self, x: Tensor, sigma: Tensor | float) -> tuple[Tensor, Tensor]:
        """log N(x; μ_k, s_k² + σ²) as ``[B, K]``, and the variances ``[B, K, D]``."""
        self._check(x)
        mu = self.means.to(x)
        var = self.stds.to(x).square()[None] + _sigma_sq(sigma, x)  # [B, K, D]
        diff = x[:, None, :] - mu[None]  # [B, K, D]
        return -0.5 * (diff.square() / var + var.log() + _LOG_2PI).sum(-1), var

    def _component_log_prob(self, x: Tensor, sigma: Tensor | float) -> tuple[Tensor, Tensor]:
        """log w_k + log N(x; μ_k, s_k² + σ²) as ``[B, K]``, and the variances ``[B, K, D]``."""
        log_n, var = self._component_log_normal(x, sigma)
        return self.weights.to(x).log()[None] + log_n, var

    def _classes(self, y: int | Tensor, x: Tensor) -> Tensor:
        """``y`` (an int or ``[B]`` integers in ``0 … K − 1``) as ``[B, 1]`` int64 indices."""
        label = check_label(y, self.num_components, null=False)
        return batch_labels(label, x)[:, None]

    def log_prob(self, x: Tensor, sigma: Tensor | float = 0.0) -> Tensor:
        """Exact ``log p_σ(x)`` of the mixture perturbed by ``N(0, σ²I)``: ``[B, D] -> [B]``.

        ``sigma`` is a scalar or ``[B]``; σ = 0 gives the data density.
        """
        comp, _ = self._component_log_prob(x, sigma)
        return torch.logsumexp(comp, dim=1)

    def component_posterior(self, x: Tensor, sigma: Tensor | float = 0.0) -> Tensor:
        """Posterior probabilities of each component given x, ``[B, K]`` (rows sum to 1)."""
        comp, _ = self._component_log_prob(x, sigma)
        return torch.softmax(comp, dim=1)

    def score(self, x: Tensor, sigma: Tensor | float = 0.0) -> Tensor:
        """Exact ``∇ₓ log p_σ(x)``: ``[B, D] -> [B, D]``.

        Σ_k r_k(x) · (μ_k − x) / (s_k² + σ²), with r_k the posterior of component k, computed stably.
        """
        comp, var = self._component_log_prob(x, sigma)
        r = torch.softmax(comp, dim=1)  # [B, K]
        per = (self.means.to(x)[None] - x[:, None, :]) / var  # [B, K, D]
        return (r[..., None] * per).sum(1)

    def score_model(self) -> ExactScore:
        """The exact perturbed score as a :class:`~ncsn.ScoreModel` ``(x, sigma) -> score``."""
        return ExactScore(self)

    def class_log_prob(self, x: Tensor, sigma: Tensor | float, y: int | Tensor) -> Tensor:
        """Exact ``log p_σ(x | y)`` with component ``y`` as the class: ``[B, D] -> [B]``.

        ``log N(x; μ_y, diag(s_y² + σ²))``: the class's component perturbed by ``N(0, σ²I)``.

        Args:
            x: ``[B, D]`` points.
            sigma: a scalar or ``[B]``, finite and ≥ 0.
            y: the class of every example (an int) or of each (``[B]`` integers), in
                ``0 … K − 1``.

        Raises:
            TypeError: ``y`` not an int or an integer tensor.
            ValueError: ``y`` outside ``0 … K − 1`` or of another length than the batch.

        Example:
            >>> gmm = ncsn.toy.paper_mixture()
            >>> x = torch.tensor([[5.0, 5.0]])
            >>> torch.allclose(gmm.class_log_prob(x, 0.0, 1), -torch.tensor(2 * torch.pi).log())
            True
        """
        log_n, _ = self._component_log_normal(x, sigma)
        return log_n.gather(1, self._classes(y, x))[:, 0]

    def class_score(self, x: Tensor, sigma: Tensor | float, y: int | Tensor) -> Tensor:
        """Exact conditional score ``∇ₓ log p_σ(x | y) = (μ_y − x) / (s_y² + σ²)``: ``[B, D] -> [B, D]``.

        Args:
            x: ``[B, D]`` points.
            sigma: a scalar or ``[B]``, finite and ≥ 0.
            y: an int for every example or ``[B]`` integers, in ``0 … K − 1``.

        Raises:
            TypeError: ``y`` not an int or an integer tensor.
            ValueError: ``y`` outside ``0 … K − 1`` or of another length than the batch.

        Example:
            >>> gmm = ncsn.toy.paper_mixture()
            >>> gmm.class_score(torch.zeros(1, 2), 1.0, 1)
            tensor([[2.5000, 2.5000]])
        """
        self._check(x)
        k = self._classes(y, x)[:, 0]
        var = self.stds.to(x).square()[k] + _sigma_sq(sigma, x)[:, 0]  # [B, D]
        return (self.means.to(x)[k] - x) / var

    def conditional_score_model(self) -> ExactConditionalScore:
        """The exact class-conditional score as a :class:`~ncsn.ConditionalScoreModel`."""
        return ExactConditionalScore(self)

    def classifier(self) -> ExactClassifier:
        """The exact noisy classifier ``p(y | x, σ)`` as a :class:`~ncsn.NoisyClassifier`."""
        return ExactClassifier(self)

    def __repr__(self) -> str:
        return (
            f"GaussianMixture(weights={self.weights.tolist()}, means={self.means.tolist()}, "
            f"stds={self.stds.tolist()})"
        )


class Gaussian:
    """A multivariate Gaussian N(μ, Σ) with a full covariance, exact at every noise level.

    Perturbed by N(0, σ²I) it is N(μ, Σ + σ²I). Useful for testing conditional sampling (inpainting):
    :meth:`conditional` gives the exact conditional distribution of some coordinates given others.

    Args:
        mean: ``[D]``.
        cov: ``[D, D]`` symmetric positive definite.

    Example:
        >>> g = ncsn.toy.Gaussian(torch.zeros(2), torch.tensor([[1.0, 0.5], [0.5, 1.0]]))
        >>> g.score(torch.ones(3, 2), sigma=0.1).shape
        torch.Size([3, 2])
    """

    def __init__(
        self, mean: Tensor | Sequence[float], cov: Tensor | Sequence[Sequence[float]]
    ) -> None:
        mu = _float64(mean, "mean")
        c = _float64(cov, "cov")
        if mu.ndim != 1:
            raise ValueError(f"mean must have shape [D]; got {tuple(mu.shape)}")
        d = mu.shape[0]
        if c.shape != (d, d):
            raise ValueError(f"cov must have shape [D, D]=[{d}, {d}]; got {tuple(c.shape)}")
        if not bool(torch.isfinite(c).all()) or not torch.allclose(c, c.T):
            raise ValueError("cov must be finite and symmetric")
        if bool((torch.linalg.eigvalsh(c) <= 0).any()):
            raise ValueError("cov must be positive definite")
        self.mean = mu
        self.cov = c
        # Σ = Q diag(λ) Qᵀ, so (Σ + σ²I)⁻¹ = Q diag(1/(λ + σ²)) Qᵀ at every σ without an inversion.
        self._eigvals, self._eigvecs = torch.linalg.eigh(c)

    @property
    def dim(self) -> int:
        """D, the data dimension."""
        return self.mean.shape[0]

    def _cov_sigma(self, sigma: float) -> Tensor:
        return self.cov + sigma**2 * torch.eye(self.dim, dtype=torch.float64)

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``n`` samples ``[n, D]`` (float64, CPU or the generator's device)."""
        n = positive_int(n, "n")
        check_generator_type(generator)
        device = generator.device if generator is not None else torch.device("cpu")
        chol = torch.linalg.cholesky(self.cov).to(device)
        z = torch.randn((n, self.dim), generator=generator, dtype=torch.float64, device=device)
        return self.mean.to(device) + z @ chol.T

    def score(self, x: Tensor, sigma: Tensor | float = 0.0) -> Tensor:
        """Exact ``∇ₓ log p_σ(x) = −(Σ + σ²I)⁻¹(x − μ)``: ``[B, D] -> [B, D]``."""
        _check_x(x, self.dim)
        q, lam = self._eigvecs.to(x), self._eigvals.to(x)
        coords = (x - self.mean.to(x)) @ q  # [B, D] in the eigenbasis
        return -(coords / (lam[None] + _sigma_sq(sigma, x)[:, 0])) @ q.T

    def log_prob(self, x: Tensor, sigma: Tensor | float = 0.0) -> Tensor:
        """Exact ``log p_σ(x)``: ``[B, D] -> [B]``."""
        _check_x(x, self.dim)
        eye = torch.eye(self.dim, dtype=x.dtype, device=x.device)
        cov = self.cov.to(x)[None] + _sigma_sq(sigma, x) * eye
        diff = (x - self.mean.to(x))[..., None]
        maha = (diff.transpose(-1, -2) @ torch.linalg.solve(cov, diff))[..., 0, 0]
        return -0.5 * (maha + torch.logdet(cov) + self.dim * _LOG_2PI)

    def conditional(self, known: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        """Exact mean and covariance of the unknown coordinates given ``x[known] = values``.

        Args:
            known: boolean ``[D]`` mask of observed coordinates.
            values: ``[D]`` or ``[K]`` observed values (only the known entries are used if ``[D]``).

        Returns:
            ``(mean [U], cov [U, U])`` with U the number of unknown coordinates.
        """
        known = torch.as_tensor(known, dtype=torch.bool)
        unknown = ~known
        v = torch.as_tensor(values, dtype=torch.float64)
        if v.shape == (self.dim,):
            v = v[known]
        c = self.cov
        c_uk, c_kk = c[unknown][:, known], c[known][:, known]
        gain = c_uk @ torch.linalg.inv(c_kk)
        mean = self.mean[unknown] + gain @ (v - self.mean[known])
        cov = c[unknown][:, unknown] - gain @ c_uk.T
        return mean, cov

    def score_model(self) -> ExactScore:
        """The exact perturbed score as a :class:`~ncsn.ScoreModel`."""
        return ExactScore(self)


@dataclass(frozen=True)
class ExactScore:
    """A :class:`~ncsn.ScoreModel` whose output is a toy distribution's exact perturbed score.

    ``ExactScore(dist)(x, sigma)`` equals ``dist.score(x, sigma)``: ``x: [B, D]``, ``sigma: [B]``
    (finite, ≥ 0; σ = 0 gives the data score) to a ``[B, D]`` score. A negative or non-finite σ
    raises :class:`ValueError` (checked for CPU tensors; on an accelerator the check would
    synchronise with the host at every call).

    Args:
        distribution: a :class:`GaussianMixture` or :class:`Gaussian`.

    Example:
        >>> exact = ncsn.toy.ExactScore(ncsn.toy.paper_mixture())   # or paper_mixture().score_model()
        >>> exact(torch.zeros(3, 2), torch.tensor([0.0, 1.0, 20.0])).shape
        torch.Size([3, 2])
    """

    distribution: GaussianMixture | Gaussian

    def __post_init__(self) -> None:
        if not callable(getattr(self.distribution, "score", None)):
            raise TypeError(
                "distribution must be a toy distribution with an exact .score(x, sigma) (a "
                f"GaussianMixture or Gaussian); got {type(self.distribution).__name__} "
                f"{self.distribution!r}"
            )

    def __call__(self, x: Tensor, sigma: Tensor, /) -> Tensor:
        return self.distribution.score(x, sigma)


@dataclass(frozen=True)
class ExactConditionalScore:
    """A :class:`~ncsn.ConditionalScoreModel` whose output is a mixture's exact class-conditional
    score, its components taken as the classes.

    ``ExactConditionalScore(gmm)(x, sigma, y)`` is ``gmm.class_score(x, sigma, y)`` for labels
    ``y < K`` and the mixture's score ``gmm.score(x, sigma)`` for the null label ``y = K``
    (``K = num_classes``, the number of components): ``x: [B, D]``, ``sigma: [B]``, ``y: [B]``
    → ``[B, D]``.

    Args:
        mixture: the :class:`GaussianMixture` whose components are the classes.

    Example:
        >>> gmm = ncsn.toy.paper_mixture()
        >>> model = gmm.conditional_score_model()
        >>> model(torch.zeros(2, 2), torch.ones(2), torch.tensor([1, 2]))   # class 1, then null
        tensor([[2.5000, 2.5000],
                [1.5000, 1.5000]])
    """

    mixture: GaussianMixture

    def __post_init__(self) -> None:
        if not isinstance(self.mixture, GaussianMixture):
            raise TypeError(
                f"mixture must be a ncsn.toy.GaussianMixture; got {type(self.mixture).__name__}"
            )

    @property
    def num_classes(self) -> int:
        """K, the number of components; ``K`` itself is the null label."""
        return self.mixture.num_components

    def __call__(self, x: Tensor, sigma: Tensor, y: Tensor, /) -> Tensor:
        labels = batch_labels(check_label(y, self.num_classes, null=True), x)
        null = labels == self.num_classes
        conditional = self.mixture.class_score(x, sigma, labels.masked_fill(null, 0))
        if labels.device.type == "cpu" and not bool(null.any()):
            return conditional  # the toy's own short cut: no mixture score to compute
        return torch.where(null[:, None], self.mixture.score(x, sigma), conditional)


@dataclass(frozen=True)
class ExactClassifier:
    """A :class:`~ncsn.NoisyClassifier` that is a mixture's exact component posterior.

    ``ExactClassifier(gmm)(x, sigma)`` returns the logits ``log p(y | x, σ) = log w_y +
    log N(x; μ_y, s_y² + σ²) − log p_σ(x)`` (already normalised): ``x: [B, D]``, ``sigma: [B]``
    → ``[B, K]``.

    Args:
        mixture: the :class:`GaussianMixture` whose components are the classes.

    Example:
        >>> classifier = ncsn.toy.paper_mixture().classifier()
        >>> classifier(torch.zeros(1, 2), torch.ones(1)).exp()   # the prior weights at x = 0
        tensor([[0.2000, 0.8000]])
    """

    mixture: GaussianMixture

    def __post_init__(self) -> None:
        if not isinstance(self.mixture, GaussianMixture):
            raise TypeError(
                f"mixture must be a ncsn.toy.GaussianMixture; got {type(self.mixture).__name__}"
            )

    @property
    def num_classes(self) -> int:
        """K, the number of components."""
        return self.mixture.num_components

    def __call__(self, x: Tensor, sigma: Tensor, /) -> Tensor:
        comp, _ = self.mixture._component_log_prob(x, sigma)
        return torch.log_softmax(comp, dim=1)


def paper_mixture() -> GaussianMixture:
    """The mixture of the paper's toy experiments: 0.2·N((−5,−5), I) + 0.8·N((5,5), I).

    Returns:
        A 2-D :class:`GaussianMixture` (K = 2 components, D = 2): weights ``[2]``, means
        ``[2, 2]``, unit standard deviations.

    Example:
        >>> gmm = ncsn.toy.paper_mixture()
        >>> gmm.weights
        tensor([0.2000, 0.8000], dtype=torch.float64)

    References:
        Song & Ermon (2019), §3.2 and App. B.1.
    """
    return GaussianMixture([0.2, 0.8], [[-5.0, -5.0], [5.0, 5.0]], 1.0)
