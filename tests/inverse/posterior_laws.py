"""Exact laws of the posterior samplers on Gaussian priors, and the Gaussian problems they run on.

With the exact score of a Gaussian prior every kernel of ncsn.inverse but DPS's is affine in its
input and its noise: x' = M·x + c + B·z. :func:`affine` reads M, c and B off the kernel itself
(one batched call with the unit vectors as input or noise), so the chain's law is propagated
through the implementation, not through a second copy of its formulas: m ← M·m + c,
C ← M·C·Mᵀ + B·Bᵀ.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

import ncsn
from ncsn import inverse

Step = Callable[[Tensor, Tensor], Tensor]  # (x, noise) -> x'


def flat_score(prior: ncsn.toy.Gaussian, shape: tuple[int, ...]) -> ncsn.ScoreModel:
    """The exact score of a Gaussian prior on x flattened, for x of event ``shape``."""

    def score(x: Tensor, sigma: Tensor) -> Tensor:
        return prior.score(x.reshape(x.shape[0], -1), sigma).reshape(x.shape)

    return score


def gaussian_problem(
    operator: inverse.LinearOperator, *, noise_std: float = 0.5, seed: int = 0
) -> tuple[ncsn.toy.Gaussian, inverse.Measurement]:
    """A well-conditioned correlated Gaussian prior (eigenvalues in about [0.5, 1.7]) and one noisy
    measurement of a draw from it."""
    g = torch.Generator().manual_seed(seed)
    d = math.prod(operator.in_shape)
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    q, _ = torch.linalg.qr(a)
    eigenvalues = 0.5 + 1.2 * torch.rand(d, generator=g, dtype=torch.float64)
    cov = q @ torch.diag(eigenvalues) @ q.T
    mean = torch.rand(d, generator=g, dtype=torch.float64) - 0.5
    prior = ncsn.toy.Gaussian(mean, (cov + cov.T) / 2)
    x = prior.sample(1, generator=g).reshape(1, *operator.in_shape)
    return prior, inverse.measure(operator, x, noise_std, generator=g)


def affine(step: Step, shape: tuple[int, ...]) -> tuple[Tensor, Tensor, Tensor]:
    """(M ``[D, D]``, c ``[D]``, B ``[D, D]``) of an affine step x' = M·x + c + B·z."""
    d = math.prod(shape)
    eye = torch.eye(d, dtype=torch.float64)
    x = torch.cat([torch.zeros(1, d, dtype=torch.float64), eye]).reshape(d + 1, *shape)
    out = step(x, torch.zeros_like(x)).reshape(d + 1, d)
    c = out[0]
    m = (out[1:] - c).T
    kicked = step(torch.zeros(d, *shape, dtype=torch.float64), eye.reshape(d, *shape))
    b = (kicked.reshape(d, d) - c).T
    return m, c, b


def propagate(
    mean: Tensor, cov: Tensor, step: tuple[Tensor, Tensor, Tensor], times: int
) -> tuple[Tensor, Tensor]:
    """The law after ``times`` applications of one affine step."""
    m, c, b = step
    noise = b @ b.T
    for _ in range(times):
        mean = m @ mean + c
        cov = m @ cov @ m.T + noise
    return mean, (cov + cov.T) / 2


def langevin_law(
    sampler: inverse.PosteriorLangevin | inverse.SNIPS,
    model: ncsn.ScoreModel,
    kernel: Callable[..., Tensor],
) -> tuple[Tensor, Tensor]:
    """The exact law of an annealed-Langevin-type sampler started from U[0, 1]."""
    shape = tuple(sampler.measurement.operator.in_shape)
    d = math.prod(shape)
    mean = torch.full((d,), 0.5, dtype=torch.float64)
    cov = torch.eye(d, dtype=torch.float64) / 12
    for sigma, alpha in zip(sampler.sigmas.values, sampler.step_sizes, strict=True):

        def step(x: Tensor, z: Tensor, sigma: float = sigma, alpha: float = alpha) -> Tensor:
            return kernel(model, x, sigma, alpha, sampler.measurement, noise=z)

        mean, cov = propagate(mean, cov, affine(step, shape), sampler.steps_per_level)
    return mean, cov


def ddrm_law(sampler: inverse.DDRM, model: ncsn.ScoreModel) -> tuple[Tensor, Tensor]:
    """The exact law of DDRM from its own start (an affine function of one normal draw)."""
    m = sampler.measurement
    shape = tuple(m.operator.in_shape)
    d = math.prod(shape)
    svd = inverse.operator_svd(m.operator)
    assert svd is not None
    s = svd.singular_values.to(torch.float64)
    y_bar = svd.u_t(m.y.to(torch.float64))[0]
    sigma = sampler.sigmas.values[0]
    informed = (s > 0) & (sigma * s >= m.noise_std)
    safe = torch.where(s > 0, s, 1.0)
    spread = torch.where(
        informed, (sigma**2 - (m.noise_std / safe) ** 2).clamp_min(0).sqrt(), sigma
    )
    centre = torch.where(informed, y_bar / safe, 0.0)
    v = svd.v(torch.eye(d, dtype=torch.float64)).reshape(d, d).T  # column j = V e_j
    mean, cov = v @ centre, v @ torch.diag(spread**2) @ v.T
    levels = sampler.sigmas.values
    for sigma, next_sigma in zip(levels, (*levels[1:], 0.0), strict=True):

        def step(x: Tensor, z: Tensor, sigma: float = sigma, nxt: float = next_sigma) -> Tensor:
            return inverse.ddrm_step(
                model, x, sigma, nxt, m, eta=sampler.eta, eta_b=sampler.eta_b, noise=z
            )

        mean, cov = propagate(mean, cov, affine(step, shape), 1)
    return mean, cov


def standard_errors(cov: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """Standard errors of the sample mean ``[D]`` and sample covariance ``[D, D]`` of n draws of
    N(·, cov): √(C_jj/n) and √((C_ii·C_jj + C_ij²)/n)."""
    d = cov.diagonal()
    return (d / n).sqrt(), ((d[:, None] * d[None] + cov**2) / n).sqrt()


def check_moments(samples: Tensor, mean: Tensor, cov: Tensor, *, k: float = 4.5) -> None:
    """The sample mean and covariance of ``samples`` ``[n, *event]`` match (mean, cov) within k
    standard errors in every entry."""
    n = samples.shape[0]
    flat = samples.reshape(n, -1).to(torch.float64)
    se_mean, se_cov = standard_errors(cov, n)
    z_mean = ((flat.mean(0) - mean) / se_mean).abs()
    z_cov = ((torch.cov(flat.T) - cov) / se_cov).abs()
    assert z_mean.max() < k, f"sample mean off by {z_mean.max():.2f} standard errors"
    assert z_cov.max() < k, f"sample covariance off by {z_cov.max():.2f} standard errors"


def law_error(mean: Tensor, cov: Tensor, post: ncsn.toy.Gaussian, n: int) -> float:
    """The largest deviation of a law from the posterior, in standard errors of n draws."""
    se_mean, se_cov = standard_errors(post.cov, n)
    return max(
        float(((mean - post.mean) / se_mean).abs().max()),
        float(((cov - post.cov) / se_cov).abs().max()),
    )
