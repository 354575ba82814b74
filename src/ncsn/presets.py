"""Ready-made configurations: the paper's NCSN, its single-noise-level baseline, NCSNv2's settings
computed from the data, and the one function that turns data and settings into a training run.

Each preset returns a :class:`Setup`: a score model, the loss to train it with, and the sampler
it is sampled with, all built from the library's ordinary parts. :func:`recipe` computes NCSNv2's
settings (Song & Ermon, 2020) from a data set; :func:`prepare` builds everything a run needs from
data and :class:`Settings` (what ``ncsn train`` does, and what its checkpoints record);
:func:`from_data` is its short form; :func:`build_sampler` builds any sampler of the library by
name on a σ grid (what ``ncsn sample`` does with a run's recorded settings).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor, nn

from ncsn._checks import as_sigmas, positive_float, positive_int
from ncsn._types import NoiseSchedule, Sampler, ScoreLoss
from ncsn.data import ImageTransform, grey_levels, logit_transform
from ncsn.losses import DenoisingScoreMatching, SlicedScoreMatching
from ncsn.ncsnv2 import (
    estimate_max_pairwise_distance,
    max_pairwise_distance,
    ncsnv2_num_levels,
    ncsnv2_step_size,
)
from ncsn.nets.config import build_model, model_config
from ncsn.samplers import (
    AnnealedLangevin,
    ConsistentAnnealedSampling,
    Langevin,
    PredictorCorrector,
    ProbabilityFlowODE,
)
from ncsn.schedules import Schedule, geometric_sigmas

__all__ = [
    "EXACT_DISTANCE_LIMIT",
    "MODELS",
    "OFFICIAL_STEP_SIZE",
    "SAMPLERS",
    "SAMPLER_OPTIONS",
    "SMALL_IMAGE_PIXELS",
    "Recipe",
    "Run",
    "Settings",
    "Setup",
    "baseline",
    "build_sampler",
    "default_ngf",
    "from_data",
    "ncsn_paper",
    "prepare",
    "recipe",
]

OFFICIAL_STEP_SIZE = 2 * 2e-5
"""ε of the released code (``step_lr = 2e-5`` is ε/2); the paper's text states ε = 2e-5."""


SMALL_IMAGE_PIXELS = 16 * 16
"""Images of at most this many pixels (H·W) get the narrow RefineNet by default."""


def default_ngf(shape: Sequence[int]) -> int:
    """The RefineNet width ``ncsn train`` and :func:`from_data` use for images of ``shape``
    ``[C, H, W]``: 16 for small images (H·W <= :data:`SMALL_IMAGE_PIXELS`), else 64 (the paper's
    MNIST width).

    Why 16: on the 8×8 digits at equal CPU time the narrow network takes 2.5× the steps of the
    width-32 one and its samples come closer to real digits (``docs/sample-quality.md``).

    Raises:
        ValueError: ``shape`` is not an image shape ``[C, H, W]``.

    Example:
        >>> ncsn.presets.default_ngf((1, 8, 8)), ncsn.presets.default_ngf((3, 32, 32))
        (16, 64)
    """
    if len(shape) != 3:
        raise ValueError(f"shape must be an image shape [C, H, W]; got {list(shape)}")
    return 16 if shape[1] * shape[2] <= SMALL_IMAGE_PIXELS else 64


class Setup(NamedTuple):
    """A model with the loss it is trained with and the sampler it is sampled with."""

    model: nn.Module
    loss: ScoreLoss
    sampler: Sampler
    schedule: NoiseSchedule


def _refinenet(
    channels: int, ngf: int, sigmas: Tensor, generator: torch.Generator | None
) -> nn.Module:
    config = {"kind": "RefineNet", "channels": channels, "ngf": ngf, "sigmas": sigmas.tolist()}
    return build_model(config, generator=generator)


