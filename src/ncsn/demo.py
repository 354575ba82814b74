"""The ``ncsn demo`` job: the paper's toy Fig. 3 with exact scores, then a small NCSN trained
with NCSNv2's recipe, sampled, scored and asked to inpaint: on the embedded 8×8 digits (the
default: nothing to download), or in a short version on MNIST or Fashion-MNIST (28×28).

Run it as ``ncsn demo`` (``--help`` lists the settings) or ``ncsn.demo.main(...)``; it writes
its figures, ``samples.pt``, ``summary.txt`` and the training run ``run/`` into the output
folder, each as soon as it is done. Everything here is the public library:
:func:`ncsn.presets.prepare` for the run, the :class:`~ncsn.training.Trainer`, a sampler of
:func:`ncsn.presets.build_sampler`, :func:`ncsn.samplers.inpaint` and an evaluator of
:mod:`ncsn.metrics`.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, cast

import torch
from torch import Tensor

import ncsn

__all__ = ["main"]


@dataclasses.dataclass(frozen=True)
class DemoData:
    """The demo on one dataset: its settings, how it samples and scores, and the words its log
    and ``summary.txt`` use. :data:`DATASETS` holds one per dataset; :func:`settings` puts the
    given settings in place of the defaults."""

    data: str
    """The dataset, as :func:`ncsn.data.load` names it."""
    steps: int
    batch_size: int
    ngf: int
    num_samples: int
    """Samples drawn and scored (the grid shows the first 64)."""
    sampler: str
    """``"annealed"`` (annealed Langevin, L·T model calls) or ``"cas"`` (consistent annealed
    sampling, one call per level), as :func:`ncsn.presets.build_sampler` names them."""
    steps_per_level: int | None
    """T of annealed Langevin (``None`` for ``"cas"``, which takes none)."""
    step_size: float | None
    """Annealed Langevin's ε (``None``: the recipe's, twice Technique 4's for T)."""
    evaluator: Callable[[Tensor, Tensor, Tensor, Tensor], ncsn.metrics.ClassifierEvaluator]
    """From the training and test images and labels: the classifier that scores the samples."""
    subset_reference: bool
    """Score against as many test images as samples (``benchmarks/quality.py``) instead of the
    whole test split (``ncsn evaluate``)."""
    channels_last: bool
    """Train and sample in ``channels_last`` (faster on CPUs at 28×28)."""
    title: str
    """What the demo trains on, in its first line."""
    examples: str
    """What one example is called: ``"digits"``, ``"MNIST digits"``."""
    features: str
    """How the evaluator's features are described (``{accuracy}``: its test accuracy)."""
    download: bool = False
    """Fetch the dataset when its files are found nowhere (MNIST and Fashion-MNIST)."""


def _digits_evaluator(*data: Tensor) -> ncsn.metrics.ClassifierEvaluator:
    return ncsn.metrics.digits_evaluator(seed=0)


def _trained_evaluator(
    x: Tensor, labels: Tensor, x_test: Tensor, labels_test: Tensor
) -> ncsn.metrics.ClassifierEvaluator:
    """The classifier of ``benchmarks/quality.py``, so that the numbers are comparable."""
    return ncsn.metrics.classifier_evaluator(
        x, labels, x_test=x_test, labels_test=labels_test, seed=0, epochs=3
    )


def _short_version(data: str, examples: str) -> DemoData:
    """About 10 minutes on 2 CPU cores at 28×28: 400 steps of about 0.76 s, then 256 samples
    by consistent annealed sampling, one model call per level (97 calls of about 6 ms per
    sample; annealed Langevin would make about 1,000)."""
    return DemoData(
        data=data,
        steps=400,
        batch_size=64,
        ngf=16,
        num_samples=256,
        sampler="cas",
        steps_per_level=None,
        step_size=None,
        evaluator=_trained_evaluator,
        subset_reference=True,
        channels_last=True,
        title=f"{examples} (28x28, the short version; benchmarks/quality.py trains longer)",
        examples=examples,
        features="features of a classifier trained on the training images, test accuracy "
        "{accuracy:.3f}, as benchmarks/quality.py",
    )


