"""Sample quality against the real floor: recipe × sampler × training budget, on the embedded 8×8
digits, MNIST or Fashion-MNIST (28×28).

Rows: the training recipe (``paper``: σ 1 → 0.01 with L = 10, no EMA, annealed Langevin with
ε = 4e-5 and T = 100; ``ncsnv2``: :func:`ncsn.presets.recipe` computed from the training images,
its EMA rate fitted to each budget) × the sampler (annealed Langevin with and without the final
denoising step, consistent annealed sampling, predictor–corrector, the probability-flow ODE, and
on the digits the tuned annealed rows; each on the model's own σ grid) × the training budget
(steps; one run per recipe, whose EMA for each budget equals a run of that length); the
single-σ baseline at the first budget; and the reference rows real-vs-real (training images
against the held-out ones: the floor) and uniform noise. A row spec ``recipe:network:width``
trains another network (``ncsnv2:refinenet:32``; ``ncsnv2:scaled:32``: NCSNv2's unconditional
RefineNet with the 1/σ output, Technique 3).

=================  ===================  =====================  ===========================
dataset            network, batch       budgets (steps)        samples per row, reference
=================  ===================  =====================  ===========================
``digits``         RefineNet 16, 128    1,000 / 3,000 / 8,000  500 against the 297 held-out
``mnist``          RefineNet 16, 64     1,200 / 2,400 / 4,700  1,000 against 1,000 test images
``fashion-mnist``  RefineNet 16, 64     1,200 / 2,400 / 4,700  1,000 against 1,000 test images
=================  ===================  =====================  ===========================

The 28×28 budgets are 15, 30 and 60 minutes of training on 2 CPU cores, fixed in steps from the
step time ``benchmarks/speed28.py`` measured there (0.76 s for RefineNet 16 at batch 64 in
``channels_last``, 2 threads, quiet machine), so that a rerun is the same run on any machine. At
28×28 a model call costs about 3 ms per sample on 2 cores, so the costly samplers run only at the
last budget (``--final-samplers``); every budget gets consistent annealed sampling.

Columns: the Fréchet distance of the evaluator's features to the reference and its ratio to the
floor, with its spread (the standard deviation over bootstrap redraws of the samples), the
classifier score, precision and recall (Kynkäänniemi et al. 2019, k = 3, in the same features),
the median distance of each sample to its nearest training image against the reference images'
(memorisation: a ratio ≥ 0.9 means no copying), model calls per sample, training and sampling
seconds. The evaluator is ``ncsn.metrics.digits_evaluator(seed=0)`` on the digits and
``ncsn.metrics.classifier_evaluator`` trained on the training split (seed 0) at 28×28, its test
accuracy reported beside the table. At 28×28 the table has inpainting rows too: for the last
budget of the first recipe, the fraction of completed test images (right half, centre box) the
classifier assigns to their label, per sampler, against the same fraction for the masked input.

The work is staged and resumable, so that one long run can be split over processes and survive
an interruption: ``--phase train`` (checkpoints every 100 steps; each budget's EMA weights saved
as ``runs/RECIPE/weights-STEPS.pt``), ``--phase sample`` (each row's samples saved in chunks with
their own seeds under ``samples/``; finished chunks are kept), ``--phase score`` (the table from
the saved samples), ``--phase all`` (default: the three in turn).

Run:   python benchmarks/quality.py                           (digits, about 1.5 hours on 2 cores)
       python benchmarks/quality.py --dataset mnist --threads 1 --recipes ncsnv2 --phase train
       python benchmarks/quality.py --dataset mnist --phase score
       python benchmarks/quality.py --reuse --samplers annealed@20 --append  (digits: new rows
                                                                           from saved weights)
       python benchmarks/quality.py --quick                   (a smoke run, about a minute)
Writes benchmarks/results/quality.json, quality.md and one grid per row for the digits, and
benchmarks/results/quality_<dataset>/ for MNIST and Fashion-MNIST (a --quick run writes into
benchmarks/results/quality_quick/).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import ncsn

HERE = Path(__file__).resolve().parent
SAMPLERS = (
    "annealed",
    "annealed+denoise",
    "annealed@10x2",
    "annealed@10x2+denoise",
    "cas",
    "cas@0.9",
    "pc",
    "ode",
)
INPAINT_MASKS = ("right_half", "centre_box")
INPAINT_SAMPLERS = ("annealed+denoise", "cas", "pc", "ode")
BOOTSTRAP = 10  # redraws of the samples for the spread of the Fréchet distance


@dataclass(frozen=True)
class Dataset:
    """A dataset's defaults: network width, batch, budgets and what each budget samples."""

    name: str
    levels: int  # grey levels of the pixels (uniform dequantisation)
    ngf: int
    batch_size: int
    budgets: tuple[int, ...]
    num_samples: int
    chunk: int  # samples per sampling chunk, each with its own seed
    samplers: tuple[str, ...]  # at every budget
    final_samplers: tuple[str, ...]  # at the last budget only
    channels_last: bool
    inpaint: bool


DATASETS = {
    "digits": Dataset(
        "digits", 17, 16, 128, (1000, 3000, 8000), 500, 500, SAMPLERS, (), False, False
    ),
    **{
        name: Dataset(
            name,
            256,
            16,
            64,
            (1200, 2400, 4700),
            1000,
            250,
            ("cas",),
            ("annealed", "annealed+denoise", "pc", "ode"),
            True,
            True,
        )
        for name in ("mnist", "fashion-mnist")
    },
}