def ncsn_paper(
    channels: int,
    ngf: int,
    *,
    sigmas: Tensor | Sequence[float] | None = None,
    step_size: float = OFFICIAL_STEP_SIZE,
    steps_per_level: int = 100,
    generator: torch.Generator | None = None,
) -> Setup:
    """NCSN as in the paper: RefineNet, DSM with λ(σ) = σ², annealed Langevin (Alg. 1).

    Args:
        channels: image channels.
        ngf: RefineNet width (paper: 64 for MNIST, 128 for CIFAR-10 and CelebA).
        sigmas: noise levels (default: geometric 1 → 0.01, L = 10).
        step_size: ε (default: the released code's 4e-5; the paper's text says 2e-5).
        steps_per_level: T (paper: 100).
        generator: for the initial weights.

    Raises:
        ValueError: bad ``sigmas``, ``ngf`` or sampler settings (named).

    Example:
        >>> setup = ncsn.presets.ncsn_paper(channels=1, ngf=8, steps_per_level=2)  # paper: T = 100
        >>> x = setup.sampler(setup.model, ncsn.samplers.uniform_init((4, 1, 8, 8)))
        >>> x.shape
        torch.Size([4, 1, 8, 8])
    """
    levels = as_sigmas(sigmas) if sigmas is not None else geometric_sigmas(1.0, 0.01, 10)
    schedule = Schedule(levels)
    model = _refinenet(channels, ngf, levels, generator)
    loss = DenoisingScoreMatching(schedule, power=2.0)
    sampler = AnnealedLangevin(levels, step_size, steps_per_level)
    return Setup(model, loss, sampler, schedule)


def baseline(
    channels: int,
    ngf: int,
    *,
    sigma: float = 0.01,
    step_size: float = OFFICIAL_STEP_SIZE,
    num_steps: int = 1000,
    generator: torch.Generator | None = None,
) -> Setup:
    """The paper's single-noise-level baseline (App. C.1).

    The unconditional network (:class:`~ncsn.nets.RefineNetBaseline`, InstanceNorm++), DSM at one
    σ = 0.01 without weighting (λ = 1, i.e. power 0), and plain Langevin dynamics with T = 1000
    steps at that σ. Train and sample it with the same code as :func:`ncsn_paper`.

    Raises:
        ValueError: bad ``sigma``, ``ngf`` or sampler settings (named).

    Example:
        >>> setup = ncsn.presets.baseline(channels=1, ngf=8)
        >>> setup.sampler.num_steps, setup.loss.power
        (1000, 0.0)
    """
    schedule = Schedule([sigma])
    config = {"kind": "RefineNetBaseline", "channels": channels, "ngf": ngf}
    model = build_model(config, generator=generator)
    loss = DenoisingScoreMatching(schedule, power=0.0)
    sampler = Langevin(sigma, step_size, num_steps)
    return Setup(model, loss, sampler, schedule)


EXACT_DISTANCE_LIMIT = 10_000
"""Data sets up to this many examples get the exact σ₁ (O(N²) distances); larger ones the
certified double-sweep estimate (:func:`~ncsn.estimate_max_pairwise_distance`)."""

PAPER_NUM_LEVELS = 10
"""L where NCSNv2's Technique 2 does not bound the ratio of levels (data dimension D <= 4)."""


class Recipe(NamedTuple):
    """NCSNv2's settings computed from a data set by :func:`recipe`."""

    sigmas: Tensor
    """``[L]`` geometric levels from σ₁ to σ_L (Techniques 1 and 2)."""
    step_size: float
    """Langevin ε for ``steps_per_level`` steps per level (Technique 4)."""
    steps_per_level: int
    """T, Langevin steps per level."""
    ema_rate: float
    """The rate of the exponential moving average of the weights to sample with (Technique 5)."""
    denoise: bool
    """End sampling with the denoising step x + σ_L² s(x, σ_L)."""
    notes: tuple[str, ...]
    """One line per choice, saying where it came from (printed by ``ncsn train``)."""


