"""Exact likelihoods of a score model through the probability-flow ODE: :func:`log_prob` (nats)
and :func:`bits_per_dim`.

The flow dx/dσ = −σ·s(x, σ) of :class:`~ncsn.samplers.ProbabilityFlowODE` carries p_σ to p_σ'.
Along a path x(σ) the instantaneous change of variables (Chen et al., 2018) gives

    d/dσ log p_σ(x(σ)) = −∇·(−σ·s) = σ·tr ∂s/∂x,

so, integrating from σ_L (the data end) up to σ_1,

    log p_{σ_L}(x) = log p_{σ_1}(x(σ_1)) − ∫_{σ_L}^{σ_1} σ·tr ∂s/∂x (x(σ), σ) dσ.

:func:`log_prob` integrates x and the integral together with the ODE's own step
(:func:`ncsn.samplers.ode.flow_step`, Heun or Euler on the σ grid), so the path is exactly the one
:meth:`~ncsn.samplers.ProbabilityFlowODE.encode` takes. With the model's true score and the true
log p_{σ_1} the result is log p_{σ_L}(x) up to the solver's discretisation error (Song et al.,
2021, §4.3 and App. D.2).

The trace is either exact (D backward passes per evaluation: for small D) or Hutchinson's estimate
E_v[vᵀ(∂s/∂x)v], unbiased for probes v with E[vvᵀ] = I (Rademacher or Gaussian; Grathwohl et al.,
2019). One probe set is drawn per call and kept along the path, as FFJORD does; ``probes=K``
averages K independent probes at every evaluation.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

from ncsn._checks import (
    check_batch,
    check_callable,
    check_generator,
    check_nonempty,
    check_optional_callable,
    check_output,
    has_values,
    positive_float,
    positive_int,
    sigma_vector,
    sum_event,
)
from ncsn._types import ScoreModel
from ncsn.data import dequantize
from ncsn.samplers._common import NonFiniteError, Watch, grid_check
from ncsn.samplers.ode import Solver, check_solver, flow_step
from ncsn.schedules import SigmaGridLike

__all__ = ["bits_per_dim", "gaussian_prior", "log_prob"]

_check_grid = grid_check("drop it: log_prob starts from x at σ_L > 0, the last level")

Trace = Literal["exact", "hutchinson"]
Probe = Literal["rademacher", "gaussian"]


def gaussian_prior(sigma: float) -> Callable[[Tensor], Tensor]:
    """log N(x; 0, σ²I) summed over the event dimensions, ``[B, *event] -> [B]``.

    The default ``prior`` of :func:`log_prob`: for σ_1 much larger than the data, p_{σ_1} is close
    to N(0, σ_1²I) (the data's own spread adds to σ_1² in the variance; the error this leaves is
    of order ‖x‖²/σ_1² per dimension).

    Raises:
        ValueError: a σ that is not positive and finite; TypeError: one that is not a number.

    Example:
        >>> prior = ncsn.likelihood.gaussian_prior(1.0)
        >>> prior(torch.zeros(1, 2))                      # −log(2π)
        tensor([-1.8379])
    """
    variance = positive_float(sigma, "sigma") ** 2

    def log_density(x: Tensor) -> Tensor:
        d = x[0].numel()
        return -0.5 * sum_event(x.square()) / variance - 0.5 * d * math.log(2 * math.pi * variance)

    return log_density


def _probes(x: Tensor, kind: Probe, count: int, generator: torch.Generator | None) -> Tensor:
    """``[count, B, *event]`` probes with E[vvᵀ] = I."""
    shape = (count, *x.shape)
    v = torch.randn(shape, generator=generator, dtype=x.dtype, device=x.device)
    return v.sign() if kind == "rademacher" else v


def _score_and_trace(
    model: ScoreModel, x: Tensor, sigma: float, probes: Tensor | None
) -> tuple[Tensor, Tensor]:
    """s(x, σ) and tr ∂s/∂x per example (exact when ``probes`` is None, else Hutchinson's mean)."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        score = model(x, sigma_vector(sigma, x))
        check_output(score, x)
        if not score.requires_grad:
            raise ValueError(
                "model output does not depend differentiably on x (its output has no grad_fn: "
                "a model run under torch.no_grad() or one that detaches its output); the "
                "likelihood needs the divergence of the model's output in x"
            )
        if probes is None:
            flat = score.reshape(x.shape[0], -1)
            trace = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
            for i in range(flat.shape[1]):
                (row,) = torch.autograd.grad(flat[:, i].sum(), x, retain_graph=True)
                trace = trace + row.reshape(x.shape[0], -1)[:, i]
        else:
            trace = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
            for k, v in enumerate(probes):
                last = k == probes.shape[0] - 1
                (vjp,) = torch.autograd.grad((score * v).sum(), x, retain_graph=not last)
                trace = trace + sum_event(vjp * v)
            trace = trace / probes.shape[0]
    return score.detach(), trace.detach()


def log_prob(
    model: ScoreModel,
    x: Tensor,
    sigmas: SigmaGridLike,
    *,
    prior: Callable[[Tensor], Tensor] | None = None,
    trace: Trace = "hutchinson",
    probes: int = 1,
    probe: Probe = "rademacher",
    solver: Solver = "heun",
    generator: torch.Generator | None = None,
) -> Tensor:
    """log p_{σ_L}(x) in nats under the model's probability-flow ODE, ``[B, *event] -> [B]``.

    Integrates x from σ_L up to σ_1 on the grid ``sigmas`` together with
    ∫ σ·tr ∂s_θ/∂x dσ, and returns ``prior(x(σ_1))`` minus that integral (derivation in
    :mod:`ncsn.likelihood`). Costs 2(L − 1) score evaluations with Heun (L − 1 with Euler), each
    with ``probes`` backward passes (``trace="hutchinson"``) or D of them (``"exact"``). The
    model must treat examples independently (a network in ``eval()`` mode).

    Args:
        model: a :class:`~ncsn.ScoreModel`, differentiable in x.
        x: ``[B, *event]`` points taken to stand at noise level σ_L.
        sigmas: ``[L]`` strictly decreasing levels, L ≥ 2: the time grid (fine grids, e.g. 100+
            geometric levels, keep the discretisation error small).
        prior: ``[B, *event] -> [B]`` log-density of p_{σ_1}; default
            :func:`gaussian_prior` (σ_1).
        trace: ``"exact"`` (full Jacobian trace) or ``"hutchinson"`` (unbiased estimate).
        probes: Hutchinson probes averaged per evaluation (≥ 1).
        probe: ``"rademacher"`` (lower variance) or ``"gaussian"``.
        solver: ``"heun"`` or ``"euler"``, as in :class:`~ncsn.samplers.ProbabilityFlowODE`.
        generator: source of the probes.

    Returns:
        ``[B]`` log-densities in nats, in x's dtype.

    Raises:
        ValueError: fewer than two levels, invalid levels, an unknown ``trace``, ``probe`` or
            ``solver``, an empty or non-finite x, a prior of the wrong shape, a model output
            of the wrong shape or device, or one that does not depend differentiably on x.
        TypeError: a non-tensor x, a non-int ``probes``, a non-generator ``generator``, a
            model or prior that is not callable, a model output that is not a real floating
            tensor.
        NonFiniteError: the integration produced non-finite values (a ``FloatingPointError``
            saying whether the model's output, the prior or the path went non-finite, and at
            which step).

    Example:
        >>> gmm = ncsn.toy.paper_mixture()
        >>> sigmas = ncsn.geometric_sigmas(50.0, 0.1, 200, dtype=torch.float64)
        >>> x = gmm.sample(4, generator=torch.Generator().manual_seed(0))
        >>> exact = ncsn.likelihood.log_prob(gmm.score_model(), x, sigmas, trace="exact",
        ...     prior=lambda y: gmm.log_prob(y, sigma=50.0))
        >>> torch.allclose(exact, gmm.log_prob(x, sigma=0.1), atol=1e-3)
        True

    References:
        Chen, Rubanova, Bettencourt & Duvenaud (2018), "Neural ordinary differential
        equations"; Grathwohl et al. (2019), "FFJORD"; Song et al. (2021), §4.3.
    """
    check_callable(model, "model")
    check_optional_callable(prior, "prior")
    check_batch(x)
    check_generator(generator, x)
    grid = _check_grid(sigmas, "sigmas").values
    if len(grid) < 2:
        raise ValueError(f"sigmas must hold at least two levels for an ODE; got {list(grid)}")
    if trace not in ("exact", "hutchinson"):
        raise ValueError(f"trace must be 'exact' or 'hutchinson'; got trace={trace!r}")
    if probe not in ("rademacher", "gaussian"):
        raise ValueError(f"probe must be 'rademacher' or 'gaussian'; got probe={probe!r}")
    probes = positive_int(probes, "probes")
    solver = check_solver(solver)
    check_nonempty(x)
    if has_values(x) and not bool(torch.isfinite(x).all()):
        raise ValueError("x contains NaN or infinite values")
    prior = gaussian_prior(grid[0]) if prior is None else prior
    v = None if trace == "exact" else _probes(x, probe, probes, generator)
    watch = Watch("log_prob", x)

    def scores(state: tuple[Tensor, ...], sigma: float) -> tuple[Tensor, ...]:
        score, tr = _score_and_trace(model, state[0], sigma, v)
        watch.record(sigma, state[0], score, tr)
        # d log p / dσ = σ·tr = −σ·(−tr): the flow's convention d(·)/dσ = −σ·g with g = −tr.
        return score, -tr

    state: tuple[Tensor, ...] = (
        x.detach(),
        torch.zeros(x.shape[0], dtype=x.dtype, device=x.device),
    )
    up = grid[::-1]
    with torch.no_grad():
        for step, (sigma, next_sigma) in enumerate(itertools.pairwise(up)):
            watch.level = step
            state = flow_step(scores, state, sigma, next_sigma, solver)
    latent, change = state
    start = prior(latent)
    if not isinstance(start, Tensor) or start.shape != (x.shape[0],):
        got = tuple(start.shape) if isinstance(start, Tensor) else type(start).__name__
        raise ValueError(
            f"prior must return one log-density per example, [{x.shape[0]}]; got {got}"
        )
    result = start.to(x.dtype) - change
    if has_values(result) and not bool(torch.isfinite(result).all()):
        if bool(torch.isfinite(latent).all() & torch.isfinite(change).all()):
            raise NonFiniteError(
                "log_prob: the prior returned NaN or infinite log-densities for finite latents "
                f"at σ_1 = {grid[0]:g}; check the prior",
                where="log_prob",
                source="prior",
                level=len(grid) - 2,
                sigma=grid[0],
            )
        raise watch.error("the σ grid is probably too coarse for this model")
    return result


def _check_on_grid(x: Tensor, levels: int) -> None:
    """x must hold the K = ``levels`` grey levels k/(K − 1), up to the round-off of its dtype."""
    if not bool(((x >= 0) & (x <= 1)).all()):
        low, high = float(x.min()), float(x.max())
        raise ValueError(f"x must lie in [0, 1] for bits_per_dim; got values in [{low}, {high}]")
    scaled = x.detach().to(torch.float64) * (levels - 1)
    off = (scaled - scaled.round()).abs()
    # k/(K − 1) stored in x's dtype is off by at most half its spacing near 1, times K − 1;
    # 1e-3 of a level also covers float32 data widened to float64.
    tolerance = max(1e-3, (levels - 1) * torch.finfo(x.dtype).eps)
    worst = int(off.flatten().argmax())
    if float(off.flatten()[worst]) > tolerance:
        value = float(x.flatten()[worst])
        raise ValueError(
            f"x must hold the {levels} grey levels k/{levels - 1} of levels={levels} for the "
            f"dequantised bound of bits_per_dim; got {value!r} (level "
            f"{value * (levels - 1):.4g} of {levels - 1}); pass the data's own number of "
            "levels, or, for continuous data, use log_prob (nats; divide by D·ln 2 for bits)"
        )


def bits_per_dim(
    model: ScoreModel,
    x: Tensor,
    sigmas: SigmaGridLike,
    *,
    levels: int = 256,
    prior: Callable[[Tensor], Tensor] | None = None,
    trace: Trace = "hutchinson",
    probes: int = 1,
    probe: Probe = "rademacher",
    solver: Solver = "heun",
    generator: torch.Generator | None = None,
) -> Tensor:
    """An upper bound on the negative log-likelihood of quantised data, in bits per dimension.

    Data in [0, 1] on K = ``levels`` grey levels (the values k/(K − 1), as ``ToTensor`` gives for
    K = 256, or the embedded digits for K = 17) are dequantised by :func:`ncsn.data.dequantize`,
    the transform ``ncsn train --dequantize`` trains with: x̃ = (k + u)/K, u ~ U[0, 1)^D, uniform
    over level k's bin [k/K, (k + 1)/K). Then log P(k) ≥ E_u[log p(x̃)] − D·log K (Jensen), so

        bits/dim = −log p_{σ_L}(x̃)/(D·ln 2) + log₂ K

    is an unbiased estimate of an upper bound on −log₂ P(x)/D: the convention of Song et al.
    (2021) and of the official NCSN code (for K = 256 the familiar "+ 8").

    The bound holds only for data on those levels, so x is checked to hold them (within the
    round-off of its dtype): continuous data has no P(k) to bound; its density is
    :func:`log_prob`.

    Args:
        model, sigmas, prior, trace, probes, probe, solver: as in :func:`log_prob`.
        x: ``[B, *event]`` data in [0, 1] on the K grey levels k/(K − 1).
        levels: K ≥ 2.
        generator: source of the dequantisation noise and the probes.

    Returns:
        ``[B]`` bits per dimension (average them for a data set; their standard error is
        ``b.std() / √B``).

    Raises:
        ValueError: ``levels`` < 2, x outside [0, 1] or off the K levels, or any error of
            :func:`log_prob`.

    Example:
        >>> gmm = ncsn.toy.GaussianMixture([1.0], [[0.5, 0.5]], 0.2)
        >>> sigmas = ncsn.geometric_sigmas(20.0, 0.01, 100, dtype=torch.float64)
        >>> x = torch.tensor([[0.25, 0.75]], dtype=torch.float64)
        >>> b = ncsn.likelihood.bits_per_dim(gmm.score_model(), x, sigmas, levels=5,
        ...     generator=torch.Generator().manual_seed(0))                      # [1]
    """
    check_batch(x)
    check_generator(generator, x)
    count = positive_int(levels, "levels")
    if count < 2:
        raise ValueError(f"levels must be >= 2; got levels={levels}")
    if x.numel() and has_values(x):
        _check_on_grid(x, count)
    nats = log_prob(
        model,
        dequantize(x, levels=count, generator=generator),
        sigmas,
        prior=prior,
        trace=trace,
        probes=probes,
        probe=probe,
        solver=solver,
        generator=generator,
    )
    d = x[0].numel()
    return -nats / (d * math.log(2)) + math.log2(count)
