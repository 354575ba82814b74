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
the folder with the seed the golden test uses, and writes their digits-evaluator scores into the
card (``--no-score`` skips that).
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
SEED = 0  # the golden test's seed (tests/test_pretrained.py)


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
    sampling = {
        "sampler": "annealed",
        "step_size": 2 * ncsn.ncsnv2_step_size(sigmas, steps_per_level),
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
        again = (
            f"Measured again from this folder by `benchmarks/pretrained.py` ({NUM_SAMPLES} "
            f"samples from seed {SEED}, the same evaluator and reference): Fréchet distance "
            f"{measured['frechet_distance']:.1f}, classifier score "
            f"{measured['classifier_score']:.2f}."
        )
        export(args.weights, folder, quality=f"{TABLE_ROW}\n\n{again}", measured=measured)
    size = sum(p.stat().st_size for p in folder.iterdir())
    print(f"wrote {folder} ({size / 1e6:.2f} MB)", file=sys.stderr)


if __name__ == "__main__":
    main()