def _fitted_ema(ema_rate: float, steps: int | None) -> tuple[float, str]:
    """Technique 5's rate, at most ``1 − 10/steps`` so that the average spans at most a tenth of
    the run, and the note saying so."""
    ema_rate = positive_float(ema_rate, "ema_rate")
    if steps is not None and ema_rate > 1.0 - 10.0 / positive_int(steps, "steps"):
        fitted = max(0.5, 1.0 - 10.0 / steps)
        return fitted, (
            f"EMA of the weights at {fitted:g} (Technique 5's {ema_rate:g}, shortened to a tenth "
            f"of the {steps} training steps)"
        )
    return ema_rate, f"EMA of the weights at {ema_rate:g} (Technique 5)"


def _sampling_note(steps_per_level: int, step_size: float) -> str:
    return (
        f"sampling: annealed Langevin, T = {steps_per_level} steps per level, ε = "
        f"{step_size:.4g} (Technique 4), then the denoising step"
    )


def recipe(
    x: Tensor,
    *,
    sigma_max: float | None = None,
    sigma_min: float = 0.01,
    num_levels: int | None = None,
    steps_per_level: int = 5,
    target: float = 0.5,
    ema_rate: float = 0.999,
    steps: int | None = None,
    generator: torch.Generator | None = None,
) -> Recipe:
    """NCSNv2's settings (Song & Ermon, 2020, "Improved Techniques for Training Score-Based
    Generative Models") computed from the training data ``x``.

    - σ₁ = the largest pairwise distance between training examples (Technique 1): exact for up
      to :data:`EXACT_DISTANCE_LIMIT` examples, else the double-sweep estimate (a lower bound).
    - L from Technique 2: consecutive levels overlap by ``target`` in the data's dimension D;
      where D <= 4 the overlap does not bound the ratio and L = 10 (the paper's).
    - ε from Technique 4 for T = ``steps_per_level`` steps per level.
    - EMA of the weights at ``ema_rate`` (Technique 5), shortened for short runs: given the
      training ``steps``, the rate is at most ``1 − 10/steps``, so that the average spans at most a
      tenth of the run (a longer average still holds much of the untrained weights); then the
      final denoising step.

    Any of σ₁, L given explicitly is used as it is (and the rest computed around it).

    Args:
        x: ``[N, *event]`` training data, N >= 2, in the units the model sees.
        sigma_max: σ₁ (default: from the data).
        sigma_min: σ_L (default 0.01, in data units).
        num_levels: L (default: from Technique 2).
        steps_per_level: T (default 5, NCSNv2's).
        target: the overlap between consecutive levels for Technique 2.
        ema_rate: the EMA rate (default 0.999, NCSNv2's for runs of 10,000 steps or more).
        steps: the number of training steps, to fit the EMA rate to (default: not fitted).
        generator: for the anchors of the σ₁ estimate on large data sets.

    Returns:
        A :class:`Recipe`.

    Raises:
        ValueError: ``x`` is not ``[N, *event]`` with N >= 2; ``x`` has no spread (its largest
            pairwise distance is not above ``sigma_min``); a setting out of range (named).

    Example:
        >>> x = ncsn.data.load("digits")[0]
        >>> r = ncsn.presets.recipe(x)
        >>> round(float(r.sigmas[0]), 2), len(r.sigmas), r.steps_per_level
        (4.8, 22, 5)
    """
    if not isinstance(x, Tensor) or x.ndim < 2 or x.shape[0] < 2:
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"x must be a [N, *event] tensor with N >= 2 examples; got {got}")
    sigma_min = positive_float(sigma_min, "sigma_min")
    steps_per_level = positive_int(steps_per_level, "steps_per_level")
    dim = math.prod(x.shape[1:])
    notes = []
    if sigma_max is None:
        if x.shape[0] <= EXACT_DISTANCE_LIMIT:
            sigma_max = max_pairwise_distance(x)
            how = "exact"
        else:
            sigma_max = estimate_max_pairwise_distance(x, generator=generator).estimate
            how = "double-sweep estimate"
        if not sigma_max > sigma_min:
            raise ValueError(
                f"x has no spread to take σ₁ from: the largest distance between two of its "
                f"{x.shape[0]} examples is {sigma_max:g}, not above sigma_min={sigma_min:g} "
                "(are the examples all equal?)"
            )
        notes.append(
            f"σ₁ = {sigma_max:.4g}: the largest distance between two of the {x.shape[0]} "
            f"examples ({how}; Technique 1)"
        )
    else:
        sigma_max = positive_float(sigma_max, "sigma_max")
        notes.append(f"σ₁ = {sigma_max:.4g} (given)")
    if not sigma_max > sigma_min:
        raise ValueError(
            f"sigma_max must be larger than sigma_min={sigma_min:g}; got sigma_max={sigma_max:g}"
        )
    if num_levels is not None:
        levels = positive_int(num_levels, "num_levels")
        notes.append(f"L = {levels} levels down to σ_L = {sigma_min:g} (given)")
    elif dim >= 5:
        levels = ncsnv2_num_levels(dim, sigma_max, sigma_min, target=target)
        notes.append(
            f"L = {levels} levels down to σ_L = {sigma_min:g}: consecutive levels overlap by "
            f"{target:g} in D = {dim} dimensions (Technique 2)"
        )
    else:
        levels = PAPER_NUM_LEVELS
        notes.append(
            f"L = {levels} levels down to σ_L = {sigma_min:g} (the paper's; Technique 2 does "
            f"not bound the ratio of levels in D = {dim} <= 4 dimensions)"
        )
    sigmas = geometric_sigmas(sigma_max, sigma_min, levels)
    step_size = ncsnv2_step_size(sigmas, steps_per_level) if levels > 1 else OFFICIAL_STEP_SIZE
    notes.append(_sampling_note(steps_per_level, step_size))
    ema_rate, note = _fitted_ema(ema_rate, steps)
    notes.append(note)
    return Recipe(sigmas, step_size, steps_per_level, ema_rate, True, tuple(notes))


