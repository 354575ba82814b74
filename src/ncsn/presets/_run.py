"""The one composition of a training run: :func:`prepare` turns data and :class:`Settings` into
the model, loss, sampler, schedule, batch transform and the record checkpoints store."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from ncsn._checks import as_sigmas, positive_float, positive_int
from ncsn._types import NoiseSchedule, Sampler, ScoreLoss
from ncsn.data import ImageTransform, grey_levels, logit_transform
from ncsn.losses import DenoisingScoreMatching, SlicedScoreMatching
from ncsn.ncsnv2 import ncsnv2_step_size
from ncsn.nets.config import build_model, model_config
from ncsn.presets._paper import OFFICIAL_STEP_SIZE, Setup
from ncsn.presets._recipe import PAPER_NUM_LEVELS, fitted_ema, recipe, sampling_note
from ncsn.presets._sampling import SAMPLER_OPTIONS, build_sampler
from ncsn.schedules import Schedule, edm_weights, geometric_sigmas, lognormal_weights

__all__ = [
    *("MODELS", "SMALL_IMAGE_PIXELS", "Run", "Settings", "default_model", "default_ngf"),
    *("from_data", "prepare", "LOGNORMAL_DRAW"),
]

_CLASS_NAMES = {
    "fashion-mnist": (
        *("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker"),
        *("Bag", "Ankle boot"),
    )
}
"""The names of the classes of the data sets whose labels are not their names (digits' are)."""

SMALL_IMAGE_PIXELS = 28 * 28
"""Images of at most this many pixels (H·W, MNIST's 28×28) get the narrow RefineNet by default."""


def default_ngf(shape: Sequence[int]) -> int:
    """The RefineNet width ``ncsn train`` and :func:`from_data` use for images of ``shape``
    ``[C, H, W]``: 16 for images up to MNIST's 28×28 (H·W <= :data:`SMALL_IMAGE_PIXELS`), else
    64 (the paper's MNIST width; 128 is its CIFAR-10 width).

    Why 16, measured on 2 CPU cores: on the 8×8 digits at equal CPU time the narrow network takes
    2.5× the steps of the width-32 one and its samples come closer to real digits
    (``docs/sample-quality.md``); at 28×28 a training step at batch 64 takes 0.85 s at width 16
    against 2.17 s at width 32 and 6.06 s at width 64 (``benchmarks/speed28.py``, eager float32),
    so an hour trains about 4,200 steps instead of 1,660 or 590. On a GPU pass ``ngf=64``
    (``--ngf 64``) for MNIST-sized images.

    Raises:
        ValueError: ``shape`` is not an image shape ``[C, H, W]``.

    Example:
        >>> ncsn.presets.default_ngf((1, 28, 28)), ncsn.presets.default_ngf((3, 32, 32))
        (16, 64)
    """
    if len(shape) != 3:
        raise ValueError(f"shape must be an image shape [C, H, W]; got {list(shape)}")
    return 16 if shape[1] * shape[2] <= SMALL_IMAGE_PIXELS else 64


MODELS = ("refinenet", "scaled", "precond", "baseline", "mlp")
"""The networks :func:`prepare` builds: the paper's RefineNet (σ-conditioned), NCSNv2's
unconditional RefineNet with its output divided by σ (Technique 3; takes any σ), the same
unconditional RefineNet under Karras et al.'s preconditioning (:class:`~ncsn.nets.Preconditioned`,
σ_d the training data's standard deviation; takes any σ), the single-σ baseline, and the toy MLP
(σ-conditioned) for vectors."""

_CONDITIONED_MAX_PIXELS = 8 * 8
"""Images of at most this many pixels (the embedded digits) get the σ-conditioned RefineNet by
default and record the tuned annealed Langevin sampler; larger ones the preconditioned
unconditional RefineNet, which records predictor-corrector sampling (the other networks
consistent annealed sampling): the quality tables' best at each size."""


def default_model(shape: Sequence[int], *, conditional: bool = False, logit: bool = False) -> str:
    """The network :func:`prepare` (and ``ncsn train``) builds for examples of ``shape`` when
    :attr:`Settings.model` is ``None``: ``"mlp"`` for vectors ``[D]``; for images ``[C, H, W]``
    above the 8×8 digits' 64 pixels, the unconditional RefineNet under Karras et al.'s
    preconditioning (``"precond"``, :class:`~ncsn.nets.Preconditioned`), or NCSNv2's
    1/σ-scaled one (``"scaled"``, Technique 3) for ``logit`` runs (the preconditioning scales by
    the spread of the data in [0, 1]); the paper's σ-conditioned ``"refinenet"`` up to 64 pixels
    and for class-conditional runs (neither unconditional network has a class-conditional form).

    Why, measured on 2 CPU cores (``docs/sample-quality.md``, bf16, 1,000 samples): at 28×28
    the σ-conditioned network is far behind an unconditional one (Fréchet distance 104.7 on
    MNIST after 4,700 steps against the scaled network's 18.3; with L = 96 levels each of its
    per-level normalisation parameters sees a 96th of the batches), and the preconditioned
    network is at about half the scaled one's distance after 15 minutes of training (MNIST 43.2
    against 93.4, Fashion-MNIST 24.3 against 44.9), ties it on MNIST at the hour (16.4 ± 1.8
    against 16.0 ± 1.1, classifier score 8.21 against 7.86) and is ahead on Fashion-MNIST
    (16.4 ± 1.4 against 19.0 ± 1.0). On the 8×8 digits the σ-conditioned network is the better
    one (0.85× the floor against the scaled network's 1.05×).

    Raises:
        ValueError: ``shape`` is neither a vector ``[D]`` nor an image ``[C, H, W]`` shape.

    Example:
        >>> ncsn.presets.default_model((1, 8, 8)), ncsn.presets.default_model((1, 28, 28))
        ('refinenet', 'precond')
        >>> ncsn.presets.default_model((1, 28, 28), logit=True)
        'scaled'
        >>> ncsn.presets.default_model((1, 28, 28), conditional=True), ncsn.presets.default_model((2,))
        ('refinenet', 'mlp')
    """
    if len(shape) == 1:
        return "mlp"
    if len(shape) != 3:
        raise ValueError(f"shape must be [D] or an image shape [C, H, W]; got {list(shape)}")
    if conditional or not _larger_than_digits(shape):
        return "refinenet"
    return "scaled" if logit else "precond"


def _larger_than_digits(shape: Sequence[int]) -> bool:
    """Whether ``shape`` is an image ``[C, H, W]`` of more than :data:`_CONDITIONED_MAX_PIXELS`
    pixels: where the defaults switch from the digits' choices to MNIST's."""
    return len(shape) == 3 and shape[1] * shape[2] > _CONDITIONED_MAX_PIXELS


_CHOICES = {"recipe": ("ncsnv2", "paper"), "model": (*MODELS, None), "loss": ("dsm", "ssm")}
_CHOICES |= {"level_draw": ("uniform", "lognormal", "edm", None)}
PC_SNR = 0.16
"""The predictor-corrector's snr that runs of the preconditioned network record (Song et al.'s
(2021) for the VE SDE): on the MNIST hour's weights it sits in a flat optimum (FD 12.2 ± 1.0,
against 12.8 ± 1.3 at snr 0.1 and 13.8 ± 0.9 at 0.25)."""
LOGNORMAL_DRAW = (0.15, 1.2)
"""``(median, spread)`` of ``level_draw="lognormal"``: Karras et al.'s log σ ~ N(−1.2, 1.2²) for
images in [−1, 1], for images in [0, 1] (:func:`ncsn.schedules.lognormal_weights`)."""
_POSITIVE = (
    *("hidden", "projections", "steps_per_level", "batch_size", "checkpoint_every", "keep"),
    *("log_every", "lr", "step_scale"),
)
_OPTIONAL_POSITIVE = (
    *("ngf", "sigma_max", "sigma_min", "num_levels", "grad_clip", "eval_every", "channels"),
    *("size", "crop", "lr_decay_steps"),
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
    """One of :data:`MODELS` (default :func:`default_model`: ``refinenet`` for images of at most
    8×8 pixels and conditional runs, ``precond`` for larger images (``scaled`` with ``logit``),
    ``mlp`` for vectors)."""
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
    level_draw: str | None = None
    """How training draws the levels: ``"uniform"`` (the paper's), ``"lognormal"`` (by
    :func:`~ncsn.schedules.lognormal_weights` with :data:`LOGNORMAL_DRAW`, for images in [0, 1]:
    less of the training at the largest levels) or ``"edm"`` (by
    :func:`~ncsn.schedules.edm_weights`: that draw times Karras et al.'s loss weight, σ_d the
    data's spread). Default: ``"edm"`` for the ``precond`` network (their pairing), uniform
    otherwise."""
    steps_per_level: int = 10
    """T of the recipe's annealed Langevin sampler."""
    step_scale: float = 2.0
    """Its ε as a multiple of Technique 4's ε for T. T = 10 and twice Technique 4's ε are the
    digits quality table's best sampler (``benchmarks/results/quality.md``: Fréchet distance
    0.85× the real floor at 8,000 steps, against 0.92× for NCSNv2's T = 5 and ε ×1), so ``ncsn
    sample RUN`` uses them on images of at most 8×8 pixels and on vectors. Larger images record
    MNIST's best sampler at 28×28 for their network: predictor-corrector for ``precond``,
    consistent annealed sampling for the others (``ncsn sample RUN --sampler annealed`` still
    takes T and ε from here)."""
    batch_size: int = 128
    lr: float = 1e-3
    """Adam's learning rate."""
    lr_decay_steps: int | None = None
    """Lower Adam's step along a half cosine to 0 at this step: ``ncsn train --lr-decay cosine``
    sets it to ``--steps`` and gives its Trainer :func:`ncsn.training.cosine_decay` of it (in
    Python, pass that as the Trainer's ``scheduler=``); ``None``: a constant step."""
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
    conditional: bool = False
    """Class-conditional: a :class:`~ncsn.nets.ConditionalRefineNet` (or
    :class:`~ncsn.nets.ConditionalScoreMLP` for vectors) trained on the data's labels."""
    label_dropout: float = 0.1
    """With ``conditional``: the rate at which labels drop to the null label, so the network
    learns the unconditional score too (classifier-free guidance needs it)."""

    def __post_init__(self) -> None:
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}; got {getattr(self, name)!r}")
        for name in _POSITIVE + _OPTIONAL_POSITIVE:
            value = getattr(self, name)
            if not (value is None and name in _OPTIONAL_POSITIVE):
                (positive_float if isinstance(value, float) else positive_int)(value, name)
        if not 0.0 <= self.label_dropout < 1.0:
            raise ValueError(
                f"label_dropout must lie in [0, 1); got label_dropout={self.label_dropout!r}"
            )
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
        # Settings added later take what records before them meant: the paper's recipe (before
        # the recipe), Technique 4's ε and NCSNv2's T = 5 (before the tuned sampler).
        before: dict[str, Any] = {"recipe": "paper"}
        if "step_scale" not in record:
            before |= {"step_scale": 1.0, "steps_per_level": 5}
        if "level_draw" not in record:
            before |= {"level_draw": "uniform"}
        values = before | dict(record)
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
    :func:`~ncsn.nets.model_config`), ``data`` (with ``classes``, the class names, for a
    conditional run), ``loss``, ``train`` (:meth:`Settings.record` of
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


def _network(
    kind: str,
    shape: tuple[int, ...],
    sigmas: Tensor,
    s: Settings,
    classes: int | None,
    x: Tensor,
) -> dict[str, Any]:
    if kind == "mlp":
        mlp = {"dim": shape[0], "hidden": s.hidden, "sigmas": sigmas.tolist()}
        if classes is not None:
            return {"kind": "ConditionalScoreMLP", **mlp, "num_classes": classes}
        return {"kind": "ScoreMLP", **mlp}
    unconditional = {"channels": shape[0], "ngf": s.ngf, "logit_transform": s.logit}
    if classes is not None:
        return {
            "kind": "ConditionalRefineNet",
            **unconditional,
            "sigmas": sigmas.tolist(),
            "num_classes": classes,
        }
    if kind == "baseline":
        return {"kind": "RefineNetBaseline", **unconditional}
    if kind == "scaled":
        return {
            "kind": "ScaledByInverseSigma",
            "module": {"kind": "RefineNetBaseline", **unconditional},
        }
    if kind == "precond":
        return {
            "kind": "Preconditioned",
            "sigma_data": _spread(x),
            "module": {"kind": "RefineNetBaseline", **unconditional},
        }
    return {"kind": "RefineNet", **unconditional, "sigmas": sigmas.tolist()}


def _spread(x: Tensor) -> float:
    """σ_d of :class:`~ncsn.nets.Preconditioned`: the standard deviation of the training data
    over every example and pixel (positive: constant data is refused with the way out)."""
    spread = float(x.float().std())
    if not spread > 0.0:
        raise ValueError(
            f"model 'precond' scales by the standard deviation of the data, and x has none "
            f"(std {spread:g}); train another network (model='scaled', --model scaled)"
        )
    return spread


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
            sampling["step_size"] = s.step_scale * ncsnv2_step_size(sigmas, s.steps_per_level)
        sampling |= {"step_size_rule": "ncsnv2", "step_scale": s.step_scale}
        sampling |= {"steps_per_level": s.steps_per_level, "denoise": True}
        annealed = sampling_note(s.steps_per_level, sampling["step_size"], s.step_scale)
        if len(sigmas) > 1 and kind == "precond" and _larger_than_digits(x.shape[1:]):
            # the preconditioned network's samplers at the MNIST hour: predictor-corrector is
            # the best (FD 12.2 against CAS's 16.4 and the ODE's 16.3) at twice CAS's calls
            sampling |= {"sampler": "pc", "snr": PC_SNR, "corrector_steps": 1}
            notes.append(
                f"sampling: predictor-corrector ({len(sigmas)} levels, a Langevin corrector step "
                f"at snr {PC_SNR:g} and a reverse-diffusion step each), then the denoising step; "
                "with --sampler annealed: " + annealed.removeprefix("sampling: ")
            )
        elif len(sigmas) > 1 and _larger_than_digits(x.shape[1:]):
            # MNIST's samplers table at 28×28: CAS is the best sampler of the scaled network (FD
            # 22.3 against the tuned annealed sampler's 27.3) and ties for the σ-conditioned one
            # (105.3 against 106.1), at a tenth of the calls; the digits' best is annealed.
            sampling["sampler"] = "cas"
            notes.append(
                f"sampling: consistent annealed sampling ({len(sigmas)} levels, one model call "
                "each), then the denoising step; with --sampler annealed: "
                + annealed.removeprefix("sampling: ")
            )
        else:
            notes.append(annealed)
        if ema is None:
            ema, note = fitted_ema(0.999, steps)
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


def _draw(sigmas: Tensor, s: Settings, x: Tensor) -> tuple[Schedule, Settings, list[str]]:
    """The training schedule on ``sigmas`` by ``s.level_draw`` (resolved: Karras et al.'s
    ``"edm"`` for their preconditioned network, else the paper's ``"uniform"``), and its note."""
    draw = s.level_draw or ("edm" if s.model == "precond" else "uniform")
    s = dataclasses.replace(s, level_draw=draw)
    if draw == "uniform":
        return Schedule(sigmas), s, []
    if len(sigmas) < 2:
        raise ValueError(
            f"level_draw={draw!r} needs two or more noise levels; this run has one "
            f"(σ = {float(sigmas[0]):g})"
        )
    median, spread = LOGNORMAL_DRAW
    if draw == "lognormal":
        weights = lognormal_weights(sigmas, median, spread)
        how = f"levels drawn log-normally around σ = {median:g} (spread {spread:g} in log σ; "
    else:
        sigma_data = _spread(x)
        weights = edm_weights(sigmas, sigma_data, median, spread)
        how = (
            f"levels drawn by Karras et al.'s weighting (log-normal around σ = {median:g}, spread "
            f"{spread:g}, times (σ² + σ_d²)/σ_d² with σ_d = {sigma_data:.3g}; "
        )
    uniform = float((sigmas > 1.0).double().mean())
    above = float(weights[sigmas > 1.0].sum())
    note = f"{how}{above:.0%} of the draws above σ = 1 against {uniform:.0%} uniformly)"
    return Schedule(sigmas, weights=weights), s, [note]


def _classes(labels: object, s: Settings, n: int, kind: str) -> list[str] | None:
    """The class names of a conditional run (``None`` for an unconditional one), its labels
    checked: integers ``[N]`` in ``0 … K − 1``, K the largest label plus one."""
    if not s.conditional:
        if labels is not None:
            raise ValueError("labels are for a conditional run: pass Settings(conditional=True)")
        return None
    if kind not in ("refinenet", "mlp"):
        raise ValueError(
            f"conditional=True needs model 'refinenet' or 'mlp' (they have class-conditional "
            f"forms); got model={kind!r}"
        )
    name = repr(s.data) if s.data else "x"
    if labels is None:
        raise ValueError(f"conditional=True needs labels: data {name} has none")
    if (
        not isinstance(labels, Tensor)
        or labels.dtype.is_floating_point
        or labels.dtype == torch.bool
    ):
        raise TypeError(f"labels must be an integer tensor [N]; got {labels!r:.80}")
    if labels.shape != (n,) or int(labels.min()) < 0:
        raise ValueError(
            f"labels must be integers >= 0 of shape [N]=[{n}]; got shape {tuple(labels.shape)} "
            f"and smallest label {int(labels.min()) if labels.numel() else None}"
        )
    k = int(labels.max()) + 1
    names = _CLASS_NAMES.get(s.data or "", ())
    return list(names) if len(names) == k else [str(c) for c in range(k)]


def prepare(
    x: Tensor,
    settings: Settings | None = None,
    *,
    labels: Tensor | None = None,
    steps: int | None = None,
    generator: torch.Generator | None = None,
) -> Run:
    """Everything a training run on ``x`` needs, built from ``settings``: the network, loss,
    sampler and schedule, the batch transform, and the record its checkpoints store.

    This is what ``ncsn train`` runs (and ``--resume`` reruns on the recorded settings); in Python
    it is the whole set-up of a run in one call:

    - the network from :func:`~ncsn.nets.build_model` (``settings.model``, default
      :func:`default_model`: for images ``[N, C, H, W]`` a RefineNet of width :func:`default_ngf`,
      σ-conditioned up to 8×8 pixels and preconditioned above; ScoreMLP for vectors ``[N, D]``);
    - the σ grid and sampler from the recipe (``"ncsnv2"``: :func:`recipe` computed from the data,
      with its EMA rate fitted to ``steps``; ``"paper"``: the paper's), or the grid given in
      ``settings.sigmas``; the baseline trains at σ_L alone;
    - DSM (or SSM) with λ(σ) = σ^power;
    - with ``settings.conditional``, the class-conditional network (K classes, K the largest
      of ``labels`` plus one) and the loss dropping labels to the null label at
      ``settings.label_dropout``; the record names the classes (``config["data"]["classes"]``);
    - for images, :class:`~ncsn.data.ImageTransform` (dequantisation over the source's
      :func:`~ncsn.data.grey_levels`, flips, logit).

    Args:
        x: ``[N, *event]`` training data (images in ``[0, 1]``).
        settings: the run's :class:`Settings` (default: all defaults).
        labels: ``[N]`` integer labels of ``x`` (as :func:`ncsn.data.load` returns them), for a
            conditional run only.
        steps: the run's length, to fit the recipe's EMA rate to (default: not fitted).
        generator: for the σ₁ estimate on large data sets and the initial weights (default: a
            fresh generator seeded with ``settings.seed`` for each, as ``ncsn train`` does).

    Returns:
        A :class:`Run`; ``run.settings.ema`` is the EMA rate to train with.

    Raises:
        ValueError: data the model does not fit (vectors for a RefineNet, odd image sizes),
            ``logit`` with data outside ``[0, 1]``, data with no spread, or a bad setting
            (named as ``name=value``); a conditional run without labels or with a model that
            has no conditional form, labels without ``conditional``.
        TypeError: labels that are not an integer tensor.

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
    kind = s.model or default_model(shape, conditional=s.conditional, logit=s.logit)
    _check_fits(kind, shape)
    classes = _classes(labels, s, int(x.shape[0]), kind)
    if s.logit and kind == "precond":
        raise ValueError(
            "model 'precond' scales by the spread of the data in [0, 1]; train it without logit "
            "(logit=True is for the paper's RefineNet)"
        )
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
        _network(kind, shape, sigmas, s, None if classes is None else len(classes), x),
        generator=torch.Generator().manual_seed(s.seed) if seeded else generator,
    )
    schedule, s, note = _draw(sigmas, s, x)
    notes.extend(note)
    loss: ScoreLoss
    power = float(s.power or 0.0)
    dropout: dict[str, Any] = {}
    if classes is not None:
        dropout = {"label_dropout": s.label_dropout, "num_classes": len(classes)}
    if s.loss == "dsm":
        loss = DenoisingScoreMatching(schedule, power=power, **dropout)
    else:
        loss = SlicedScoreMatching(schedule, power=power, projections=s.projections, **dropout)
    taken = SAMPLER_OPTIONS[sampling["sampler"]]
    options = {k: v for k, v in sampling.items() if k in taken}
    sampler = build_sampler(sampling["sampler"], sigmas, **options)
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
        }
        | ({} if classes is None else {"classes": classes}),
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
    steps_per_level: int = 10,
    step_scale: float = 2.0,
    generator: torch.Generator | None = None,
) -> Setup:
    """A :class:`Setup` with NCSNv2's settings computed from the data: the short form of
    :func:`prepare` (its model, loss, sampler and schedule).

    Images ``[N, C, H, W]`` get a :class:`~ncsn.nets.RefineNet` of width ``ngf`` (default:
    :func:`default_ngf` of their shape, 16 for the 8×8 digits), vectors
    ``[N, D]`` a :class:`~ncsn.nets.ScoreMLP` of width ``hidden``; DSM with λ(σ) = σ²; annealed
    Langevin with T = ``steps_per_level``, ``step_scale`` × Technique 4's ε for it (the digits
    quality table's best: :attr:`Settings.step_scale`) and the final denoising step. Train with the recipe's EMA
    rate (``recipe(x).ema_rate``) and sample with the EMA weights.

    Raises:
        ValueError: ``x`` is neither images nor vectors, has no spread, or a bad setting.

    Example:
        >>> x = ncsn.data.load("digits")[0]
        >>> setup = ncsn.presets.from_data(x, ngf=8)
        >>> setup.model.num_levels, setup.sampler.steps_per_level
        (22, 10)
    """
    settings = Settings(
        ngf=ngf,
        hidden=hidden,
        sigma_max=sigma_max,
        sigma_min=sigma_min,
        num_levels=num_levels,
        steps_per_level=steps_per_level,
        step_scale=step_scale,
    )
    run = prepare(x, settings, generator=generator)
    return Setup(run.model, run.loss, run.sampler, run.schedule)
