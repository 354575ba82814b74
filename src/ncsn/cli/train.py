"""``ncsn train``: train a score network on a data source, resumable from its checkpoints.

The run is built by :func:`ncsn.presets.prepare` from :class:`ncsn.presets.Settings`, which every
checkpoint records; ``--resume`` rebuilds it from that record (its σ grid included) and refuses
an explicit option that differs from it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ncsn import data, metrics, presets, training
from ncsn.cli import _common as common

__all__: list[str] = []  # the command is reached through ncsn.cli.main

_SETTINGS = tuple(field.name for field in dataclasses.fields(presets.Settings))
# May change on --resume (they default to the recorded values); --compile changes only round-off.
_BOOKKEEPING = ("checkpoint_every", "keep", "log_every", "compile")
_FLAGS = {"dequantize": "--no-dequantize", "flip": "--flip", "logit": "--logit", "bf16": "--bf16"}
_FLAGS |= {"conditional": "--conditional"}
_HEADER = "recipe ncsnv2, computed from the data (--recipe paper keeps the paper's settings):"


def _cmd_train(args: argparse.Namespace) -> int:
    out = Path(args.output)
    found, settings, recorded = _settings(args, out)
    common.writable_folder(out)  # before any work: one that cannot take checkpoints is refused
    device = common.device_from(args.device)
    x, labels = _data(args, settings, recorded)
    with common.user_input(args):
        run = presets.prepare(x, settings, labels=labels, steps=args.steps)
    if run.notes and found is None and settings.recipe == "ncsnv2":
        common.say("\n".join([_HEADER, *("  " + line for line in run.notes)]))
    if labels is not None and found is None:
        classes = run.config["data"]["classes"]
        common.say(
            f"class-conditional on {len(classes)} classes ({', '.join(classes)}); labels drop "
            f"to the null label at --label-dropout {settings.label_dropout:g}"
        )
    with common.user_input(args):
        grids = _grids(run, x, labels, args.sample_every)
        trainer = _trainer(run, x, labels, out, device, quiet=args.quiet, samples=grids)
    if grids is not None:
        scored = " (with the digits evaluator's figures in scores.jsonl)" if grids.score else ""
        common.say(
            f"a grid of {grids.count} samples every {grids.every} steps: {out / 'samples'}{scored}"
        )
    try:
        with _one_line_warnings():
            if found is not None:
                _restore(trainer, found, args, settings.data)
            return _fit(trainer, out, args.steps)
    except training.NonFiniteLossError as err:
        raise common.RunError(common.one_line(err)) from err
    finally:
        trainer.close()


def _fit(trainer: training.Trainer, out: Path, steps: int) -> int:
    """Train to ``steps``; Ctrl-C or SIGTERM save a checkpoint of the step reached first."""
    try:
        summary = trainer.fit(steps)
    except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM (training.Terminated)
        # A signal held during a periodic save leaves that checkpoint complete.
        done = training.checkpoint_path(out, trainer.step)
        saved = done if done.exists() else trainer.save()
        sigterm = isinstance(err, training.Terminated)
        what = "terminated (SIGTERM)" if sigterm else "interrupted"
        common.say(
            f"\n{what} at step {trainer.step}; checkpoint {saved} (resume with --resume)",
            file=sys.stderr,
        )
        return 143 if sigterm else 130  # 128 + the signal's number, as a shell reports
    common.say(f"trained {summary.step} steps; checkpoints in {out}")
    return 0


def _trainer(
    run: presets.Run,
    x: Tensor,
    labels: Tensor | None,
    out: Path,
    device: torch.device,
    *,
    quiet: bool,
    samples: training.Samples | None = None,
) -> training.Trainer:
    s = run.settings
    evaluation = None
    train: Tensor | tuple[Tensor, Tensor] = x if labels is None else (x, labels)
    if s.eval_every:  # the loss on a 5% held-out split
        cut = max(1, len(x) // 20)
        held: Tensor | tuple[Tensor, Tensor] = (
            x[:cut] if labels is None else (x[:cut], labels[:cut])
        )
        train = x[cut:] if labels is None else (x[cut:], labels[cut:])
        evaluation = training.Evaluation(held, every=s.eval_every)
    optimizer = torch.optim.Adam(run.model.parameters(), lr=s.lr)
    decay = s.lr_decay_steps
    return training.Trainer(
        run.model,
        run.loss,
        train,
        batch_size=s.batch_size,
        optimizer=optimizer,
        scheduler=None if decay is None else training.cosine_decay(optimizer, decay),
        ema_rate=s.ema,
        max_grad_norm=s.grad_clip,
        transform=run.transform,
        evaluation=evaluation,
        output=training.Output(
            out,
            checkpoint_every=s.checkpoint_every,
            keep=s.keep,
            log_every=s.log_every,
            progress=not quiet,
            samples=samples,
        ),
        config=run.config,
        seed=s.seed,
        device=device,
        autocast_dtype=torch.bfloat16 if s.bf16 else None,
        compile=s.compile,
    )


def _grids(
    run: presets.Run, x: Tensor, labels: Tensor | None, every: int | None
) -> training.Samples | None:
    """``--sample-every``'s grids: consistent annealed sampling (one call per level) on the run's
    σ grid, from the EMA model; on the digits, scored by the digits evaluator."""
    if every is None:
        return None
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise common.CommandError(
            f"--sample-every draws image grids; the data are not images with 1 or 3 channels "
            f"(examples of shape {list(x.shape[1:])})"
        )
    if labels is not None:
        raise common.CommandError(
            "--sample-every: a class-conditional run draws no grids while it trains; sample "
            "its classes afterwards with ncsn sample RUN --class all"
        )
    sigmas = run.config["sampling"]["sigmas"]
    sampler = presets.build_sampler("cas", sigmas, denoise=len(sigmas) > 1)
    score = None
    if run.settings.data == "digits" and not run.settings.logit:
        score = metrics.digits_evaluator(seed=0).figures
    return training.Samples(sampler, tuple(x.shape[1:]), every=every, score=score)


def _settings(
    args: argparse.Namespace, out: Path
) -> tuple[Path | None, presets.Settings, dict[str, Any]]:
    """The run's settings: from the options, or with ``--resume`` from the newest readable
    checkpoint in ``out`` (returned too, with its config), checked against the options given."""
    if out.exists() and not out.is_dir():
        raise common.CommandError(f"--output {out} is a file, not a folder")
    found = training.latest_checkpoint(out) if out.is_dir() else None
    if not args.resume:
        if found is not None:
            raise common.CommandError(
                f"--output {out} already holds {found.name} of an earlier run; add --resume to "
                "continue it, or choose another --output"
            )
        if args.data is None:
            raise common.CommandError("--data is required (except with --resume)")
        args.data = _data_source(args.data)
        options = {k: getattr(args, k) for k in _SETTINGS if k in args}
        options["lr_decay_steps"] = args.steps if args.lr_decay == "cosine" else None
        with common.user_input(args):
            return None, presets.Settings(**options), {}
    if found is None:
        raise common.CommandError(f"--resume: {out} holds no checkpoint to resume from")
    found, checkpoint = _newest_readable(out)
    config = checkpoint.get("config", {})
    try:
        recorded = presets.Settings.from_record(config["train"])
    except (KeyError, TypeError, ValueError) as err:
        raise common.CommandError(
            f"--resume: {found} records no `ncsn train` settings to rebuild the run from "
            "(written from Python or by an older ncsn); continue it with Trainer.restore"
        ) from err
    _refuse_changes(args, recorded, found)
    _check_decay(args, recorded, found)
    if recorded.sigmas is None and "sigmas" in config.get("sampling", {}):
        recorded = dataclasses.replace(recorded, sigmas=tuple(config["sampling"]["sigmas"]))
    bookkeeping = {k: getattr(args, k) for k in _BOOKKEEPING if k in args.given}
    if args.steps < int(checkpoint["step"]):
        raise common.CommandError(
            f"--steps {args.steps} is below the step {checkpoint['step']} of {found}; with "
            "--resume, --steps is the final step"
        )
    return found, dataclasses.replace(recorded, **bookkeeping), config


def _refuse_changes(args: argparse.Namespace, recorded: presets.Settings, found: Path) -> None:
    changed = []
    for name in sorted(set(_SETTINGS) & args.given - set(_BOOKKEEPING), key=_SETTINGS.index):
        mine, theirs = getattr(args, name), getattr(recorded, name)
        mine = _data_source(mine) if name == "data" else mine
        if mine == theirs or (name == "power" and float(mine) == theirs):
            continue
        if name in _FLAGS:
            changed.append(f"{_FLAGS[name]} (the run was trained without it)")
        else:
            changed.append(f"--{name.replace('_', '-')} {mine} (the run's: {theirs})")
    if changed:
        raise common.CommandError(
            f"--resume continues {found.parent} with its recorded settings, and these options "
            f"differ: {'; '.join(changed)}. Drop them, or train into another --output"
        )


def _check_decay(args: argparse.Namespace, recorded: presets.Settings, found: Path) -> None:
    """``--resume`` keeps the run's learning-rate schedule, which ends at its recorded step."""
    end = recorded.lr_decay_steps
    theirs = "constant" if end is None else "cosine"
    if "lr_decay" in args.given and args.lr_decay != theirs:
        raise common.CommandError(
            f"--resume continues {found.parent} with its recorded settings, and these options "
            f"differ: --lr-decay {args.lr_decay} (the run's: {theirs}). Drop it, or train into "
            "another --output"
        )
    if end is not None and args.steps > end:
        raise common.CommandError(
            f"--steps {args.steps} goes past step {end}, where the run's --lr-decay cosine "
            f"brings the learning rate to 0; resume with --steps {end} at most, or train a new "
            "run for longer"
        )