# ------------------------------------------------------------------------------------ samplers
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


# ---------------------------------------------------------------------------------- a whole run
MODELS = ("refinenet", "scaled", "baseline", "mlp")
"""The networks :func:`prepare` builds: the paper's RefineNet (σ-conditioned), NCSNv2's
unconditional RefineNet with its output divided by σ (Technique 3; takes any σ), the single-σ
baseline, and the toy MLP (σ-conditioned) for vectors."""

_CHOICES = {"recipe": ("ncsnv2", "paper"), "model": (*MODELS, None), "loss": ("dsm", "ssm")}
_POSITIVE = (
    *("hidden", "projections", "steps_per_level", "batch_size", "checkpoint_every", "keep"),
    *("log_every", "lr"),
)
_OPTIONAL_POSITIVE = (
    *("ngf", "sigma_max", "sigma_min", "num_levels", "grad_clip", "eval_every", "channels"),
    *("size", "crop"),
)


@dataclasses.dataclass(frozen=True)
class Settings:
    """The settings of a training run: what :func:`prepare` builds it from and what every
    checkpoint of ``ncsn train`` records (``config["train"]``), so that ``--resume`` rebuilds the
    run. The fields are the ``ncsn train`` options of the same names; ``None`` means "resolve
    from the data" (the resolved values are in :attr:`Run.settings`).
    """

    data: str | None = None
    """The data source as :func:`ncsn.data.load` takes it (a name, or a path made absolute)."""
    split: str | None = None
    """The split of a source that has splits (default: its own, ``train``)."""
    channels: int | None = None
    """Image folders: load with this many channels (1 grey, 3 RGB; default: as found)."""
    size: int | None = None
    """Image folders: resize to ``size`` × ``size``."""
    crop: int | None = None
    """Image folders: centre-crop to ``crop`` × ``crop`` first."""
    recipe: str = "ncsnv2"
    """``"ncsnv2"``: σ grid, ε and EMA from the data (:func:`recipe`); ``"paper"``: σ 1 → 0.01,
    L = 10, ε = 4e-5, T = 100, no EMA."""
    model: str | None = None
    """One of :data:`MODELS` (default: ``refinenet`` for images, ``mlp`` for vectors)."""
    ngf: int | None = None
    """RefineNet width (default :func:`default_ngf`)."""
    hidden: int = 128
    """ScoreMLP width."""
    loss: str = "dsm"
    """``"dsm"`` (denoising) or ``"ssm"`` (sliced) score matching."""
    projections: int = 1
    """SSM projections per example."""
    power: float | None = None
    """λ(σ) = σ^power (default 2; 0 for the baseline)."""
    sigma_max: float | None = None
    """σ₁ (default: from the data; 1 with the paper's recipe)."""
    sigma_min: float | None = None
    """σ_L (default 0.01)."""
    num_levels: int | None = None
    """L (default: Technique 2; 10 with the paper's recipe)."""
    sigmas: tuple[float, ...] | None = None
    """The σ grid itself, σ₁ first; when given it replaces ``sigma_max``/``sigma_min``/
    ``num_levels`` (a resumed run rebuilds its recorded grid exactly)."""
    steps_per_level: int = 5
    """T of the recipe's annealed Langevin sampler (ε from Technique 4 for it)."""
    batch_size: int = 128
    lr: float = 1e-3
    """Adam's learning rate."""
    ema: float | None = None
    """EMA rate in (0, 1) (default: the recipe's; none with the paper's recipe)."""
    grad_clip: float | None = None
    eval_every: int | None = None
    """Evaluate the loss on a 5% held-out split every N steps."""
    dequantize: bool = True
    """Uniform dequantisation of images over their :func:`~ncsn.data.grey_levels`."""
    flip: bool = False
    """Random horizontal flips of images."""
    logit: bool = False
    """Train in logit space (after dequantising); needs data in [0, 1]."""
    seed: int = 0
    """The seed of the initial weights, the data order and the noise."""
    bf16: bool = False
    checkpoint_every: int = 1000
    keep: int = 3
    log_every: int = 50
    compile: bool = False

    def __post_init__(self) -> None:
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}; got {getattr(self, name)!r}")
        for name in _POSITIVE + _OPTIONAL_POSITIVE:
            value = getattr(self, name)
            if not (value is None and name in _OPTIONAL_POSITIVE):
                (positive_float if isinstance(value, float) else positive_int)(value, name)
        if self.ema is not None and not 0.0 < self.ema < 1.0:
            raise ValueError(f"ema must lie in (0, 1); got ema={self.ema!r}")
        if self.sigmas is not None:
            object.__setattr__(self, "sigmas", tuple(as_sigmas(list(self.sigmas)).tolist()))

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Settings:
        """The settings a checkpoint recorded (``config["train"]``); a setting added after the
        record was written takes its default, an unknown key is an error.

        Raises:
            ValueError: an unknown setting or a bad value (named).
        """
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(record) - names)
        if unknown:
            raise ValueError(f"record holds unknown settings {unknown}")
        values = {"recipe": "paper"} | dict(record)  # the recipe came later: before, the paper's
        if values.get("sigmas") is not None:
            values["sigmas"] = tuple(values["sigmas"])
        return cls(**values)

    def record(self) -> dict[str, Any]:
        """The plain-data record a checkpoint stores (:meth:`from_record` reads it back)."""
        values = dataclasses.asdict(self)
        values["sigmas"] = None if self.sigmas is None else list(self.sigmas)
        return values


