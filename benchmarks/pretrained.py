"""The pretrained models shipped in the package (``ncsn.pretrained``): each is a model folder
written from the EMA weights the quality benchmark saved, with a card that gives the command that
trained it, its row of the quality table, and the score this script measures again.

``digits``: the best row of the digits quality table (``benchmarks/results/quality.md``): the
paper's RefineNet, width 16, NCSNv2's recipe, 8,000 steps at batch 128, sampled with annealed
Langevin at T = 10 and twice Technique 4's ε, with the final denoising step. Train it with

    python benchmarks/quality.py --dataset digits --recipes ncsnv2 --budgets 8000 \\
        --samplers annealed@10x2+denoise --no-baseline --threads 1 --phase train \\
        --output /tmp/ncsn_pretrained

(``--reuse`` resumes an interrupted run from its checkpoints), then export it with

    python benchmarks/pretrained.py --weights /tmp/ncsn_pretrained/quality_runs/ncsnv2/weights-8000.pt

which writes ``src/ncsn/pretrained/digits/`` (``--output`` elsewhere), samples 500 digits from
the folder with the seed the golden test uses (the quality benchmark's, so the scores are its
row's), scores them with the digits evaluator, does the same for seeds 0-3 to state the spread
over sampling seeds, and writes both into the card (``--no-score`` skips the sampling; about 8
minutes on 2 cores with it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

import ncsn

HERE = Path(__file__).resolve().parent
OUTPUT = HERE.parent / "src" / "ncsn" / "pretrained" / "digits"
COMMAND = (
    "python benchmarks/quality.py --dataset digits --recipes ncsnv2 --budgets 8000 "
    "--samplers annealed@10x2+denoise --no-baseline --threads 1 --phase train "
    "--output /tmp/ncsn_pretrained\n"
    "python benchmarks/pretrained.py --weights "
    "/tmp/ncsn_pretrained/quality_runs/ncsnv2/weights-8000.pt"
)
TABLE_ROW = (
    "The quality table's row (`benchmarks/results/quality.md`, 500 samples against the 297 "
    "held-out digits, `ncsn.metrics.digits_evaluator(seed=0)`): Fréchet distance 16.6, 0.85× "
    "the real-data floor, classifier score 9.11, precision 0.77, recall 0.75, 221 model calls "
    "per sample."
)
NUM_SAMPLES = 500
SEED = 1  # the quality benchmark's sampling seed, so the card's scores are its row's; also the golden test's
SPREAD_SEEDS = (0, 1, 2, 3)  # the seeds of the spread the card states


def export(
    weights: Path,
    output: Path,
    *,
    steps: int = 8000,
    quality: str = TABLE_ROW,
    measured: dict[str, float] | None = None,
) -> Path:
    """Write the model folder of the quality benchmark's weights file ``weights`` (its EMA
    ``state_dict``, ``sigmas``, ``step_size``, ``steps_per_level``), with the card's quality
    text and the scores measured from it (once it exists)."""
    saved = torch.load(weights, weights_only=True)
    sigmas = torch.tensor(saved["sigmas"])
    model = ncsn.nets.RefineNet(1, 16, sigmas)
    model.load_state_dict(saved["state_dict"])
    steps_per_level = 10
    sampling = {  # the recipe's: another T gets twice Technique 4's ε for it
        "sampler": "annealed",
        "step_size": 2 * ncsn.ncsnv2_step_size(sigmas, steps_per_level),
        "step_size_rule": "ncsnv2",
        "step_scale": 2.0,
        "steps_per_level": steps_per_level,
        "denoise": True,
    }
    metadata: dict[str, Any] = {
        "name": "ncsn digits (RefineNet 16, NCSNv2 recipe, 8,000 steps)",
        "description": (
            "A score network of the embedded 8×8 digits (`ncsn.data.load_digits`, pixels in "
            "[0, 1]): the paper's RefineNet (CondRefineNetDilated) at width 16 on NCSNv2's σ "
            f"grid ({len(sigmas)} levels), trained with NCSNv2's recipe for {steps:,} steps at "
            'batch 128; these are its EMA weights. `ncsn.pretrained("digits")` loads it.'
        ),
        "command": COMMAND,
        "quality": quality,
        "step": steps,
        "batch_size": 128,
        "ema_rate": saved.get("ema_rate"),
        "recipe": "ncsnv2",
        "train_step_size": float(saved["step_size"]),
        "train_steps_per_level": int(saved["steps_per_level"]),
    }
    if measured is not None:
        metadata["measured"] = measured
    data = {"source": "digits", "shape": [1, 8, 8], "logit_transform": False}
    return ncsn.save_model(
        model.eval(),
        output,
        sigmas=sigmas,
        sampling=sampling,
        data=data,
        metadata=metadata,
        overwrite=True,
    )


def samples(folder: Path, num_samples: int = NUM_SAMPLES, seed: int = SEED) -> torch.Tensor:
    """``num_samples`` digits from the model folder with its own sampler, from ``seed``."""
    loaded = ncsn.load(folder)
    gen = torch.Generator().manual_seed(seed)
    x0 = ncsn.samplers.uniform_init((num_samples, *loaded.data["shape"]), generator=gen)
    with torch.no_grad():
        return loaded.sampler()(loaded.model, x0, generator=gen)


def score(x: torch.Tensor) -> dict[str, float]:
    """The digits-evaluator scores of samples ``x`` (the quality table's evaluator and
    reference: the held-out digits)."""
    evaluator = ncsn.metrics.digits_evaluator(seed=0)
    reference, _ = ncsn.data.load_digits("test")
    x = x.clamp(0, 1)
    features = evaluator.features(x)
    fd = ncsn.metrics.frechet_distance(features, evaluator.features(reference))
    classifier = ncsn.metrics.inception_score(evaluator.probabilities(x), splits=1).mean
    return {"frechet_distance": float(fd), "classifier_score": float(classifier)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--weights", type=Path, required=True, help="weights-8000.pt")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--no-score", action="store_true")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    folder = export(args.weights, args.output)
    if not args.no_score:
        measured = score(samples(folder))
        print(f"measured: {measured}", file=sys.stderr)
        spread = [  # the quality benchmark's seed is one of them: scored once, above
            measured if seed == SEED else score(samples(folder, seed=seed)) for seed in SPREAD_SEEDS
        ]
        fds = [s["frechet_distance"] for s in spread]
        scores = [s["classifier_score"] for s in spread]
        print(f"seeds {SPREAD_SEEDS}: {spread}", file=sys.stderr)
        again = (
            f"Measured again from this folder by `benchmarks/pretrained.py` ({NUM_SAMPLES} "
            f"samples from seed {SEED}, the quality benchmark's, with the same evaluator and "
            f"reference): Fréchet distance {measured['frechet_distance']:.1f}, classifier score "
            f"{measured['classifier_score']:.2f}. Over sampling seeds "
            f"{SPREAD_SEEDS[0]}-{SPREAD_SEEDS[-1]}: Fréchet distance {min(fds):.1f}-"
            f"{max(fds):.1f}, classifier score {min(scores):.2f}-{max(scores):.2f} (500 samples "
            "give the distance a spread of about ±3)."
        )
        export(args.weights, folder, quality=f"{TABLE_ROW}\n\n{again}", measured=measured)
    size = sum(p.stat().st_size for p in folder.iterdir())
    print(f"wrote {folder} ({size / 1e6:.2f} MB)", file=sys.stderr)


if __name__ == "__main__":
    main()
