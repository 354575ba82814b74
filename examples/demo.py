"""The ``ncsn demo`` job: the paper's toy Fig. 3 with exact scores, then a small NCSN trained on
the embedded 8×8 digits with NCSNv2's recipe, sampled, scored and asked to inpaint.

Run:  ncsn demo                       (the same as python examples/demo.py; under 10 minutes on
                                       2 CPU cores; writes outputs/demo/)
      python examples/demo.py --steps 200 --output /tmp/demo      (a quick look)

Everything here is the public library: ``ncsn.presets.recipe`` for the settings, the ``Trainer``,
a sampler, ``ncsn.samplers.inpaint`` and the digits evaluator of ``ncsn.metrics``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

import ncsn

GREY_LEVELS = 17  # the UCI digits hold the values 0, 1/16, …, 1
NUM_SAMPLES = 500  # scored (as in benchmarks/quality.py); the grid shows the first 64
GRID = 64


class Dequantize:
    """The training transform: uniform dequantisation over the digits' 17 grey levels."""

    def __call__(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        return ncsn.data.dequantize(x, levels=GREY_LEVELS, generator=generator)


def toy_figure(output: Path, *, seed: int, plots: bool) -> list[str]:
    """Fig. 3 with exact scores: plain Langevin gets the mixture's weights wrong, annealing does not."""
    gmm = ncsn.toy.paper_mixture()
    exact = gmm.score_model()
    gen = torch.Generator().manual_seed(seed)
    x0 = ncsn.samplers.uniform_init((1280, 2), low=-8, high=8, generator=gen)
    plain = ncsn.samplers.Langevin(0.0, 0.1, 1000)(exact, x0, generator=gen)
    annealed = ncsn.samplers.AnnealedLangevin(ncsn.geometric_sigmas(20.0, 1.0, 10), 0.1, 100)(
        exact, x0, generator=gen
    )

    def weight(x: Tensor) -> float:
        return float(gmm.component_posterior(x)[:, 1].mean())

    if plots:
        data = gmm.sample(1280, generator=gen)
        panels = [("data", data), ("Langevin", plain), ("annealed Langevin", annealed)]
        ncsn.viz.plot_toy_samples(panels, output / "toy_fig3.png")
    return [
        "Fig. 3 (1280 chains from U[-8, 8]^2, exact scores): weight of the (5, 5) mode",
        f"  truth 0.800   Langevin {weight(plain):.3f}   annealed Langevin {weight(annealed):.3f}",
        "",
    ]


def train_digits(
    run: Path,
    train_x: torch.Tensor,
    recipe: ncsn.presets.Recipe,
    *,
    steps: int,
    batch_size: int,
    ngf: int,
    steps_per_level: int,
    step_size: float,
    seed: int,
    progress: bool,
) -> ncsn.training.Trainer:
    """Train a RefineNet on the training digits with the recipe computed from them; the run
    records the sampler (T, ε) for ``ncsn sample RUN``."""
    if run.is_dir():  # a rerun starts over: the folder holds only the demo's own run
        for old in ncsn.training.list_checkpoints(run):
            old.unlink()
        (run / "metrics.jsonl").unlink(missing_ok=True)
    model = ncsn.nets.RefineNet(
        1, ngf, recipe.sigmas, generator=torch.Generator().manual_seed(seed)
    )
    loss = ncsn.losses.DenoisingScoreMatching(ncsn.Schedule(recipe.sigmas), power=2.0)
    trainer = ncsn.training.Trainer(
        model,
        loss,
        train_x,
        batch_size=batch_size,
        ema_rate=recipe.ema_rate,
        transform=Dequantize(),
        out_dir=run,
        checkpoint_every=max(1, steps // 4),
        keep=2,
        log_every=max(1, steps // 50),
        progress=progress,
        config={  # what `ncsn sample RUN` reads back
            "model": ncsn.nets.model_config(model),
            "data": {"source": "digits", "shape": [1, 8, 8], "logit_transform": False},
            "sampling": {
                "sampler": "annealed",
                "step_size": step_size,
                "steps_per_level": steps_per_level,
                "denoise": recipe.denoise,
            },
        },
        seed=seed,
    )
    try:
        trainer.fit(steps)
    finally:
        trainer.close()
    return trainer


def main(
    output: str | Path = "outputs/demo",
    *,
    steps: int = 1500,
    batch_size: int = 128,
    ngf: int = 16,
    steps_per_level: int = 10,
    step_size: float | None = None,
    seed: int = 0,
    progress: bool = True,
    plots: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the demo into ``output`` and return its measured numbers (also in ``summary.txt``).

    Args:
        output: the folder for the figures, ``summary.txt`` and the training run ``run/``.
        steps: training steps; batch_size: examples per step; ngf: the RefineNet's width.
        steps_per_level: T of annealed Langevin; step_size: its ε (default: twice NCSNv2's
            Technique 4 for T; with T = 10 the best annealed sampler of
            ``benchmarks/quality.py``, FD 25 against 38 for the recipe's T = 5 after 1,500 steps).
        seed: every random draw derives from it.
        progress: show the training progress bar; plots: draw the toy figure and the loss curve
            (needs matplotlib).
        log: where the three progress lines and the summary go.
    """
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    lines = [
        "ncsn demo: the paper's toy Fig. 3 and a small NCSN trained on the embedded 8x8 digits"
    ]
    lines.append("")

    log("[1/3] toy mixture with exact scores (Fig. 3)")
    lines += toy_figure(output, seed=seed, plots=plots)

    log(f"[2/3] training a RefineNet (ngf {ngf}) on the 8x8 digits for {steps} steps")
    run = output / "run"
    train_x, _ = ncsn.data.load_digits("train")
    recipe = ncsn.presets.recipe(train_x, steps_per_level=steps_per_level, steps=steps)
    step_size = 2.0 * recipe.step_size if step_size is None else step_size
    trainer = train_digits(
        run,
        train_x,
        recipe,
        steps=steps,
        batch_size=batch_size,
        ngf=ngf,
        steps_per_level=steps_per_level,
        step_size=step_size,
        seed=seed,
        progress=progress,
    )
    model = trainer.ema_model().eval()
    sigmas = recipe.sigmas

    log("[3/3] sampling with annealed Langevin dynamics and inpainting")
    sampler = ncsn.samplers.AnnealedLangevin(sigmas, step_size, steps_per_level, denoise=True)
    gen = torch.Generator().manual_seed((seed + 1) % 2**64)
    x0 = ncsn.samplers.uniform_init((NUM_SAMPLES, 1, 8, 8), generator=gen)
    x = sampler(model, x0, generator=gen)
    ncsn.viz.save_image_grid(x[:GRID].clamp(0, 1), output / "samples.png", nrow=8, scale=8)
    test_x, _ = ncsn.data.load_digits("test")
    _inpainting_grid(sampler, model, test_x[:8], output / "inpainting.png", generator=gen)

    records = [
        json.loads(line)
        for line in (run / "metrics.jsonl").read_text().splitlines()
        if line.strip()
    ]
    if plots and records:
        _loss_curve(records, output / "loss_curve.png")

    evaluator = ncsn.metrics.digits_evaluator(seed=0)
    reference = evaluator.features(test_x)
    fd = ncsn.metrics.frechet_distance(evaluator.features(x), reference)
    noise = torch.rand(NUM_SAMPLES, 1, 8, 8, generator=gen)
    fd_noise = ncsn.metrics.frechet_distance(evaluator.features(noise), reference)
    # The Fréchet distance of a finite set carries a small-sample bias: as many real training
    # digits give the scale (the floor; 64 would leave the 64-feature covariance rank-deficient
    # and the floor varied from 20 to 52 between draws).
    real = train_x[torch.randperm(len(train_x), generator=gen)[:NUM_SAMPLES]]
    fd_real = ncsn.metrics.frechet_distance(evaluator.features(real), reference)
    score = ncsn.metrics.inception_score(evaluator.probabilities(x), splits=1).mean
    parameters = sum(p.numel() for p in model.parameters())
    lines += [
        f"NCSN on the digits: RefineNet ngf {ngf}, {parameters:,} parameters,",
        f"  {trainer.step} steps of batch {batch_size}"
        + (f", final loss {records[-1]['loss']:.3f}" if records else ""),
        f"  NCSNv2's recipe: sigma {float(sigmas[0]):.2f} -> {float(sigmas[-1]):g}, "
        f"L={len(sigmas)}, EMA {recipe.ema_rate:g}",
        f"  annealed Langevin: T={steps_per_level}, eps={step_size:.3g}, final denoising step",
        f"  Frechet distance of {NUM_SAMPLES} images to the held-out digits (digits classifier "
        "features):",
        f"    samples {fd:.1f}   {NUM_SAMPLES} real training digits {fd_real:.1f} (the floor)   "
        f"uniform noise {fd_noise:.1f}",
        f"  classifier score of {NUM_SAMPLES} samples: {score:.2f} (10 = all classes, confident)",
        "",
        "files: "
        + ", ".join(
            sorted(p.name for p in output.iterdir() if p.is_file() and p.name != "summary.txt")
        )
        + ", run/ (checkpoints, metrics.jsonl)",
        f"total time {time.perf_counter() - start:.0f} s",
    ]
    if not plots:
        lines.append("plots were skipped: install matplotlib with  pip install 'ncsn[examples]'")
    (output / "summary.txt").write_text("\n".join(lines) + "\n")
    log("\n".join(lines))
    return {
        "frechet_distance": fd,
        "real_floor": fd_real,
        "uniform_noise": fd_noise,
        "classifier_score": score,
        "steps": trainer.step,
        "seconds": time.perf_counter() - start,
    }


def _inpainting_grid(
    sampler: ncsn.Sampler,
    model: ncsn.ScoreModel,
    images: Tensor,
    path: Path,
    *,
    generator: torch.Generator,
) -> None:
    """One row per image: the visible left half, four completions of the right half, the truth."""
    repeated = images.repeat_interleave(4, dim=0)
    known = ncsn.samplers.inpainting_mask("right_half", repeated.shape)
    completed = ncsn.samplers.inpaint(sampler, model, repeated, known, generator=generator)
    completed = torch.where(known, repeated, completed.clamp(0, 1))
    rows = [
        torch.cat(
            [
                torch.where(known[4 * i : 4 * i + 1], repeated[4 * i : 4 * i + 1], 0.5),
                completed[4 * i : 4 * i + 4],
                images[i : i + 1],
            ]
        )
        for i in range(len(images))
    ]
    ncsn.viz.save_image_grid(torch.cat(rows), path, nrow=6, scale=8)


def _loss_curve(records: list[dict[str, Any]], path: Path) -> None:
    fig = ncsn.viz.require_matplotlib()(figsize=(5, 3.5))
    ax = fig.subplots()
    ax.plot([r["step"] for r in records], [r["loss"] for r in records])
    ax.set_xlabel("step")
    ax.set_ylabel("DSM loss (σ² weighted)")
    ax.set_title("training loss")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="outputs/demo")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--ngf", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(args.output, steps=args.steps, batch_size=args.batch_size, ngf=args.ngf, seed=args.seed)
