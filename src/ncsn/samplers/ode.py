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

from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass
from typing import Literal

import torch
from torch import Tensor

from ncsn._checks import Checked, call_model, check_bool, finite_float, sigma_vector
from ncsn._types import ScoreModel, StepCallback, StepHook
from ncsn.samplers._common import Run, check_kernel, check_out, grid_check
from ncsn.schedules import SigmaGrid, SigmaGridLike

__all__ = ["ProbabilityFlowODE", "ode_step"]

Solver = Literal["heun", "euler"]
SOLVERS: tuple[str, ...] = ("heun", "euler")

# A function of the flow's state and σ returning, for every component, the factor g with
# d(component)/dσ = −σ·g: the score for x, and the score's Jacobian trace for a log-density.
_Scores = Callable[[tuple[Tensor, ...], float], tuple[Tensor, ...]]


def check_solver(solver: object, name: str = "solver") -> Solver:
    """``solver`` must be ``"heun"`` or ``"euler"``."""
    if solver == "heun":
        return "heun"
    if solver == "euler":
        return "euler"
    raise ValueError(f"{name} must be one of {list(SOLVERS)}; got {name}={solver!r}")


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
        return (call_model(model, state[0], sigma_vector(level, state[0])),)

    with torch.no_grad():
        (result,) = flow_step(scores, (x,), sigma, next_sigma, solver)
        return result if out is None else out.copy_(result)


def _step_calls(solver: Solver, next_sigma: float) -> int:
    return 1 if solver == "euler" or next_sigma == 0.0 else 2


@dataclass(frozen=True)
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
            discretisation (a fine geometric grid, e.g. 100+ levels, keeps the error small; a
            tensor, a sequence or a :class:`~ncsn.schedules.SigmaGrid`).
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

    sigmas: Checked[SigmaGrid, SigmaGridLike] = Checked(
        grid_check("drop it and pass denoise=True, exactly that last (Euler) step σ_L → 0")
    )
    _: KW_ONLY
    solver: Checked[Solver] = Checked(check_solver, default="heun")
    denoise: Checked[bool] = Checked(check_bool, default=False)

    def __post_init__(self) -> None:
        if len(self.sigmas) < 2:
            raise ValueError(
                f"sigmas must hold at least two levels for an ODE; got {self.sigmas.tolist()}"
            )

    @property
    def num_model_calls(self) -> int:
        """Model evaluations per call: 2(L − 1) for Heun, L − 1 for Euler (+1 with ``denoise``).

        :meth:`encode` costs the same without the ``denoise`` term.
        """
        steps = len(self.sigmas) - 1
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
            ValueError: an empty batch or non-finite start; a model output of the wrong shape; a
                hook or callback that changed the shape, dtype or device of the iterate.
            NonFiniteError: non-finite values (a ``FloatingPointError`` saying whether the
                model's output or the iterate went first, and at which level).
        """
        run = Run(
            "ProbabilityFlowODE",
            model,
            x,
            generator=generator,
            callback=callback,
            hook=hook,
            advice="the σ grid is probably too coarse for this model",
        )
        targets = self.sigmas.values[1:] + ((0.0,) if self.denoise else ())
        return self._integrate(run, x, self.sigmas.values[0], targets)

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
            ValueError: an empty batch or non-finite start; a model output of the wrong shape; a
                hook or callback that changed the shape, dtype or device of the iterate.
            NonFiniteError: non-finite values (as in ``__call__``; ``level`` counts the steps).
        """
        run = Run(
            "ProbabilityFlowODE.encode",
            model,
            x,
            generator=None,
            callback=callback,
            hook=hook,
            advice="the σ grid is probably too coarse for this model",
        )
        up = self.sigmas.values[::-1]
        return self._integrate(run, x, up[0], up[1:])

    def _integrate(self, run: Run, x: Tensor, sigma: float, targets: tuple[float, ...]) -> Tensor:
        with torch.no_grad():
            x = x.clone()
            run.hook(x, sigma)
            for level, next_sigma in enumerate(targets):
                run.at(level, sigma)
                x = ode_step(run.model, x, sigma, next_sigma, solver=self.solver, out=x)
                run.stepped(x, 0, sigma**2 - next_sigma**2, reached=next_sigma)
                sigma = next_sigma
        return run.finish(x)
