"""Sampling-time levers of a trained 28×28 run, measured against a *tuning* reference.

What a trained MNIST or Fashion-MNIST model of ``benchmarks/quality.py`` gives with other sampling
settings, without training again: CAS's η (the fraction of Tweedie's step per level, default
1 − γ/2), a denser geometric grid between the same σ₁ and σ_L (the 1/σ-scaled
network takes any σ), and the weights sampled (the EMA at each rate the run kept, or the raw
iterate from the trainer's checkpoint). Every variant draws ``--num-samples`` samples with the
same seeds (chunk ``k`` of 250 from seed ``k + 1``).

Tuning on the table's own held-out reference would flatter the winner, so each variant is scored
against 1,000 *training* images (seed 123) instead, with its own floor (``--num-samples`` other
training images against them); the table's held-out reference stays untouched for the row the
tuning picks. The evaluator is the quality table's (same seed, same training).

    python benchmarks/sampler_sweep28.py --run RUNS/ncsnv2_scaled_16 --step 7300 \\
        --variants ema,default,1 ema,0.15,1 ema,0.3,1 ema,0.8,1 ema,1.0,1 ema,default,2 raw,default,1

(a variant is ``WEIGHTS,ETA,DENSITY``: WEIGHTS ``ema`` (the row's), ``raw`` or a rate saved in the
run's ``averages-*.pt``; ETA a number or ``default``; DENSITY the grid's (L − 1) multiplier)

(about 2 minutes a variant at 500 samples and 97 model calls on 2 cores; writes
``sweep.json`` and ``sweep.md`` into ``--output``.)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import quality  # noqa: E402  (the table's evaluator, network and chunking)

import ncsn  # noqa: E402

REFERENCE_SEED = 123


def _weights(run: Path, step: int, which: str) -> tuple[str, dict[str, torch.Tensor]]:
    """``(label, state_dict)``: ``ema`` the budget's saved weights, ``raw`` the trainer's iterate at
    ``step``, or a rate saved in the run's ``averages-{step}.pt``."""
    if which == "ema":
        saved = torch.load(run / f"weights-{step}.pt", weights_only=True)
        return f"EMA {saved['ema_rate']:.5f} (the row's)", saved["state_dict"]
    if which == "raw":
        checkpoint = torch.load(run / "trainer" / f"checkpoint-{step:08d}.pt", weights_only=False)
        return "raw iterate", checkpoint["model"]
    averages = torch.load(run / f"averages-{step:08d}.pt", weights_only=True)
    return f"EMA {float(which):.5f}", averages[which]


def _sampler(sigmas: torch.Tensor, eta: str, density: int) -> Any:
    grid = sigmas
    if density > 1:
        grid = ncsn.geometric_sigmas(
            float(sigmas[0]), float(sigmas[-1]), (len(sigmas) - 1) * density + 1
        )
    return ncsn.presets.build_sampler(
        "cas", grid, eta=None if eta == "default" else float(eta), denoise=eta != "1.0"
    )