class _Dequantize:
    """Uniform dequantisation of the pixels over their grey levels (the official transform)."""

    def __init__(self, levels: int) -> None:
        self.levels = levels

    def __call__(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        return ncsn.data.dequantize(x, levels=self.levels, generator=generator)


def load(name: str) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Training images and labels, then the held-out ones."""
    if name == "digits":
        x, y = ncsn.data.load_digits("train")
        xt, yt = ncsn.data.load_digits("test")
    else:
        loader = ncsn.data.mnist if name == "mnist" else ncsn.data.fashion_mnist
        x, y = loader(split="train")
        xt, yt = loader(split="test")
    return x, y, xt, yt


def _spread(values: Sequence[float]) -> float:
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / max(1, len(values) - 1))


class Scorer:
    """Every column of a row from a set of samples."""

    def __init__(self, dataset: Dataset, num_samples: int, seed: int, quick: bool = False) -> None:
        self.train, train_labels, test, test_labels = load(dataset.name)
        self.evaluator: Any
        if dataset.name == "digits":
            self.evaluator = ncsn.metrics.digits_evaluator(seed=0)
            self.reference = test
        else:
            self.evaluator = ncsn.metrics.classifier_evaluator(
                self.train,
                train_labels,
                x_test=test,
                labels_test=test_labels,
                seed=0,
                epochs=1 if quick else 3,
            )
            pick = torch.randperm(len(test), generator=torch.Generator().manual_seed(seed))
            self.reference = test[pick[:num_samples]]
        self.test, self.test_labels = test, test_labels
        self.reference_features = self.evaluator.features(self.reference)
        held_out = ncsn.metrics.nearest_neighbour_distances(self.reference, self.train)
        self.nn_reference = float(held_out.distances.median())
        g = torch.Generator().manual_seed(seed)
        self.real = self.train[torch.randperm(len(self.train), generator=g)[:num_samples]]
        self.floor = 1.0  # the floor's own row is scored against 1, then the floor is set
        self.floor = self(self.real, memorisation=False)["frechet_distance"]

    def __call__(self, samples: Tensor, *, memorisation: bool = True) -> dict[str, Any]:
        samples = samples.clamp(0, 1)
        features = self.evaluator.features(samples)
        fd = ncsn.metrics.frechet_distance(features, self.reference_features)
        g = torch.Generator().manual_seed(0)
        redraws = [
            ncsn.metrics.frechet_distance(
                features[torch.randint(len(features), (len(features),), generator=g)],
                self.reference_features,
            )
            for _ in range(BOOTSTRAP)
        ]
        pr = ncsn.metrics.precision_recall(self.reference_features, features, k=3)
        row: dict[str, Any] = {
            "frechet_distance": fd,
            "fd_spread": _spread(redraws),
            "fd_ratio": fd / self.floor,
            "classifier_score": ncsn.metrics.inception_score(
                self.evaluator.probabilities(samples), splits=1
            ).mean,
            "precision": pr.precision,
            "recall": pr.recall,
            "median_nn_distance": None,
            "nn_ratio": None,
        }
        if memorisation:
            nn_distance = ncsn.metrics.nearest_neighbour_distances(samples, self.train)
            median = float(nn_distance.distances.median())
            row["median_nn_distance"] = median
            row["nn_ratio"] = median / self.nn_reference
        return row


def _sampler(name: str, sigmas: Tensor, recorded: dict[str, Any]) -> Any:
    """The sampler a row name gives, on the model's σ grid: ``annealed[@T[xK]][+denoise]`` (the
    recipe's T and ε, or T steps per level with Technique 4's ε times K), ``cas[@eta]`` (default η =
    1 − γ/2, halfway between the deterministic end 1 − γ and η = 1; its final denoising step
    where η < 1), ``pc[@snr[xM]]`` (default snr 0.16, M = 1 corrector step per level) or ``ode``.
    A suffix ``~K`` samples on a grid K times as fine instead: K·(L − 1) + 1 geometric levels
    between the same σ₁ and σ_L, holding every level of the model's grid (for networks that read
    σ itself, not the index of a level)."""
    name, tilde, fine = name.partition("~")
    if tilde:
        if not fine.isdigit() or int(fine) < 1:
            raise ValueError(f"unknown sampler {name + tilde + fine!r}: ~K takes an integer K >= 1")
        levels = int(fine) * (len(sigmas) - 1) + 1
        sigmas = ncsn.geometric_sigmas(float(sigmas[0]), float(sigmas[-1]), levels)
    base, plus, suffix = name.partition("+")
    kind, _, arg = base.partition("@")
    if plus and not (suffix == "denoise" and kind == "annealed"):
        raise ValueError(f"unknown sampler {name!r}: only annealed takes +denoise")
    if kind == "annealed":
        steps_text, _, scale = arg.partition("x")
        steps = int(steps_text) if steps_text else recorded["steps_per_level"]
        step_size = ncsn.ncsnv2_step_size(sigmas, steps) if arg else recorded["step_size"]
        step_size *= float(scale) if scale else 1.0
        return ncsn.samplers.AnnealedLangevin(sigmas, step_size, steps, denoise=bool(plus))
    if kind == "cas":
        gamma = float((sigmas[1:] / sigmas[:-1]).max())
        eta = float(arg) if arg else 1.0 - gamma / 2
        return ncsn.samplers.ConsistentAnnealedSampling(sigmas, eta, denoise=eta < 1)
    if kind == "pc":
        snr, _, steps = arg.partition("x")
        return ncsn.samplers.PredictorCorrector(
            sigmas, snr=float(snr) if snr else 0.16, corrector_steps=int(steps) if steps else 1
        )
    if kind == "ode" and not arg:
        return ncsn.samplers.ProbabilityFlowODE(sigmas)
    raise ValueError(
        f"unknown sampler {name!r}; expected annealed[@T[xK]][+denoise], cas[@eta], "
        "pc[@snr[xM]] or ode, each with an optional ~K"
    )


def _network(
    spec: str,
    ngf: int,
    channels: int,
    sigmas: Tensor,
    generator: torch.Generator | None = None,
    sigma_data: float | None = None,
) -> nn.Module:
    """The network of a row spec ``recipe[:network[:ngf]]`` on the σ grid ``sigmas``
    (``precond`` needs the data's standard deviation ``sigma_data``)."""
    parts = spec.split(":")
    network = parts[1] if len(parts) > 1 else "refinenet"
    width = int(parts[2]) if len(parts) > 2 else ngf
    if network == "refinenet":
        return ncsn.nets.RefineNet(channels, width, sigmas, generator=generator)
    if network == "scaled":
        return ncsn.nets.ScaledByInverseSigma(
            ncsn.nets.RefineNetBaseline(channels, width, generator=generator)
        )
    if network == "precond":
        if sigma_data is None:
            raise ValueError(f"{spec!r}: the preconditioned network needs sigma_data")
        return ncsn.nets.Preconditioned(
            ncsn.nets.RefineNetBaseline(channels, width, generator=generator),
            sigma_data=sigma_data,
        )
    raise ValueError(
        f"unknown network {network!r} in {spec!r}; expected refinenet, scaled or precond"
    )


def _setup(
    spec: str,
    ngf: int,
    train_x: Tensor,
    seed: int,
    lognormal: tuple[float, float] | None = None,
    edm_weighting: bool = False,
) -> tuple[ncsn.presets.Setup, dict[str, Any]]:
    """The setup and its sampling settings for a row spec ``recipe[:network[:ngf]]``: recipe
    ``paper`` or ``ncsnv2``, network ``refinenet`` (the paper's level-conditioned RefineNet, the
    default) or ``scaled`` (NCSNv2's unconditional RefineNet with the 1/σ output scaling,
    Technique 3). ``lognormal=(median, spread)`` draws the training levels by
    :func:`ncsn.schedules.lognormal_weights` instead of uniformly."""
    recipe = spec.split(":")[0]
    gen = torch.Generator().manual_seed(seed)
    channels = train_x.shape[1]
    if recipe == "paper":
        sigmas = ncsn.geometric_sigmas(1.0, 0.01, 10)
        recorded = {"step_size": ncsn.presets.OFFICIAL_STEP_SIZE, "steps_per_level": 100}
    elif recipe == "ncsnv2":
        r = ncsn.presets.recipe(train_x, generator=torch.Generator().manual_seed(seed))
        sigmas = r.sigmas
        recorded = {"step_size": r.step_size, "steps_per_level": r.steps_per_level}
    else:
        raise ValueError(f"unknown recipe {recipe!r} in {spec!r}; expected paper or ncsnv2")
    if spec.split(":")[1:2] == ["precond"]:
        recorded["sigma_data"] = float(train_x.std())
    model = _network(spec, ngf, channels, sigmas, gen, recorded.get("sigma_data"))
    weights = None if lognormal is None else ncsn.schedules.lognormal_weights(sigmas, *lognormal)
    if edm_weighting:
        # Karras et al.'s loss weight, folded into their log-normal draw
        if lognormal is None or "sigma_data" not in recorded:
            raise ValueError("edm_weighting needs lognormal and the precond network")
        weights = ncsn.schedules.edm_weights(sigmas, recorded["sigma_data"], *lognormal)
    schedule = ncsn.Schedule(sigmas, weights=weights)
    setup = ncsn.presets.Setup(
        model,
        ncsn.losses.DenoisingScoreMatching(schedule, power=2.0),
        ncsn.samplers.AnnealedLangevin(sigmas, recorded["step_size"], recorded["steps_per_level"]),
        schedule,
    )
    return setup, recorded


class _Averages:
    """The EMA weights each budget's rows sample with, kept along one training run.

    The EMA never feeds back into training, so one run with an average per budget (each at the
    rate the recipe fits to that budget, ``ncsn.presets.recipe(x, steps=budget).ema_rate``) gives
    exactly the rows of separate runs of each length. The paper's recipe has no EMA. With a
    ``folder``, the averages are saved at every ``every``-th step (before the trainer's checkpoint
    of that step), so that an interrupted run resumes them exactly.
    """

    def __init__(
        self, model: nn.Module, rates: dict[int, float | None], folder: Path, every: int
    ) -> None:
        self.model, self.rates, self.folder, self.every = model, rates, folder, every
        self.emas = {
            rate: ncsn.training.EMA(model, rate) for rate in set(rates.values()) if rate is not None
        }

    def _path(self, step: int) -> Path:
        return self.folder / f"averages-{step:08d}.pt"

    def __call__(self, step: ncsn.training.TrainStep) -> None:
        for ema in self.emas.values():
            ema.update(self.model)
        if self.emas and step.step % self.every == 0:
            state = {str(rate): ema.state_dict() for rate, ema in self.emas.items()}
            tmp = self._path(step.step).with_suffix(".tmp")
            torch.save(state, tmp)
            tmp.replace(self._path(step.step))
            for old in sorted(self.folder.glob("averages-*.pt"))[:-3]:
                old.unlink()

    def restore(self, step: int) -> None:
        if not self.emas:
            return
        state = torch.load(self._path(step), weights_only=True)
        for rate, ema in self.emas.items():
            if str(rate) in state:
                ema.load_state_dict(state[str(rate)])
                continue
            # A budget added after the run began: start its average from the saved one nearest
            # in rate. By the budget the start weighs rate ** (budget - step), printed here.
            nearest = min(state, key=lambda saved: abs(float(saved) - rate))
            ema.load_state_dict(state[nearest])
            budget = max(b for b, r in self.rates.items() if r == rate)
            print(
                f"== the EMA at rate {rate:.5f} (budget {budget}) was not saved; started at step "
                f"{step} from the rate-{float(nearest):.5f} average, which weighs "
                f"{rate ** max(budget - step, 0):.4f} by step {budget}",
                flush=True,
            )

    def model_for(self, budget: int) -> nn.Module:
        rate = self.rates[budget]
        return self.model if rate is None else self.emas[rate].model


def _to_format(x: Tensor, channels_last: bool) -> Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def train(
    recipe: str,
    dataset: Dataset,
    train_x: Tensor,
    *,
    ngf: int,
    batch_size: int,
    budgets: tuple[int, ...],
    runs: Path,
    seed: int,
    reuse: bool,
    lr: float | None = None,
    lr_decay: str | None = None,
    bf16: bool = False,
    compile: bool = False,
    lognormal: tuple[float, float] | None = None,
    edm_weighting: bool = False,
) -> None:
    """Train ``recipe`` to the last budget, saving each budget's weights (resuming a run that
    left checkpoints). ``lr_decay="cosine"`` lowers Adam's step along a half cosine to 0 at the
    last budget (so only the last budget's row is a run of its own length); ``bf16`` runs the
    network under bfloat16 autocast (the weights, optimizer and samplers stay float32); ``compile``
    calls it through ``torch.compile`` (the first call's compilation counts in the budget's time);
    ``lognormal=(median, spread)`` draws the levels by :func:`ncsn.schedules.lognormal_weights`."""
    run = runs / recipe.replace(":", "_")
    weights = {b: run / f"weights-{b}.pt" for b in budgets}
    if reuse and all(w.exists() for w in weights.values()):
        return
    setup, recorded = _setup(recipe, ngf, train_x, seed, lognormal, edm_weighting)
    if dataset.channels_last:
        setup.model.to(memory_format=torch.channels_last)
    rates = {
        b: None
        if recipe.startswith("paper")
        else ncsn.presets.recipe(
            train_x, sigma_max=float(setup.schedule.sigmas[0]), steps=b
        ).ema_rate
        for b in budgets
    }
    folder = run / "trainer"
    if not reuse:
        shutil.rmtree(run, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    every = 100
    averages = _Averages(setup.model, rates, run, every)
    optimizer = torch.optim.Adam(setup.model.parameters(), lr=1e-3 if lr is None else lr)
    if lr_decay not in (None, "cosine"):
        raise ValueError(f"lr_decay must be None or 'cosine'; got lr_decay={lr_decay!r}")
    cosine = ncsn.training.cosine_decay(optimizer, max(budgets)) if lr_decay else None
    trainer = ncsn.training.Trainer(
        setup.model,
        setup.loss,
        train_x,
        batch_size=batch_size,
        optimizer=optimizer,
        scheduler=cosine,
        transform=_Dequantize(dataset.levels),
        callback=averages,
        output=ncsn.training.Output(
            folder, checkpoint_every=every, keep=2, log_every=100, progress=False
        ),
        seed=seed,
        autocast_dtype=torch.bfloat16 if bf16 else None,
        compile=compile,
    )
    if ncsn.training.latest_checkpoint(folder) is not None:
        trainer.restore(folder)
        averages.restore(trainer.step)
        print(f"== {recipe}: resumed at step {trainer.step}", flush=True)
    meta = {"sigmas": setup.schedule.sigmas.tolist(), **recorded}
    try:
        for budget in budgets:
            if weights[budget].exists() and trainer.step >= budget:
                continue
            print(f"== {recipe}: training to step {budget}", flush=True)
            trainer.fit(budget)
            model = averages.model_for(budget)
            state = {
                "state_dict": model.state_dict(),
                "train_seconds": trainer.seconds,
                "ema_rate": rates[budget],
                **meta,
            }
            torch.save(state, weights[budget].with_suffix(".tmp"))
            weights[budget].with_suffix(".tmp").replace(weights[budget])
    finally:
        trainer.close()


def train_baseline(
    dataset: Dataset,
    train_x: Tensor,
    *,
    ngf: int,
    batch_size: int,
    budget: int,
    runs: Path,
    seed: int,
    reuse: bool,
) -> None:
    """The paper's single-σ baseline (DSM at σ = 0.01, plain Langevin) to ``budget`` steps."""
    run = runs / "baseline"
    weights = run / f"weights-{budget}.pt"
    if reuse and weights.exists():
        return
    setup = ncsn.presets.baseline(
        train_x.shape[1], ngf, generator=torch.Generator().manual_seed(seed)
    )
    if dataset.channels_last:
        setup.model.to(memory_format=torch.channels_last)
    folder = run / "trainer"
    if not reuse:
        shutil.rmtree(run, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    with ncsn.training.Trainer(
        setup.model,
        setup.loss,
        train_x,
        batch_size=batch_size,
        transform=_Dequantize(dataset.levels),
        output=ncsn.training.Output(folder, checkpoint_every=100, keep=2, progress=False),
        seed=seed,
    ) as trainer:
        if ncsn.training.latest_checkpoint(folder) is not None:
            trainer.restore(folder)
        print(f"== baseline: training to step {budget}", flush=True)
        trainer.fit(budget)
        state = {
            "state_dict": setup.model.state_dict(),
            "train_seconds": trainer.seconds,
            "sigmas": setup.schedule.sigmas.tolist(),
        }
    torch.save(state, weights.with_suffix(".tmp"))
    weights.with_suffix(".tmp").replace(weights)


@dataclass(frozen=True)
class Row:
    """One row to sample: its recipe, sampler name and budget (``recipe == "baseline"``: the
    single-σ baseline with its Langevin sampler)."""

    recipe: str
    sampler: str
    budget: int

    @property
    def name(self) -> str:
        if self.recipe == "baseline":
            return f"baseline (single σ = 0.01) / {self.budget} steps"
        return f"{self.recipe} / {self.sampler} / {self.budget} steps"

    @property
    def key(self) -> str:
        text = (
            f"{self.recipe}_{self.sampler}_{self.budget}"
            if self.recipe != "baseline"
            else "baseline"
        )
        return text.replace(":", "_").replace("+", "_").replace("@", "-").replace("~", "-fine")


def plan_rows(
    recipes: Sequence[str],
    samplers: Sequence[str],
    final_samplers: Sequence[str],
    budgets: Sequence[int],
    baseline: bool,
) -> list[Row]:
    rows = []
    for recipe in recipes:
        for budget in budgets:
            names = list(samplers) + (list(final_samplers) if budget == budgets[-1] else [])
            rows += [Row(recipe, name, budget) for name in dict.fromkeys(names)]
    if baseline:
        rows.append(Row("baseline", "langevin", budgets[0]))
    return rows


def _load_model(
    row: Row, dataset: Dataset, channels: int, ngf: int, runs: Path
) -> tuple[nn.Module, Any, dict[str, Any]]:
    """The row's trained model (eval mode, in the dataset's memory format) and its sampler."""
    if row.recipe == "baseline":
        saved = torch.load(runs / "baseline" / f"weights-{row.budget}.pt", weights_only=True)
        setup = ncsn.presets.baseline(channels, ngf)
        model, sampler = setup.model, setup.sampler
    else:
        saved = torch.load(
            runs / row.recipe.replace(":", "_") / f"weights-{row.budget}.pt", weights_only=True
        )
        sigmas = torch.tensor(saved["sigmas"])
        model = _network(row.recipe, ngf, channels, sigmas, sigma_data=saved.get("sigma_data"))
        sampler = _sampler(row.sampler, sigmas, saved)
    if dataset.channels_last:
        model.to(memory_format=torch.channels_last)
    model.load_state_dict(saved["state_dict"])
    meta = {"train_seconds": saved["train_seconds"], "ema_rate": saved.get("ema_rate")}
    return model.eval(), sampler, meta


def _chunks(n: int, size: int) -> list[tuple[int, int]]:
    return [(start, min(size, n - start)) for start in range(0, n, size)]


def sample_row(
    row: Row,
    dataset: Dataset,
    shape: tuple[int, ...],
    *,
    ngf: int,
    num_samples: int,
    runs: Path,
    folder: Path,
    seed: int,
) -> Path:
    """Sample one row in chunks (chunk ``k`` from the seed ``seed + 1 + k``), keeping finished
    chunks; a ``+denoise`` row reuses its plain annealed chain and adds the one denoising call."""
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{row.key}.pt"
    if out.exists():
        return out
    model, sampler, meta = _load_model(row, dataset, shape[0], ngf, runs)
    base = row.sampler.removesuffix("+denoise")
    if base != row.sampler and row.recipe != "baseline":
        chain_row = Row(row.recipe, base, row.budget)
        chain = torch.load(
            sample_row(
                chain_row,
                dataset,
                shape,
                ngf=ngf,
                num_samples=num_samples,
                runs=runs,
                folder=folder,
                seed=seed,
            ),
            weights_only=True,
        )
        start = time.perf_counter()
        last = sampler.sigmas[-1]
        with torch.no_grad():
            pieces = []
            for begin, size in _chunks(num_samples, dataset.chunk):
                x = _to_format(chain["samples"][begin : begin + size], dataset.channels_last)
                pieces.append(x + last**2 * model(x, last.expand(size)))
        samples = torch.cat(pieces)
        seconds = chain["seconds"] + time.perf_counter() - start
    else:
        pieces, seconds = [], 0.0
        for k, (_, size) in enumerate(_chunks(num_samples, dataset.chunk)):
            part = folder / f"{row.key}.chunk{k}.pt"
            if part.exists():
                saved = torch.load(part, weights_only=True)
                pieces.append(saved["samples"])
                seconds += saved["seconds"]
                continue
            gen = torch.Generator().manual_seed(seed + 1 + k)
            if isinstance(sampler, (ncsn.samplers.AnnealedLangevin, ncsn.samplers.Langevin)):
                x0 = ncsn.samplers.uniform_init((size, *shape), generator=gen)
            else:
                x0 = ncsn.samplers.gaussian_init(
                    (size, *shape), float(sampler.sigmas[0]), generator=gen
                )
            start = time.perf_counter()
            x = sampler(model, _to_format(x0, dataset.channels_last), generator=gen)
            took = time.perf_counter() - start
            x = x.contiguous()
            torch.save({"samples": x, "seconds": took}, part.with_suffix(".tmp"))
            part.with_suffix(".tmp").replace(part)
            pieces.append(x)
            seconds += took
            print(f"   {row.name}: chunk {k} in {took:.0f} s", flush=True)
        samples = torch.cat(pieces)
    record = {
        "samples": samples.contiguous(),
        "seconds": seconds,
        "model_calls": sampler.num_model_calls,
        "levels": len(getattr(sampler, "sigmas", [0])),
        **meta,
    }
    torch.save(record, out.with_suffix(".tmp"))
    out.with_suffix(".tmp").replace(out)
    for part in folder.glob(f"{row.key}.chunk*.pt"):
        part.unlink()
    return out


def inpaint_rows(
    scorer: Scorer,
    dataset: Dataset,
    recipe: str,
    budget: int,
    *,
    ngf: int,
    runs: Path,
    folder: Path,
    output: Path,
    seed: int,
    count: int,
    samplers: Sequence[str],
) -> list[dict[str, Any]]:
    """The fraction of completions the classifier assigns to the true label, per mask and
    sampler, beside the same fraction for the masked input (unknown pixels 0)."""
    pick = torch.randperm(len(scorer.test), generator=torch.Generator().manual_seed(seed + 7))
    images = scorer.test[pick[:count]]
    labels = scorer.test_labels[pick[:count]]
    rows = []
    for mask_name in INPAINT_MASKS:
        mask = ncsn.samplers.inpainting_mask(mask_name, images.shape[1:])
        masked = images * mask
        rows.append(
            {
                "row": f"inpainting {mask_name} / masked input",
                "mask": mask_name,
                "sampler": None,
                "label_accuracy": scorer.evaluator.accuracy(masked, labels),
            }
        )
        for name in samplers:
            row = Row(recipe, name, budget)
            out = folder / f"inpaint_{mask_name}_{row.key}.pt"
            if not out.exists():
                model, sampler, _ = _load_model(row, dataset, images.shape[1], ngf, runs)
                gen = torch.Generator().manual_seed(seed + 3)
                start = time.perf_counter()
                done = ncsn.samplers.inpaint(
                    sampler, model, _to_format(images, dataset.channels_last), mask, generator=gen
                )
                done = torch.where(mask, images, done).contiguous()
                torch.save(
                    {
                        "samples": done,
                        "seconds": time.perf_counter() - start,
                        "model_calls": sampler.num_model_calls,
                    },
                    out,
                )
            saved = torch.load(out, weights_only=True)
            completed = saved["samples"].clamp(0, 1)
            rows.append(
                {
                    "row": f"inpainting {mask_name} / {recipe} / {name} / {budget} steps",
                    "mask": mask_name,
                    "sampler": name,
                    "model_calls": saved["model_calls"],
                    "sample_seconds": saved["seconds"],
                    "label_accuracy": scorer.evaluator.accuracy(completed, labels),
                }
            )
            grid = torch.cat([masked[:8], completed[:8], images[:8]])
            ncsn.viz.save_image_grid(
                grid, output / f"quality_inpaint_{mask_name}_{row.key}.png", nrow=8, scale=3
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main(
    *,
    dataset: str = "digits",
    budgets: tuple[int, ...] | None = None,
    recipes: tuple[str, ...] = ("ncsnv2", "paper"),
    samplers: tuple[str, ...] | None = None,
    final_samplers: tuple[str, ...] | None = None,
    ngf: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    lr_decay: str | None = None,
    bf16: bool = False,
    compile: bool = False,
    lognormal: tuple[float, float] | None = None,
    edm_weighting: bool = False,
    num_samples: int | None = None,
    baseline: bool = True,
    inpaint: bool | None = None,
    inpaint_count: int = 200,
    inpaint_samplers: tuple[str, ...] = INPAINT_SAMPLERS,
    append: bool = False,
    reuse: bool = False,
    phase: str = "all",
    seed: int = 0,
    quick: bool = False,
    output: str | Path | None = None,
) -> dict[str, Any]:
    """Train, sample and score every row; return (and write) the results."""
    spec = DATASETS[dataset]
    budgets = tuple(budgets or spec.budgets)
    samplers = tuple(spec.samplers if samplers is None else samplers)
    final_samplers = tuple(spec.final_samplers if final_samplers is None else final_samplers)
    ngf = ngf or spec.ngf
    batch_size = batch_size or spec.batch_size
    num_samples = num_samples or spec.num_samples
    inpaint = spec.inpaint if inpaint is None else inpaint
    for name in (
        *samplers,
        *final_samplers,
        *inpaint_samplers,
    ):  # a misspelt row fails now, not after the training
        _sampler(
            name, ncsn.geometric_sigmas(1.0, 0.01, 30), {"step_size": 1e-5, "steps_per_level": 1}
        )
    if output is None:
        output = HERE / "results" / ("" if dataset == "digits" else f"quality_{dataset}")
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    runs = output / "quality_runs" if dataset == "digits" else output / "runs"
    samples_dir = output / "samples"
    train_x, _, _, _ = load(dataset)
    shape = tuple(train_x.shape[1:])
    rows = plan_rows(recipes, samplers, final_samplers, budgets, baseline)

    if phase in ("train", "all"):
        for recipe in recipes:
            train(
                recipe,
                spec,
                train_x,
                ngf=ngf,
                batch_size=batch_size,
                budgets=budgets,
                runs=runs,
                seed=seed,
                reuse=reuse or phase == "train",
                lr=lr,
                lr_decay=lr_decay,
                bf16=bf16,
                compile=compile,
                lognormal=lognormal,
                edm_weighting=edm_weighting,
            )
        if baseline:
            train_baseline(
                spec,
                train_x,
                ngf=ngf,
                batch_size=batch_size,
                budget=budgets[0],
                runs=runs,
                seed=seed,
                reuse=reuse or phase == "train",
            )
    if phase in ("sample", "all"):
        if phase == "all" and not reuse:  # samples of an earlier run would be scored again
            shutil.rmtree(samples_dir, ignore_errors=True)
        for row in rows:
            print(f"== sampling {row.name}", flush=True)
            sample_row(
                row,
                spec,
                shape,
                ngf=ngf,
                num_samples=num_samples,
                runs=runs,
                folder=samples_dir,
                seed=seed,
            )
    if phase not in ("score", "all"):
        return {}

    scorer = Scorer(spec, num_samples, seed, quick=quick)
    settings = {
        "dataset": dataset,
        "ngf": ngf,
        "batch_size": batch_size,
        "lr": 1e-3 if lr is None else lr,
        "lr_decay": lr_decay,
        "bf16": bf16,
        "compile": compile,
        "lognormal": list(lognormal) if lognormal else None,
        "edm_weighting": edm_weighting,
        "budgets": list(budgets),
        "num_samples": num_samples,
        "reference": len(scorer.reference),
        "seed": seed,
        "floor": scorer.floor,
        "held_out_nn_distance": scorer.nn_reference,
        "classifier_test_accuracy": scorer.evaluator.test_accuracy,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
    }
    table: list[dict[str, Any]] = []
    earlier_inpainting: list[dict[str, Any]] = []
    results = output / "quality.json"
    if append and results.exists():  # more rows for the same table (same floor rows)
        earlier = json.loads(results.read_text())
        table.extend(earlier["rows"])
        earlier_inpainting = earlier.get("inpainting", [])
    else:
        table.append({"row": "real vs real (floor)", **scorer(scorer.real, memorisation=False)})
        _grid(output, scorer.real, "real")
        noise = torch.rand(num_samples, *shape, generator=torch.Generator().manual_seed(seed))
        table.append({"row": "uniform noise", **scorer(noise)})
    for row in rows:
        path = samples_dir / f"{row.key}.pt"
        if not path.exists():
            print(f"   (no samples for {row.name}: run --phase sample)", flush=True)
            continue
        saved = torch.load(path, weights_only=True)
        entry = {
            "row": row.name,
            "recipe": row.recipe,
            "sampler": row.sampler,
            "steps": row.budget,
            "levels": saved["levels"],
            "model_calls": saved["model_calls"],
            "ema_rate": saved["ema_rate"],
            "train_seconds": saved["train_seconds"],
            "sample_seconds": saved["seconds"],
            **scorer(saved["samples"]),
        }
        _put(table, entry)
        print(json.dumps(entry), flush=True)
        _grid(output, saved["samples"], row.key)
    inpainting: list[dict[str, Any]] = []
    if inpaint and recipes:
        inpainting = inpaint_rows(
            scorer,
            spec,
            recipes[0],
            budgets[-1],
            ngf=ngf,
            runs=runs,
            folder=samples_dir,
            output=output,
            seed=seed,
            count=inpaint_count,
            samplers=inpaint_samplers,
        )
    for entry in inpainting:
        _put(earlier_inpainting, entry)
    return _write(output, settings, table, earlier_inpainting)


def _put(table: list[dict[str, Any]], entry: dict[str, Any]) -> None:
    """Add ``entry`` to ``table``, in place of an earlier line of the same row (scored again)."""
    for i, line in enumerate(table):
        if line["row"] == entry["row"]:
            table[i] = entry
            return
    table.append(entry)


def _grid(output: Path, samples: Tensor, key: str) -> None:
    ncsn.viz.save_image_grid(
        samples[:64].clamp(0, 1),
        output / f"quality_{key}.png",
        nrow=8,
        scale=6 if samples.shape[-1] <= 8 else 3,
    )


def _write(
    output: Path,
    settings: dict[str, Any],
    rows: list[dict[str, Any]],
    inpainting: list[dict[str, Any]],
) -> dict[str, Any]:
    payload: dict[str, Any] = {"settings": settings, "rows": rows}
    if inpainting:
        payload["inpainting"] = inpainting
    (output / "quality.json").write_text(json.dumps(payload, indent=1))
    (output / "quality.md").write_text(_table(settings, rows, inpainting))
    return payload


def _table(
    settings: dict[str, Any], rows: list[dict[str, Any]], inpainting: list[dict[str, Any]]
) -> str:
    head = (
        "| row | FD ↓ | ± | ÷ floor | classifier score ↑ | precision ↑ | recall ↑ "
        "| NN distance ÷ held-out | model calls | train s | sample s |"
    )
    lines = [head, "| --- " * 11 + "|"]

    def cell(value: Any, spec: str = ".2f") -> str:
        return "—" if value is None else format(value, spec)

    for r in rows:
        lines.append(
            f"| {r['row']} | {cell(r['frechet_distance'], '.1f')} | {cell(r.get('fd_spread'), '.1f')} "
            f"| {cell(r['fd_ratio'])} | {cell(r['classifier_score'])} | {cell(r['precision'])} "
            f"| {cell(r['recall'])} | {cell(r['nn_ratio'])} | {cell(r.get('model_calls'), 'd')} "
            f"| {cell(r.get('train_seconds'), '.0f')} | {cell(r.get('sample_seconds'), '.0f')} |"
        )
    s = settings
    lines += [
        "",
        f"{s['num_samples']} samples per row against {s['reference']} held-out {s['dataset']} "
        f"images; RefineNet ngf {s['ngf']}, batch {s['batch_size']}, Adam lr "
        f"{s.get('lr', 1e-3):g}{' with cosine decay' if s.get('lr_decay') else ''}"
        f"{', bf16 autocast' if s.get('bf16') else ''}"
        f"{', torch.compile' if s.get('compile') else ''}"
        + (
            ", levels drawn log-normally (median {:g}, spread {:g})".format(*s["lognormal"])
            if s.get("lognormal")
            else ""
        )
        + (" times Karras et al.'s loss weight" if s.get("edm_weighting") else "")
        + ", seed "
        f"{s['seed']}; real floor FD {s['floor']:.2f}; ± is the "
        f"spread of the FD over {BOOTSTRAP} bootstrap redraws of the samples; held-out NN "
        f"distance {s['held_out_nn_distance']:.2f}; classifier test accuracy "
        f"{s['classifier_test_accuracy']:.3f}; {s['machine']}.",
    ]
    if s["dataset"] == "digits":
        lines.append(
            "Targets (issue 11), best row: FD ≤ 2× the floor, classifier score ≥ 9.0, recall ≥ "
            "0.5, NN distance ≥ 0.9× the held-out digits'."
        )
    else:
        lines.append(
            "Targets (issue 22), best row at ≤ 60 minutes of training on 2 CPU cores: MNIST FD ≤ "
            "2× the floor, classifier score ≥ 9.0, recall ≥ 0.5, NN ratio ≥ 0.9; Fashion-MNIST "
            "FD ≤ 3× its floor."
        )
    if inpainting:
        lines += [
            "",
            "| inpainting | label accuracy ↑ | model calls | sample s |",
            "| --- | --- | --- | --- |",
        ]
        for r in inpainting:
            lines.append(
                f"| {r['row']} | {r['label_accuracy']:.3f} | {cell(r.get('model_calls'), 'd')} "
                f"| {cell(r.get('sample_seconds'), '.0f')} |"
            )
    return "\n".join(lines) + "\n"


def _cli() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", choices=list(DATASETS), default="digits")
    parser.add_argument("--phase", choices=["train", "sample", "score", "all"], default="all")
    parser.add_argument("--quick", action="store_true", help="a smoke run with tiny settings")
    parser.add_argument("--budgets", type=int, nargs="+", default=None)
    parser.add_argument(
        "--recipes",
        nargs="*",
        default=["ncsnv2", "paper"],
        help="row specs recipe[:network[:ngf]], e.g. ncsnv2:scaled:32 or ncsnv2:refinenet:16 "
        "(none: only the baseline row)",
    )
    parser.add_argument(
        "--samplers",
        nargs="+",
        default=None,
        help="rows at every budget: annealed[@T[xK]][+denoise] (T steps per level, K times "
        "Technique 4's ε), cas[@eta], pc[@snr[xM]], ode, each with an optional ~K (a K times finer σ grid) (default: the dataset's)",
    )
    parser.add_argument(
        "--final-samplers", nargs="*", default=None, help="rows at the last budget only"
    )
    parser.add_argument("--ngf", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument(
        "--lr", type=float, default=None, help="Adam's learning rate (default: the paper's 1e-3)"
    )
    parser.add_argument(
        "--lr-decay",
        choices=["cosine"],
        default=None,
        help="lower Adam's step along a half cosine to 0 at the last budget (default: constant)",
    )
    parser.add_argument(
        "--bf16", action="store_true", help="train the network under bfloat16 autocast"
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="train the network through torch.compile (its compilation counts in the time)",
    )
    parser.add_argument(
        "--lognormal",
        type=float,
        nargs=2,
        metavar=("MEDIAN", "SPREAD"),
        default=None,
        help="draw the training levels log-normally (ncsn.schedules.lognormal_weights; Karras et "
        "al.'s for [0, 1] images: 0.15 1.2) instead of uniformly",
    )
    parser.add_argument(
        "--edm-weighting",
        action="store_true",
        help="with --lognormal and a precond network: Karras et al.'s loss weight 1/c_out^2, "
        "folded into the level draw",
    )
    parser.add_argument("--num-samples", type=int, default=None)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--no-inpaint", action="store_true")
    parser.add_argument(
        "--inpaint-samplers",
        nargs="+",
        default=list(INPAINT_SAMPLERS),
        help="samplers of the inpainting rows (28×28; default: %(default)s)",
    )
    parser.add_argument("--inpaint-count", type=int, default=200, help="images per mask")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument(
        "--append", action="store_true", help="add the rows to the table already in --output"
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep what an earlier run saved (weights, samples) instead of starting afresh",
    )
    parser.add_argument("--output", default=None, help="results folder")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        main(
            dataset=args.dataset,
            budgets=(3, 5),
            ngf=4,
            batch_size=16,
            num_samples=32,
            final_samplers=("pc",),
            inpaint_count=8,
            quick=True,
            output=args.output or HERE / "results" / "quality_quick" / args.dataset,
        )
        return
    main(
        dataset=args.dataset,
        budgets=tuple(args.budgets) if args.budgets else None,
        recipes=tuple(args.recipes),
        samplers=tuple(args.samplers) if args.samplers else None,
        final_samplers=tuple(args.final_samplers) if args.final_samplers is not None else None,
        ngf=args.ngf,
        batch_size=args.batch_size,
        lr=args.lr,
        lr_decay=args.lr_decay,
        bf16=args.bf16,
        compile=args.compile,
        lognormal=tuple(args.lognormal) if args.lognormal else None,
        edm_weighting=args.edm_weighting,
        num_samples=args.num_samples,
        baseline=not args.no_baseline,
        inpaint=False if args.no_inpaint else None,
        inpaint_count=args.inpaint_count,
        inpaint_samplers=tuple(args.inpaint_samplers),
        append=args.append,
        reuse=args.reuse,
        phase=args.phase,
        output=args.output,
    )


if __name__ == "__main__":
    _cli()