def _data_source(text: str) -> str:
    """A built-in name as it is, a path made absolute (so a resumed run finds it from anywhere)."""
    if text in data.DATASETS or text in data.TOY_NAMES:
        return text
    return str(Path(text).expanduser().resolve())


def _data(
    args: argparse.Namespace, s: presets.Settings, config: dict[str, Any]
) -> tuple[Tensor, Tensor | None]:
    """The training data and, for a conditional run, its labels; a resumed run's must have the
    shape its run recorded."""
    assert s.data is not None
    options: dict[str, Any] = {"split": s.split, "download": args.download or None}
    options |= {"channels": s.channels, "size": s.size, "crop": s.crop}
    if s.data in data.TOY_NAMES:
        options["generator"] = torch.Generator().manual_seed(s.seed)
    with common.user_input(args):
        x, labels = data.load(s.data, **{k: v for k, v in options.items() if v is not None})
    if s.conditional and labels is None:
        raise common.CommandError(
            f"--conditional trains on the labels of the data; --data {s.data} has none (digits, "
            "mnist and fashion-mnist have)"
        )
    recorded = config.get("data", {}).get("shape")
    if recorded is not None and list(x.shape[1:]) != list(recorded):
        raise common.CommandError(
            f"--resume: the data {s.data} now holds examples of shape {list(x.shape[1:])}; "
            f"the run trained on {recorded} (the data changed since)"
        )
    return x, labels if s.conditional else None


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
            unreadable.append((path, common.one_line(err).removeprefix(f"{path}: ")))
            continue
        for bad, why in unreadable:
            kept = bad.with_name(bad.name + ".unreadable")
            if common.is_main_process():  # every process of a torchrun job gets here; one renames
                os.replace(bad, kept)
            common.say(
                f"warning: --resume skipped {bad.name} ({why}); resuming from {path.name}, "
                f"the newest readable checkpoint, and kept the skipped file as {kept.name}",
                file=sys.stderr,
            )
        return path, checkpoint
    names = ", ".join(f"{bad.name} ({why})" for bad, why in unreadable)
    raise common.CommandError(f"--resume: {out} holds no readable checkpoint: {names}")


