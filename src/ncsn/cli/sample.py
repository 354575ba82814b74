"""``ncsn sample``: draw samples from a trained model with any of the library's samplers.

The samples are drawn in chunks of ``--batch-size``, each from its own seed and saved as it is
finished, so the set does not depend on the number of ``torchrun`` processes and an interrupted
run finishes on rerun. A chunk file records its index and seed, and the chunk folder's manifest
the checkpoint (file and step) and the settings: chunks of another run are refused, a torn one
is drawn again.

A class-conditional run (``ncsn train --conditional``) samples the class ``--class`` names, with
classifier-free guidance of weight ``--guidance`` (:class:`ncsn.guidance.ClassifierFreeGuidance`;
0, the default, is the conditional model itself), or every class in turn (``--class all``: one
row of the grid per class); without ``--class`` it samples its null label, the unconditional
score it learnt from label dropout.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from ncsn import data, guidance, training, viz
from ncsn.cli import _common as common

__all__: list[str] = []  # the command is reached through ncsn.cli.main


def chunk_seed(seed: int, chunk: int) -> int:
    """The seed of chunk ``chunk`` of a run seeded ``seed``: every chunk of ``--batch-size``
    samples draws its start and noise from its own ``torch.Generator().manual_seed(...)``, so
    the set of samples does not depend on how many processes draw it."""
    state = np.random.SeedSequence([seed, chunk]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 32 | int(state[1])) >> 1  # 63 bits, any device's generator takes it


def _cmd_sample(args: argparse.Namespace) -> int:
    env, device = common.join_job(args.device)
    out = common.writable_folder(args.output)
    loaded = common.load_model(args, device)
    shape = tuple(loaded.data.get("shape") or ())
    if not shape:
        raise common.CommandError(f"{args.checkpoint}: the checkpoint does not say its data shape")
    sampler, kind = common.build_sampler(loaded, args)
    classes = _classes(loaded, args)
    manifest = {
        "checkpoint": str(loaded.file.resolve()),
        "step": loaded.step,
        "shape": list(shape),
        "num_samples": args.num_samples,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "sampler": repr(sampler),
        "ema": not args.no_ema,
        "class": args.class_name,
        "guidance": args.guidance,
    }
    chunks = _chunk_folder(out, manifest, env)
    count = math.ceil(args.num_samples / args.batch_size)
    names = [chunks / f"chunk-{k:06d}.pt" for k in range(count)]
    todo = _unfinished(names, range(env.rank, count, env.world_size), args, shape)
    kept = _total(len(range(env.rank, count, env.world_size)) - len(todo), env, device)
    if kept:
        common.say(f"kept {kept} finished chunk(s) in {chunks}")
    start = time.perf_counter()
    logit = bool(loaded.data.get("logit_transform"))
    network = common.score_model(loaded, args)
    try:
        with common.Progress(sampler, args.quiet, repeats=len(todo)) as progress:
            for k in todo:
                n = min(args.batch_size, args.num_samples - k * args.batch_size)
                seed = chunk_seed(args.seed, k)
                gen = torch.Generator(device=device).manual_seed(seed)
                x0 = common.start_for(sampler, (n, *shape), gen, device)
                if logit and kind in ("annealed", "langevin"):
                    x0 = data.logit_transform(x0)
                index = range(k * args.batch_size, k * args.batch_size + n)
                model = _conditioned(network, classes, index, args)
                try:
                    x = sampler(progress.watch(model), x0, generator=gen)
                except FloatingPointError as err:
                    raise common.diverged(err, kind) from err
                chunk = {"index": k, "seed": seed, "samples": x.cpu()}
                common.save_atomic(chunk, names[k], f"-{env.rank}")
    except KeyboardInterrupt as err:
        what = "terminated (SIGTERM)" if isinstance(err, training.Terminated) else "interrupted"
        done = sum(name.exists() for name in names)
        common.say(
            f"\n{what}: {done} of {count} chunks are finished in {chunks}; rerun the same "
            "command to finish the others",
            file=sys.stderr,
        )
        return 143 if isinstance(err, training.Terminated) else 130
    _barrier(env)  # every chunk is on disk
    if env.rank == 0:
        labels = _labels(classes, range(args.num_samples), args.num_samples)
        _finish(names, out, shape, logit, labels)
        shutil.rmtree(chunks)
    common.say(
        f"{args.num_samples} samples in {time.perf_counter() - start:.1f} s -> {out / 'samples.pt'}"
        + (f", {out / 'samples.png'}" if len(shape) == 3 else "")
        + (f", labels {out / 'labels.pt'}" if classes is not None and args.class_name else "")
        + (f" ({env.world_size} processes)" if env.distributed else "")
    )
    if env.distributed:
        torch.distributed.destroy_process_group()
    return 0


class _Classes(NamedTuple):
    """A conditional model's classes and what ``--class`` asks of them."""

    names: list[str]
    """The K class names the run recorded (else ``0`` … ``K − 1``)."""
    chosen: int | None
    """The class of every sample (``--class C``), else ``None``."""
    every: bool
    """``--class all``: blocks of the samples in class order. Neither: the null label."""


