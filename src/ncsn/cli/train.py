"""``ncsn train``: train a score network on a data source, resumable from its checkpoints."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ncsn import data as ncsn_data
from ncsn import losses, presets, training
from ncsn.cli._common import (
    CommandError,
    RunError,
    device_from,
    is_main_process,
    one_line,
    positive_float_arg,
    positive_int_arg,
    rate_arg,
    say,
    seed_arg,
    user_input,
    writable_folder,
)
from ncsn.nets.adapters import ScaledByInverseSigma
from ncsn.nets.config import model_config
from ncsn.nets.mlp import ScoreMLP
from ncsn.nets.refinenet import RefineNet, RefineNetBaseline
from ncsn.schedules import Schedule, geometric_sigmas

__all__: list[str] = []  # the command is reached through ncsn.cli.main


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
    if kind == "scaled":  # NCSNv2's Technique 3: an unconditional RefineNet, output / σ
        unconditional = RefineNetBaseline(
            shape[0], args.ngf, logit_transform=args.logit, generator=gen
        )
        return ScaledByInverseSigma(unconditional)
    return RefineNet(shape[0], args.ngf, sigmas, logit_transform=args.logit, generator=gen)


# ---------------------------------------------------------------------------------------- train
# The `ncsn train` options that decide what a run computes. They are recorded in every checkpoint
# (config["train"]); --resume rebuilds the run from them, and refuses an explicit option that
# differs. The bookkeeping options may change on resume (they default to the recorded values);
# --steps, --output, --device and --quiet are never recorded.
_RUN_SETTINGS = (
    "recipe",
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
    "bf16",
)
# Settings added after the first release: what a run recorded before them used.
_ADDED_SETTINGS = {"bf16": False, "recipe": "paper"}
# --compile changes only the round-off, so a resumed run may switch it like the bookkeeping.
_BOOKKEEPING = ("checkpoint_every", "keep", "log_every", "compile")
_FLAGS = {
    "dequantize": "--no-dequantize",
    "flip": "--flip",
    "logit": "--logit",
    "bf16": "--bf16",
    "compile": "--compile",
}


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


def _newest_readable(out: Path) -> tuple[Path, dict[str, Any]]:
    """The newest checkpoint in ``out`` that loads, and its contents.

    Newer ones that do not load (torn by a failing disk or an interrupted copy: our own saves are
    atomic) are renamed ``*.unreadable``, never deleted, with one line each saying why: under their
    checkpoint name the resumed run would overwrite or prune them.
    """
    unreadable: list[tuple[Path, str]] = []
    for path in reversed(training.list_checkpoints(out)):
        try:
            checkpoint = training.load_checkpoint(path)
        except training.CheckpointError as err:
            unreadable.append((path, one_line(err).removeprefix(f"{path}: ")))
            continue
        for bad, why in unreadable:
            kept = bad.with_name(bad.name + ".unreadable")
            if is_main_process():  # every process of a torchrun job gets here; one renames
                os.replace(bad, kept)
            say(
                f"warning: --resume skipped {bad.name} ({why}); resuming from {path.name}, "
                f"the newest readable checkpoint, and kept the skipped file as {kept.name}",
                file=sys.stderr,
            )
        return path, checkpoint
    names = ", ".join(f"{bad.name} ({why})" for bad, why in unreadable)
    raise CommandError(f"--resume: {out} holds no readable checkpoint: {names}")


@contextlib.contextmanager
def _one_line_warnings() -> Iterator[None]:
    """Show the library's warnings (a repaired metrics.jsonl) as one line each, on rank 0."""
    with warnings.catch_warnings():
        warnings.showwarning = lambda message, *_, **__: say(f"warning: {message}", file=sys.stderr)
        yield


def _resume_settings(
    args: argparse.Namespace, given: set[str], found: Path, checkpoint: dict[str, Any]
) -> tuple[dict[str, Any], int]:
    """The recorded settings of the run in ``found``, checked against the explicit options."""
    recorded = checkpoint.get("config", {}).get("train")
    if isinstance(recorded, dict):
        recorded = _ADDED_SETTINGS | recorded
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


