"""``ncsn demo``: the paper's toy figure and a small NCSN (NCSNv2's recipe) on the embedded digits."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import torch
from torch import Tensor

from ncsn import data as ncsn_data
from ncsn import presets, samplers, toy, training, viz
from ncsn.cli._common import (
    SEED_LIMIT,
    positive_float_arg,
    positive_int_arg,
    say,
    seed_arg,
    writable_folder,
)
from ncsn.cli.train import GREY_LEVELS, ImageTransform
from ncsn.nets.config import model_config
from ncsn.schedules import geometric_sigmas

__all__: list[str] = []  # the command is reached through ncsn.cli.main


# ---------------------------------------------------------------------------------------- demo
def _cmd_demo(args: argparse.Namespace) -> int:
    out = writable_folder(args.output)
    start = time.perf_counter()
    lines = [
        "ncsn demo: the paper's toy Fig. 3 and a small NCSN trained on the embedded 8x8 digits",
        "",
    ]

    # 1. Fig. 3 with exact scores.
    say("[1/3] toy mixture with exact scores (Fig. 3)")
    gmm = toy.paper_mixture()
    exact = gmm.score_model()
    gen = torch.Generator().manual_seed(args.seed)
    x0 = samplers.uniform_init((1280, 2), low=-8, high=8, generator=gen)
    plain = samplers.Langevin(0.0, 0.1, 1000)(exact, x0, generator=gen)
    annealed = samplers.AnnealedLangevin(geometric_sigmas(20.0, 1.0, 10), 0.1, 100)(
        exact, x0, generator=gen
    )

    def weight(x: Tensor) -> float:
        return float(gmm.component_posterior(x)[:, 1].mean())

    plots = plots_available()
    if plots:
        viz.plot_toy_samples(
            [
                ("data", gmm.sample(1280, generator=gen)),
                ("Langevin", plain),
                ("annealed Langevin", annealed),
            ],
            out / "toy_fig3.png",
        )
    lines += [
        "Fig. 3 (1280 chains from U[-8, 8]^2, exact scores): weight of the (5, 5) mode",
        f"  truth 0.800   Langevin {weight(plain):.3f}   annealed Langevin {weight(annealed):.3f}",
        "",
    ]

    # 2. Train a small NCSN on the digits.
    say(f"[2/3] training a RefineNet (ngf {args.ngf}) on the 8x8 digits for {args.steps} steps")
    train_x, _ = ncsn_data.load_digits("train")
    run = out / "run"
    if run.is_dir():  # a rerun starts over: the folder holds only the demo's own run
        for old in training.list_checkpoints(run):
            old.unlink()
        (run / "metrics.jsonl").unlink(missing_ok=True)
    # NCSNv2's recipe from the data (σ₁ = the largest pairwise distance, L from Technique 2,
    # ε from Technique 4), as `ncsn train` uses by default.
    recipe = presets.recipe(train_x, steps_per_level=args.steps_per_level, steps=args.steps)
    sigmas = recipe.sigmas
    step_size = recipe.step_size if args.step_size is None else args.step_size
    setup = presets.from_data(
        train_x,
        ngf=args.ngf,
        steps_per_level=args.steps_per_level,
        generator=torch.Generator().manual_seed(args.seed),
    )
    trainer = training.Trainer(
        setup.model,
        setup.loss,
        train_x,
        batch_size=args.batch_size,
        ema_rate=recipe.ema_rate,
        transform=ImageTransform(flip=False, levels=GREY_LEVELS["digits"]),
        out_dir=run,
        checkpoint_every=max(1, args.steps // 4),
        keep=2,
        log_every=max(1, args.steps // 50),
        progress=not args.quiet,
        config={
            "model": model_config(setup.model),
            "data": {"source": "digits", "shape": [1, 8, 8], "logit_transform": False},
            "sampling": {
                "sampler": "annealed",
                "step_size": step_size,
                "steps_per_level": args.steps_per_level,
                "denoise": True,
            },
        },
        seed=args.seed,
    )
    try:
        summary = trainer.fit(args.steps)
    finally:
        trainer.close()
    model = trainer.ema_model().eval()

    # 3. Sample and inpaint.
    say("[3/3] sampling with annealed Langevin dynamics and inpainting")
    sampler = samplers.AnnealedLangevin(sigmas, step_size, args.steps_per_level, denoise=True)
    gen = torch.Generator().manual_seed((args.seed + 1) % SEED_LIMIT)
    x = sampler(model, samplers.uniform_init((64, 1, 8, 8), generator=gen), generator=gen)
    viz.save_image_grid(x.clamp(0, 1), out / "samples.png", nrow=8, scale=8)
    test_x, _ = ncsn_data.load_digits("test")
    images = test_x[:8].repeat_interleave(4, dim=0)
    known = samplers.inpainting_mask("right_half", images.shape)
    completed = samplers.inpaint(sampler, model, images, known, generator=gen).clamp(0, 1)
    completed = torch.where(known, images, completed)
    rows = [
        torch.cat(
            [
                torch.where(known[4 * i : 4 * i + 1], images[4 * i : 4 * i + 1], 0.5),
                completed[4 * i : 4 * i + 4],
                test_x[i : i + 1],
            ]
        )
        for i in range(8)
    ]
    viz.save_image_grid(torch.cat(rows), out / "inpainting.png", nrow=6, scale=8)

    metrics_file = out / "run" / "metrics.jsonl"
    records = (
        [json.loads(line) for line in metrics_file.read_text().splitlines() if line.strip()]
        if metrics_file.exists()
        else []
    )
    if plots and records:
        fig = viz.require_matplotlib()(figsize=(5, 3.5))
        ax = fig.subplots()
        ax.plot([r["step"] for r in records], [r["loss"] for r in records])
        ax.set_xlabel("step")
        ax.set_ylabel("DSM loss (σ² weighted)")
        ax.set_title("training loss")
        fig.tight_layout()
        fig.savefig(out / "loss_curve.png", dpi=100)
    from ncsn import metrics

    evaluator = metrics.digits_evaluator(seed=0)
    reference = evaluator.features(test_x)
    fd = metrics.frechet_distance(evaluator.features(x), reference)
    fd_noise = metrics.frechet_distance(
        evaluator.features(torch.rand(64, 1, 8, 8, generator=gen)), reference
    )
    # With 64 samples of 64 features the covariance estimate is rank-deficient and the distance
    # carries a large small-sample bias: 64 real training digits give the scale.
    real = train_x[torch.randperm(len(train_x), generator=gen)[:64]]
    fd_real = metrics.frechet_distance(evaluator.features(real), reference)
    score = metrics.inception_score(evaluator.probabilities(x), splits=1)
    lines += [
        f"NCSN on the digits: RefineNet ngf {args.ngf}, {sum(p.numel() for p in model.parameters()):,} parameters,",
        f"  {summary.step} steps of batch {args.batch_size}, final loss {records[-1]['loss']:.3f}"
        if records
        else f"  {summary.step} steps",
        f"  NCSNv2's recipe: sigma {float(sigmas[0]):.2f} -> {float(sigmas[-1]):g}, L={len(sigmas)},"
        f" EMA {recipe.ema_rate:g}",
        f"  annealed Langevin: T={args.steps_per_level}, eps={step_size:.3g}, final denoising step",
        "  Frechet distance of 64 images to the held-out digits (digits classifier features):",
        f"    samples {fd:.1f}   64 real training digits {fd_real:.1f}   uniform noise {fd_noise:.1f}",
        f"  classifier score of 64 samples: {score.mean:.2f} (10 = all classes, confident)",
        "",
        "files: "
        + ", ".join(
            sorted(p.name for p in out.iterdir() if p.is_file() and p.name != "summary.txt")
        )
        + ", run/ (checkpoints, metrics.jsonl)",
        f"total time {time.perf_counter() - start:.0f} s",
    ]
    if not plots:
        lines.append("plots were skipped: install matplotlib with  pip install 'ncsn[examples]'")
    (out / "summary.txt").write_text("\n".join(lines) + "\n")
    say("\n".join(lines))
    return 0


def plots_available() -> bool:
    try:
        viz.require_matplotlib()
    except ImportError:
        say(
            "matplotlib is missing: the plots are skipped (pip install 'ncsn[examples]')",
            file=sys.stderr,
        )
        return False
    return True


def add_parser(sub: Any) -> None:
    """Register ``ncsn demo``."""
    d = sub.add_parser(
        "demo",
        help="the paper's toy figure and a small NCSN on digits (under 10 minutes on 2 CPU cores)",
        description="Reproduce Fig. 3 with exact scores, train a small NCSN on the embedded digits, sample and inpaint.",
    )
    d.add_argument("--output", default="outputs/demo")
    d.add_argument("--steps", type=positive_int_arg, default=1500)
    # batch 64: under 10 minutes on 2 CPU cores even on a slow day (measured 8.4 min, against
    # 12.7 min with batch 128, on a machine running 2.2x slower than usual)
    d.add_argument("--batch-size", type=positive_int_arg, default=64)
    d.add_argument("--ngf", type=positive_int_arg, default=32)
    d.add_argument(
        "--step-size",
        type=positive_float_arg,
        default=None,
        help="Langevin ε (default: NCSNv2's Technique 4 for T)",
    )
    d.add_argument(
        "--steps-per-level", type=positive_int_arg, default=5, help="T (default 5, NCSNv2's)"
    )
    d.add_argument("--seed", type=seed_arg, default=0)
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(run=_cmd_demo)