DATASETS: Mapping[str, DemoData] = MappingProxyType(
    {
        "digits": DemoData(
            data="digits",
            steps=1500,
            batch_size=128,
            ngf=16,
            num_samples=500,
            sampler="annealed",
            steps_per_level=10,
            step_size=None,
            evaluator=_digits_evaluator,
            subset_reference=False,
            channels_last=False,
            title="the embedded 8x8 digits",
            examples="digits",
            features="digits classifier features, as ncsn evaluate",
        ),
        "mnist": _short_version("mnist", "MNIST digits"),
        "fashion-mnist": _short_version("fashion-mnist", "Fashion-MNIST images"),
    }
)
"""The demo's defaults per dataset: the embedded digits (about 4 minutes on 2 CPU cores, nothing
to download), and the short versions on MNIST and Fashion-MNIST (5 to 8 minutes measured on 2
cores)."""

_NETWORKS = {
    "refinenet": "RefineNet",
    "scaled": "1/sigma-scaled RefineNet",
    "precond": "preconditioned RefineNet",
}
"""How the demo names the network :func:`ncsn.presets.default_model` picks: the σ-conditioned
RefineNet on the 8×8 digits, the unconditional one under Karras et al.'s preconditioning at
28×28 (and NCSNv2's 1/σ-scaled one where asked)."""

_Sampler = ncsn.samplers.AnnealedLangevin | ncsn.samplers.ConsistentAnnealedSampling
_SAMPLER_NAMES = {"annealed": "annealed Langevin dynamics", "cas": "consistent annealed sampling"}


def settings(
    data: str = "digits",
    *,
    steps: int | None = None,
    batch_size: int | None = None,
    ngf: int | None = None,
    num_samples: int | None = None,
    steps_per_level: int | None = None,
    step_size: float | None = None,
    download: bool = False,
) -> DemoData:
    """The demo's settings on ``data``: its :data:`DATASETS` entry with the settings given (not
    ``None``) in place of its defaults; :func:`main` takes the same arguments.

    Raises:
        ValueError: an unknown ``data``; fewer than 2 samples (the Fréchet distance needs a
            covariance); ``steps_per_level`` or ``step_size`` for a dataset sampled with
            consistent annealed sampling, which takes neither; ``download`` for the embedded
            digits.

    Example:
        >>> ncsn.demo.settings("mnist").sampler, ncsn.demo.settings("mnist", steps=100).steps
        ('cas', 100)
    """
    if data not in DATASETS:
        raise ValueError(f"data must be one of {list(DATASETS)}; got data={data!r}")
    if num_samples is not None and num_samples < 2:
        raise ValueError(f"num_samples must be >= 2 for a Fréchet distance; got {num_samples=}")
    spec = DATASETS[data]
    langevin = {"steps_per_level": steps_per_level, "step_size": step_size}
    given = [f"{name}={value}" for name, value in langevin.items() if value is not None]
    if given and spec.sampler != "annealed":
        raise ValueError(
            f"{', '.join(given)}: data={data!r} is sampled with "
            f"{_SAMPLER_NAMES[spec.sampler]}, which takes no Langevin steps"
        )
    if download and data not in ncsn.data.MIRRORS:
        raise ValueError(f"download=True applies to {list(ncsn.data.MIRRORS)}; got {data=}")
    chosen: dict[str, Any] = {"steps": steps, "batch_size": batch_size, "ngf": ngf}
    chosen |= {"num_samples": num_samples, **langevin, "download": download}
    return dataclasses.replace(spec, **{k: v for k, v in chosen.items() if v is not None})


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