def _classes(loaded: Any, args: argparse.Namespace) -> _Classes | None:
    """The classes of a conditional model (``None`` for another), with ``--class`` and
    ``--guidance`` checked against them."""
    k = getattr(loaded.model, "num_classes", None)
    if args.guidance is not None and args.class_name is None:
        raise common.CommandError("--guidance guides toward a class: add --class")
    if not isinstance(k, int):
        if args.class_name is not None:
            raise common.CommandError(
                f"--class {args.class_name}: {args.checkpoint} is not class-conditional (train "
                "one with ncsn train --conditional)"
            )
        return None
    recorded = loaded.data.get("classes")
    names = [str(c) for c in recorded] if isinstance(recorded, list) else []
    names = names if len(names) == k else [str(c) for c in range(k)]
    if args.class_name in (None, "all"):
        if args.class_name == "all" and args.num_samples < k:
            raise common.CommandError(
                f"--class all draws one row per class: --num-samples must be at least the "
                f"{k} classes; got {args.num_samples}"
            )
        return _Classes(names, None, args.class_name == "all")
    if args.class_name in names:
        return _Classes(names, names.index(args.class_name), False)
    if args.class_name.isdigit() and int(args.class_name) < k:
        return _Classes(names, int(args.class_name), False)
    raise common.CommandError(
        f"--class {args.class_name}: the model's classes are 0 … {k - 1} ({', '.join(names)}), "
        "or all"
    )


def _labels(classes: _Classes | None, index: range, num_samples: int) -> Tensor | None:
    """The classes of the samples at ``index`` of ``num_samples``: ``--class``, or with
    ``--class all`` blocks in class order (sample i has class ⌊i·K / n⌋); ``None`` for the null
    label or a model without classes."""
    if classes is None or not (classes.every or classes.chosen is not None):
        return None
    if classes.chosen is not None:
        return torch.full((len(index),), classes.chosen, dtype=torch.int64)
    return torch.arange(index.start, index.stop) * len(classes.names) // num_samples


def _conditioned(
    model: Any, classes: _Classes | None, index: range, args: argparse.Namespace
) -> Any:
    """The score model a sampler runs: the model itself, its null label (a conditional model
    without ``--class``) or classifier-free guidance toward the samples' classes."""
    if classes is None:
        return model
    labels = _labels(classes, index, args.num_samples)
    if labels is None:
        return guidance.condition(model, None)
    device = next(model.parameters()).device
    return guidance.ClassifierFreeGuidance(model, labels.to(device), weight=args.guidance or 0.0)


def _finish(
    names: list[Path], out: Path, shape: tuple[int, ...], logit: bool, labels: Tensor | None
) -> None:
    """``samples.pt`` in the data's units (pixels in [0, 1] for a run in logit space too) and,
    for images, the PNG grid of the first 64, or with ``--class all`` one row per class;
    ``labels.pt`` the class of each sample of a conditional model."""
    x = torch.cat([torch.load(name, weights_only=True)["samples"] for name in names])
    if logit:
        x = common.to_images(x, logit=True)
    elif len(shape) == 3 and (float(x.min()) < -10 or float(x.max()) > 11):
        common.say(
            f"warning: the samples lie in [{float(x.min()):.3g}, {float(x.max()):.3g}], far "
            "outside the data range [0, 1]; the step size is probably too large (try a smaller "
            "--step-size)",
            file=sys.stderr,
        )
    common.save_atomic(x, out / "samples.pt")
    if labels is not None:
        common.save_atomic(labels, out / "labels.pt")
    if len(shape) == 3:
        nrow, first = None, x[:64]
        if labels is not None and int(labels[-1]) != int(labels[0]):  # --class all: one row each
            counts = torch.bincount(labels)
            nrow = min(int(counts.min()), 16)
            first = torch.cat([x[labels == c][:nrow] for c in range(len(counts))])
        grid = common.to_images(first, logit=False)
        viz.save_image_grid(grid, out / "samples.png", nrow, scale=common.grid_scale(shape))


