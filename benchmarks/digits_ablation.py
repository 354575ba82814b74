"""The paper's only controlled ablation (App. C.1), on the embedded 8×8 digits.

NCSN (geometric σ schedule 1 → 0.01, L = 10, DSM with λ(σ) = σ², annealed Langevin) against the
single-noise-level baseline (σ = 0.01, DSM without weighting, plain Langevin with T = 1000), with the
same RefineNet width, training budget, data and seed. Each model draws the same number of samples,
scored against the held-out real digits with the built-in digits classifier: Fréchet distance of its
features and the Inception-style classifier score, next to the real-vs-real floor.

The memorisation column is the median distance of each sample to its nearest training digit; its
reference is the held-out real digits' distance to the training split (what a model that does not
copy its training data should show).

Run:   python benchmarks/digits_ablation.py                 (about 20 minutes on 2 CPU cores)
       python benchmarks/digits_ablation.py --quick         (a smoke run, about a minute)
Writes benchmarks/results/digits_ablation.json, a Markdown table and sample grids (a --quick run
writes into benchmarks/results/digits_ablation_quick/ instead, leaving the measured results alone).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

import ncsn

HERE = Path(__file__).resolve().parent


class _Dequantize:
    """Uniform dequantisation of the 17-level digits (the official transform, for 17 levels)."""

    def __call__(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        return ncsn.data.dequantize(x, levels=17, generator=generator)


def _train(
    setup: ncsn.presets.Setup, data: Tensor, *, steps: int, batch_size: int, seed: int, out: Path
) -> dict[str, Any]:
    shutil.rmtree(out, ignore_errors=True)  # a rerun starts its runs over (one run per folder)
    trainer = ncsn.training.Trainer(
        setup.model,
        setup.loss,
        data,
        batch_size=batch_size,
        transform=_Dequantize(),
        out_dir=out,
        checkpoint_every=None,
        log_every=max(1, steps // 20),
        progress=True,
        seed=seed,
    )
    start = time.perf_counter()
    try:
        summary = trainer.fit(steps)
    finally:
        trainer.close()
    return {
        "steps": summary.step,
        "final_loss": summary.loss,
        "train_seconds": time.perf_counter() - start,
    }


def _score(
    evaluator: ncsn.metrics.DigitsEvaluator,
    samples: Tensor,
    reference: Tensor | None,
    *,
    memorisation: bool = True,
) -> dict[str, float | None]:
    """Fréchet distance to ``reference`` (None: not computed), classifier score, NN distance."""
    samples = samples.clamp(0, 1)
    fd = (
        None
        if reference is None
        else float(
            ncsn.metrics.frechet_distance(
                evaluator.features(samples), evaluator.features(reference)
            )
        )
    )
    score = ncsn.metrics.inception_score(evaluator.probabilities(samples), splits=1)
    nn = None
    if memorisation:
        train = ncsn.data.load_digits("train")[0]
        nn = float(ncsn.metrics.nearest_neighbour_distances(samples, train).distances.median())
    return {
        "frechet_distance": fd,
        "classifier_score": float(score.mean),
        "median_nn_distance": nn,
    }


def main(
    *,
    steps: int = 2000,
    ngf: int = 32,
    batch_size: int = 128,
    num_samples: int = 297,
    steps_per_level: int = 100,
    step_size: float = ncsn.presets.OFFICIAL_STEP_SIZE,
    seed: int = 0,
    output: str | Path = HERE / "results",
) -> dict[str, Any]:
    """Train both models, sample, evaluate; return (and write) the results."""
    torch.set_num_threads(max(1, torch.get_num_threads()))
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    train_x, _ = ncsn.data.load_digits("train")
    test_x, _ = ncsn.data.load_digits("test")
    evaluator = ncsn.metrics.digits_evaluator(seed=0)
    results: dict[str, Any] = {
        "settings": {
            "steps": steps,
            "ngf": ngf,
            "batch_size": batch_size,
            "num_samples": num_samples,
            "steps_per_level": steps_per_level,
            "step_size": step_size,
            "seed": seed,
            "classifier_test_accuracy": evaluator.test_accuracy,
            "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        }
    }
    # The real-vs-real floor: the training split against the held-out split (same sample count).
    floor = train_x[
        torch.randperm(len(train_x), generator=torch.Generator().manual_seed(seed))[:num_samples]
    ]
    # (its distance to the training set is 0 by construction: not a reference)
    results["real (train split)"] = _score(evaluator, floor, test_x, memorisation=False)
    # The memorisation reference: held-out digits' distance to the training split. (Its Fréchet
    # distance would be against itself, so it is left out.)
    results["real (held-out split)"] = _score(evaluator, test_x[:num_samples], None)
    results["uniform noise"] = _score(
        evaluator,
        torch.rand(num_samples, 1, 8, 8, generator=torch.Generator().manual_seed(seed)),
        test_x,
    )

    setups = {
        "NCSN (annealed Langevin)": ncsn.presets.ncsn_paper(
            1,
            ngf,
            step_size=step_size,
            steps_per_level=steps_per_level,
            generator=torch.Generator().manual_seed(seed),
        ),
        "baseline (single σ = 0.01)": ncsn.presets.baseline(
            1,
            ngf,
            step_size=step_size,
            num_steps=10 * steps_per_level,
            generator=torch.Generator().manual_seed(seed),
        ),
    }
    for name, setup in setups.items():
        print(f"== {name}: training {steps} steps")
        row = _train(
            setup,
            train_x,
            steps=steps,
            batch_size=batch_size,
            seed=seed,
            out=output / "digits_ablation_runs" / name.split()[0].lower(),
        )
        gen = torch.Generator().manual_seed(seed + 1)
        x0 = ncsn.samplers.uniform_init((num_samples, 1, 8, 8), generator=gen)
        start = time.perf_counter()
        samples = setup.sampler(setup.model.eval(), x0, generator=gen)
        row["sample_seconds"] = time.perf_counter() - start
        row.update(_score(evaluator, samples, test_x))
        results[name] = row
        if isinstance(setup.sampler, ncsn.samplers.AnnealedLangevin):
            # the NCSNv2 final denoising step, as an extra row
            sigma_min = setup.sampler.sigmas[-1]
            with torch.no_grad():
                denoised = samples + sigma_min**2 * setup.model(
                    samples, sigma_min.expand(num_samples)
                )
            results["NCSN + final denoising step"] = _score(evaluator, denoised, test_x)
        ncsn.viz.save_image_grid(
            samples[:64], output / f"digits_ablation_{name.split()[0].lower()}.png", nrow=8, scale=6
        )
    ncsn.viz.save_image_grid(test_x[:64], output / "digits_ablation_real.png", nrow=8, scale=6)

    (output / "digits_ablation.json").write_text(json.dumps(results, indent=2))
    table = _table(results)
    (output / "digits_ablation.md").write_text(table)
    print(table)
    return results


def _table(results: dict[str, Any]) -> str:
    lines = [
        "| samples | Fréchet distance ↓ | classifier score ↑ | median NN distance to train |",
        "| --- | --- | --- | --- |",
    ]

    def cell(value: float | None) -> str:
        return "—" if value is None else f"{value:.2f}"

    for name, row in results.items():
        if name == "settings":
            continue
        values = (row["frechet_distance"], row["classifier_score"], row["median_nn_distance"])
        lines.append(f"| {name} | " + " | ".join(cell(v) for v in values) + " |")
    s = results["settings"]
    lines.append("")
    lines.append(
        f"{s['num_samples']} samples each; RefineNet ngf {s['ngf']}, {s['steps']} steps of batch {s['batch_size']}, seed {s['seed']}; "
        f"ε = {s['step_size']:g}, T = {s['steps_per_level']} per level (baseline: {10 * s['steps_per_level']} steps at σ = 0.01); "
        f"digits classifier test accuracy {s['classifier_test_accuracy']:.3f}; {s['machine']}."
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run with tiny settings")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--ngf", type=int, default=32)
    parser.add_argument(
        "--output",
        default=None,
        help="results folder (default: benchmarks/results, or results/digits_ablation_quick)",
    )
    args = parser.parse_args()
    if args.quick:
        output = args.output or HERE / "results" / "digits_ablation_quick"
        main(steps=5, ngf=4, num_samples=32, steps_per_level=2, output=output)
    else:
        main(steps=args.steps, ngf=args.ngf, output=args.output or HERE / "results")