def train_run(
    folder: Path, train_x: Tensor, run: ncsn.presets.Run, *, steps: int, progress: bool
) -> ncsn.training.Trainer:
    """Train the run's RefineNet on the training images; the run records the sampler for
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
    data: str = "digits",
    steps: int | None = None,
    batch_size: int | None = None,
    ngf: int | None = None,
    num_samples: int | None = None,
    steps_per_level: int | None = None,
    step_size: float | None = None,
    download: bool = False,
    seed: int = 0,
    progress: bool = True,
    plots: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the demo into ``output`` and return its measured numbers (also in ``summary.txt``).

    On the digits (the default) it samples with annealed Langevin dynamics and scores with the
    digits evaluator against the held-out digits, as ``ncsn evaluate`` does. On MNIST and
    Fashion-MNIST it is a short version (:data:`DATASETS`: 400 steps, 256 samples, about 10
    minutes on 2 CPU cores): it samples and inpaints with consistent annealed sampling (one
    model call per level) and scores with the classifier of ``benchmarks/quality.py``, trained
    on the training split, against as many test images. The Fréchet distance is that of the
    evaluator's features of the samples clamped to [0, 1], beside the floor of as many training
    images drawn with ``seed``. On Ctrl-C after training, ``summary.txt`` says what was
    finished (the trained run is in ``output/run``) and the interrupt is raised again.

    Args:
        output: the folder for the figures, ``samples.pt``, ``summary.txt`` and the run ``run/``.
        data: ``"digits"`` (embedded), ``"mnist"`` or ``"fashion-mnist"`` (found as
            :func:`ncsn.data.mnist` finds them).
        steps: training steps (``None``, as every setting below: the dataset's default in
            :data:`DATASETS`).
        batch_size: examples per step.
        ngf: the RefineNet's width.
        num_samples: samples drawn and scored.
        steps_per_level: T of annealed Langevin (the digits only).
        step_size: its ε (default: twice NCSNv2's Technique 4 for T, the best annealed sampler
            of ``benchmarks/quality.py``; the digits only).
        download: fetch MNIST or Fashion-MNIST when they are found nowhere.
        seed: every random draw derives from it.
        progress: show the training and sampling progress bars.
        plots: draw the toy figure and the loss curve (needs matplotlib).
        log: where the progress lines and the summary go.

    Returns:
        ``frechet_distance``, ``real_floor``, ``uniform_noise``, ``classifier_score``, ``steps``
        and ``seconds``.

    Raises:
        DatasetNotFoundError: MNIST or Fashion-MNIST found nowhere, without ``download``; the
            message lists the folders searched and the two ways to get the files.
        ValueError: a setting :func:`settings` refuses (checked before any work).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as out:   # a quick look; the defaults take minutes
        ...     numbers = ncsn.demo.main(out, steps=2, batch_size=8, ngf=4, steps_per_level=1,
        ...                              progress=False, plots=False, log=lambda line: None)
        >>> numbers["steps"]
        2
    """
    spec = settings(
        data,
        steps=steps,
        batch_size=batch_size,
        ngf=ngf,
        num_samples=num_samples,
        steps_per_level=steps_per_level,
        step_size=step_size,
        download=download,
    )
    train, test = _load(spec, "train"), _load(spec, "test")
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    lines = [f"ncsn demo: the paper's toy Fig. 3 and a small NCSN trained on {spec.title}", ""]

    log("[1/4] toy mixture with exact scores (Fig. 3)")
    lines += toy_figure(output, seed=seed, plots=plots)

    size = "x".join(str(n) for n in train[0].shape[2:])
    run, sampler = _prepare(train[0], spec, seed)
    network = _NETWORKS[run.settings.model or "refinenet"]
    log(
        f"[2/4] training a {network} (ngf {spec.ngf}) on the {size} {spec.examples} "
        f"for {spec.steps} steps"
    )
    trainer = train_run(output / "run", train[0], run, steps=spec.steps, progress=progress)
    model = trainer.ema_model().eval()
    lines_of_log = (output / "run" / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines_of_log if line.strip()]
    if plots and records:
        _loss_curve(records, output / "loss_curve.png")
    parameters = sum(p.numel() for p in model.parameters())
    sigmas = run.schedule.sigmas
    lines += [
        f"NCSN on the {spec.examples}: {network} ngf {spec.ngf}, {parameters:,} parameters,",
        f"  {trainer.step} steps of batch {spec.batch_size}"
        + (f", final loss {records[-1]['loss']:.3f}" if records else ""),
        f"  NCSNv2's recipe: sigma {float(sigmas[0]):.2f} -> {float(sigmas[-1]):g}, "
        f"L={len(sigmas)}, EMA {run.settings.ema:g}",
        f"  {_describe(sampler)}",
    ]
    numbers: dict[str, Any] = {"steps": trainer.step}
    try:
        lines += _sample_and_score(
            output, model, sampler, spec, train, test, seed, progress, log, numbers
        )
    except KeyboardInterrupt:
        lines += ["", f"interrupted before the end: the trained model is in {output / 'run'}"]
        _write_summary(output, lines, start, plots)
        raise
    _write_summary(output, lines, start, plots)
    log("\n".join(lines))
    return numbers | {"seconds": time.perf_counter() - start}


