"""The ``ncsn demo`` job: the paper's toy Fig. 3 with exact scores, then a small NCSN trained on
the embedded 8×8 digits with NCSNv2's recipe, sampled, scored and asked to inpaint.

Run it as ``ncsn demo`` (``--help`` lists the settings) or ``ncsn.demo.main(...)``; it writes
its figures, ``samples.pt``, ``summary.txt`` and the training run ``run/`` into the output
folder, each as soon as it is done. Everything here is the public library:
:func:`ncsn.presets.prepare` for the run, the :class:`~ncsn.training.Trainer`, a sampler,
:func:`ncsn.samplers.inpaint` and the digits evaluator of :mod:`ncsn.metrics`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

import ncsn

__all__ = ["main"]

NUM_SAMPLES = 500  # scored (as in benchmarks/quality.py); the grid shows the first 64


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
    folder: Path, train_x: Tensor, run: ncsn.presets.Run, *, steps: int, progress: bool
) -> ncsn.training.Trainer:
    """Train the run's RefineNet on the training digits; the run records the sampler for
    ``ncsn sample RUN``. A rerun starts over: the folder holds only the demo's own run."""
    if folder.is_dir():
        for old in ncsn.training.list_checkpoints(folder):
            old.unlink()
        (folder / "metrics.jsonl").unlink(missing_ok=True)
    s = run.settings
    trainer = ncsn.training.Trainer(
        run.model,
        run.loss,
        train_x,
        batch_size=s.batch_size,
        ema_rate=s.ema,
        transform=run.transform,
        output=ncsn.training.Output(
            folder,
            checkpoint_every=max(1, steps // 4),
            keep=2,
            log_every=max(1, steps // 50),
            progress=progress,
        ),
        config=run.config,
        seed=s.seed,
    )
    try:
        trainer.fit(steps)
    except KeyboardInterrupt:
        trainer.save()  # the steps trained so far, resumable with `ncsn train --resume`
        raise
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

    The Fréchet distance is ``ncsn evaluate``'s: the digits evaluator's features of the samples
    clamped to [0, 1] against the held-out digits, beside the floor of as many training digits
    drawn with the same ``seed``. On Ctrl-C after training, ``summary.txt`` says what was
    finished (the trained run is in ``output/run``) and the interrupt is raised again.

    Args:
        output: the folder for the figures, ``samples.pt``, ``summary.txt`` and the run ``run/``.
        steps: training steps.
        batch_size: examples per step.
        ngf: the RefineNet's width.
        steps_per_level: T of annealed Langevin.
        step_size: its ε (default: twice NCSNv2's Technique 4 for T, the best annealed sampler of
            ``benchmarks/quality.py``).
        seed: every random draw derives from it.
        progress: show the training and sampling progress bars.
        plots: draw the toy figure and the loss curve (needs matplotlib).
        log: where the progress lines and the summary go.

    Returns:
        ``frechet_distance``, ``real_floor``, ``uniform_noise``, ``classifier_score``, ``steps``
        and ``seconds``.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as out:   # a quick look; the defaults take minutes
        ...     numbers = ncsn.demo.main(out, steps=2, batch_size=8, ngf=4, steps_per_level=1,
        ...                              progress=False, plots=False, log=lambda line: None)
        >>> numbers["steps"]
        2
    """
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    lines = [
        "ncsn demo: the paper's toy Fig. 3 and a small NCSN trained on the embedded 8x8 digits"
    ]
    lines.append("")

    log("[1/4] toy mixture with exact scores (Fig. 3)")
    lines += toy_figure(output, seed=seed, plots=plots)

    log(f"[2/4] training a RefineNet (ngf {ngf}) on the 8x8 digits for {steps} steps")
    train_x, _ = ncsn.data.load_digits("train")
    settings = ncsn.presets.Settings(
        data="digits", ngf=ngf, batch_size=batch_size, seed=seed, steps_per_level=steps_per_level
    )
    run = ncsn.presets.prepare(train_x, settings, steps=steps)
    sigmas = run.schedule.sigmas
    if step_size is None:  # the recipe's: twice Technique 4's ε for T
        step_size = run.config["sampling"]["step_size"]
    else:  # recorded for `ncsn sample RUN`
        run.config["sampling"]["step_size"] = step_size
        del run.config["sampling"]["step_size_rule"]
    trainer = train_digits(output / "run", train_x, run, steps=steps, progress=progress)
    model = trainer.ema_model().eval()
    lines_of_log = (output / "run" / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines_of_log if line.strip()]
    if plots and records:
        _loss_curve(records, output / "loss_curve.png")
    parameters = sum(p.numel() for p in model.parameters())
    lines += [
        f"NCSN on the digits: RefineNet ngf {ngf}, {parameters:,} parameters,",
        f"  {trainer.step} steps of batch {batch_size}"
        + (f", final loss {records[-1]['loss']:.3f}" if records else ""),
        f"  NCSNv2's recipe: sigma {float(sigmas[0]):.2f} -> {float(sigmas[-1]):g}, "
        f"L={len(sigmas)}, EMA {run.settings.ema:g}",
        f"  annealed Langevin: T={steps_per_level}, eps={step_size:.3g}, final denoising step",
    ]
    numbers: dict[str, Any] = {"steps": trainer.step}
    try:
        sampler = ncsn.samplers.AnnealedLangevin(sigmas, step_size, steps_per_level, denoise=True)
        lines += _sample_and_score(output, model, sampler, seed, progress, log, numbers)
    except KeyboardInterrupt:
        lines += ["", f"interrupted before the end: the trained model is in {output / 'run'}"]
        _write_summary(output, lines, start, plots)
        raise
    _write_summary(output, lines, start, plots)
    log("\n".join(lines))
    return numbers | {"seconds": time.perf_counter() - start}


def _sample_and_score(
    output: Path,
    model: torch.nn.Module,
    sampler: ncsn.samplers.AnnealedLangevin,
    seed: int,
    progress: bool,
    log: Callable[[str], None],
    numbers: dict[str, Any],
) -> list[str]:
    """Sample (saved at once), inpaint and score; the summary's lines, the numbers in ``numbers``."""
    calls = sampler.num_model_calls
    log(
        f"[3/4] sampling {NUM_SAMPLES} digits with annealed Langevin dynamics ({calls} model calls)"
    )
    gen = torch.Generator().manual_seed((seed + 1) % 2**64)
    x0 = ncsn.samplers.uniform_init((NUM_SAMPLES, 1, 8, 8), generator=gen)
    x = sampler(_counted(model, sampler.num_model_calls, progress), x0, generator=gen)
    torch.save(x, output / "samples.pt")
    ncsn.viz.save_image_grid(x[:64].clamp(0, 1), output / "samples.png", nrow=8, scale=8)
    log("[4/4] inpainting the right half of 8 held-out digits, and scoring the samples")
    test_x, _ = ncsn.data.load_digits("test")
    _inpainting_grid(sampler, model, test_x[:8], output / "inpainting.png", generator=gen)

    evaluator = ncsn.metrics.digits_evaluator(seed=0)
    reference = evaluator.features(test_x)

    def distance(images: Tensor) -> float:
        return ncsn.metrics.frechet_distance(evaluator.features(images.clamp(0, 1)), reference)

    train_x, _ = ncsn.data.load_digits("train")
    pick = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(seed))
    noise = torch.rand(NUM_SAMPLES, 1, 8, 8, generator=gen)
    numbers["frechet_distance"] = fd = distance(x)
    numbers["real_floor"] = floor = distance(train_x[pick[:NUM_SAMPLES]])
    numbers["uniform_noise"] = fd_noise = distance(noise)
    probabilities = evaluator.probabilities(x.clamp(0, 1))
    numbers["classifier_score"] = score = ncsn.metrics.inception_score(probabilities, splits=1).mean
    return [
        f"  Frechet distance of {NUM_SAMPLES} images to the held-out digits (digits classifier "
        "features, as ncsn evaluate):",
        f"    samples {fd:.1f}   {NUM_SAMPLES} real training digits {floor:.1f} (the floor)   "
        f"uniform noise {fd_noise:.1f}",
        f"  classifier score of {NUM_SAMPLES} samples: {score:.2f} (10 = all classes, confident)",
    ]


def _write_summary(output: Path, lines: list[str], start: float, plots: bool) -> None:
    files = sorted(p.name for p in output.iterdir() if p.is_file() and p.name != "summary.txt")
    lines += ["", "files: " + ", ".join(files) + ", run/ (checkpoints, metrics.jsonl)"]
    lines.append(f"total time {time.perf_counter() - start:.0f} s")
    if not plots:
        lines.append("plots were skipped: install matplotlib with  pip install 'ncsn[examples]'")
    (output / "summary.txt").write_text("\n".join(lines) + "\n")


def _counted(model: torch.nn.Module, total: int, progress: bool) -> Any:
    """``model``, ticking a progress bar of ``total`` model calls when ``progress``."""
    if not progress:
        return model
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc="sampling", unit="call", mininterval=1.0)

    def counted(x: Tensor, sigma: Tensor) -> Tensor:
        bar.update(1)
        if bar.n >= total:
            bar.close()
        return model(x, sigma)

    return counted


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