class Run(NamedTuple):
    """Everything a training run needs, from :func:`prepare`."""

    model: nn.Module
    """The freshly initialised network."""
    loss: ScoreLoss
    sampler: Sampler
    """The sampler the run's recipe samples with."""
    schedule: NoiseSchedule
    transform: ImageTransform | None
    """The batch transform (flip, dequantise, logit) or ``None``."""
    config: dict[str, Any]
    """The record checkpoints store (``Trainer(config=...)``): ``model`` (the network's
    :func:`~ncsn.nets.model_config`), ``data``, ``loss``, ``train`` (:meth:`Settings.record` of
    the resolved settings) and ``sampling`` (the sampler's settings and σ grid), which
    :func:`ncsn.load` and ``ncsn sample`` read back."""
    settings: Settings
    """The settings with every default resolved from the data."""
    notes: tuple[str, ...]
    """One line per choice of the recipe, saying where it came from."""


def _check_fits(kind: str, shape: tuple[int, ...]) -> None:
    if kind == "mlp" and len(shape) != 1:
        raise ValueError(
            f"model 'mlp' needs vector data [N, D]; got examples of shape {list(shape)}"
        )
    if kind != "mlp" and len(shape) != 3:
        raise ValueError(
            f"model {kind!r} needs images [N, C, H, W]; got examples of shape {list(shape)}"
        )
    if kind != "mlp" and (shape[1] % 2 or shape[2] % 2):
        raise ValueError(
            f"model {kind!r} needs an even image height and width; got {shape[1]}x{shape[2]}"
        )


