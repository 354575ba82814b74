"""Exact posteriors of the toy priors of :mod:`ncsn.toy` under a linear measurement: what the
posterior samplers are checked against.

With y = A·x + σ_y·n and a Gaussian prior N(μ, Σ), the posterior is Gaussian (the Kalman update):

    K = ΣAᵀ(AΣAᵀ + σ_y²I)⁻¹,    mean = μ + K(y − Aμ),    cov = Σ − KAΣ.

A mixture Σ_k w_k N(μ_k, Σ_k) stays a mixture: each component is updated as above, and its weight
becomes w_k·N(y; Aμ_k, AΣ_kAᵀ + σ_y²I), normalised (the evidence of y under component k).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from ncsn.inverse.measurement import Measurement
from ncsn.inverse.operators import to_matrix
from ncsn.toy import Gaussian, GaussianMixture

__all__ = ["MixturePosterior", "gaussian_posterior", "mixture_posterior"]


class MixturePosterior(NamedTuple):
    """The posterior of a Gaussian mixture prior: a mixture of full-covariance Gaussians."""

    weights: Tensor
    """``[K]`` posterior component weights (summing to 1)."""
    means: Tensor
    """``[K, D]`` posterior component means."""
    covs: Tensor
    """``[K, D, D]`` posterior component covariances."""


def _problem(measurement: Measurement, dim: int, what: str) -> tuple[Tensor, Tensor, float]:
    """(A ``[M, D]``, y ``[M]``, σ_y²) in float64, checked against the prior's dimension."""
    if not isinstance(measurement, Measurement):
        raise TypeError(f"measurement must be an ncsn.inverse.Measurement; got {measurement!r:.80}")
    if measurement.batch != 1:
        raise ValueError(
            f"{what} is the posterior given one measurement; y holds {measurement.batch} "
            "(pass y[:1])"
        )
    n = math.prod(measurement.operator.in_shape)
    if n != dim:
        raise ValueError(
            f"the operator takes x of {n} entries (in_shape {list(measurement.operator.in_shape)}) "
            f"but the prior has dimension {dim}"
        )
    matrix = to_matrix(measurement.operator)
    y = measurement.y.detach().to(device="cpu", dtype=torch.float64).reshape(-1)
    return matrix, y, measurement.noise_std**2


def _update(
    mean: Tensor, cov: Tensor, matrix: Tensor, y: Tensor, noise_var: float
) -> tuple[Tensor, Tensor, Tensor]:
    """(posterior mean, posterior cov, log N(y; Aμ, AΣAᵀ + σ_y²I)) for one Gaussian."""
    evidence = matrix @ cov @ matrix.T + noise_var * torch.eye(matrix.shape[0], dtype=torch.float64)
    gain = torch.linalg.solve(evidence, matrix @ cov).T  # ΣAᵀ S⁻¹ (S and Σ symmetric)
    residual = y - matrix @ mean
    post_mean = mean + gain @ residual
    post_cov = cov - gain @ matrix @ cov
    post_cov = (post_cov + post_cov.T) / 2
    chol = torch.linalg.cholesky(evidence)
    white = torch.linalg.solve_triangular(chol, residual[:, None], upper=False)[:, 0]
    log_det = 2 * chol.diagonal().log().sum()
    log_evidence = -0.5 * (white @ white + log_det + y.numel() * math.log(2 * math.pi))
    return post_mean, post_cov, log_evidence


def gaussian_posterior(prior: Gaussian, measurement: Measurement) -> Gaussian:
    """The exact posterior p(x | y) of a Gaussian prior: a :class:`~ncsn.toy.Gaussian`.

    The prior's D dimensions are x flattened (D = prod(in_shape)); y must hold one measurement.

    Args:
        prior: a :class:`~ncsn.toy.Gaussian` N(μ, Σ).
        measurement: a :class:`~ncsn.inverse.Measurement` with σ_y > 0 (a noiseless one gives a
            degenerate posterior) and B = 1.

    Returns:
        N(mean, cov) with the Kalman update of the module docstring.

    Raises:
        ValueError: σ_y = 0, y with more than one measurement, or an operator whose x does not
            have D entries.
        TypeError: a prior without ``mean`` and ``cov``, a measurement that is not a Measurement.

    Example:
        >>> prior = ncsn.toy.Gaussian(torch.zeros(2), torch.eye(2))
        >>> m = ncsn.inverse.Measurement(ncsn.inverse.Mask(torch.tensor([True, False])), torch.tensor([[1.0, 0.0]]), 1.0)
        >>> post = ncsn.inverse.gaussian_posterior(prior, m)
        >>> post.mean, post.cov.diagonal()
        (tensor([0.5000, 0.0000], dtype=torch.float64), tensor([0.5000, 1.0000], dtype=torch.float64))
    """
    if not isinstance(getattr(prior, "mean", None), Tensor) or not isinstance(
        getattr(prior, "cov", None), Tensor
    ):
        raise TypeError(f"prior must be a toy Gaussian with mean and cov; got {prior!r:.80}")
    if isinstance(measurement, Measurement) and measurement.noise_std == 0.0:
        raise ValueError(
            "gaussian_posterior needs noisy measurements (noise_std > 0): given noiseless ones "
            "the posterior is degenerate on the measured subspace"
        )
    matrix, y, noise_var = _problem(measurement, prior.dim, "gaussian_posterior")
    mean, cov, _ = _update(prior.mean, prior.cov, matrix, y, noise_var)
    return Gaussian(mean, cov)


def mixture_posterior(prior: GaussianMixture, measurement: Measurement) -> MixturePosterior:
    """The exact posterior p(x | y) of a Gaussian mixture prior (its weights, means and
    covariances).

    Args:
        prior: a :class:`~ncsn.toy.GaussianMixture` (diagonal components).
        measurement: a :class:`~ncsn.inverse.Measurement` with B = 1 (σ_y = 0 is allowed where
            every AΣ_kAᵀ is invertible: the weights are then still defined).

    Returns:
        A :class:`MixturePosterior`.

    Raises:
        ValueError: y with more than one measurement, an operator whose x does not have D entries.
        TypeError: a prior without ``weights``, ``means`` and ``stds``.

    Example:
        >>> prior = ncsn.toy.paper_mixture()                     # 0.2·N((−5,−5), I) + 0.8·N((5,5), I)
        >>> A = ncsn.inverse.Mask(torch.tensor([True, False]))   # observe the first coordinate
        >>> post = ncsn.inverse.mixture_posterior(prior, ncsn.inverse.Measurement(A, torch.tensor([[-0.5, 0.0]]), 1.0))
        >>> [round(w, 2) for w in post.weights.tolist()]       # y = −0.5 favours the smaller mode
        [0.75, 0.25]
    """
    for name in ("weights", "means", "stds"):
        if not isinstance(getattr(prior, name, None), Tensor):
            raise TypeError(f"prior must be a toy GaussianMixture; got {prior!r:.80}")
    matrix, y, noise_var = _problem(measurement, prior.dim, "mixture_posterior")
    means, covs, logs = [], [], []
    for weight, mean, std in zip(prior.weights, prior.means, prior.stds, strict=True):
        post_mean, post_cov, log_evidence = _update(
            mean, torch.diag(std * std), matrix, y, noise_var
        )
        means.append(post_mean)
        covs.append(post_cov)
        logs.append(weight.log() + log_evidence)
    weights = torch.softmax(torch.stack(logs), dim=0)
    return MixturePosterior(weights, torch.stack(means), torch.stack(covs))
