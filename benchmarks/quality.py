"""Sample quality on the embedded 8×8 digits against the real floor: recipe × sampler × budget.

Rows: the training recipe (``paper``: σ 1 → 0.01 with L = 10, no EMA, annealed Langevin with
ε = 4e-5 and T = 100; ``ncsnv2``: :func:`ncsn.presets.recipe` computed from the data, its EMA
rate fitted to each budget) × the sampler (annealed Langevin with and without the final
denoising step, also with T = 10 and twice Technique 4's ε, consistent annealed sampling at its
default η and at η = 0.9, predictor–corrector, the probability-flow ODE; each on the model's own
σ grid) × the training budget (1,000, 3,000 and 8,000 steps: the largest fits 20 minutes of
training on 2 CPU cores; one run per recipe, whose EMA for each budget equals a run of that
length); the single-σ baseline at the first budget; and the reference rows real-vs-real
(training digits against the held-out split: the floor) and uniform noise. The network is the
RefineNet of width ``--ngf`` (16, ``ncsn.presets.default_ngf`` for 8×8 images); a row spec
``recipe:network:width`` trains another (``ncsnv2:refinenet:32``, ``ncsnv2:scaled:32``: NCSNv2's
unconditional RefineNet with the 1/σ output, Technique 3), for the comparison at equal CPU time.

Columns, all with the library's digits evaluator (``ncsn.metrics.digits_evaluator(seed=0)``):
Fréchet distance of its features to the held-out digits and its ratio to the floor, the
classifier score, precision and recall (Kynkäänniemi et al. 2019, k = 3, in the same features),
the median distance of each sample to its nearest training digit against the held-out digits'
(memorisation: a ratio ≥ 0.9 means no copying), model calls per sample, training and sampling
seconds. The evaluator is trained in-process: run with the machine's default threads (2 here),
as its weights, and so the floor, change slightly with the thread count.

Run:   python benchmarks/quality.py                     (about 1.5 hours on 2 CPU cores)
       python benchmarks/quality.py --recipes ncsnv2:refinenet:32 --budgets 3800 --append
       python benchmarks/quality.py --reuse --samplers annealed@20 --append   (new sampler rows
                                                         from the weights a run saved)
       python benchmarks/quality.py --quick             (a smoke run, about a minute)
Writes benchmarks/results/quality.json, quality.md and one sample grid per row (a --quick run
writes into benchmarks/results/quality_quick/).
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import shutil
import time
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


class _Dequantize:
    """Uniform dequantisation of the 17-level digits (the official transform, for 17 levels)."""

    def __call__(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        return ncsn.data.dequantize(x, levels=17, generator=generator)


class _Scorer:
    """Every column of a row from a set of samples."""

    def __init__(self, num_samples: int, seed: int) -> None:
        self.evaluator = ncsn.metrics.digits_evaluator(seed=0)
        self.train, _ = ncsn.data.load_digits("train")
        self.test, _ = ncsn.data.load_digits("test")
        self.test_features = self.evaluator.features(self.test)
        held_out = ncsn.metrics.nearest_neighbour_distances(self.test, self.train)
        self.nn_reference = float(held_out.distances.median())
        g = torch.Generator().manual_seed(seed)
        real = self.train[torch.randperm(len(self.train), generator=g)[:num_samples]]
        self.floor = 1.0  # the floor's own row is scored against 1, then the floor is set
        self.floor = self(real, memorisation=False)["frechet_distance"]

    def __call__(self, samples: Tensor, *, memorisation: bool = True) -> dict[str, Any]:
        samples = samples.clamp(0, 1)
        features = self.evaluator.features(samples)
        fd = ncsn.metrics.frechet_distance(features, self.test_features)
        pr = ncsn.metrics.precision_recall(self.test_features, features, k=3)
        row: dict[str, Any] = {
            "frechet_distance": fd,
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
    where η < 1), ``pc`` or ``ode``."""
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
    if kind in ("pc", "ode") and not arg:
        if kind == "pc":
            return ncsn.samplers.PredictorCorrector(sigmas)
        return ncsn.samplers.ProbabilityFlowODE(sigmas)
    raise ValueError(
        f"unknown sampler {name!r}; expected annealed[@T[xK]][+denoise], cas[@eta], pc or ode"
    )


