"""Restoration of the embedded 8×8 test digits: every posterior sampler of ``ncsn.inverse`` against
the simple baselines, per task.

Tasks (σ_y in [0, 1] pixel units): super-resolution ×2 (average pooling, σ_y = 0.05), deblurring
(a 3×3 Gaussian kernel of σ = 1 px, circular, σ_y = 0.05), compressed sensing (16 Gaussian
measurements of 64 pixels, σ_y = 0.05), denoising (σ_y = 0.2) and inpainting (the right half
missing, σ_y = 0.05). Colourisation needs colour images: the digits are grey.

Samplers on the model's own σ grid: PosteriorLangevin and SNIPS (T steps per level, the run's
Technique-4 ε for T, then for PosteriorLangevin the denoising step), DDRM (η = 0.85, η_b = 1) and
DPS (ζ = 1), one call per level. Baselines: Aᵀy, the pseudo-inverse A⁺y (from the SVD; none for
operators without one), and bicubic upsampling for super-resolution.

Per task × sampler: PSNR and SSIM against the ground truth, the consistency ‖A·x̂ − y‖ (the noise
alone has norm about σ_y·√M), the fraction the digits classifier (``digits_evaluator``) assigns to
the true label, and the model calls. Writes ``inverse.json``, ``inverse.md`` and one grid per task
(rows: truth, Aᵀy, each sampler) to ``--output`` (default ``benchmarks/results``).

The model: ``--model PATH`` (a run folder or checkpoint, loaded with ``ncsn.load``); else
``ncsn.pretrained("digits")`` where the library has it; else one trained here by the default
recipe (``ncsn train --data digits``, ``--train-steps`` steps at batch 128, 8,000 by default:
about 20 minutes on two CPU cores) and cached in ``--cache`` (default
``benchmarks/results/inverse_run``, ignored by git).

    python benchmarks/inverse.py --threads 2                      # the table in benchmarks/results
    python benchmarks/inverse.py --model runs/digits --num-images 64
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

import ncsn
import ncsn.cli
from ncsn import inverse

RESULTS = Path(__file__).resolve().parent / "results"
SAMPLERS = ("posterior_langevin", "snips", "ddrm", "dps")


def tasks(generator: torch.Generator) -> dict[str, tuple[inverse.LinearOperator, float]]:
    """The five tasks on 8×8 digits: (operator, σ_y)."""
    shape = (1, 8, 8)
    return {
        "super-resolution x2": (inverse.Downsample(shape, 2), 0.05),
        "deblur": (inverse.Blur(shape, inverse.gaussian_kernel(3, 1.0)), 0.05),
        "compressed-sensing": (inverse.GaussianProjection(shape, 16, generator=generator), 0.05),
        "denoise": (inverse.Identity(shape), 0.2),
        "inpaint": (inverse.Mask(ncsn.samplers.inpainting_mask("right_half", shape)), 0.05),
    }


def get_model(
    model: str | None, *, ema: bool, train_steps: int, cache: Path
) -> tuple[ncsn.ScoreModel, Tensor, str]:
    """(network, σ grid, description)."""
    if model is None:
        pretrained = getattr(ncsn, "pretrained", None)
        try:
            loaded = None if pretrained is None else pretrained("digits")
        except FileNotFoundError:  # a checkout whose pretrained folder is not written yet
            loaded = None
        if loaded is not None and loaded.sigmas is not None:
            return loaded.model, loaded.sigmas, 'ncsn.pretrained("digits")'
        if ncsn.training.latest_checkpoint(cache) is None or _step(cache) < train_steps:
            print(f"== training the default recipe on the digits to {train_steps} steps in {cache}")
            args = ["train", "--data", "digits", "--output", str(cache), "--quiet"]
            args += ["--steps", str(train_steps), "--batch-size", "128"]
            if ncsn.training.latest_checkpoint(cache) is not None:
                args.append("--resume")
            if ncsn.cli.main(args) != 0:
                raise SystemExit("training failed")
        model = str(cache)
    loaded = ncsn.load(model, ema=ema)
    if loaded.sigmas is None:
        raise SystemExit(f"{model}: the model records no σ grid")
    weights = "EMA" if ema else "raw"
    return loaded.model, loaded.sigmas, f"{model} (step {loaded.step}, {weights} weights)"


def _step(cache: Path) -> int:
    checkpoint = ncsn.training.latest_checkpoint(cache)
    return -1 if checkpoint is None else int(checkpoint.stem.rsplit("-", 1)[-1])


def build(name: str, sigmas: Tensor, m: inverse.Measurement, step_size: float, steps: int) -> Any:
    if name == "posterior_langevin":
        return inverse.PosteriorLangevin(sigmas, step_size, steps, measurement=m, denoise=True)
    if name == "snips":
        return inverse.SNIPS(sigmas, step_size, steps, measurement=m)
    if name == "ddrm":
        return inverse.DDRM(sigmas, measurement=m)
    return inverse.DPS(sigmas, measurement=m)


def baselines(m: inverse.Measurement, task: str) -> dict[str, Tensor]:
    """Aᵀy, the pseudo-inverse where there is an SVD, bicubic upsampling for super-resolution."""
    out = {"A^T y": m.operator.adjoint(m.y)}
    svd = inverse.operator_svd(m.operator)
    if svd is not None:
        s = svd.singular_values.to(m.y)
        coords = torch.where(s > 0, svd.u_t(m.y) / torch.where(s > 0, s, 1.0), 0.0)
        out["pseudo-inverse"] = svd.v(coords)
    if task.startswith("super-resolution"):
        out["bicubic"] = F.interpolate(m.y, scale_factor=2, mode="bicubic", align_corners=False)
    return out


def main(
    *,
    model: str | None = None,
    ema: bool = True,
    train_steps: int = 8000,
    cache: Path = RESULTS / "inverse_run",
    num_images: int = 297,
    steps_per_level: int = 5,
    samplers: tuple[str, ...] = SAMPLERS,
    classifier_epochs: int = 30,
    seed: int = 0,
    output: Path = RESULTS,
) -> dict[str, Any]:
    """Run the benchmark; return (and write) the table."""
    net, sigmas, description = get_model(model, ema=ema, train_steps=train_steps, cache=cache)
    step_size = ncsn.ncsnv2_step_size(sigmas, steps_per_level)
    images, labels = ncsn.data.load_digits("test")
    images, labels = images[:num_images], labels[:num_images]
    evaluator = ncsn.metrics.digits_evaluator(seed=seed, epochs=classifier_epochs)
    output.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    result = {
        "model": description,
        "num_images": num_images,
        "steps_per_level": steps_per_level,
        "step_size": step_size,
        "classifier_accuracy_on_truth": evaluator.accuracy(images, labels),
        "rows": rows,
    }
    for task, (op, noise_std) in tasks(torch.Generator().manual_seed(seed)).items():
        g = torch.Generator().manual_seed(seed)
        m = inverse.measure(op, images, noise_std, generator=g)
        results: dict[str, tuple[Tensor, int]] = {
            name: (x, 0) for name, x in baselines(m, task).items()
        }
        for name in samplers:
            if name in ("snips", "ddrm") and inverse.operator_svd(op) is None:
                continue
            sampler = build(name, sigmas, m, step_size, steps_per_level)
            x = sampler(net, sampler.start(generator=g), generator=g)
            results[name] = (x, sampler.num_model_calls)
        for name, (x, calls) in results.items():
            x = x.clamp(0.0, 1.0)
            rows.append(
                {
                    "task": task,
                    "sampler": name,
                    "model_calls": calls,
                    "psnr": float(inverse.psnr(x, images).mean()),
                    "ssim": float(inverse.ssim(x, images).mean()),
                    "consistency": float(inverse.consistency(x, m).mean()),
                    "noise_norm": noise_std * math.sqrt(math.prod(op.out_shape)),
                    "accuracy": evaluator.accuracy(x, labels),
                }
            )
            print(_line(rows[-1]), flush=True)
        grid = [images[:8], *(results[name][0][:8].clamp(0, 1) for name in results)]
        ncsn.viz.save_image_grid(
            torch.cat(grid), output / f"inverse_{_slug(task)}.png", nrow=8, scale=4
        )
        # Written after every task: an interrupted run keeps the tasks it finished.
        (output / "inverse.json").write_text(json.dumps(result, indent=1) + "\n")
        (output / "inverse.md").write_text(_table(result))
    return result


def _slug(task: str) -> str:
    return task.split()[0].replace("-", "_")


def _line(row: dict[str, Any]) -> str:
    return (
        f"{row['task']:22s} {row['sampler']:20s} calls {row['model_calls']:4d}  PSNR "
        f"{row['psnr']:6.2f}  SSIM {row['ssim']:.3f}  ‖Ax−y‖ {row['consistency']:.3f}  "
        f"acc {row['accuracy']:.3f}"
    )


def _table(result: dict[str, Any]) -> str:
    best: dict[str, str] = {}
    by_task: dict[str, list[dict[str, Any]]] = {}
    for row in result["rows"]:
        by_task.setdefault(row["task"], []).append(row)
    for task, task_rows in by_task.items():
        samplers = [r for r in task_rows if r["model_calls"]]
        if samplers:
            best[task] = max(samplers, key=lambda r: r["psnr"])["sampler"]
    lines = [
        f"Model: {result['model']}; {result['num_images']} test digits; PosteriorLangevin and "
        f"SNIPS with T = {result['steps_per_level']} steps per level, ε = "
        f"{result['step_size']:.3g}. The classifier labels "
        f"{result['classifier_accuracy_on_truth']:.3f} of the true digits correctly. ‖A·x̂ − y‖: "
        "the noise alone has norm σ_y·√M.",
        "",
        "| task | method | model calls | PSNR (dB) | SSIM | ‖A·x̂ − y‖ (noise) | classified as truth |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in result["rows"]:
        calls = row["model_calls"] or "–"
        name = (
            f"**{row['sampler']}**" if best.get(row["task"]) == row["sampler"] else row["sampler"]
        )
        lines.append(
            f"| {row['task']} | {name} | {calls} | {row['psnr']:.2f} | {row['ssim']:.3f} | "
            f"{row['consistency']:.3f} ({row['noise_norm']:.3f}) | {row['accuracy']:.3f} |"
        )
    lines += [
        "",
        "Best sampler per task (PSNR): " + "; ".join(f"{t}: {s}" for t, s in best.items()),
    ]
    return "\n".join(lines) + "\n"


def _parse() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a run folder or checkpoint (default: see above)")
    parser.add_argument("--no-ema", dest="ema", action="store_false", help="the raw weights")
    parser.add_argument("--train-steps", type=int, default=8000)
    parser.add_argument("--cache", type=Path, default=RESULTS / "inverse_run")
    parser.add_argument("--num-images", type=int, default=297)
    parser.add_argument("--steps-per-level", type=int, default=5)
    parser.add_argument("--samplers", nargs="+", default=list(SAMPLERS), choices=SAMPLERS)
    parser.add_argument("--classifier-epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--threads", type=int, help="CPU threads for torch")
    args = vars(parser.parse_args())
    threads = args.pop("threads")
    if threads is not None:
        torch.set_num_threads(threads)
    args["samplers"] = tuple(args["samplers"])
    return args


if __name__ == "__main__":
    main(**_parse())