def main(
    run: Path,
    step: int,
    variants: Sequence[tuple[str, str, int]],
    *,
    dataset: str = "mnist",
    ngf: int | None = None,
    num_samples: int = 500,
    quick: bool = False,
    output: Path | None = None,
) -> dict[str, Any]:
    """Sample and score each ``(weights, eta, density)`` variant of the run's model at ``step``."""
    spec = quality.DATASETS[dataset]
    scorer = quality.Scorer(spec, 1000, 0, quick=quick)
    perm = torch.randperm(
        len(scorer.train), generator=torch.Generator().manual_seed(REFERENCE_SEED)
    )
    reference = scorer.evaluator.features(scorer.train[perm[:1000]])
    real = scorer.train[perm[1000 : 1000 + num_samples]]
    floor = ncsn.metrics.frechet_distance(scorer.evaluator.features(real), reference)
    print(f"tuning floor ({num_samples} training images against 1000 others): {floor:.2f}")
    saved = torch.load(run / f"weights-{step}.pt", weights_only=True)
    sigmas = torch.tensor(saved["sigmas"])
    recipe = "ncsnv2:scaled:16" if run.name.startswith("ncsnv2_scaled") else "ncsnv2"
    rows = []
    for which, eta, density in variants:
        label, state = _weights(run, step, which)
        model = quality._network(recipe, ngf or spec.ngf, 1, sigmas)
        model.to(memory_format=torch.channels_last)
        model.load_state_dict(state)
        model.eval()
        sampler = _sampler(sigmas, eta, density)
        start, pieces = time.perf_counter(), []
        for k, (_, size) in enumerate(quality._chunks(num_samples, 250)):
            gen = torch.Generator().manual_seed(1 + k)
            x0 = ncsn.samplers.gaussian_init(
                (size, 1, 28, 28), float(sampler.sigmas[0]), generator=gen
            )
            x = sampler(model, x0.contiguous(memory_format=torch.channels_last), generator=gen)
            pieces.append(x.contiguous())
        seconds = time.perf_counter() - start
        samples = torch.cat(pieces).clamp(0, 1)
        features = scorer.evaluator.features(samples)
        fd = ncsn.metrics.frechet_distance(features, reference)
        pr = ncsn.metrics.precision_recall(reference, features, k=3)
        row = {
            "weights": label,
            "levels": len(sampler.sigmas),
            "eta": sampler.eta,
            "frechet_distance": fd,
            "fd_ratio": fd / floor,
            "classifier_score": ncsn.metrics.inception_score(
                scorer.evaluator.probabilities(samples), splits=1
            ).mean,
            "precision": pr.precision,
            "recall": pr.recall,
            "model_calls": sampler.num_model_calls,
            "seconds": seconds,
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    result = {
        "run": str(run),
        "step": step,
        "num_samples": num_samples,
        "floor": floor,
        "rows": rows,
    }
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
        (output / "sweep.json").write_text(json.dumps(result, indent=1))
        lines = [
            "| weights | levels | η | FD ↓ | ÷ tuning floor | classifier score ↑ | precision | recall | calls |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
            *(
                f"| {r['weights']} | {r['levels']} | {r['eta']:.3f} | {r['frechet_distance']:.1f} "
                f"| {r['fd_ratio']:.2f} | {r['classifier_score']:.2f} | {r['precision']:.2f} "
                f"| {r['recall']:.2f} | {r['model_calls']} |"
                for r in rows
            ),
            "",
            f"{num_samples} samples per row against 1,000 training images (seed "
            f"{REFERENCE_SEED}), tuning floor FD {floor:.2f}; {run}, step {step}; "
            f"{torch.get_num_threads()} threads, torch {torch.__version__}.",
        ]
        (output / "sweep.md").write_text("\n".join(lines) + "\n")
    return result


def _variant(text: str) -> tuple[str, str, int]:
    try:
        weights, eta, density = text.split(",")
        return weights, eta, int(density)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"a variant is WEIGHTS,ETA,DENSITY (e.g. ema,default,1); got {text!r}"
        ) from None


def _cli() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", type=Path, required=True, help="a quality.py run folder")
    parser.add_argument("--step", type=int, required=True, help="the budget whose weights to use")
    parser.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist")
    parser.add_argument(
        "--variants",
        type=_variant,
        nargs="+",
        default=[("ema", "default", 1)],
        help="WEIGHTS,ETA,DENSITY each (default: ema,default,1)",
    )
    parser.add_argument("--ngf", type=int, default=None, help="the run's width (default 16)")
    parser.add_argument("--num-samples", type=int, default=500)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    main(
        args.run,
        args.step,
        args.variants,
        dataset=args.dataset,
        ngf=args.ngf,
        num_samples=args.num_samples,
        output=args.output,
    )


if __name__ == "__main__":
    _cli()
