"""``ncsn demo``: runs the example ``examples/demo.py`` (the paper's toy figure and a small NCSN,
NCSNv2's recipe, on the embedded digits) with the options given."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from ncsn import viz
from ncsn.cli._common import (
    CommandError,
    positive_float_arg,
    positive_int_arg,
    say,
    seed_arg,
    writable_folder,
)

__all__: list[str] = []  # the command is reached through ncsn.cli.main

# From a clone (an editable install) the example is read where it lies; a wheel carries a copy
# as ncsn/_demo_example.py (pyproject.toml's force-include).
_REPOSITORY_EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "demo.py"


def demo_example() -> ModuleType:
    """The ``examples/demo.py`` module."""
    try:
        from ncsn import _demo_example  # type: ignore[attr-defined]  # only in a wheel
    except ImportError:
        pass
    else:
        return _demo_example
    if not _REPOSITORY_EXAMPLE.is_file():
        raise CommandError(
            f"the demo example is missing: neither ncsn/_demo_example.py nor {_REPOSITORY_EXAMPLE}"
        )
    spec = importlib.util.spec_from_file_location("ncsn_demo_example", _REPOSITORY_EXAMPLE)
    if spec is None or spec.loader is None:
        raise CommandError(f"cannot load the demo example {_REPOSITORY_EXAMPLE}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cmd_demo(args: argparse.Namespace) -> int:
    out = writable_folder(args.output)
    demo_example().main(
        out,
        steps=args.steps,
        batch_size=args.batch_size,
        ngf=args.ngf,
        steps_per_level=args.steps_per_level,
        step_size=args.step_size,
        seed=args.seed,
        progress=not args.quiet,
        plots=plots_available(),
        log=say,
    )
    return 0


def plots_available() -> bool:
    try:
        viz.require_matplotlib()
    except ImportError:
        say(
            "matplotlib is missing: the plots are skipped (pip install 'ncsn[examples]')",
            file=sys.stderr,
        )
        return False
    return True


def add_parser(sub: Any) -> None:
    """Register ``ncsn demo``."""
    d = sub.add_parser(
        "demo",
        help="the paper's toy figure and a small NCSN on digits (under 10 minutes on 2 CPU cores)",
        description="Reproduce Fig. 3 with exact scores, train a small NCSN on the embedded "
        "digits, sample and inpaint (the example examples/demo.py).",
    )
    d.add_argument("--output", default="outputs/demo")
    d.add_argument("--steps", type=positive_int_arg, default=1500)
    # the narrow RefineNet of presets.default_ngf, whose 1,500 steps of batch 128 take about the
    # time that ngf 32 took for batch 64 (the demo's bound: 10 minutes on 2 CPU cores)
    d.add_argument("--batch-size", type=positive_int_arg, default=128)
    d.add_argument("--ngf", type=positive_int_arg, default=16)
    d.add_argument(
        "--step-size",
        type=positive_float_arg,
        default=None,
        help="Langevin ε (default: twice NCSNv2's Technique 4 for T, the quality table's best)",
    )
    d.add_argument("--steps-per-level", type=positive_int_arg, default=10, help="T (default 10)")
    d.add_argument("--seed", type=seed_arg, default=0)
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(run=_cmd_demo)
