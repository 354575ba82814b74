"""``ncsn evaluate``: Fréchet distance and classifier score of a sample set against reference data.

Features are computed chunk by chunk and reduced to running statistics
(:class:`ncsn.metrics.RunningStatistics`), so memory does not grow with the number of samples
(the sample file itself is memory-mapped); under ``torchrun`` the ranks take turns on the chunks
and their sums are added.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ncsn import data as ncsn_data
from ncsn import metrics, training
from ncsn.cli._common import (
    CommandError,
    join_job,
    one_line,
    positive_int_arg,
    say,
    user_input,
)

__all__: list[str] = []  # the command is reached through ncsn.cli.main


def _samples(path: str) -> tuple[Tensor, Path]:
    """The ``[N, *event]`` sample tensor in ``path`` (a ``.pt`` file, or a folder holding
    ``samples.pt``), memory-mapped, and the folder to write the result into."""
    file = Path(path)
    if file.is_dir():
        file = file / "samples.pt"
    if not file.exists():
        raise CommandError(f"{path}: no such file (expected a samples.pt or a folder holding one)")
    try:
        x = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # any unreadable file: reported in one line
        raise CommandError(f"{file}: not a readable tensor file ({one_line(err)})") from err
    if not isinstance(x, Tensor) or x.ndim < 2 or not x.is_floating_point():
        what = (
            f"a {x.dtype} tensor of shape {tuple(x.shape)}"
            if isinstance(x, Tensor)
            else type(x).__name__
        )
        raise CommandError(f"{file}: expected a floating [N, *event] tensor of samples; got {what}")
    return x, file.parent


def _reference(args: argparse.Namespace) -> Tensor:
    if args.reference.endswith(".pt"):
        return _samples(args.reference)[0]
    try:
        x, _ = ncsn_data.load(args.reference, split=args.split)
    except (FileNotFoundError, ValueError) as err:
        raise CommandError(one_line(err)) from err
    return x


def _extractor(args: argparse.Namespace, event: tuple[int, ...], device: torch.device) -> Any:
    kind = args.features or ("digits" if event == (1, 8, 8) else "inception")
    if kind == "digits":
        if event != (1, 8, 8):
            raise CommandError(
                f"--features digits scores 8x8 grey digits [1, 8, 8]; the samples are {list(event)}"
            )
        return metrics.digits_evaluator(seed=0), kind
    if args.inception_weights is None:
        raise CommandError(
            f"--features inception needs --inception-weights FILE for samples of shape "
            f"{list(event)}: torch-fidelity's weights-inception-2015-12-05-6726825d.pth (published "
            "with torch-fidelity's releases on GitHub) or pytorch-fid's pt_inception-2015-12-05 file"
        )
    with user_input():
        return metrics.inception_v3(args.inception_weights, device=device), kind


def _all_reduce(t: Tensor, env: training.DistEnv) -> Tensor:
    if env.distributed:
        torch.distributed.all_reduce(t)
    return t


def _scan(
    x: Tensor, extractor: Any, args: argparse.Namespace, env: training.DistEnv, probs: bool
) -> tuple[metrics.RunningStatistics, Tensor | None]:
    """Running feature statistics of ``x`` (and its class probabilities), this rank's chunks."""
    # Summed over ranks, the sums are exact only around one shift every rank shares: row 0's
    # features (without one, each rank's first chunk would set its own).
    first = x[:1].float()
    shift = None
    if bool(torch.isfinite(first).all()):
        with torch.no_grad():
            shift = extractor.features(first.clamp(0, 1))[0]
    running = metrics.RunningStatistics(shift=shift)
    chunks = range(math.ceil(len(x) / args.batch_size))
    all_probs: Tensor | None = None
    for k in chunks[env.rank :: env.world_size]:
        batch = x[k * args.batch_size : (k + 1) * args.batch_size].float()
        if not bool(torch.isfinite(batch).all()):
            raise CommandError(
                f"rows {k * args.batch_size}–{k * args.batch_size + len(batch) - 1} hold NaN or "
                "infinity: a diverged sampler? (the Fréchet distance needs finite samples)"
            )
        with torch.no_grad():
            features = extractor.features(batch.clamp(0, 1))
            running.update(features)
            if probs:
                if isinstance(extractor, metrics.InceptionV3Features):  # one pass for both
                    weight = extractor.network.fc.weight
                    p = torch.softmax(features.to(weight.device) @ weight.T, dim=1)
                else:
                    p = extractor.probabilities(batch.clamp(0, 1))
                p = p.double().cpu()
                if all_probs is None:
                    all_probs = torch.zeros(len(x), p.shape[1], dtype=torch.float64)
                all_probs[k * args.batch_size : k * args.batch_size + len(p)] = p
    # Every rank contributes its sums (a rank with no chunk adds zeros of the right size).
    sums = running.sums if running.count else None
    if env.distributed:
        size = torch.tensor([0 if sums is None else sums.numel()], dtype=torch.int64)
        torch.distributed.all_reduce(size, op=torch.distributed.ReduceOp.MAX)
        sums = torch.zeros(int(size), dtype=torch.float64) if sums is None else sums
        running.load_sums(_all_reduce(sums, env))
        if probs:
            classes = torch.tensor([0 if all_probs is None else all_probs.shape[1]])
            torch.distributed.all_reduce(classes, op=torch.distributed.ReduceOp.MAX)
            if all_probs is None:
                all_probs = torch.zeros(len(x), int(classes), dtype=torch.float64)
            all_probs = _all_reduce(all_probs, env)
    return running, all_probs