def _load(spec: DemoData, split: str) -> tuple[Tensor, Tensor]:
    """A split's images and labels; a dataset found nowhere is named with the demo's remedies
    (it takes no folder of its own)."""
    data = spec.data
    try:
        x, labels = ncsn.data.load(data, split=split, download=spec.download)
    except ncsn.data.DatasetNotFoundError as err:
        remedy = (
            f"put the four files in one of those folders, or in FOLDER/{data} with NCSN_DATA=FOLDER"
        )
        message = str(err).replace(
            "put the four files in a folder and pass it as root (ncsn: --data FOLDER)", remedy
        )
        raise ncsn.data.DatasetNotFoundError(message) from err
    assert labels is not None  # the named datasets have labels
    return x, labels


def _prepare(train_x: Tensor, spec: DemoData, seed: int) -> tuple[ncsn.presets.Run, _Sampler]:
    """The run of NCSNv2's recipe, recording the demo's sampler (for ``ncsn sample RUN``), and
    that sampler."""
    settings = ncsn.presets.Settings(
        data=spec.data, ngf=spec.ngf, batch_size=spec.batch_size, seed=seed
    )
    if spec.steps_per_level is not None:  # else the recipe's T, recorded for annealed Langevin
        settings = dataclasses.replace(settings, steps_per_level=spec.steps_per_level)
    run = ncsn.presets.prepare(train_x, settings, steps=spec.steps)
    if spec.channels_last:
        run.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    recorded = run.config["sampling"]
    recorded["sampler"] = spec.sampler
    if spec.step_size is not None:  # instead of the recipe's: twice Technique 4's ε for T
        recorded["step_size"] = spec.step_size
        del recorded["step_size_rule"]
    takes = ncsn.presets.SAMPLER_OPTIONS[spec.sampler]
    options = {k: v for k, v in recorded.items() if k in takes}
    sampler = ncsn.presets.build_sampler(spec.sampler, run.schedule.sigmas, **options)
    return run, cast(_Sampler, sampler)  # "annealed" or "cas" on L > 1 levels


def _describe(sampler: _Sampler) -> str:
    if isinstance(sampler, ncsn.samplers.AnnealedLangevin):
        return (
            f"annealed Langevin: T={sampler.steps_per_level}, eps={sampler.step_size:.3g}, "
            "final denoising step"
        )
    return (
        f"consistent annealed sampling: eta={sampler.eta:.3f}, one model call per level "
        f"({sampler.num_model_calls} with the final denoising step)"
    )