@contextlib.contextmanager
def _one_line_warnings() -> Iterator[None]:
    """Show the library's warnings (a repaired metrics.jsonl) as one line each, on rank 0."""
    with warnings.catch_warnings():
        warnings.showwarning = lambda message, *_, **__: common.say(
            f"warning: {message}", file=sys.stderr
        )
        yield


def _restore(
    trainer: training.Trainer, found: Path, args: argparse.Namespace, source: str | None
) -> None:
    try:
        checkpoint = trainer.restore(found, allow_data_change=args.allow_data_change)
    except training.CheckpointError as err:  # e.g. the data changed since (named)
        message = common.as_options(common.one_line(err), vars(args))
        message = message.replace("restore(..., --allow-data-change)", "--allow-data-change")
        raise common.CommandError(f"--resume, --data {source}: {message}") from err
    common.say(f"resumed from {found} at step {trainer.step}")
    if trainer.shards != checkpoint["shards"]:
        world = trainer.env.world_size
        common.say(
            f"note: the run was trained with {checkpoint['shards']} parts per batch (shards), "
            f"fewer than these {world} processes; it continues with {world}, so from step "
            f"{trainer.step} on its noise draws differ from a run on at most "
            f"{checkpoint['shards']} processes"
        )


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``ncsn train``."""
    t: argparse.ArgumentParser = sub.add_parser(
        "train",
        help="train a score network on your data",
        description="Train an NCSN (or the single-σ baseline) on a data source. The settings are "
        "computed from the data (--recipe ncsnv2), printed and recorded in every checkpoint.",
    )
    t.add_argument("--data", default=None, help="'digits', 'mnist', 'fashion-mnist', a 2-D toy (mixture, rings, moons, checkerboard, swiss_roll), a .npy/.npz file, an MNIST IDX file or folder, a CIFAR-10 folder or batch, or a folder of images (required, except with --resume)")  # fmt: skip
    t.add_argument("--split", default=None, help="the split where the source has one (train/test/all)")  # fmt: skip
    t.add_argument("--download", action="store_true", help="download mnist or fashion-mnist if not found")  # fmt: skip
    t.add_argument("--channels", type=int, choices=(1, 3), default=None, help="image folders: 1 (grey) or 3 (RGB) channels (default: as found)")  # fmt: skip
    t.add_argument("--size", type=common.positive_int_arg, default=None, help="image folders: resize to SIZE x SIZE")  # fmt: skip
    t.add_argument("--crop", type=common.positive_int_arg, default=None, help="image folders: centre-crop to CROP x CROP before resizing")  # fmt: skip
    t.add_argument("--output", required=True, help="folder for checkpoints and metrics.jsonl")
    t.add_argument("--model", choices=presets.MODELS, default=None, help="network (default: refinenet for images of at most 8x8 pixels and --conditional, precond for larger images (scaled with --logit), mlp for vectors); scaled: NCSNv2's unconditional RefineNet divided by σ, which takes any σ; precond: the same RefineNet under Karras et al.'s preconditioning (σ_d from the data), which takes any σ")  # fmt: skip
    t.add_argument("--ngf", type=common.positive_int_arg, default=None, help="RefineNet width (default: 16 for images of at most 28x28 pixels, else 64)")  # fmt: skip
    t.add_argument("--hidden", type=common.positive_int_arg, default=128, help="ScoreMLP width")
    t.add_argument("--loss", choices=["dsm", "ssm"], default="dsm")
    t.add_argument("--projections", type=common.positive_int_arg, default=1, help="SSM projections per example")  # fmt: skip
    t.add_argument("--power", type=float, default=None, help="λ(σ) = σ^power (default 2; 0 for the baseline)")  # fmt: skip
    t.add_argument("--recipe", choices=["ncsnv2", "paper"], default="ncsnv2", help="ncsnv2: σ₁, L, ε and the EMA from the data (NCSNv2's techniques); paper: σ 1 → 0.01, L = 10, ε = 4e-5, T = 100, no EMA")  # fmt: skip
    t.add_argument("--sigma-max", type=common.positive_float_arg, default=None, help="σ₁ (default: from the data; 1 with --recipe paper)")  # fmt: skip
    t.add_argument("--sigma-min", type=common.positive_float_arg, default=None, help="σ_L (default 0.01)")  # fmt: skip
    t.add_argument("--num-levels", type=common.positive_int_arg, default=None, help="L (default: Technique 2; 10 with --recipe paper)")  # fmt: skip
    t.add_argument("--level-draw", choices=["uniform", "lognormal", "edm"], default=None, help="how training draws the noise levels: uniform (the paper's; the default except for --model precond), lognormal (around σ = 0.15 with spread 1.2 in log σ, Karras et al. 2022, for images in [0, 1]: less of the training at the largest levels) or edm (that draw times Karras et al.'s loss weight (σ² + σ_d²)/σ_d²; the default for --model precond)")  # fmt: skip
    t.add_argument("--steps", type=common.positive_int_arg, required=True, help="total optimiser steps (with --resume: the final step)")  # fmt: skip
    t.add_argument("--batch-size", type=common.positive_int_arg, default=128)
    t.add_argument("--lr", type=common.positive_float_arg, default=1e-3)
    t.add_argument("--lr-decay", choices=["constant", "cosine"], default="constant", help="cosine: lower the learning rate along a half cosine to 0 at --steps (recorded; --resume keeps it)")  # fmt: skip
    t.add_argument("--ema", type=common.rate_arg, default=None, help="EMA rate in (0, 1) (default: 0.999, at most 1 − 10/steps; off with --recipe paper)")  # fmt: skip
    t.add_argument("--grad-clip", type=common.positive_float_arg, default=None, help="clip the gradient norm")  # fmt: skip
    t.add_argument("--eval-every", type=common.positive_int_arg, default=None, help="evaluate the loss on a 5%% held-out split every N steps")  # fmt: skip
    t.add_argument("--checkpoint-every", type=common.positive_int_arg, default=1000)
    t.add_argument("--keep", type=common.positive_int_arg, default=3, help="checkpoints to keep")
    t.add_argument("--log-every", type=common.positive_int_arg, default=50)
    t.add_argument("--sample-every", type=common.positive_int_arg, default=None, help="images: draw a grid of 64 samples (consistent annealed sampling, fixed seed) every N steps into OUTPUT/samples/ (default: none)")  # fmt: skip
    t.add_argument("--no-dequantize", dest="dequantize", action="store_false", help="skip uniform dequantisation of images")  # fmt: skip
    t.add_argument("--flip", action="store_true", help="random horizontal flips (CIFAR-10, CelebA)")  # fmt: skip
    t.add_argument("--logit", action="store_true", help="train in logit space (λ = 1e-6)")
    t.add_argument("--conditional", action="store_true", help="class-conditional: train on the data's labels (digits, mnist, fashion-mnist), to sample a chosen class with ncsn sample --class")  # fmt: skip
    t.add_argument("--label-dropout", type=float, default=0.1, help="with --conditional: the rate at which labels drop to the null label, which classifier-free guidance needs (default 0.1)")  # fmt: skip
    t.add_argument("--resume", action="store_true", help="continue the run in --output from its newest checkpoint, with the settings it recorded")  # fmt: skip
    t.add_argument("--allow-data-change", action="store_true", help="with --resume: continue even though the data differ from the run's (length or content)")  # fmt: skip
    t.add_argument("--bf16", action="store_true", help="the network runs under bfloat16 autocast")  # fmt: skip
    t.add_argument("--compile", action="store_true", help="run the network through torch.compile (may change on --resume)")  # fmt: skip
    t.add_argument("--seed", type=common.seed_arg, default=0)
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    common.add_common_options(t)
    t.set_defaults(run=_cmd_train)
    return t