def _row(recipe: str, name: str, steps: int, sampler: Any) -> dict[str, Any]:
    return {
        "row": f"{recipe} / {name} / {steps} steps",
        "recipe": recipe,
        "sampler": name,
        "steps": steps,
        "levels": len(sampler.sigmas),
        "model_calls": sampler.num_model_calls,
    }


def _setup(
    spec: str, ngf: int, train_x: Tensor, seed: int
) -> tuple[ncsn.presets.Setup, dict[str, Any]]:
    """The setup and its sampling settings for a row spec ``recipe[:network[:ngf]]``: recipe
    ``paper`` or ``ncsnv2``, network ``refinenet`` (the paper's level-conditioned RefineNet, the
    default) or ``scaled`` (NCSNv2's unconditional RefineNet with the 1/σ output scaling,
    Technique 3)."""
    parts = spec.split(":")
    recipe = parts[0]
    network = parts[1] if len(parts) > 1 else "refinenet"
    width = int(parts[2]) if len(parts) > 2 else ngf
    gen = torch.Generator().manual_seed(seed)
    if recipe == "paper":
        sigmas = ncsn.geometric_sigmas(1.0, 0.01, 10)
        recorded = {"step_size": ncsn.presets.OFFICIAL_STEP_SIZE, "steps_per_level": 100}
    elif recipe == "ncsnv2":
        r = ncsn.presets.recipe(train_x)
        sigmas = r.sigmas
        recorded = {"step_size": r.step_size, "steps_per_level": r.steps_per_level}
    else:
        raise ValueError(f"unknown recipe {recipe!r} in {spec!r}; expected paper or ncsnv2")
    model: nn.Module
    if network == "refinenet":
        model = ncsn.nets.RefineNet(1, width, sigmas, generator=gen)
    elif network == "scaled":
        model = ncsn.nets.ScaledByInverseSigma(ncsn.nets.RefineNetBaseline(1, width, generator=gen))
    else:
        raise ValueError(f"unknown network {network!r} in {spec!r}; expected refinenet or scaled")
    schedule = ncsn.Schedule(sigmas)
    setup = ncsn.presets.Setup(
        model,
        ncsn.losses.DenoisingScoreMatching(schedule, power=2.0),
        ncsn.samplers.AnnealedLangevin(sigmas, recorded["step_size"], recorded["steps_per_level"]),
        schedule,
    )
    return setup, recorded


class _Averages:
    """The EMA weights each budget's row samples with, kept along one training run.

    The EMA never feeds back into training, so one run with an average per budget (each at the
    rate the recipe fits to that budget, ``ncsn.presets.recipe(x, steps=budget).ema_rate``) gives
    exactly the rows of separate runs of each length. The paper's recipe has no EMA.
    """

    def __init__(self, model: nn.Module, rates: dict[int, float | None]) -> None:
        self.model, self.rates = model, rates
        self.emas = {
            rate: ncsn.training.EMA(model, rate) for rate in set(rates.values()) if rate is not None
        }

    def __call__(self, step: ncsn.training.TrainStep) -> None:
        for ema in self.emas.values():
            ema.update(self.model)

    def model_for(self, budget: int) -> nn.Module:
        rate = self.rates[budget]
        return self.model if rate is None else self.emas[rate].model