def _start(sampler: _Sampler, shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
    """U[0, 1] for annealed Langevin (the paper); N(0, σ₁²I) for consistent annealed sampling,
    which starts at p_σ₁."""
    if isinstance(sampler, ncsn.samplers.AnnealedLangevin):
        return ncsn.samplers.uniform_init(shape, generator=generator)
    return ncsn.samplers.gaussian_init(shape, float(sampler.sigmas[0]), generator=generator)


def _subset(x: Tensor, n: int, seed: int) -> Tensor:
    """``n`` of the examples drawn with ``seed``."""
    pick = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    return x[pick[:n]]


def _sample_and_score(
    output: Path,
    model: torch.nn.Module,
    sampler: _Sampler,
    spec: DemoData,
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    seed: int,
    progress: bool,
    log: Callable[[str], None],
    numbers: dict[str, Any],
) -> list[str]:
    """Sample (saved at once), inpaint and score; the summary's lines, the numbers in ``numbers``."""
    n, calls, event = spec.num_samples, sampler.num_model_calls, tuple(train[0].shape[1:])
    name = _SAMPLER_NAMES[spec.sampler]
    log(f"[3/4] sampling {n} {spec.examples} with {name} ({calls} model calls)")
    gen = torch.Generator().manual_seed((seed + 1) % 2**64)
    x0 = _start(sampler, (n, *event), gen)
    if spec.channels_last:
        x0 = x0.contiguous(memory_format=torch.channels_last)
    x = sampler(_counted(model, calls, progress), x0, generator=gen).contiguous()
    torch.save(x, output / "samples.pt")
    scale = max(1, 64 // event[-1])
    ncsn.viz.save_image_grid(x[:64].clamp(0, 1), output / "samples.png", nrow=8, scale=scale)
    log(f"[4/4] inpainting the right half of 8 held-out {spec.examples}, and scoring the samples")
    _inpainting_grid(sampler, model, test[0][:8], output / "inpainting.png", generator=gen)

    evaluator = spec.evaluator(*train, *test)
    reference = _subset(test[0], n, seed) if spec.subset_reference else test[0]
    reference_features = evaluator.features(reference)

    def distance(images: Tensor) -> float:
        features = evaluator.features(images.clamp(0, 1))
        return ncsn.metrics.frechet_distance(features, reference_features)

    noise = torch.rand(n, *event, generator=gen)
    numbers["frechet_distance"] = fd = distance(x)
    numbers["real_floor"] = floor = distance(_subset(train[0], n, seed))
    numbers["uniform_noise"] = fd_noise = distance(noise)
    probabilities = evaluator.probabilities(x.clamp(0, 1))
    numbers["classifier_score"] = score = ncsn.metrics.inception_score(probabilities, splits=1).mean
    held_out = f"{len(reference)} held-out" if spec.subset_reference else "the held-out"
    features = spec.features.format(accuracy=evaluator.test_accuracy)
    return [
        f"  Frechet distance of {n} images to {held_out} {spec.examples} ({features}):",
        f"    samples {fd:.1f}   {n} real training {spec.examples} {floor:.1f} (the floor)   "
        f"uniform noise {fd_noise:.1f}",
        f"  classifier score of {n} samples: {score:.2f} (10 = all classes, confident)",
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
    sampler: _Sampler,
    model: ncsn.ScoreModel,
    images: Tensor,
    path: Path,
    *,
    generator: torch.Generator,
) -> None:
    """One row per image: the visible left half, four completions of the right half, the truth."""
    repeated = images.repeat_interleave(4, dim=0)
    known = ncsn.samplers.inpainting_mask("right_half", repeated.shape)
    init = _start(sampler, tuple(repeated.shape), generator)
    completed = ncsn.samplers.inpaint(
        sampler, model, repeated, known, init=init, generator=generator
    )
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
    ncsn.viz.save_image_grid(torch.cat(rows), path, nrow=6, scale=max(1, 64 // images.shape[-1]))


def _loss_curve(records: list[dict[str, Any]], path: Path) -> None:
    fig = ncsn.viz.require_matplotlib()(figsize=(5, 3.5))
    ax = fig.subplots()
    ax.plot([r["step"] for r in records], [r["loss"] for r in records])
    ax.set_xlabel("step")
    ax.set_ylabel("DSM loss (σ² weighted)")
    ax.set_title("training loss")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
