"""``ncsn demo``: runs :func:`ncsn.demo.main` (the paper's toy figure and a small NCSN, NCSNv2's
recipe, on the embedded digits, or in a short version on MNIST or Fashion-MNIST) with the options
given."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ncsn import demo, viz
from ncsn.cli import _common as common

__all__: list[str] = []  # the command is reached through ncsn.cli.main

_SETTINGS = (
    *("data", "steps", "batch_size", "ngf", "num_samples", "steps_per_level", "step_size"),
    "download",
)


def _cmd_demo(args: argparse.Namespace) -> int:
    settings = {name: getattr(args, name) for name in _SETTINGS}
    with common.user_input(args):  # checked before any work, in the command's terms
        demo.settings(**settings)
    out = common.writable_folder(args.output)
    try:
        viz.require_matplotlib()
        plots = True
    except ImportError:
        common.say("matplotlib is missing: the plots are skipped (pip install 'ncsn[examples]')", file=sys.stderr)  # fmt: skip
        plots = False
    demo.main(
        out,
        **settings,
        seed=args.seed,
        progress=not args.quiet,
        plots=plots,
        log=common.say,
    )
    return 0


def _defaults(name: str) -> str:
    """A setting's default on each dataset, as the help shows it."""
    values = [f"{getattr(spec, name)} for {data}" for data, spec in demo.DATASETS.items()]
    return "None: " + ", ".join(values)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``ncsn demo``."""
    d: argparse.ArgumentParser = sub.add_parser(
        "demo",
        help="the paper's toy figure and a small NCSN on digits (about 4 minutes on 2 CPU cores; "
        "--data mnist: a short MNIST version, about 8 minutes)",
        description="Reproduce Fig. 3 with exact scores, train a small NCSN on the embedded "
        "digits (or MNIST, Fashion-MNIST), sample, inpaint and score (ncsn.demo.main).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    d.add_argument("--output", default="outputs/demo", help="the folder for every file it writes")
    d.add_argument("--data", choices=tuple(demo.DATASETS), default="digits", help="the embedded 8x8 digits, or the short version on MNIST or Fashion-MNIST (28x28; their files found as ncsn train --data finds them)")  # fmt: skip
    d.add_argument("--steps", type=common.positive_int_arg, default=None, help=f"training steps ({_defaults('steps')})")  # fmt: skip
    d.add_argument("--batch-size", type=common.positive_int_arg, default=None, help=f"training batch size ({_defaults('batch_size')})")  # fmt: skip
    d.add_argument("--ngf", type=common.positive_int_arg, default=None, help=f"RefineNet width ({_defaults('ngf')})")  # fmt: skip
    d.add_argument("--num-samples", type=common.positive_int_arg, default=None, help=f"samples drawn and scored ({_defaults('num_samples')})")  # fmt: skip
    d.add_argument("--step-size", type=common.positive_float_arg, default=None, help="Langevin ε (None: twice Technique 4's for T; --data digits only)")  # fmt: skip
    d.add_argument("--steps-per-level", type=common.positive_int_arg, default=None, help="T, Langevin steps per level (None: 10; --data digits only)")  # fmt: skip
    d.add_argument("--download", action="store_true", help="fetch MNIST or Fashion-MNIST when their files are found nowhere")  # fmt: skip
    d.add_argument("--seed", type=common.seed_arg, default=0, help="the seed of everything random")
    d.add_argument("--quiet", action="store_true", help="no progress bars")
    common.add_common_options(d, device=False)
    d.set_defaults(run=_cmd_demo)
    return d