def _network(kind: str, shape: tuple[int, ...], sigmas: Tensor, s: Settings) -> dict[str, Any]:
    if kind == "mlp":
        return {"kind": "ScoreMLP", "dim": shape[0], "hidden": s.hidden, "sigmas": sigmas.tolist()}
    unconditional = {"channels": shape[0], "ngf": s.ngf, "logit_transform": s.logit}
    if kind == "baseline":
        return {"kind": "RefineNetBaseline", **unconditional}
    if kind == "scaled":
        return {
            "kind": "ScaledByInverseSigma",
            "module": {"kind": "RefineNetBaseline", **unconditional},
        }
    return {"kind": "RefineNet", **unconditional, "sigmas": sigmas.tolist()}


def _noise_levels(
    x: Tensor, kind: str, s: Settings, steps: int | None, generator: torch.Generator | None
) -> tuple[Tensor, dict[str, Any], Settings, list[str]]:
    """The σ grid, the sampling settings to record, the settings resolved, and the notes."""
    sigma_min = 0.01 if s.sigma_min is None else s.sigma_min
    if s.sigma_max is not None and not s.sigma_max > sigma_min and kind != "baseline":
        raise ValueError(f"sigma_max={s.sigma_max:g} must be larger than sigma_min={sigma_min:g}")
    sampling: dict[str, Any] = {"sampler": "annealed", "step_size": OFFICIAL_STEP_SIZE}
    if kind == "baseline":
        resolved = dataclasses.replace(
            s, sigma_max=s.sigma_max or sigma_min, sigma_min=sigma_min, num_levels=1, sigmas=None
        )
        return torch.tensor([sigma_min]), sampling, resolved, []
    notes: list[str] = []
    sigma_max = s.sigma_max
    if s.sigmas is not None:
        sigmas = torch.tensor(s.sigmas)
        notes.append(
            f"σ grid given: {len(sigmas)} levels from {s.sigmas[0]:.4g} to {s.sigmas[-1]:g}"
        )
    elif s.recipe == "paper":
        sigma_max = 1.0 if sigma_max is None else sigma_max
        sigmas = geometric_sigmas(sigma_max, sigma_min, s.num_levels or PAPER_NUM_LEVELS)
    else:
        r = recipe(
            logit_transform(x) if s.logit else x,
            sigma_max=sigma_max,
            sigma_min=sigma_min,
            num_levels=s.num_levels,
            steps_per_level=s.steps_per_level,
            generator=generator,
        )
        sigmas, notes, sigma_max = r.sigmas, list(r.notes[:2]), float(r.sigmas[0])
    ema = s.ema
    if s.recipe == "paper":
        sampling |= {"steps_per_level": 100, "denoise": False}
    else:
        if len(sigmas) > 1:
            sampling["step_size"] = ncsnv2_step_size(sigmas, s.steps_per_level)
        sampling |= {"step_size_rule": "ncsnv2", "steps_per_level": s.steps_per_level}
        sampling["denoise"] = True
        notes.append(_sampling_note(s.steps_per_level, sampling["step_size"]))
        if ema is None:
            ema, note = _fitted_ema(0.999, steps)
        else:
            note = f"EMA of the weights at {ema:g} (given)"
        notes.append(note)
    resolved = dataclasses.replace(
        s,
        sigma_max=float(sigmas[0]) if sigma_max is None else sigma_max,
        sigma_min=sigma_min,
        num_levels=len(sigmas),
        sigmas=tuple(sigmas.tolist()),
        ema=ema,
    )
    return sigmas, sampling, resolved, notes


