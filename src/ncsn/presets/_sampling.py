"""Any sampler of the library by name, on a σ grid: what ``ncsn sample`` builds from its options
and a run's recorded sampling settings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from torch import Tensor

from ncsn._checks import as_sigmas
from ncsn._types import Sampler
from ncsn.ncsnv2 import ncsnv2_step_size
from ncsn.presets._paper import OFFICIAL_STEP_SIZE
from ncsn.samplers import (
    AnnealedLangevin,
    ConsistentAnnealedSampling,
    Langevin,
    PredictorCorrector,
    ProbabilityFlowODE,
)

__all__ = ["SAMPLERS", "SAMPLER_OPTIONS", "build_sampler"]
SAMPLERS = ("annealed", "cas", "pc", "ode")
"""The sampler names :func:`build_sampler` takes: annealed Langevin (Algorithm 1), consistent
annealed sampling, predictor-corrector for the VE SDE, the probability-flow ODE."""

SAMPLER_OPTIONS: Mapping[str, tuple[str, ...]] = {
    "langevin": ("step_size", "num_steps"),
    "annealed": ("step_size", "steps_per_level", "denoise"),
    "cas": ("eta", "denoise"),
    "pc": ("snr", "corrector_steps", "denoise"),
    "ode": ("solver", "denoise"),
}
"""The options of :func:`build_sampler` each sampler takes (``"langevin"``: plain Langevin, what
``"annealed"`` is on a grid of one level)."""


def build_sampler(
    name: str,
    sigmas: Tensor | Sequence[float],
    *,
    step_size: float | None = None,
    steps_per_level: int = 100,
    num_steps: int = 1000,
    denoise: bool | None = None,
    eta: float | None = None,
    snr: float = 0.16,
    corrector_steps: int = 1,
    solver: Literal["heun", "euler"] = "heun",
) -> Sampler:
    """The sampler called ``name`` on the grid ``sigmas``: what ``ncsn sample`` builds from its
    options and a run's recorded sampling settings. Options the sampler does not take (see
    :data:`SAMPLER_OPTIONS`) are not used.

    On a grid of one level, ``"annealed"`` is plain Langevin dynamics at that σ (``num_steps``
    steps; the single-level baseline's sampler).

    Args:
        name: one of :data:`SAMPLERS`.
        sigmas: ``[L]`` noise levels, σ₁ first.
        step_size: Langevin ε in the paper's convention (annealed; default: Technique 4's ε for
            ``steps_per_level`` steps; plain Langevin: :data:`OFFICIAL_STEP_SIZE`).
        steps_per_level: T of annealed Langevin.
        num_steps: steps of plain Langevin.
        denoise: end with the denoising step (default: on for ``pc`` and ``ode``, off otherwise).
        eta: CAS's fraction of Tweedie's step per level (default 1 − γ/2 for the grid's largest
            ratio γ = σ_(i+1)/σ_i, halfway between the deterministic end and Tweedie's).
        snr: the predictor-corrector's signal-to-noise ratio.
        corrector_steps: Langevin corrector steps per level of ``pc``.
        solver: ``"heun"`` or ``"euler"`` for ``ode``.

    Returns:
        A :class:`~ncsn.Sampler`.

    Raises:
        ValueError: an unknown ``name``, a sampler other than ``"annealed"`` on one level, bad
            ``sigmas`` or a bad option (named by the sampler).

    Example:
        >>> sigmas = ncsn.geometric_sigmas(1.0, 0.01, 10)
        >>> ncsn.presets.build_sampler("cas", sigmas, eta=0.9).num_model_calls
        10
        >>> type(ncsn.presets.build_sampler("annealed", [0.01])).__name__
        'Langevin'
    """
    if name not in SAMPLERS:
        raise ValueError(f"name must be one of {SAMPLERS}; got name={name!r}")
    levels = as_sigmas(sigmas)
    if len(levels) == 1:
        if name != "annealed":
            raise ValueError(
                f"sampler={name!r} needs two or more noise levels; a one-level model (σ = "
                f"{float(levels[0]):g}) is sampled with plain Langevin (sampler='annealed')"
            )
        step = OFFICIAL_STEP_SIZE if step_size is None else step_size
        return Langevin(float(levels[0]), step, num_steps)
    default_denoise = name in ("pc", "ode")
    denoise = default_denoise if denoise is None else denoise
    if name == "cas":
        if eta is None:
            eta = 1.0 - float((levels[1:] / levels[:-1]).max()) / 2
        return ConsistentAnnealedSampling(levels, eta, denoise=denoise)
    if name == "pc":
        return PredictorCorrector(levels, snr=snr, corrector_steps=corrector_steps, denoise=denoise)
    if name == "ode":
        return ProbabilityFlowODE(levels, solver=solver, denoise=denoise)
    if step_size is None:
        step_size = ncsnv2_step_size(levels, steps_per_level)
    return AnnealedLangevin(levels, step_size, steps_per_level, denoise=denoise)