def _cmd_train(args: argparse.Namespace) -> int:
    given: set[str] = getattr(args, "given", set())
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise CommandError(f"--output {out} is a file, not a folder")
    found = training.latest_checkpoint(out) if out.is_dir() else None
    if args.resume:
        if found is None:
            raise CommandError(f"--resume: {out} holds no checkpoint to resume from")
        found, checkpoint = _newest_readable(out)
        recorded, _ = _resume_settings(args, given, found, checkpoint)
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
    writable_folder(out)  # before any work: a folder that cannot take checkpoints is refused now
    device = device_from(args.device)

    gen = torch.Generator().manual_seed(args.seed)
    try:
        toy_source = args.data in ncsn_data.TOY_NAMES
        x, _ = ncsn_data.load(args.data, split=args.split, generator=gen if toy_source else None)
    except (FileNotFoundError, ValueError) as err:
        raise CommandError(one_line(err)) from err
    shape = tuple(x.shape[1:])
    images = len(shape) == 3
    kind = _resolve_kind(args, images)
    power = _resolve_power(args, kind)
    if args.ngf is None:  # recorded resolved, so --resume rebuilds the same network
        args.ngf = presets.default_ngf(shape) if images else 64
    if args.logit and not (float(x.min()) >= 0.0 and float(x.max()) <= 1.0):
        raise CommandError(
            f"--logit needs data in [0, 1]; {args.data} holds values in "
            f"[{float(x.min()):g}, {float(x.max()):g}]"
        )
    with user_input():
        sigmas, sampling, notes = _noise_levels(args, kind, x)
        schedule = Schedule(sigmas)
        loss: Any
        if args.loss == "dsm":
            loss = losses.DenoisingScoreMatching(schedule, power=power)
        else:
            loss = losses.SlicedScoreMatching(schedule, power=power, projections=args.projections)
        model = _build_network(kind, shape, sigmas, args)

    transform = None
    if args.logit or (images and (args.dequantize or args.flip)):
        transform = ImageTransform(
            flip=images and args.flip,
            dequantize=images and args.dequantize,
            logit=args.logit,
            levels=GREY_LEVELS.get(args.data, 256),
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
        "sampling": sampling | {"sigmas": [float(s) for s in sigmas]},
    }
    if notes and not args.quiet and found is None:
        say("\n".join(notes))
    with user_input():
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
            autocast_dtype=torch.bfloat16 if args.bf16 else None,
            compile=args.compile,
        )
    try:
        with _one_line_warnings():
            if found is not None:  # --resume
                _restore(trainer, found)
            try:
                summary = trainer.fit(args.steps)
            except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM (training.Terminated)
                # A signal held during a periodic save leaves that checkpoint complete.
                done = training.checkpoint_path(out, trainer.step)
                saved = done if done.exists() else trainer.save()
                sigterm = isinstance(err, training.Terminated)
                what = "terminated (SIGTERM)" if sigterm else "interrupted"
                say(
                    f"\n{what} at step {trainer.step}; checkpoint {saved} (resume with --resume)",
                    file=sys.stderr,
                )
                return 143 if sigterm else 130  # 128 + the signal's number, as a shell reports
    except training.NonFiniteLossError as err:
        raise RunError(one_line(err)) from err
    finally:
        trainer.close()
    say(f"trained {summary.step} steps; checkpoints in {out}")
    return 0


def _noise_levels(
    args: argparse.Namespace, kind: str, x: Tensor
) -> tuple[Tensor, dict[str, Any], list[str]]:
    """σ levels, the sampling settings to record, and one line per choice of the recipe.

    Resolves ``args.sigma_max``, ``sigma_min``, ``num_levels`` and ``ema`` in place, so that the
    checkpoint records (and ``--resume`` reuses) the values the run trains with.
    """
    if args.sigma_min is None:
        args.sigma_min = 0.01
    if kind == "baseline":
        args.sigma_max = args.sigma_max or args.sigma_min
        args.num_levels = 1
        sampling = {"sampler": "annealed", "step_size": presets.OFFICIAL_STEP_SIZE}
        return torch.tensor([args.sigma_min]), sampling, []
    if args.recipe == "paper":
        args.sigma_max = 1.0 if args.sigma_max is None else args.sigma_max
        args.num_levels = 10 if args.num_levels is None else args.num_levels
        if args.sigma_max <= args.sigma_min:
            raise CommandError(
                f"--sigma-max {args.sigma_max:g} must be larger than --sigma-min {args.sigma_min:g}"
            )
        sampling = {
            "sampler": "annealed",
            "step_size": presets.OFFICIAL_STEP_SIZE,
            "steps_per_level": 100,
            "denoise": False,
        }
        return geometric_sigmas(args.sigma_max, args.sigma_min, args.num_levels), sampling, []
    units = ncsn_data.logit_transform(x) if args.logit else x
    if args.sigma_max is not None and args.sigma_max <= args.sigma_min:
        raise CommandError(
            f"--sigma-max {args.sigma_max:g} must be larger than --sigma-min {args.sigma_min:g}"
        )
    r = presets.recipe(
        units,
        sigma_max=args.sigma_max,
        sigma_min=args.sigma_min,
        num_levels=args.num_levels,
        steps=args.steps,
        generator=torch.Generator().manual_seed(args.seed),
    )
    args.sigma_max, args.num_levels = float(r.sigmas[0]), len(r.sigmas)
    notes = list(r.notes)
    if args.ema is None:
        args.ema = r.ema_rate
    else:
        notes[-1] = f"EMA of the weights at {args.ema:g} (given)"
    sampling = {
        "sampler": "annealed",
        "step_size": r.step_size,
        "step_size_rule": "ncsnv2",
        "steps_per_level": r.steps_per_level,
        "denoise": r.denoise,
    }
    header = "recipe ncsnv2, computed from the data (--recipe paper keeps the paper's settings):"
    return r.sigmas, sampling, [header, *("  " + line for line in notes)]