def prepare(
    x: Tensor,
    settings: Settings | None = None,
    *,
    steps: int | None = None,
    generator: torch.Generator | None = None,
) -> Run:
    """Everything a training run on ``x`` needs, built from ``settings``: the network, loss,
    sampler and schedule, the batch transform, and the record its checkpoints store.

    This is what ``ncsn train`` runs (and ``--resume`` reruns on the recorded settings); in Python
    it is the whole set-up of a run in one call:

    - the network from :func:`~ncsn.nets.build_model` (``settings.model``, default: RefineNet
      of width :func:`default_ngf` for images ``[N, C, H, W]``, ScoreMLP for vectors ``[N, D]``);
    - the σ grid and sampler from the recipe (``"ncsnv2"``: :func:`recipe` computed from the data,
      with its EMA rate fitted to ``steps``; ``"paper"``: the paper's), or the grid given in
      ``settings.sigmas``; the baseline trains at σ_L alone;
    - DSM (or SSM) with λ(σ) = σ^power;
    - for images, :class:`~ncsn.data.ImageTransform` (dequantisation over the source's
      :func:`~ncsn.data.grey_levels`, flips, logit).

    Args:
        x: ``[N, *event]`` training data (images in ``[0, 1]``).
        settings: the run's :class:`Settings` (default: all defaults).
        steps: the run's length, to fit the recipe's EMA rate to (default: not fitted).
        generator: for the σ₁ estimate on large data sets and the initial weights (default: a
            fresh generator seeded with ``settings.seed`` for each, as ``ncsn train`` does).

    Returns:
        A :class:`Run`; ``run.settings.ema`` is the EMA rate to train with.

    Raises:
        ValueError: data the model does not fit (vectors for a RefineNet, odd image sizes),
            ``logit`` with data outside ``[0, 1]``, data with no spread, or a bad setting
            (named as ``name=value``).

    Example:
        >>> x, _ = ncsn.data.load("digits")
        >>> run = ncsn.presets.prepare(x, ncsn.presets.Settings(data="digits", ngf=8), steps=1500)
        >>> run.model.num_levels, run.settings.ema, run.transform.levels
        (22, 0.9933333333333333, 17)
        >>> g = torch.Generator().manual_seed(0)
        >>> loss = run.loss(run.model, run.transform(x[:8], generator=g), generator=g)  # one step's
    """
    s = Settings() if settings is None else settings
    if not isinstance(s, Settings):
        raise TypeError(f"settings must be a presets.Settings; got {type(s).__name__}")
    if not isinstance(x, Tensor) or x.ndim not in (2, 4):
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"x must hold images [N, C, H, W] or vectors [N, D]; got shape {got}")
    shape = tuple(x.shape[1:])
    images = len(shape) == 3
    name = repr(s.data) if s.data else "x"
    kind = s.model or ("refinenet" if images else "mlp")
    _check_fits(kind, shape)
    if s.logit and not (float(x.min()) >= 0.0 and float(x.max()) <= 1.0):
        raise ValueError(
            f"logit=True needs data in [0, 1]; {name} holds values in "
            f"[{float(x.min()):g}, {float(x.max()):g}]"
        )
    s = dataclasses.replace(
        s,
        model=kind,
        power=float(s.power if s.power is not None else 0.0 if kind == "baseline" else 2.0),
        ngf=s.ngf or (default_ngf(shape) if images else 64),
    )
    seeded = generator is None
    try:
        sigmas, sampling, s, notes = _noise_levels(
            x, kind, s, steps, torch.Generator().manual_seed(s.seed) if seeded else generator
        )
    except ValueError as err:
        if s.data and "no spread" in str(err):
            raise ValueError(f"data {name}: {err}".replace(": x has", " has")) from err
        raise
    model = build_model(
        _network(kind, shape, sigmas, s),
        generator=torch.Generator().manual_seed(s.seed) if seeded else generator,
    )
    schedule = Schedule(sigmas)
    loss: ScoreLoss
    power = float(s.power or 0.0)
    if s.loss == "dsm":
        loss = DenoisingScoreMatching(schedule, power=power)
    else:
        loss = SlicedScoreMatching(schedule, power=power, projections=s.projections)
    options = {
        k: v for k, v in sampling.items() if k in ("step_size", "steps_per_level", "denoise")
    }
    sampler = build_sampler("annealed", sigmas, **options)
    transform = None
    if s.logit or (images and (s.dequantize or s.flip)):
        levels = grey_levels(s.data) if s.data else 256
        transform = ImageTransform(
            flip=images and s.flip, dequantize=images and s.dequantize, logit=s.logit, levels=levels
        )
    config = {
        "model": model_config(model),
        "data": {
            "source": s.data,
            "shape": list(shape),
            "logit_transform": s.logit,
            "sigma": float(sigmas[-1]),
        },
        "loss": {"kind": s.loss, "power": s.power},
        "train": s.record(),
        "sampling": sampling | {"sigmas": sigmas.tolist()},
    }
    return Run(model, loss, sampler, schedule, transform, config, s, tuple(notes))


