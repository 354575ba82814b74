"""The ``ncsn`` command: ``ncsn train``, ``ncsn sample``, ``ncsn inpaint`` and ``ncsn demo``.

Every subcommand has ``--help``. A bad argument or a missing file prints one line and exits with
status 2, a training run whose loss becomes non-finite prints one line naming the step and exits
with status 1; an interrupted training run (Ctrl-C) saves a checkpoint first, so it can be resumed
with ``--resume``, which rebuilds the run from the settings its checkpoints record.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ncsn import data as ncsn_data
from ncsn import losses, presets, samplers, toy, training, viz
from ncsn.nets.config import build_model, model_config
from ncsn.nets.mlp import ScoreMLP
from ncsn.nets.official import load_official_checkpoint
from ncsn.nets.refinenet import RefineNet, RefineNetBaseline
from ncsn.schedules import Schedule, geometric_sigmas
from ncsn.training.checkpoints import _reason, _state_dict_mismatch

__all__ = ["main"]

EXIT_USAGE = 2
EXIT_FAILURE = 1


class CommandError(Exception):
    """A user error: printed as one line, exit status 2."""

    exit_code = EXIT_USAGE


class RunError(CommandError):
    """A run that failed on its own (e.g. a non-finite loss): printed as one line, exit status 1."""

    exit_code = EXIT_FAILURE


# ---------------------------------------------------------------------------------------- models
def _build_network(
    kind: str, shape: tuple[int, ...], sigmas: Tensor, args: argparse.Namespace
) -> nn.Module:
    gen = torch.Generator().manual_seed(args.seed)
    if kind == "mlp":
        if len(shape) != 1:
            raise CommandError(
                f"--model mlp needs vector data [N, D]; got examples of shape {list(shape)}"
            )
        return ScoreMLP(shape[0], args.hidden, sigmas=sigmas, generator=gen)
    if len(shape) != 3:
        raise CommandError(
            f"--model {kind} needs images [N, C, H, W]; got examples of shape {list(shape)}"
        )
    if shape[1] % 2 or shape[2] % 2:
        raise CommandError(
            f"--model {kind} needs even image height and width; got {shape[1]}x{shape[2]}"
        )
    if kind == "baseline":
        return RefineNetBaseline(shape[0], args.ngf, logit_transform=args.logit, generator=gen)
    return RefineNet(shape[0], args.ngf, sigmas, logit_transform=args.logit, generator=gen)


def _load_model(
    path: str, *, image_size: int | None, use_ema: bool
) -> tuple[nn.Module, dict[str, Any]]:
    """A model from one of our checkpoints or an official one, plus what we know of its data."""
    file = Path(path)
    if not file.exists():
        raise CommandError(f"{path}: no such checkpoint file or folder")
    if file.is_dir():
        found = training.latest_checkpoint(file)
        if found is None:
            raise CommandError(f"{path}: folder holds no checkpoint-*.pt file")
        file = found
    try:
        obj = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load raises UnpicklingError, RuntimeError, EOFError, ...
        raise CommandError(f"{file}: not a readable checkpoint ({_reason(err)})") from err
    if (
        isinstance(obj, dict)
        and "config" in obj
        and isinstance(obj["config"], dict)
        and "model" in obj["config"]
    ):
        checkpoint = training.load_checkpoint(file)
        config = checkpoint["config"]
        try:
            model = build_model(config["model"])
        except (ValueError, TypeError) as err:
            raise CommandError(f"{file}: cannot rebuild its model ({_one_line(err)})") from err
        weights = training.model_weights(checkpoint, ema=use_ema)
        mismatch = _state_dict_mismatch(model, weights)
        if mismatch is not None:
            raise CommandError(
                f"{file}: the weights do not fit its recorded {type(model).__name__}: {mismatch}"
            )
        model.load_state_dict(weights)
        return model, dict(config.get("data", {}))
    net = load_official_checkpoint(file)
    size = image_size or (28 if net.channels == 1 else 32)
    return net, {"shape": [net.channels, size, size], "logit_transform": net.logit_transform}


def _sigmas_of(model: nn.Module) -> Tensor | None:
    inner = getattr(model, "module", model)
    sigmas = getattr(inner, "sigmas", None)
    return sigmas if isinstance(sigmas, Tensor) else None


def _sampler_for(
    model: nn.Module, meta: dict[str, Any], args: argparse.Namespace
) -> samplers.AnnealedLangevin | samplers.Langevin:
    sigmas = _sigmas_of(model)
    if sigmas is None or len(sigmas) == 1:
        sigma = float(meta.get("sigma", sigmas[0] if sigmas is not None else 0.01))
        return samplers.Langevin(sigma, args.step_size, args.num_steps)
    return samplers.AnnealedLangevin(
        sigmas, args.step_size, args.steps_per_level, denoise=args.denoise
    )


def _to_images(x: Tensor, meta: dict[str, Any]) -> Tensor:
    if meta.get("logit_transform"):
        x = ncsn_data.inverse_logit_transform(x)
    return x.clamp(0, 1)


# ---------------------------------------------------------------------------------------- train
# The `ncsn train` options that decide what a run computes. They are recorded in every checkpoint
# (config["train"]); --resume rebuilds the run from them, and refuses an explicit option that
# differs. The bookkeeping options may change on resume (they default to the recorded values);
# --steps, --output, --device and --quiet are never recorded.
_RUN_SETTINGS = (
    "data",
    "split",
    "model",
    "ngf",
    "hidden",
    "loss",
    "projections",
    "power",
    "sigma_max",
    "sigma_min",
    "num_levels",
    "batch_size",
    "lr",
    "ema",
    "grad_clip",
    "eval_every",
    "dequantize",
    "flip",
    "logit",
    "seed",
)
_BOOKKEEPING = ("checkpoint_every", "keep", "log_every")
_FLAGS = {"dequantize": "--no-dequantize", "flip": "--flip", "logit": "--logit"}


def _option(name: str) -> str:
    return _FLAGS.get(name, "--" + name.replace("_", "-"))


def _data_source(text: str) -> str:
    """A built-in name as it is, a path made absolute (so a resumed run finds it from anywhere)."""
    if text == "digits" or text in ncsn_data.TOY_NAMES:
        return text
    return str(Path(text).expanduser().resolve())


def _resolve_kind(args: argparse.Namespace, images: bool) -> str:
    return str(args.model or ("refinenet" if images else "mlp"))


def _resolve_power(args: argparse.Namespace, kind: str) -> float:
    if args.power is not None:
        return float(args.power)
    return 0.0 if kind == "baseline" else 2.0


def _resume_settings(
    args: argparse.Namespace, given: set[str], found: Path
) -> tuple[dict[str, Any], int]:
    """The recorded settings of the run in ``found``, checked against the explicit options."""
    checkpoint = training.load_checkpoint(found)
    recorded = checkpoint.get("config", {}).get("train")
    if not isinstance(recorded, dict) or not all(k in recorded for k in _RUN_SETTINGS):
        raise CommandError(
            f"--resume: {found} records no `ncsn train` settings to rebuild the run from "
            "(written from Python or by an older ncsn); continue it with Trainer.restore"
        )
    changed = []
    for name in _RUN_SETTINGS:
        if name not in given:
            continue
        mine, theirs = getattr(args, name), recorded[name]
        if name == "data":
            mine = _data_source(mine)
        if name == "power" and mine is not None:
            mine = float(mine)
        if mine == theirs:
            continue
        if name in _FLAGS:
            changed.append(f"{_option(name)} (the run was trained without it)")
        else:
            changed.append(f"{_option(name)} {mine} (the run's: {theirs})")
    if changed:
        raise CommandError(
            f"--resume continues {found.parent} with its recorded settings, and these options "
            f"differ: {'; '.join(changed)}. Drop them, or train into another --output"
        )
    step = int(checkpoint["step"])
    if args.steps < step:
        raise CommandError(
            f"--steps {args.steps} is below the step {step} of {found}; with --resume, "
            "--steps is the final step"
        )
    return recorded, step


def _device(text: str | None) -> torch.device:
    """``--device``, checked to exist here (cpu, cuda, cuda:N or mps)."""
    if text is None:
        return torch.device("cpu")
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise CommandError(
            f"--device {text!r} is not a device; expected cpu, cuda, cuda:N or mps"
        ) from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise CommandError(
                f"--device {text}: CUDA is not available (a CPU-only PyTorch build, or no GPU)"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise CommandError(f"--device {text}: this machine has {count} CUDA device(s)")
        return device
    if device.type == "mps":
        if not torch.backends.mps.is_available():
            raise CommandError(f"--device {text}: MPS is not available on this machine")
        return device
    raise CommandError(f"--device {text}: unsupported device type; expected cpu, cuda or mps")


@contextlib.contextmanager
def _user_input() -> Iterator[None]:
    """The library checks the values the user gave: its ValueError/TypeError is a usage error."""
    try:
        yield
    except (ValueError, TypeError) as err:
        raise CommandError(_one_line(err)) from err


def _one_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def _cmd_train(args: argparse.Namespace) -> int:
    given: set[str] = getattr(args, "given", set())
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise CommandError(f"--output {out} is a file, not a folder")
    found = training.latest_checkpoint(out) if out.is_dir() else None
    if args.resume:
        if found is None:
            raise CommandError(f"--resume: {out} holds no checkpoint to resume from")
        recorded, _ = _resume_settings(args, given, found)
        for name in _RUN_SETTINGS:
            setattr(args, name, recorded[name])
        for name in _BOOKKEEPING:
            if name not in given and name in recorded:
                setattr(args, name, recorded[name])
    elif found is not None:
        raise CommandError(
            f"--output {out} already holds {found.name} of an earlier run; add --resume to "
            "continue it, or choose another --output"
        )
    elif args.data is None:
        raise CommandError("--data is required (except with --resume)")
    else:
        args.data = _data_source(args.data)
    device = _device(args.device)

    gen = torch.Generator().manual_seed(args.seed)
    try:
        toy_source = args.data in ncsn_data.TOY_NAMES
        x, _ = ncsn_data.load(args.data, split=args.split, generator=gen if toy_source else None)
    except (FileNotFoundError, ValueError) as err:
        raise CommandError(_one_line(err)) from err
    shape = tuple(x.shape[1:])
    images = len(shape) == 3
    kind = _resolve_kind(args, images)
    power = _resolve_power(args, kind)
    if kind != "baseline" and args.sigma_max <= args.sigma_min:
        raise CommandError(
            f"--sigma-max {args.sigma_max:g} must be larger than --sigma-min {args.sigma_min:g}"
        )
    if args.logit and not (float(x.min()) >= 0.0 and float(x.max()) <= 1.0):
        raise CommandError(
            f"--logit needs data in [0, 1]; {args.data} holds values in "
            f"[{float(x.min()):g}, {float(x.max()):g}]"
        )
    with _user_input():
        if kind == "baseline":
            sigmas = torch.tensor([args.sigma_min])
        else:
            sigmas = geometric_sigmas(args.sigma_max, args.sigma_min, args.num_levels)
        schedule = Schedule(sigmas)
        loss: Any
        if args.loss == "dsm":
            loss = losses.DenoisingScoreMatching(schedule, power=power)
        else:
            loss = losses.SlicedScoreMatching(schedule, power=power, projections=args.projections)
        model = _build_network(kind, shape, sigmas, args)

    transform = None
    if args.logit or (images and (args.dequantize or args.flip)):
        transform = _ImageTransform(
            flip=images and args.flip,
            dequantize=images and args.dequantize,
            logit=args.logit,
            levels=_GREY_LEVELS.get(args.data, 256),
        )
    held_out = None
    if args.eval_every:
        cut = max(1, len(x) // 20)
        x, held_out = x[cut:], x[:cut]
    settings = {name: getattr(args, name) for name in _RUN_SETTINGS + _BOOKKEEPING}
    config = {
        "model": model_config(model),
        "data": {
            "source": str(args.data),
            "shape": list(shape),
            "logit_transform": bool(args.logit),
            "sigma": float(sigmas[-1]),
        },
        "loss": {"kind": args.loss, "power": power},
        "train": settings | {"model": kind, "power": power},
    }
    with _user_input():
        trainer = training.Trainer(
            model,
            loss,
            x,
            batch_size=args.batch_size,
            optimizer=torch.optim.Adam(model.parameters(), lr=args.lr),
            ema_rate=args.ema,
            max_grad_norm=args.grad_clip,
            transform=transform,
            eval_data=held_out,
            eval_every=args.eval_every or 100,
            out_dir=out,
            checkpoint_every=args.checkpoint_every,
            keep=args.keep,
            log_every=args.log_every,
            progress=not args.quiet,
            config=config,
            seed=args.seed,
            device=device,
        )
    try:
        if found is not None:  # --resume
            trainer.restore(found)
            print(f"resumed from {found} at step {trainer.step}")
        try:
            summary = trainer.fit(args.steps)
        except KeyboardInterrupt:
            saved = trainer.save()
            print(
                f"\ninterrupted at step {trainer.step}; checkpoint {saved} (resume with --resume)",
                file=sys.stderr,
            )
            return 130
    except training.NonFiniteLossError as err:
        raise RunError(_one_line(err)) from err
    finally:
        trainer.close()
    print(f"trained {summary.step} steps; checkpoints in {out}")
    return 0


# Grey levels of the embedded image sources (everything else: 8-bit, 256 levels).
_GREY_LEVELS = {"digits": 17}


class _ImageTransform:
    """The official training transform: random horizontal flips, uniform dequantisation of the
    pixels in [0, 1] (over the data's ``levels`` grey levels), then the logit transform
    (λ = 1e-6) when the model trains in logit space."""

    def __init__(
        self, *, flip: bool, dequantize: bool = True, logit: bool = False, levels: int = 256
    ) -> None:
        self.flip, self.dequantize, self.logit, self.levels = flip, dequantize, logit, levels

    def __call__(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        if self.flip:
            x = ncsn_data.random_flip(x, generator=generator)
        if self.dequantize:
            x = ncsn_data.dequantize(x, levels=self.levels, generator=generator)
        if self.logit:
            x = ncsn_data.logit_transform(x)
        return x


# ---------------------------------------------------------------------------------------- sample
def _cmd_sample(args: argparse.Namespace) -> int:
    device = _device(args.device)
    model, meta = _load_model(args.checkpoint, image_size=args.image_size, use_ema=not args.no_ema)
    model = model.to(device).eval()
    shape = meta.get("shape")
    if not shape:
        raise CommandError(f"{args.checkpoint}: the checkpoint does not say its data shape")
    with _user_input():
        sampler = _sampler_for(model, meta, args)
    gen = torch.Generator(device=device).manual_seed(args.seed)
    x0 = samplers.uniform_init((args.num_samples, *shape), generator=gen, device=device)
    if meta.get("logit_transform"):
        x0 = ncsn_data.logit_transform(x0)
    start = time.perf_counter()
    with _progress(sampler, args.quiet) as callback:
        x = sampler(model, x0, generator=gen, callback=callback)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(x.cpu(), out / "samples.pt")
    if len(shape) == 3:
        viz.save_image_grid(_to_images(x, meta), out / "samples.png", scale=_scale(shape))
    print(
        f"{args.num_samples} samples in {time.perf_counter() - start:.1f} s -> {out / 'samples.pt'}"
        + (f", {out / 'samples.png'}" if len(shape) == 3 else "")
    )
    return 0


def _scale(shape: Sequence[int]) -> int:
    return max(1, 64 // int(shape[-1]))


class _progress:
    """A tqdm bar over a sampler's model calls (the callback syncs nothing: it only counts)."""

    def __init__(self, sampler: Any, quiet: bool) -> None:
        self.total, self.quiet = int(sampler.num_model_calls), quiet
        self.bar: Any = None

    def __enter__(self) -> Any:
        if self.quiet:
            return None
        from tqdm.auto import tqdm

        self.bar = tqdm(total=self.total, desc="sampling", unit="step", mininterval=1.0)
        return lambda info: self.bar.update(1)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()


# ---------------------------------------------------------------------------------------- inpaint
def _cmd_inpaint(args: argparse.Namespace) -> int:
    device = _device(args.device)
    model, meta = _load_model(args.checkpoint, image_size=args.image_size, use_ema=not args.no_ema)
    model = model.to(device).eval()
    shape = meta.get("shape")
    if not shape or len(shape) != 3:
        raise CommandError(f"{args.checkpoint}: inpainting needs an image model")
    gen = torch.Generator().manual_seed(args.seed)
    try:
        images, _ = ncsn_data.load(args.data, split=args.split)
    except (FileNotFoundError, ValueError) as err:
        raise CommandError(str(err).splitlines()[0]) from err
    if tuple(images.shape[1:]) != tuple(shape):
        raise CommandError(
            f"{args.data}: images of shape {list(images.shape[1:])} do not fit the model's {list(shape)}"
        )
    images = images[: args.num_images]
    n, k = len(images), args.completions
    if args.mask.lower().endswith((".png", ".jpg", ".jpeg")):
        known = _mask_from_image(args.mask, tuple(shape)).expand(n, *shape)
    else:
        try:
            known = samplers.inpainting_mask(
                args.mask, (n, *shape), fraction=args.fraction, generator=gen
            )
        except ValueError as err:
            raise CommandError(f"--mask: {err}") from err
    if bool(known.all()):
        raise CommandError(
            f"--mask {args.mask}: the mask marks every pixel as known; nothing to inpaint"
        )
    # One mask per image, shared by its k completions (they are the observed column's mask).
    known_b = known.repeat_interleave(k, dim=0)
    observed = images.repeat_interleave(k, dim=0).to(device)
    if meta.get("logit_transform"):
        observed = ncsn_data.logit_transform(observed)
    with _user_input():
        sampler = _sampler_for(model, meta, args)
    device_gen = torch.Generator(device=device).manual_seed(args.seed)
    with _progress(sampler, args.quiet) as callback:
        completions = samplers.inpaint(
            sampler, model, observed, known_b.to(device), generator=device_gen, callback=callback
        )
    completions = _to_images(completions, meta).cpu()
    completions = torch.where(known_b, images.repeat_interleave(k, dim=0), completions)
    shown_observed = torch.where(known, images, torch.full_like(images, 0.5))
    rows = [
        torch.cat([shown_observed[i : i + 1], completions[i * k : (i + 1) * k], images[i : i + 1]])
        for i in range(n)
    ]
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    viz.save_image_grid(torch.cat(rows), out / "inpainting.png", nrow=k + 2, scale=_scale(shape))
    torch.save(completions, out / "inpainting.pt")
    print(
        f"{n} images x {k} completions -> {out / 'inpainting.png'} (columns: observed | completions | original)"
    )
    return 0


def _mask_from_image(path: str, shape: tuple[int, ...]) -> Tensor:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            gray = torch.from_numpy(np.array(img.convert("L"), dtype=np.float32))
    except (FileNotFoundError, UnidentifiedImageError, OSError) as err:
        raise CommandError(f"--mask {path}: not a readable image ({err})") from err
    if tuple(gray.shape) != tuple(shape[-2:]):
        raise CommandError(
            f"--mask {path}: size {gray.shape[1]}x{gray.shape[0]} differs from the images' {shape[-1]}x{shape[-2]}"
        )
    return (gray > 127).expand(*shape)  # white = known


# ---------------------------------------------------------------------------------------- demo
def _cmd_demo(args: argparse.Namespace) -> int:
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    lines = [
        "ncsn demo: the paper's toy Fig. 3 and a small NCSN trained on the embedded 8x8 digits",
        "",
    ]

    # 1. Fig. 3 with exact scores.
    print("[1/3] toy mixture with exact scores (Fig. 3)")
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

    plots = _plots_available()
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
    print(f"[2/3] training a RefineNet (ngf {args.ngf}) on the 8x8 digits for {args.steps} steps")
    train_x, _ = ncsn_data.load_digits("train")
    run = out / "run"
    if run.is_dir():  # a rerun starts over: the folder holds only the demo's own run
        for old in training.list_checkpoints(run):
            old.unlink()
        (run / "metrics.jsonl").unlink(missing_ok=True)
    sigmas = geometric_sigmas(1.0, 0.01, 10)
    setup = presets.ncsn_paper(
        1, args.ngf, sigmas=sigmas, generator=torch.Generator().manual_seed(args.seed)
    )
    trainer = training.Trainer(
        setup.model,
        setup.loss,
        train_x,
        batch_size=args.batch_size,
        ema_rate=0.999,
        transform=_ImageTransform(flip=False, levels=_GREY_LEVELS["digits"]),
        out_dir=run,
        checkpoint_every=max(1, args.steps // 4),
        keep=2,
        log_every=max(1, args.steps // 50),
        progress=not args.quiet,
        config={
            "model": model_config(setup.model),
            "data": {"source": "digits", "shape": [1, 8, 8], "logit_transform": False},
        },
        seed=args.seed,
    )
    try:
        summary = trainer.fit(args.steps)
    finally:
        trainer.close()
    model = trainer.ema_model().eval()

    # 3. Sample and inpaint.
    print("[3/3] sampling with annealed Langevin dynamics and inpainting")
    sampler = samplers.AnnealedLangevin(sigmas, args.step_size, args.steps_per_level, denoise=True)
    gen = torch.Generator().manual_seed(args.seed + 1)
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
        f"  annealed Langevin: L=10, T={args.steps_per_level}, eps={args.step_size:g}, final denoising step",
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
    print("\n".join(lines))
    return 0


def _plots_available() -> bool:
    try:
        viz.require_matplotlib()
    except ImportError:
        print(
            "matplotlib is missing: the plots are skipped (pip install 'ncsn[examples]')",
            file=sys.stderr,
        )
        return False
    return True


# ---------------------------------------------------------------------------------------- parser
class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit 2
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}")
    return value


def _add_sampling(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--step-size",
        type=_positive_float,
        default=presets.OFFICIAL_STEP_SIZE,
        help="Langevin ε in the paper's convention (default 4e-5 = the released code's step_lr 2e-5)",
    )
    p.add_argument(
        "--steps-per-level",
        type=_positive_int,
        default=100,
        help="T, Langevin steps per noise level (default 100)",
    )
    p.add_argument(
        "--num-steps",
        type=_positive_int,
        default=1000,
        help="steps of plain Langevin for single-level models (default 1000)",
    )
    p.add_argument(
        "--denoise",
        action="store_true",
        help="add the final denoising step x + σ_L² s(x, σ_L) (NCSNv2)",
    )
    p.add_argument(
        "--no-ema", action="store_true", help="use the raw weights instead of the EMA weights"
    )
    p.add_argument(
        "--image-size",
        type=_positive_int,
        default=None,
        help="image size for official checkpoints (default 32, or 28 for 1 channel)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``ncsn`` command."""
    parser = _Parser(
        prog="ncsn", description="Noise Conditional Score Networks (Song & Ermon, 2019)."
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser(
        "train",
        help="train a score network on your data",
        description="Train an NCSN (or the single-σ baseline) on a data source.",
    )
    t.add_argument(
        "--data",
        default=None,
        help="'digits', a 2-D toy (mixture, rings, moons, checkerboard, swiss_roll), a .npy/.npz file, an MNIST IDX file or folder, a CIFAR-10 folder or batch, or a folder of images (required, except with --resume)",
    )
    t.add_argument(
        "--split", default=None, help="dataset split where the source has one (train/test/all)"
    )
    t.add_argument("--output", required=True, help="folder for checkpoints and metrics.jsonl")
    t.add_argument(
        "--model",
        choices=["refinenet", "baseline", "mlp"],
        default=None,
        help="network (default: refinenet for images, mlp for vectors)",
    )
    t.add_argument(
        "--ngf",
        type=_positive_int,
        default=64,
        help="RefineNet width (paper: 64 MNIST, 128 CIFAR-10)",
    )
    t.add_argument("--hidden", type=_positive_int, default=128, help="ScoreMLP width")
    t.add_argument("--loss", choices=["dsm", "ssm"], default="dsm")
    t.add_argument(
        "--projections", type=_positive_int, default=1, help="SSM projections per example"
    )
    t.add_argument(
        "--power", type=float, default=None, help="λ(σ) = σ^power (default 2; 0 for the baseline)"
    )
    t.add_argument("--sigma-max", type=_positive_float, default=1.0)
    t.add_argument("--sigma-min", type=_positive_float, default=0.01)
    t.add_argument("--num-levels", type=_positive_int, default=10)
    t.add_argument(
        "--steps",
        type=_positive_int,
        required=True,
        help="total optimiser steps (with --resume: the final step)",
    )
    t.add_argument("--batch-size", type=_positive_int, default=128)
    t.add_argument("--lr", type=_positive_float, default=1e-3)
    t.add_argument(
        "--ema", type=_rate, default=None, help="EMA rate in (0, 1), e.g. 0.999 (off by default)"
    )
    t.add_argument("--grad-clip", type=_positive_float, default=None, help="clip the gradient norm")
    t.add_argument(
        "--eval-every",
        type=_positive_int,
        default=None,
        help="evaluate the loss on a 5%% held-out split every N steps",
    )
    t.add_argument("--checkpoint-every", type=_positive_int, default=1000)
    t.add_argument("--keep", type=_positive_int, default=3, help="checkpoints to keep")
    t.add_argument("--log-every", type=_positive_int, default=50)
    t.add_argument(
        "--no-dequantize",
        dest="dequantize",
        action="store_false",
        help="skip uniform dequantisation of images",
    )
    t.add_argument("--flip", action="store_true", help="random horizontal flips (CIFAR-10, CelebA)")
    t.add_argument("--logit", action="store_true", help="train in logit space (λ = 1e-6)")
    t.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --output from its newest checkpoint, with the settings it recorded",
    )
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default=None, help="cpu or cuda (default: cpu)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(run=_cmd_train)

    s = sub.add_parser(
        "sample",
        help="draw samples from a checkpoint",
        description="Sample with annealed Langevin dynamics from one of our checkpoints or an official one.",
    )
    s.add_argument(
        "checkpoint",
        help="a checkpoint file or a training folder (newest checkpoint), or an official checkpoint.pth",
    )
    s.add_argument("--num-samples", type=_positive_int, default=64)
    s.add_argument("--output", default="samples")
    _add_sampling(s)
    s.set_defaults(run=_cmd_sample)

    i = sub.add_parser(
        "inpaint",
        help="complete partly observed images",
        description="Inpaint images with Algorithm 2 of the paper.",
    )
    i.add_argument("checkpoint")
    i.add_argument("--data", required=True, help="the images to complete (same sources as train)")
    i.add_argument("--split", default=None)
    i.add_argument(
        "--mask",
        default="right_half",
        help=f"a preset ({', '.join(samplers.MASK_PRESETS)}) or a mask image (white = known)",
    )
    i.add_argument(
        "--fraction",
        type=float,
        default=0.5,
        help="missing fraction for the random and centre_box presets",
    )
    i.add_argument("--num-images", type=_positive_int, default=8)
    i.add_argument("--completions", type=_positive_int, default=4, help="completions per image")
    i.add_argument("--output", default="inpainting")
    _add_sampling(i)
    i.set_defaults(run=_cmd_inpaint)

    d = sub.add_parser(
        "demo",
        help="the paper's toy figure and a small NCSN on digits (under 10 minutes on 2 CPU cores)",
        description="Reproduce Fig. 3 with exact scores, train a small NCSN on the embedded digits, sample and inpaint.",
    )
    d.add_argument("--output", default="outputs/demo")
    d.add_argument("--steps", type=_positive_int, default=1500)
    # batch 64: under 10 minutes on 2 CPU cores even on a slow day (measured 8.4 min, against
    # 12.7 min with batch 128, on a machine running 2.2x slower than usual)
    d.add_argument("--batch-size", type=_positive_int, default=64)
    d.add_argument("--ngf", type=_positive_int, default=32)
    d.add_argument("--step-size", type=_positive_float, default=presets.OFFICIAL_STEP_SIZE)
    d.add_argument("--steps-per-level", type=_positive_int, default=100)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(run=_cmd_demo)
    return parser


def _given_options(argv: Sequence[str]) -> set[str]:
    """The destinations of the options written on the command line (not left at their defaults)."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for command in sub.choices.values():
        for action in command._actions:
            action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv))) - {"command", "run"}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ncsn`` console script (and ``python -m ncsn``).

    Returns the exit status: 0 on success, 2 for a bad argument or an unusable file, 1 for a run
    that failed on its own (a non-finite training loss), 130 after Ctrl-C. Each error is one line
    on stderr.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.given = _given_options(argv)
    try:
        return int(args.run(args))
    except CommandError as err:
        print(f"ncsn {args.command}: error: {err}", file=sys.stderr)
        return err.exit_code
    except (training.CheckpointError, FileNotFoundError, FileExistsError) as err:
        print(f"ncsn {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_USAGE
