"""``ncsn demo``: runs :func:`ncsn.demo.main` (the paper's toy figure and a small NCSN, NCSNv2's
recipe, on the embedded digits) with the options given."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ncsn import demo, viz
from ncsn.cli import _common as common

__all__: list[str] = []  # the command is reached through ncsn.cli.main


def _cmd_demo(args: argparse.Namespace) -> int:
    out = common.writable_folder(args.output)
    options = ("steps", "batch_size", "ngf", "steps_per_level", "step_size", "seed")
    try:
        viz.require_matplotlib()
        plots = True
    except ImportError:
        common.say("matplotlib is missing: the plots are skipped (pip install 'ncsn[examples]')", file=sys.stderr)  # fmt: skip
        plots = False
    settings = {name: getattr(args, name) for name in options}
    demo.main(out, **settings, progress=not args.quiet, plots=plots, log=common.say)
    return 0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``ncsn demo``."""
    d: argparse.ArgumentParser = sub.add_parser(
        "demo",
        help="the paper's toy figure and a small NCSN on digits (about 4 minutes on 2 CPU cores)",
        description="Reproduce Fig. 3 with exact scores, train a small NCSN on the embedded "
        "digits, sample, inpaint and score (ncsn.demo.main).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    d.add_argument("--output", default="outputs/demo", help="the folder for every file it writes")
    d.add_argument("--steps", type=common.positive_int_arg, default=1500, help="training steps")
    d.add_argument(
        "--batch-size", type=common.positive_int_arg, default=128, help="training batch size"
    )
    d.add_argument("--ngf", type=common.positive_int_arg, default=16, help="RefineNet width")
    d.add_argument("--step-size", type=common.positive_float_arg, default=None, help="Langevin ε (None: twice Technique 4's for T)")  # fmt: skip
    d.add_argument("--steps-per-level", type=common.positive_int_arg, default=10, help="T, Langevin steps per level")  # fmt: skip
    d.add_argument("--seed", type=common.seed_arg, default=0, help="the seed of everything random")
    d.add_argument("--quiet", action="store_true", help="no progress bars")
    common.add_common_options(d, device=False)
    d.set_defaults(run=_cmd_demo)
    return d