def from_data(
    x: Tensor,
    *,
    ngf: int | None = None,
    hidden: int = 128,
    sigma_max: float | None = None,
    sigma_min: float = 0.01,
    num_levels: int | None = None,
    steps_per_level: int = 5,
    generator: torch.Generator | None = None,
) -> Setup:
    """A :class:`Setup` with NCSNv2's settings computed from the data: the short form of
    :func:`prepare` (its model, loss, sampler and schedule).

    Images ``[N, C, H, W]`` get a :class:`~ncsn.nets.RefineNet` of width ``ngf`` (default:
    :func:`default_ngf` of their shape, 16 for the 8×8 digits), vectors
    ``[N, D]`` a :class:`~ncsn.nets.ScoreMLP` of width ``hidden``; DSM with λ(σ) = σ²; annealed
    Langevin with the recipe's ε and T and the final denoising step. Train with the recipe's EMA
    rate (``recipe(x).ema_rate``) and sample with the EMA weights.

    Raises:
        ValueError: ``x`` is neither images nor vectors, has no spread, or a bad setting.

    Example:
        >>> x = ncsn.data.load("digits")[0]
        >>> setup = ncsn.presets.from_data(x, ngf=8)
        >>> setup.model.num_levels, setup.sampler.steps_per_level
        (22, 5)
    """
    settings = Settings(
        ngf=ngf,
        hidden=hidden,
        sigma_max=sigma_max,
        sigma_min=sigma_min,
        num_levels=num_levels,
        steps_per_level=steps_per_level,
    )
    run = prepare(x, settings, generator=generator)
    return Setup(run.model, run.loss, run.sampler, run.schedule)