def _cmd_evaluate(args: argparse.Namespace) -> int:
    env, device = join_job(args.device)
    x, folder = _samples(args.samples)
    reference = _reference(args)
    event = tuple(x.shape[1:])
    if tuple(reference.shape[1:]) != event:
        raise CommandError(
            f"--reference {args.reference}: examples of shape {list(reference.shape[1:])} do not "
            f"match the samples' {list(event)}"
        )
    if len(x) < 2 or len(reference) < 2:
        raise CommandError(
            f"the Fréchet distance needs at least 2 samples and 2 reference examples; got "
            f"{len(x)} and {len(reference)}"
        )
    extractor, kind = _extractor(args, event, device)
    samples_stats, probs = _scan(x, extractor, args, env, probs=True)
    reference_stats, _ = _scan(reference, extractor, args, env, probs=False)
    fd = metrics.frechet_distance_from_statistics(
        samples_stats.statistics(), reference_stats.statistics()
    )
    assert probs is not None
    splits = min(args.splits, len(x))
    score = metrics.inception_score(probs, splits=splits)
    result = {
        "samples": len(x),
        "reference": args.reference,
        "reference_examples": len(reference),
        "features": kind,
        "frechet_distance": fd,
        "classifier_score": score.mean,
        "classifier_score_std": score.std,
        "splits": splits,
    }
    if env.rank == 0:
        (folder / "evaluation.json").write_text(json.dumps(result, indent=1) + "\n")
    name = "FID" if kind == "inception" else "Fréchet distance (digits features)"
    label = "Inception Score" if kind == "inception" else "classifier score"
    say(
        f"{name} {fd:.2f} between {len(x)} samples and {len(reference)} examples of "
        f"{args.reference}; {label} {score.mean:.2f} ± {score.std:.2f} ({splits} splits) -> "
        f"{folder / 'evaluation.json'}"
    )
    if env.distributed:
        torch.distributed.destroy_process_group()
    return 0


def add_parser(sub: Any) -> None:
    """Register ``ncsn evaluate``."""
    e = sub.add_parser(
        "evaluate",
        help="Fréchet distance and classifier score of samples against reference data",
        description="Score a sample set (samples.pt, as ncsn sample writes it) against reference "
        "data in chunks with bounded memory: the Fréchet distance of features and the classifier "
        "(Inception-style) score. The digits' own evaluator for 8x8 digits, the FID Inception-v3 "
        "otherwise. Runs under torchrun too.",
    )
    e.add_argument("samples", help="a samples.pt file, or a folder holding one")
    e.add_argument(
        "--reference",
        required=True,
        help="the real data: anything ncsn train --data takes, or a .pt tensor file",
    )
    e.add_argument(
        "--split",
        default="test",
        help="the reference split where the source has one (default test: held-out data)",
    )
    e.add_argument(
        "--features",
        choices=["digits", "inception"],
        default=None,
        help="feature network (default: digits for [1, 8, 8] samples, else inception)",
    )
    e.add_argument(
        "--inception-weights",
        default=None,
        help="the FID Inception-v3 weights file (torch-fidelity's or pytorch-fid's)",
    )
    e.add_argument(
        "--batch-size", type=positive_int_arg, default=500, help="examples per chunk (default 500)"
    )
    e.add_argument(
        "--splits", type=positive_int_arg, default=10, help="classifier-score splits (default 10)"
    )
    e.add_argument("--device", default="cpu")
    e.set_defaults(run=_cmd_evaluate)