def _chunk_folder(out: Path, manifest: dict[str, Any], env: training.DistEnv) -> Path:
    """``out/chunks``, created with the run's manifest, or checked to hold this run's chunks."""
    folder = out / "chunks"
    file = folder / "manifest.json"
    if file.exists():
        try:
            theirs = json.loads(file.read_text())
        except (OSError, ValueError) as err:
            raise common.CommandError(f"{file}: unreadable ({err}); remove {folder}") from err
        if (theirs.get("checkpoint"), theirs.get("step")) != (
            manifest["checkpoint"],
            manifest["step"],
        ):
            raise common.CommandError(
                f"{folder} holds chunks drawn from {theirs.get('checkpoint')} (step "
                f"{theirs.get('step')}), not from {manifest['checkpoint']} (step {manifest['step']}); "
                "remove it, or sample into another --output"
            )
        differ = sorted(k for k in manifest if theirs.get(k) != manifest[k])
        if differ:
            raise common.CommandError(
                f"{folder} holds the chunks of a run with other settings ({', '.join(differ)} "
                "differ); remove it, or sample into another --output"
            )
    elif env.rank == 0:
        folder.mkdir(parents=True, exist_ok=True)
        common.save_atomic(json.dumps(manifest, indent=1), file)
    _barrier(env)  # rank 0 has written the manifest and created the folder
    return folder


def _unfinished(
    names: list[Path], mine: range, args: argparse.Namespace, shape: tuple[int, ...]
) -> list[int]:
    """This process's chunks still to draw; a finished one must be the chunk its name says."""
    todo = []
    for k in mine:
        if not names[k].exists():
            todo.append(k)
            continue
        try:
            chunk = torch.load(names[k], weights_only=True)
        except Exception as err:  # torn by a failing disk or a copy: drawn again
            common.say(
                f"note: {names[k].name} is unreadable ({type(err).__name__}); it is drawn again"
            )
            todo.append(k)
            continue
        n = min(args.batch_size, args.num_samples - k * args.batch_size)
        want = {"index": k, "seed": chunk_seed(args.seed, k), "shape": (n, *shape)}
        got = chunk if isinstance(chunk, dict) else {}
        samples = got.get("samples")
        got = {**got, "shape": tuple(samples.shape) if isinstance(samples, Tensor) else None}
        if any(got.get(key) != value for key, value in want.items()):
            raise common.CommandError(
                f"{names[k]}: holds chunk {got.get('index')} (seed {got.get('seed')}, shape "
                f"{got.get('shape')}), not chunk {k} of this run (seed {want['seed']}, shape "
                f"{want['shape']}): a copied or renamed file; remove it and rerun"
            )
    return todo


def _total(count: int, env: training.DistEnv, device: torch.device) -> int:
    """``count`` summed over the processes of the job."""
    if not env.distributed:
        return count
    total = torch.tensor([count], device=device)
    torch.distributed.all_reduce(total)
    return int(total)


def _barrier(env: training.DistEnv) -> None:
    if env.distributed:
        torch.distributed.barrier()


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``ncsn sample``."""
    s: argparse.ArgumentParser = sub.add_parser(
        "sample",
        help="draw samples from a trained model",
        description="Sample from a run of ours or an official checkpoint with annealed Langevin "
        "dynamics, consistent annealed sampling, predictor-corrector or the probability-flow ODE.",
    )
    s.add_argument("--num-samples", type=common.positive_int_arg, default=64)
    s.add_argument(
        "--batch-size",
        type=common.positive_int_arg,
        default=256,
        help="samples drawn together; each such chunk has its own seed, so the samples depend on "
        "--seed and --batch-size, not on the number of processes (default 256)",
    )
    s.add_argument("--output", default="samples")
    s.add_argument("--class", dest="class_name", default=None, help="a class-conditional model (ncsn train --conditional): sample this class (its index or recorded name), or 'all' for one row of the grid per class (default: the model's null label, unconditional)")  # fmt: skip
    s.add_argument("--guidance", type=common.non_negative_float_arg, default=None, help="with --class: classifier-free guidance weight w >= 0, the score (1 + w)·s(x, σ, y) − w·s(x, σ, ∅) (default 0, the conditional model)")  # fmt: skip
    common.add_sampling_options(s)
    s.set_defaults(run=_cmd_sample)
    return s
