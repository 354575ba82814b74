"""``ncsn evaluate``: Fréchet distance and classifier score of a sample set against reference data,
beside the real-data floor.

The Fréchet distance here (and in ``ncsn demo``) is that of the Gaussian fits, in float64, of the
features of the samples clamped to the pixel range [0, 1] and of the reference. The floor is the
same distance for as many real examples of the source's train split, drawn with ``--seed``,
when the reference is its test split: the number a perfect model would get, to read the samples'
against. Features are computed chunk by chunk and reduced to running statistics, so memory does
not grow with the number of samples (the sample file is memory-mapped); under ``torchrun`` the
ranks take turns on the chunks and their sums are added.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ncsn import data, metrics, training
from ncsn.cli import _common as common

__all__: list[str] = []  # the command is reached through ncsn.cli.main


def _cmd_evaluate(args: argparse.Namespace) -> int:
    env, device = common.join_job(args.device)
    x, folder = _samples(args.samples)
    common.writable_folder(
        folder, "the samples' folder"
    )  # before the scan: the result can be written
    split = args.split or ("test" if args.reference in data.DATASETS else None)
    reference = _reference(args, args.reference, split)
    event = tuple(x.shape[1:])
    if tuple(reference.shape[1:]) != event:
        raise common.CommandError(
            f"--reference {args.reference}: examples of shape {list(reference.shape[1:])} do not "
            f"match the samples' {list(event)}"
        )
    if len(x) < 2 or len(reference) < 2:
        raise common.CommandError(
            f"the Fréchet distance needs at least 2 samples and 2 reference examples; got "
            f"{len(x)} and {len(reference)}"
        )
    extractor, kind = _extractor(args, event, device)
    samples, probs, outside = _scan(x, extractor, args, env, device, probs=True)
    if outside:
        common.say(
            f"note: {outside / x.numel():.2%} of the sample values lie outside [0, 1]; they are "
            "clamped to it before the features (the Fréchet distance's definition)"
        )
    real = _scan(reference, extractor, args, env, device)[0].statistics()
    fd = metrics.frechet_distance_from_statistics(samples.statistics(), real)
    floor, floor_examples = None, 0
    if split == "test" and not args.no_floor:
        train = _reference(args, args.reference, "train")
        pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(args.seed))
        train = train[pick[: len(x)]]
        floor_examples = len(train)
        floor_stats = _scan(train, extractor, args, env, device)[0].statistics()
        floor = metrics.frechet_distance_from_statistics(floor_stats, real)
    assert probs is not None
    splits = min(args.splits, len(x))
    score = metrics.inception_score(probs, splits=splits)
    name = "FID" if kind == "inception" else "Fréchet distance (digits features)"
    label = "Inception Score" if kind == "inception" else "classifier score"
    where = f"{args.reference}" + (f" ({split} split)" if split else "")
    floor_text = (
        f"real-data floor {floor:.2f} ({floor_examples} examples of its train split)"
        if floor is not None
        else "no real-data floor (it needs a reference with a train/test split)"
    )
    result_file = folder / "evaluation.json"
    common.say(
        f"{name} {fd:.2f} between {len(x)} samples and {len(reference)} examples of {where}; "
        f"{floor_text}; {label} {score.mean:.2f} ± {score.std:.2f} ({splits} splits) -> {result_file}"
    )
    result = {
        "samples": len(x),
        "reference": args.reference,
        "split": split,
        "reference_examples": len(reference),
        "features": kind,
        "frechet_distance": fd,
        "real_floor": floor,
        "floor_examples": floor_examples,
        "clamped_fraction": outside / x.numel(),
        "classifier_score": score.mean,
        "classifier_score_std": score.std,
        "splits": splits,
    }
    if env.rank == 0:
        common.save_atomic(json.dumps(result, indent=1) + "\n", result_file)
    if env.distributed:
        torch.distributed.destroy_process_group()
    return 0


def _samples(path: str) -> tuple[Tensor, Path]:
    """The ``[N, *event]`` sample tensor in ``path`` (a ``.pt`` file, or a folder holding
    ``samples.pt``), memory-mapped, and the folder to write the result into."""
    file = Path(path)
    if file.is_dir():
        file = file / "samples.pt"
    if not file.exists():
        raise common.CommandError(
            f"{path}: no such file (expected a samples.pt or a folder holding one)"
        )
    try:
        x = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # any unreadable file: reported in one line
        raise common.CommandError(
            f"{file}: not a readable tensor file ({common.one_line(err)})"
        ) from err
    if not isinstance(x, Tensor) or x.ndim < 2 or not x.is_floating_point():
        what = f"a {x.dtype} tensor of shape {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__  # fmt: skip
        raise common.CommandError(
            f"{file}: expected a floating [N, *event] tensor of samples; got {what}"
        )
    return x, file.parent


def _reference(args: argparse.Namespace, source: str, split: str | None) -> Tensor:
    if source.endswith(".pt"):
        return _samples(source)[0]
    return common.load_data(args, source, split=split, download=args.download or None)


def _extractor(args: argparse.Namespace, event: tuple[int, ...], device: torch.device) -> Any:
    default = "digits" if event == (1, 8, 8) and args.inception_weights is None else "inception"
    kind = args.features or default
    if kind == "digits":
        if event != (1, 8, 8):
            raise common.CommandError(
                f"--features digits scores 8x8 grey digits [1, 8, 8]; the samples are {list(event)}"
            )
        return metrics.digits_evaluator(seed=0), kind
    if args.inception_weights is None:
        raise common.CommandError(
            f"--features inception needs --inception-weights FILE for samples of shape "
            f"{list(event)}: torch-fidelity's weights-inception-2015-12-05-6726825d.pth (published "
            "with torch-fidelity's releases on GitHub) or pytorch-fid's pt_inception-2015-12-05 file"
        )
    with common.user_input(args):
        return metrics.inception_v3(args.inception_weights, device=device), kind


def _all_reduce(t: Tensor, env: training.DistEnv, device: torch.device) -> Tensor:
    """``t`` summed over the processes (on ``device``: NCCL reduces CUDA tensors only)."""
    if not env.distributed:
        return t
    on_device = t.to(device)
    torch.distributed.all_reduce(on_device)
    return on_device.to(t.device)


def _features(extractor: Any, batch: Tensor, probs: bool) -> tuple[Tensor, Tensor | None]:
    with torch.no_grad():
        features = extractor.features(batch)
        if not probs:
            return features, None
        if isinstance(extractor, metrics.InceptionV3Features):  # one pass for both
            weight = extractor.network.fc.weight
            return features, torch.softmax(features.to(weight.device) @ weight.T, dim=1)
        return features, extractor.probabilities(batch)


def _scan(
    x: Tensor,
    extractor: Any,
    args: argparse.Namespace,
    env: training.DistEnv,
    device: torch.device,
    probs: bool = False,
) -> tuple[metrics.RunningStatistics, Tensor | None, int]:
    """Running feature statistics of ``x`` over every rank's chunks, its class probabilities
    (``probs``) and the number of values outside [0, 1] that were clamped.

    Every rank first scores row 0: the sums of the ranks add up exactly around that one shared
    shift, and its sizes are those of the sums a rank without a chunk adds (zeros).
    """
    head, head_probs = _features(extractor, x[:1].float().nan_to_num().clamp(0, 1), probs)
    running = metrics.RunningStatistics(shift=head[0])
    width = head.shape[1]
    all_probs = torch.zeros(len(x), 0 if head_probs is None else head_probs.shape[1], dtype=torch.float64)  # fmt: skip
    outside = torch.zeros((), dtype=torch.float64)
    size = args.batch_size
    for k in range(math.ceil(len(x) / size))[env.rank :: env.world_size]:
        batch = x[k * size : (k + 1) * size].float()
        if not bool(torch.isfinite(batch).all()):
            raise common.CommandError(
                f"rows {k * size}–{k * size + len(batch) - 1} hold NaN or infinity: a diverged "
                "sampler? (the Fréchet distance needs finite samples)"
            )
        outside += ((batch < 0) | (batch > 1)).sum()
        features, p = _features(extractor, batch.clamp(0, 1), probs)
        running.update(features)
        if p is not None:
            all_probs[k * size : k * size + len(p)] = p.double().cpu()
    if env.distributed:
        sums = running.sums if running.count else torch.zeros((width + 1) ** 2, dtype=torch.float64)
        running.load_sums(_all_reduce(sums, env, device))
        outside = _all_reduce(outside, env, device)
        all_probs = _all_reduce(all_probs, env, device)
    return running, all_probs if probs else None, int(outside)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``ncsn evaluate``."""
    e: argparse.ArgumentParser = sub.add_parser(
        "evaluate",
        help="Fréchet distance and classifier score of samples, beside the real-data floor",
        description="Score a sample set (samples.pt, as ncsn sample writes it) against reference "
        "data in chunks with bounded memory: the Fréchet distance of features (samples clamped "
        "to [0, 1]) beside the real-data floor, and the classifier (Inception-style) score. The "
        "digits' own evaluator for 8x8 digits, the FID Inception-v3 otherwise. Runs under "
        "torchrun too.",
    )
    e.add_argument("samples", help="a samples.pt file, or a folder holding one")
    e.add_argument("--reference", required=True, help="the real data: anything ncsn train --data takes, or a .pt tensor file")  # fmt: skip
    e.add_argument("--split", default=None, help="the reference split (default: test for digits, mnist and fashion-mnist; else the source's own)")  # fmt: skip
    e.add_argument("--download", action="store_true", help="download mnist or fashion-mnist if not found")  # fmt: skip
    e.add_argument("--no-floor", action="store_true", help="skip the real-data floor (it scores as many real examples as samples)")  # fmt: skip
    e.add_argument("--features", choices=["digits", "inception"], default=None, help="feature network (default: inception with --inception-weights or for images other than [1, 8, 8], else digits)")  # fmt: skip
    e.add_argument("--inception-weights", default=None, help="the FID Inception-v3 weights file (torch-fidelity's or pytorch-fid's)")  # fmt: skip
    e.add_argument("--batch-size", type=common.positive_int_arg, default=500, help="examples per chunk (default 500)")  # fmt: skip
    e.add_argument("--splits", type=common.positive_int_arg, default=10, help="classifier-score splits (default 10)")  # fmt: skip
    e.add_argument("--seed", type=common.seed_arg, default=0, help="the draw of the floor's real examples")  # fmt: skip
    common.add_common_options(e)
    e.set_defaults(run=_cmd_evaluate)
    return e
