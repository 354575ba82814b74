"""The probability-flow ODE of the variance-exploding SDE: the kernel :func:`ode_step` and
:class:`ProbabilityFlowODE`, the loop over it (Song et al., 2021, §4.3; Karras et al., 2022).

Data perturbed by N(0, σ²I) has marginals p_σ. The deterministic flow

    dx/dσ = −σ · ∇ₓ log p_σ(x)

carries p_σ to p_σ' for every pair σ, σ' (the probability-flow ODE of the VE SDE with σ as time:
its Fokker-Planck equation is the heat equation ∂p/∂σ = σ·Δp that the perturbation obeys). With
a score model s_θ in place of the score, integrating from σ_1 down to σ_L samples the model's
p_{σ_L}; integrating up encodes data into the latent at σ_1. No noise is drawn anywhere.

The solvers step along the σ grid with h = σ − σ' (positive going down, negative going up):

    Euler:  x' = x + h·σ·s_θ(x, σ)
    Heun:   x̃ = x + h·σ·s_θ(x, σ);   x' = x + (h/2)·(σ·s_θ(x, σ) + σ'·s_θ(x̃, σ'))

Heun's method is Algorithm 1 of Karras et al. (2022) with σ(t) = t (their d = (x − D(x; σ))/σ
is −σ·s for the denoiser D(x; σ) = x + σ²·s). A step to σ' = 0 is always an Euler step (the
second evaluation would be at σ = 0, where a trained model is not defined), and that step is
x' = x + σ²·s_θ(x, σ): Tweedie's denoising step, :func:`~ncsn.samplers.denoise_step`, exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from ncsn._checks import finite_float
from ncsn._types import ScoreModel, StepCallback
from ncsn.samplers._common import (
    Recorder,
    StepHook,
    StepInfo,
    check_end,
    check_kernel,
    check_out,
    check_start,
    levels,
    score_of,
    sigma_vector,
)

__all__ = ["ProbabilityFlowODE", "ode_step"]

Solver = Literal["heun", "euler"]
SOLVERS: tuple[str, ...] = ("heun", "euler")

# A function of the flow's state and σ returning, for every component, the factor g with
# d(component)/dσ = −σ·g: the score for x, and the score's Jacobian trace for a log-density.
_Scores = Callable[[tuple[Tensor, ...], float], tuple[Tensor, ...]]


def check_solver(solver: object) -> Solver:
    """``solver`` must be ``"heun"`` or ``"euler"``."""
    if solver == "heun":
        return "heun"
    if solver == "euler":
        return "euler"
    raise ValueError(f"solver must be one of {list(SOLVERS)}; got solver={solver!r}")


def check_pair(sigma: float, next_sigma: float) -> tuple[float, float]:
    """Two distinct, finite, non-negative σ as Python floats (either order)."""
    sigma = finite_float(sigma, "sigma")
    next_sigma = finite_float(next_sigma, "next_sigma")
    if sigma < 0 or next_sigma < 0:
        raise ValueError(
            f"sigma and next_sigma must be non-negative; got sigma={sigma}, next_sigma={next_sigma}"
        )
    if sigma == next_sigma:
        raise ValueError(f"next_sigma must differ from sigma; got both {sigma}")
    return sigma, next_sigma


def flow_step(
    scores: _Scores,
    state: tuple[Tensor, ...],
    sigma: float,
    next_sigma: float,
    solver: Solver,
) -> tuple[Tensor, ...]:
    """One Euler or Heun step σ → σ' of d(state)/dσ = −σ·g(state, σ), componentwise.

    Shared by :func:`ode_step` (state = (x,), g = s_θ) and :func:`ncsn.likelihood.log_prob`
    (state = (x, Δ log p), g = (s_θ, tr ∂s_θ/∂x)), so that both integrate the same path.
    """
    h = sigma - next_sigma
    first = scores(state, sigma)
    euler = tuple(s + g * (h * sigma) for s, g in zip(state, first, strict=True))
    if solver == "euler" or next_sigma == 0.0:
        return euler
    second = scores(euler, next_sigma)
    return tuple(
        s + g1 * (h * sigma / 2) + g2 * (h * next_sigma / 2)
        for s, g1, g2 in zip(state, first, second, strict=True)
    )


def ode_step(
    model: ScoreModel,
    x: Tensor,
    sigma: float,
    next_sigma: float,
    *,
    solver: Solver = "heun",
    out: Tensor | None = None,
) -> Tensor:
    """One step of the VE probability-flow ODE dx/dσ = −σ·s_θ(x, σ) from σ to σ'.

    With h = σ − σ': Euler x' = x + h·σ·s_θ(x, σ); Heun x̃ = x + h·σ·s_θ(x, σ),
    x' = x + (h/2)·(σ·s_θ(x, σ) + σ'·s_θ(x̃, σ')) (Karras et al., 2022, Alg. 1). σ' < σ steps
    toward the data, σ' > σ toward the noise (encoding). A step to σ' = 0 is an Euler step, equal
    to :func:`~ncsn.samplers.denoise_step` bit for bit. Deterministic; no autograd graph.

    Args:
        model: a :class:`~ncsn.ScoreModel`.
        x: ``[B, *event]`` iterate at noise level σ.
        sigma: σ ≥ 0, a Python number (the level x stands for).
        next_sigma: σ' ≥ 0, σ' ≠ σ.
        solver: ``"heun"`` (two model calls, one for a step to σ' = 0) or ``"euler"`` (one).
        out: optional buffer of x's shape, dtype and device for the result (may be x itself).

    Returns:
        The ``[B, *event]`` iterate at σ' (``out`` when given).

    Raises:
        ValueError: an unknown solver, a negative or non-finite σ, σ' = σ, an ``out`` that does
            not match x, or a model output of another shape than x.

    Example:
        >>> gauss = ncsn.toy.Gaussian(torch.zeros(2), torch.eye(2))   # p_σ = N(0, (1 + σ²)I)
        >>> x = torch.ones(3, 2, dtype=torch.float64)
        >>> ncsn.samplers.ode_step(gauss.score_model(), x, 1.0, 0.5).shape
        torch.Size([3, 2])
    """
    check_kernel(model, x)
    solver = check_solver(solver)
    sigma, next_sigma = check_pair(sigma, next_sigma)
    check_out(out, x)

    def scores(state: tuple[Tensor, ...], level: float) -> tuple[Tensor, ...]:
        return (score_of(model, state[0], sigma_vector(level, state[0])),)

    with torch.no_grad():
        (result,) = flow_step(scores, (x,), sigma, next_sigma, solver)
        return result if out is None else out.copy_(result)


def _step_calls(solver: Solver, next_sigma: float) -> int:
    return 1 if solver == "euler" or next_sigma == 0.0 else 2


@dataclass(frozen=True, eq=False)
class ProbabilityFlowODE:
    """The VE probability-flow ODE on a σ grid, a deterministic :class:`~ncsn.Sampler`.

    Calling it integrates dx/dσ = −σ·s_θ(x, σ) from σ_1 down to σ_L, one
    :func:`ode_step` per pair of adjacent levels (L − 1 steps): a start x ~ p_{σ_1} (in practice
    N(0, σ_1²I) for σ_1 much larger than the data) ends as a sample of the model's p_{σ_L}. With
    ``denoise=True`` a last step σ_L → 0 is taken (an Euler step, which is Tweedie's
    x + σ_L²·s_θ(x, σ_L), as Karras et al. end with a step to σ = 0). :meth:`encode` runs the
    same steps backwards, σ_L up to σ_1 (data → latent), for encoding and likelihoods.

    Nothing is random: ``generator`` is accepted (and checked against x's device) but unused, so
    any generator gives the same output.

    Args:
        sigmas: ``[L]`` strictly decreasing positive levels, L ≥ 2; the grid is the time
            discretisation (a fine geometric grid, e.g. 100+ levels, keeps the error small).
        solver: ``"heun"`` (second order, 2 model calls a step) or ``"euler"`` (first order, 1).
        denoise: add the final step σ_L → 0.

    Raises:
        ValueError: invalid levels, fewer than two levels, or an unknown solver.
        TypeError: a non-bool ``denoise``.

    Example:
        >>> sigmas = ncsn.geometric_sigmas(20.0, 0.1, 50, dtype=torch.float64)
        >>> ode = ncsn.samplers.ProbabilityFlowODE(sigmas)
        >>> ode.num_model_calls
        98
        >>> exact = ncsn.toy.paper_mixture().score_model()
        >>> g = torch.Generator().manual_seed(0)
        >>> z = 20.0 * torch.randn(8, 2, dtype=torch.float64, generator=g)
        >>> x = ode(exact, z)                        # [8, 2] samples of p_{σ_L}
        >>> torch.allclose(ode.encode(exact, x), z, atol=1e-2)
        True

    References:
        Song et al. (2021), "Score-Based Generative Modeling through Stochastic Differential
        Equations", §4.3 and App. D; Karras et al. (2022), "Elucidating the Design Space of
        Diffusion-Based Generative Models", Algorithm 1.
    """

    sigmas: Tensor
    solver: Solver = "heun"
    denoise: bool = False
    _floats: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __init__(
        self, sigmas: Tensor | Sequence[float], *, solver: Solver = "heun", denoise: bool = False
    ) -> None:
        grid, floats = levels(sigmas)
        if len(floats) < 2:
            raise ValueError(f"sigmas must hold at least two levels for an ODE; got {list(floats)}")
        object.__setattr__(self, "sigmas", grid)
        object.__setattr__(self, "solver", check_solver(solver))
        if not isinstance(denoise, bool):
            raise TypeError(f"denoise must be a bool; got denoise={denoise!r}")
        object.__setattr__(self, "denoise", denoise)
        object.__setattr__(self, "_floats", floats)

    def _key(self) -> tuple[object, ...]:
        return (self._floats, self.solver, self.denoise)

    def __eq__(self, other: object) -> bool:
        """Equal settings: the same σ values, solver and ``denoise``."""
        if not isinstance(other, ProbabilityFlowODE):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    @property
    def num_model_calls(self) -> int:
        """Model evaluations per call: 2(L − 1) for Heun, L − 1 for Euler (+1 with ``denoise``).

        :meth:`encode` costs the same without the ``denoise`` term.
        """
        steps = len(self._floats) - 1
        return steps * _step_calls(self.solver, 1.0) + int(self.denoise)

    def __call__(
        self,
        model: ScoreModel,
        x: Tensor,
        *,
        generator: torch.Generator | None = None,
        callback: StepCallback | None = None,
        hook: StepHook | None = None,
    ) -> Tensor:
        """Integrate from ``x`` ``[B, *event]`` at σ_1 (left unchanged) down to σ_L (or 0).

        ``hook`` is applied to the start (σ_1) and after each step with the level reached
        (σ_{i+1}; 0.0 after the ``denoise`` step). ``callback`` then sees
        ``StepInfo(level=i, step=0, sigma=σ_i, step_size=σ_i² − σ_{i+1}², x, score)`` with the
        step's last model output as ``score``.

        Raises:
            ValueError: an empty batch or non-finite start; a model output of the wrong shape.
            FloatingPointError: non-finite values (a grid too coarse for the model).
        """
        check_start(x, generator, model=model, callback=callback, hook=hook)
        return self._run(model, x, self._floats, callback, hook, "ProbabilityFlowODE")

    def encode(
        self,
        model: ScoreModel,
        x: Tensor,
        *,
        callback: StepCallback | None = None,
        hook: StepHook | None = None,
    ) -> Tensor:
        """Integrate from ``x`` ``[B, *event]`` at σ_L (left unchanged) up to σ_1: the latent.

        The same :func:`ode_step` with the grid reversed (σ_L → σ_{L−1} → … → σ_1), so that
        decoding (calling the sampler) inverts it up to the solver's error. ``denoise`` is
        ignored: the start is taken to stand at σ_L (data with a little noise, or clean data
        with σ_L small). ``hook`` and ``callback`` as in ``__call__`` with the levels reversed
        (``level`` counts the steps taken).

        Raises:
            ValueError: an empty batch or non-finite start; a model output of the wrong shape.
            FloatingPointError: non-finite values (a grid too coarse for the model).
        """
        check_start(x, None, model=model, callback=callback, hook=hook)
        up = tuple(reversed(self._floats))
        return self._run(model, x, up, callback, hook, "ProbabilityFlowODE.encode", final=False)

    def _run(
        self,
        model: ScoreModel,
        x: Tensor,
        grid: tuple[float, ...],
        callback: StepCallback | None,
        hook: StepHook | None,
        what: str,
        *,
        final: bool = True,
    ) -> Tensor:
        call = Recorder(model)
        with torch.no_grad():
            x = x.clone()
            if hook is not None:
                hook(x, grid[0])
            targets = list(grid[1:]) + ([0.0] if final and self.denoise else [])
            sigma = grid[0]
            for level, next_sigma in enumerate(targets):
                x = ode_step(call, x, sigma, next_sigma, solver=self.solver, out=x)
                if hook is not None:
                    hook(x, next_sigma)
                if callback is not None:
                    size = sigma**2 - next_sigma**2
                    callback(StepInfo(level, 0, sigma, size, x, call.last))
                sigma = next_sigma
        check_end(x, what, "the σ grid is probably too coarse")
        return x
