"""Class-conditional generation on the embedded 8×8 digits (issue 24): how often a sample is of the
requested class, and how close each class's samples are to that class's real digits, for
classifier-free guidance weights w and every sampler.

The model: the default recipe (``ncsn.presets.prepare`` with ``Settings(data="digits",
conditional=True)``: a ConditionalRefineNet of width 16, 10% label dropout), trained ``--steps``
steps at batch 128 and cached in ``--run`` (default ``benchmarks/results/conditional_run_STEPS``,
ignored by git: the recipe fits the EMA rate to the steps, so each length is its own run). Its EMA weights sample ``--per-class`` digits
of every class, from the same start for every w, with each sampler on the run's σ grid: annealed
Langevin (the recipe's T = 5 and ε, then the denoising step), consistent annealed sampling
(η = 1 − γ/2), predictor–corrector and the probability-flow ODE (Heun). The unconditional model
for comparison is the same network's null label (what label dropout trained), sampled alike.

Scores, with the evaluator ``ncsn.metrics.digits_evaluator(seed=0)`` (its 64 features):

- per class, the fraction of samples it assigns to the requested class (class accuracy), and the
  Fréchet distance of the class's samples to that class's training digits (about 150 each);
- pooled over the classes, the Fréchet distance to the 297 test digits (the reference of
  ``benchmarks/quality.py``, so comparable with its rows) and precision/recall (k = 3): the
  trade-off w makes.

Targets: >= 95% of samples in the requested class at the best w, with the pooled FD within 1.5×
the unconditional model's. Writes ``conditional.json``, ``conditional.md`` and a grid of one row
per class for the best w of each sampler to ``--output`` (default ``benchmarks/results``).

    python benchmarks/conditional.py --threads 2                   # 8,000 steps, the full table
    python benchmarks/conditional.py --steps 3000 --threads 1      # shorter
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

import ncsn
from ncsn.guidance import ClassifierFreeGuidance, condition

RESULTS = Path(__file__).resolve().parent / "results"
SAMPLERS = ("annealed", "cas", "pc", "ode")
WEIGHTS = (0.0, 0.5, 1.0, 2.0, 4.0)
CLASSES = 10


def train(steps: int, batch_size: int, folder: Path) -> tuple[ncsn.LoadedModel, float]:
    """The conditional digits model of the default recipe, trained (or continued) to ``steps``,
    and the seconds this call trained."""
    x, y = ncsn.data.load("digits")
    run = ncsn.presets.prepare(
        x, ncsn.presets.Settings(data="digits", conditional=True, batch_size=batch_size), labels=y, steps=steps
    )  # fmt: skip
    trainer = ncsn.training.Trainer(
        run.model,
        run.loss,
        (x, y),
        batch_size=batch_size,
        optimizer=torch.optim.Adam(run.model.parameters(), lr=run.settings.lr),
        ema_rate=run.settings.ema,
        transform=run.transform,
        output=ncsn.training.Output(folder, checkpoint_every=500, keep=1, progress=False),
        config=run.config,
        seed=run.settings.seed,
    )
    if ncsn.training.latest_checkpoint(folder) if folder.is_dir() else None:
        trainer.restore(folder)
    start = time.perf_counter()
    if trainer.step < steps:
        trainer.fit(steps)
    return ncsn.load(folder), time.perf_counter() - start


def sampler_for(name: str, loaded: ncsn.LoadedModel) -> ncsn.Sampler:
    sigmas = loaded.sigmas
    assert sigmas is not None
    if name == "annealed":
        return loaded.sampler("annealed")
    if name == "cas":
        gamma = float((sigmas[1:] / sigmas[:-1]).max())
        return ncsn.samplers.ConsistentAnnealedSampling(sigmas, 1.0 - gamma / 2, denoise=True)
    if name == "pc":
        return ncsn.samplers.PredictorCorrector(sigmas)
    return ncsn.samplers.ProbabilityFlowODE(sigmas)


def start(name: str, sampler: Any, n: int, seed: int) -> tuple[Tensor, torch.Generator]:
    g = torch.Generator().manual_seed(seed)
    if name == "annealed":
        return ncsn.samplers.uniform_init((n, 1, 8, 8), generator=g), g
    return ncsn.samplers.gaussian_init((n, 1, 8, 8), float(sampler.sigmas[0]), generator=g), g


class Scorer:
    """Class accuracy, per-class and pooled FD, precision and recall of a set of samples."""

    def __init__(self) -> None:
        self.evaluator = ncsn.metrics.digits_evaluator(seed=0)
        x, y = ncsn.data.load("digits")
        test, _ = ncsn.data.load("digits", split="test")
        features = self.evaluator.features(x)
        self.per_class = [features[y == c] for c in range(CLASSES)]
        self.reference = self.evaluator.features(test)

    def __call__(self, samples: Tensor, labels: Tensor | None) -> dict[str, Any]:
        samples = samples.clamp(0, 1)
        features = self.evaluator.features(samples)
        predicted = self.evaluator.predict(samples)
        pr = ncsn.metrics.precision_recall(self.reference, features, k=3)
        row: dict[str, Any] = {
            "frechet_distance": ncsn.metrics.frechet_distance(features, self.reference),
            "precision": pr.precision,
            "recall": pr.recall,
        }
        if labels is None:  # the unconditional model: its samples grouped by predicted class
            labels = predicted
        else:
            row["accuracy"] = float((predicted == labels).double().mean())
            row["class_accuracy"] = [
                float((predicted[labels == c] == c).double().mean()) for c in range(CLASSES)
            ]
        row["class_fd"] = [
            ncsn.metrics.frechet_distance(features[labels == c], self.per_class[c])
            if int((labels == c).sum()) > 2
            else None
            for c in range(CLASSES)
        ]
        return row


def main(args: argparse.Namespace) -> dict[str, Any]:
    loaded, seconds = train(args.steps, args.batch_size, args.run)
    print(f"model: {args.steps} steps ({seconds:.0f} s trained now) in {args.run}", flush=True)
    model = loaded.model
    scorer = Scorer()
    labels = torch.arange(CLASSES).repeat_interleave(args.per_class)
    n = len(labels)
    rows: list[dict[str, Any]] = []
    grids: dict[str, Tensor] = {}
    for name in args.samplers:
        sampler = sampler_for(name, loaded)
        best: tuple[float, Tensor] | None = None
        for w in [None, *args.weights]:  # None: the null label (unconditional)
            x0, g = start(name, sampler, n, seed=0)
            score = condition(model, None) if w is None else ClassifierFreeGuidance(model, labels, weight=w)  # type: ignore[arg-type]  # fmt: skip
            t0 = time.perf_counter()
            with torch.no_grad():
                x = sampler(score, x0, generator=g)
            row = {"sampler": name, "w": w, "sample_s": time.perf_counter() - t0}
            row |= scorer(x, None if w is None else labels)
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if not isinstance(v, list)}), flush=True)
            if w is not None and (best is None or row["accuracy"] > best[0]):
                best = (row["accuracy"], x)
        assert best is not None
        per_row = min(args.per_class, 10)
        grids[name] = torch.cat(
            [best[1][c * args.per_class : c * args.per_class + per_row] for c in range(CLASSES)]
        )
    result = {
        "steps": args.steps,
        "batch_size": args.batch_size,
        "per_class": args.per_class,
        "rows": rows,
    }
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "conditional.json").write_text(json.dumps(result, indent=1))
    (args.output / "conditional.md").write_text(table(result))
    for name, grid in grids.items():
        ncsn.viz.save_image_grid(
            grid.clamp(0, 1), args.output / f"conditional_{name}.png", min(args.per_class, 10), scale=4
        )  # fmt: skip
    return result


def table(result: dict[str, Any]) -> str:
    """The Markdown table: one line per sampler and w (w — is the null label)."""
    lines = [
        f"Conditional digits: {result['steps']} training steps at batch {result['batch_size']}, "
        f"{result['per_class']} samples per class.\n",
        "| sampler | w | class accuracy | worst class | FD (pooled) ↓ | mean class FD ↓ "
        "| precision | recall |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in result["rows"]:
        fds = [v for v in r["class_fd"] if v is not None]
        accuracy = r.get("accuracy")
        worst = min(r["class_accuracy"]) if "class_accuracy" in r else None
        lines.append(
            f"| {r['sampler']} | {'— (null label)' if r['w'] is None else r['w']} | "
            f"{'—' if accuracy is None else f'{accuracy:.3f}'} | "
            f"{'—' if worst is None else f'{worst:.2f}'} | {r['frechet_distance']:.1f} | "
            f"{sum(fds) / len(fds):.1f} | {r['precision']:.2f} | {r['recall']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def _cli() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--steps", type=int, default=8000, help="training steps (default 8000)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--per-class", type=int, default=100, help="samples per class (default 100)")
    p.add_argument("--weights", type=float, nargs="+", default=list(WEIGHTS))
    p.add_argument("--samplers", nargs="+", choices=SAMPLERS, default=list(SAMPLERS))
    p.add_argument("--run", type=Path, default=None, help="the run's folder (default benchmarks/results/conditional_run_STEPS)")  # fmt: skip
    p.add_argument("--output", type=Path, default=RESULTS)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    args.run = args.run or RESULTS / f"conditional_run_{args.steps}"
    if args.threads:
        torch.set_num_threads(args.threads)
    main(args)


if __name__ == "__main__":
    _cli()