def main(
    *,
    budgets: tuple[int, ...] = (1000, 3000, 8000),
    recipes: tuple[str, ...] = ("ncsnv2", "paper"),
    samplers: tuple[str, ...] = SAMPLERS,
    ngf: int = 16,
    batch_size: int = 128,
    num_samples: int = 500,
    baseline: bool = True,
    append: bool = False,
    reuse: bool = False,
    seed: int = 0,
    output: str | Path = HERE / "results",
) -> dict[str, Any]:
    """Train, sample and score every row; return (and write) the results."""
    for name in samplers:  # a misspelt row fails now, not after the training
        _sampler(
            name, ncsn.geometric_sigmas(1.0, 0.5, 3), {"step_size": 1e-5, "steps_per_level": 1}
        )
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    train_x, _ = ncsn.data.load_digits("train")
    scorer = _Scorer(num_samples, seed)
    rows: list[dict[str, Any]] = []

    def add(row: dict[str, Any], samples: Tensor | None, grid: str | None) -> None:
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "seed"}), flush=True)
        if samples is not None and grid is not None:
            ncsn.viz.save_image_grid(
                samples[:64].clamp(0, 1), output / f"quality_{grid}.png", nrow=8, scale=6
            )
        _write(output, settings, rows)

    settings = {
        "ngf": ngf,
        "batch_size": batch_size,
        "num_samples": num_samples,
        "seed": seed,
        "floor": scorer.floor,
        "held_out_nn_distance": scorer.nn_reference,
        "classifier_test_accuracy": scorer.evaluator.test_accuracy,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
    }
    earlier = output / "quality.json"
    if append and earlier.exists():  # more rows for the same table (same floor rows)
        rows.extend(json.loads(earlier.read_text())["rows"])
    else:
        g = torch.Generator().manual_seed(seed)
        real = train_x[torch.randperm(len(train_x), generator=g)[:num_samples]]
        add({"row": "real vs real (floor)", **scorer(real, memorisation=False)}, real, "real")
        noise = torch.rand(num_samples, 1, 8, 8, generator=torch.Generator().manual_seed(seed))
        add({"row": "uniform noise", **scorer(noise)}, None, None)

    for recipe in recipes:
        setup, recorded = _setup(recipe, ngf, train_x, seed)
        rates = {
            b: None
            if recipe.startswith("paper")
            else ncsn.presets.recipe(train_x, steps=b).ema_rate
            for b in budgets
        }
        averages = _Averages(setup.model, rates)
        run = output / "quality_runs" / recipe.replace(":", "_")
        if not reuse:
            shutil.rmtree(run, ignore_errors=True)
        run.mkdir(parents=True, exist_ok=True)
        trainer = ncsn.training.Trainer(
            setup.model,
            setup.loss,
            train_x,
            batch_size=batch_size,
            transform=_Dequantize(),
            callback=averages,
            output=ncsn.training.Output(progress=False),
            seed=seed,
        )
        train_seconds = 0.0
        try:
            for budget in budgets:
                weights = run / f"weights-{budget}.pt"  # what this budget's rows sample with
                if reuse and weights.exists():
                    print(f"== {recipe}: the weights of step {budget} from {weights}", flush=True)
                    saved = torch.load(weights, weights_only=True)
                    model = copy.deepcopy(setup.model).eval()
                    model.load_state_dict(saved["state_dict"])
                    train_seconds = saved["train_seconds"]
                else:
                    print(f"== {recipe}: training to step {budget}", flush=True)
                    start = time.perf_counter()
                    trainer.fit(budget)
                    train_seconds += time.perf_counter() - start
                    model = averages.model_for(budget).eval()
                    state = {"state_dict": model.state_dict(), "train_seconds": train_seconds}
                    torch.save(state, weights)
                sigmas = setup.schedule.sigmas
                common = {"ema_rate": rates[budget], "train_seconds": train_seconds}
                chains: dict[str, tuple[Tensor, float]] = {}  # annealed samples before denoising
                for name in samplers:
                    sampler = _sampler(name, sigmas, recorded)
                    grid = f"{recipe}_{name}_{budget}".replace(":", "_").replace("+", "_")
                    grid = grid.replace("@", "-")
                    start = time.perf_counter()
                    base = name.removesuffix("+denoise")
                    if base != name and base in chains:
                        # the same chain (same start and noise) and one denoising call
                        chain, chain_seconds = chains[base]
                        last = sampler.sigmas[-1]
                        with torch.no_grad():
                            samples = chain + last**2 * model(chain, last.expand(num_samples))
                        seconds = chain_seconds + time.perf_counter() - start
                    else:
                        gen = torch.Generator().manual_seed(seed + 1)
                        shape = (num_samples, 1, 8, 8)
                        if isinstance(sampler, ncsn.samplers.AnnealedLangevin):
                            x0 = ncsn.samplers.uniform_init(shape, generator=gen)
                        else:
                            x0 = ncsn.samplers.gaussian_init(shape, float(sigmas[0]), generator=gen)
                        samples = sampler(model, x0, generator=gen)
                        seconds = time.perf_counter() - start
                        if isinstance(sampler, ncsn.samplers.AnnealedLangevin) and base == name:
                            chains[name] = samples, seconds
                    add(
                        _row(recipe, name, budget, sampler)
                        | common
                        | {"sample_seconds": seconds, **scorer(samples)},
                        samples,
                        grid,
                    )
                setup.model.train()
        finally:
            trainer.close()

    if baseline:
        setup = ncsn.presets.baseline(1, ngf, generator=torch.Generator().manual_seed(seed))
        run = output / "quality_runs" / "baseline"
        shutil.rmtree(run, ignore_errors=True)
        with ncsn.training.Trainer(
            setup.model,
            setup.loss,
            train_x,
            batch_size=batch_size,
            transform=_Dequantize(),
            output=ncsn.training.Output(run, progress=False),
            seed=seed,
        ) as trainer:
            start = time.perf_counter()
            trainer.fit(budgets[0])
            train_seconds = time.perf_counter() - start
        gen = torch.Generator().manual_seed(seed + 1)
        x0 = ncsn.samplers.uniform_init((num_samples, 1, 8, 8), generator=gen)
        start = time.perf_counter()
        samples = setup.sampler(setup.model.eval(), x0, generator=gen)
        row = {
            "row": f"baseline (single σ = 0.01) / {budgets[0]} steps",
            "recipe": "baseline",
            "sampler": "langevin",
            "steps": budgets[0],
            "model_calls": setup.sampler.num_model_calls,
            "train_seconds": train_seconds,
            "sample_seconds": time.perf_counter() - start,
            **scorer(samples),
        }
        add(row, samples, "baseline")
    return {"settings": settings, "rows": rows}


