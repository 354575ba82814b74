"""``ncsn export``: a training run's model as a model folder (safetensors weights, config.json,
model card) that ``ncsn sample``, :func:`ncsn.load` and other people read without the run."""

from __future__ import annotations

import argparse
from typing import Any

from ncsn import sharing
from ncsn.cli import _common as common

__all__: list[str] = []  # the command is reached through ncsn.cli.main


def _cmd_export(args: argparse.Namespace) -> int:
    with common.user_input(args):
        folder = sharing.export(
            args.checkpoint, args.folder, ema=not args.no_ema, overwrite=args.overwrite
        )
    size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    common.say(
        f"{args.checkpoint} -> {folder} ({size / 1e6:.2f} MB: {sharing.WEIGHTS}, "
        f"{sharing.CONFIG}, {sharing.CARD})"
    )
    return 0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``ncsn export``."""
    e: argparse.ArgumentParser = sub.add_parser(
        "export",
        help="write a run's model as a model folder to share",
        description="Write the model of a training run (its newest checkpoint's EMA weights) as a "
        "model folder: model.safetensors, config.json (the network, its noise levels, the "
        "sampler and data the run recorded) and a README.md model card. ncsn sample, inpaint "
        "and likelihood and ncsn.load take the folder wherever they take a run.",
    )
    e.add_argument("checkpoint", help="a run folder (its newest checkpoint), a checkpoint file, or a model folder")  # fmt: skip
    e.add_argument("folder", help="the model folder to write")
    e.add_argument("--no-ema", action="store_true", help="the raw weights instead of the EMA weights")  # fmt: skip
    e.add_argument("--overwrite", action="store_true", help="replace a model folder already there")  # fmt: skip
    common.add_common_options(e, device=False)
    e.set_defaults(run=_cmd_export)
    return e