def _restore(trainer: training.Trainer, found: Path) -> None:
    checkpoint = trainer.restore(found)
    say(f"resumed from {found} at step {trainer.step}")
    if trainer.shards != checkpoint["shards"]:
        world = trainer.env.world_size
        say(
            f"note: the run was trained with {checkpoint['shards']} parts per batch (shards), "
            f"fewer than these {world} processes; it continues with {world}, so from step "
            f"{trainer.step} on its noise draws differ from a run on at most "
            f"{checkpoint['shards']} processes"
        )


# Grey levels of the embedded image sources (everything else: 8-bit, 256 levels).
GREY_LEVELS = {"digits": 17}


class ImageTransform:
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


def add_parser(sub: Any) -> None:
    """Register ``ncsn train``."""
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
        choices=["refinenet", "scaled", "baseline", "mlp"],
        default=None,
        help="network (default: refinenet for images, mlp for vectors); scaled: NCSNv2's "
        "unconditional RefineNet with its output divided by σ (Technique 3)",
    )
    t.add_argument(
        "--ngf",
        type=positive_int_arg,
        default=None,
        help="RefineNet width (default: 16 for images of at most 16x16 pixels, measured best on "
        "the 8x8 digits at equal CPU time, else 64; paper: 64 MNIST, 128 CIFAR-10)",
    )
    t.add_argument("--hidden", type=positive_int_arg, default=128, help="ScoreMLP width")
    t.add_argument("--loss", choices=["dsm", "ssm"], default="dsm")
    t.add_argument(
        "--projections", type=positive_int_arg, default=1, help="SSM projections per example"
    )
    t.add_argument(
        "--power", type=float, default=None, help="λ(σ) = σ^power (default 2; 0 for the baseline)"
    )
    t.add_argument(
        "--recipe",
        choices=["ncsnv2", "paper"],
        default="ncsnv2",
        help="ncsnv2 (default): σ₁ from the data's largest pairwise distance, L, ε and EMA 0.999 "
        "from NCSNv2's techniques, the final denoising step; paper: σ 1 → 0.01 with L = 10, "
        "ε = 4e-5, T = 100, no EMA (the seed's settings, for reproduction)",
    )
    t.add_argument(
        "--sigma-max",
        type=positive_float_arg,
        default=None,
        help="σ₁ (default: from the data; 1 with --recipe paper)",
    )
    t.add_argument("--sigma-min", type=positive_float_arg, default=None, help="σ_L (default 0.01)")
    t.add_argument(
        "--num-levels",
        type=positive_int_arg,
        default=None,
        help="L (default: NCSNv2's Technique 2 for the data's dimension; 10 with --recipe paper)",
    )
    t.add_argument(
        "--steps",
        type=positive_int_arg,
        required=True,
        help="total optimiser steps (with --resume: the final step)",
    )
    t.add_argument("--batch-size", type=positive_int_arg, default=128)
    t.add_argument("--lr", type=positive_float_arg, default=1e-3)
    t.add_argument(
        "--ema",
        type=rate_arg,
        default=None,
        help="EMA rate in (0, 1) (default: 0.999, at most 1 − 10/steps for short runs; off with "
        "--recipe paper)",
    )
    t.add_argument(
        "--grad-clip", type=positive_float_arg, default=None, help="clip the gradient norm"
    )
    t.add_argument(
        "--eval-every",
        type=positive_int_arg,
        default=None,
        help="evaluate the loss on a 5%% held-out split every N steps",
    )
    t.add_argument("--checkpoint-every", type=positive_int_arg, default=1000)
    t.add_argument("--keep", type=positive_int_arg, default=3, help="checkpoints to keep")
    t.add_argument("--log-every", type=positive_int_arg, default=50)
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
    t.add_argument(
        "--bf16",
        action="store_true",
        help="mixed precision: the network runs under bfloat16 autocast (weights, optimizer and loss stay float32)",
    )
    t.add_argument(
        "--compile",
        action="store_true",
        help="run the network through torch.compile (the first step compiles; may change on --resume)",
    )
    t.add_argument("--seed", type=seed_arg, default=0)
    t.add_argument("--device", default=None, help="cpu or cuda (default: cpu)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(run=_cmd_train)