def _write(output: Path, settings: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    (output / "quality.json").write_text(json.dumps({"settings": settings, "rows": rows}, indent=1))
    (output / "quality.md").write_text(_table(settings, rows))


def _table(settings: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    head = (
        "| row | FD ↓ | ÷ floor | classifier score ↑ | precision ↑ | recall ↑ "
        "| NN distance ÷ held-out | model calls | train s | sample s |"
    )
    lines = [head, "| --- " * 10 + "|"]

    def cell(value: Any, spec: str = ".2f") -> str:
        return "—" if value is None else format(value, spec)

    for r in rows:
        lines.append(
            f"| {r['row']} | {cell(r['frechet_distance'], '.1f')} | {cell(r['fd_ratio'])} "
            f"| {cell(r['classifier_score'])} | {cell(r['precision'])} | {cell(r['recall'])} "
            f"| {cell(r['nn_ratio'])} | {cell(r.get('model_calls'), 'd')} "
            f"| {cell(r.get('train_seconds'), '.0f')} | {cell(r.get('sample_seconds'), '.0f')} |"
        )
    s = settings
    lines += [
        "",
        f"{s['num_samples']} samples per row against the {297} held-out digits; RefineNet ngf "
        f"{s['ngf']}, batch {s['batch_size']}, seed {s['seed']}; real floor FD {s['floor']:.1f}; "
        f"held-out NN distance {s['held_out_nn_distance']:.2f}; digits classifier test accuracy "
        f"{s['classifier_test_accuracy']:.3f}; {s['machine']}.",
        "Targets (issue 11), best row: FD ≤ 2× the floor, classifier score ≥ 9.0, recall ≥ 0.5, "
        "NN distance ≥ 0.9× the held-out digits'.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run with tiny settings")
    parser.add_argument("--budgets", type=int, nargs="+", default=[1000, 3000, 8000])
    parser.add_argument(
        "--recipes",
        nargs="+",
        default=["ncsnv2", "paper"],
        help="row specs recipe[:network[:ngf]], e.g. ncsnv2:scaled:32 or ncsnv2:refinenet:16",
    )
    parser.add_argument(
        "--samplers",
        nargs="+",
        default=list(SAMPLERS),
        help="rows per budget: annealed[@T[xK]][+denoise] (T steps per level, K times Technique "
        "4's ε), cas[@eta], pc, ode "
        f"(default: {' '.join(SAMPLERS)})",
    )
    parser.add_argument("--ngf", type=int, default=16)
    parser.add_argument("--num-samples", type=int, default=500)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument(
        "--append", action="store_true", help="add the rows to the table already in --output"
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="sample with the weights an earlier run saved for each budget "
        "(quality_runs/RECIPE/weights-STEPS.pt) instead of training again: new sampler rows",
    )
    parser.add_argument("--output", default=None, help="results folder")
    args = parser.parse_args()
    if args.quick:
        main(
            budgets=(3, 5),
            ngf=4,
            batch_size=16,
            num_samples=32,
            output=args.output or HERE / "results" / "quality_quick",
        )
    else:
        main(
            budgets=tuple(args.budgets),
            recipes=tuple(args.recipes),
            samplers=tuple(args.samplers),
            ngf=args.ngf,
            num_samples=args.num_samples,
            baseline=not args.no_baseline,
            append=args.append,
            reuse=args.reuse,
            output=args.output or HERE / "results",
        )
