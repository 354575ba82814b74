"""The ``ncsn`` command: ``ncsn train``, ``ncsn sample``, ``ncsn evaluate``, ``ncsn inpaint``,
``ncsn restore``, ``ncsn likelihood``, ``ncsn export`` and ``ncsn demo``.

Every subcommand has ``--help`` and ``--threads``. A bad argument or a missing file prints one
line and exits with status 2, a run that fails on its own (a non-finite loss, a diverging
sampler, a full disk) prints one line and exits with status 1; Ctrl-C exits with 130 and SIGTERM
with 143, after keeping what was finished (a training run saves a checkpoint first, so it can be
resumed with ``--resume``; ``ncsn sample`` keeps its finished chunks).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

import torch

import ncsn
from ncsn import training
from ncsn.cli import demo, evaluate, export, inpaint, likelihood, restore, sample, train
from ncsn.cli._common import EXIT_FAILURE, EXIT_USAGE, CommandError, Parser, one_line

__all__ = ["main", "run"]

# What an interrupted command left, when it does not say so itself.
_UNFINISHED = {
    "train": "nothing was trained yet",
    "demo": "what was finished is in --output (summary.txt)",
}
_NOT_GIVEN = object()


def _parsers() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = Parser(
        prog="ncsn", description="Noise Conditional Score Networks (Song & Ermon, 2019)."
    )
    parser.add_argument("--version", action="version", version=f"ncsn {ncsn.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    commands = (train, sample, evaluate, inpaint, restore, likelihood, export, demo)
    return parser, {
        command.__name__.rsplit(".")[-1]: command.add_parser(sub) for command in commands
    }


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``ncsn`` command."""
    return _parsers()[0]


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """The parsed arguments, with ``given``: the destinations of the options written on the
    command line (a second parse in which every default of the subcommand is a sentinel)."""
    parser, commands = _parsers()
    args = parser.parse_args(argv)
    names = set(vars(args)) - {"command", "run"}
    commands[args.command].set_defaults(**dict.fromkeys(names, _NOT_GIVEN))
    again = vars(parser.parse_args(argv))
    args.given = {name for name in names if again[name] is not _NOT_GIVEN}
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ncsn`` console script (and ``python -m ncsn``).

    Returns the exit status: 0 on success, 2 for a bad argument or an unusable file, 1 for a run
    that failed on its own (a non-finite training loss, a diverging sampler, a disk that filled
    up), 130 after Ctrl-C, 143 after SIGTERM. Each error is one line on stderr.

    Example:
        >>> ncsn.cli.main(["train", "--output", "runs/new", "--steps", "10"])  # no --data: one line
        2
    """
    args = parse(list(sys.argv[1:] if argv is None else argv))
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    prefix = f"ncsn {args.command}"
    try:
        with training.interruptible():
            return int(args.run(args))
    except KeyboardInterrupt as err:  # the command kept nothing of its own to report
        sigterm = isinstance(err, training.Terminated)
        what = "terminated (SIGTERM)" if sigterm else "interrupted"
        unfinished = _UNFINISHED.get(args.command, "nothing was written")
        print(f"\n{prefix}: {what}; {unfinished}", file=sys.stderr)
        return 143 if sigterm else 130
    except CommandError as err:
        print(f"{prefix}: error: {err}", file=sys.stderr)
        return err.exit_code
    except (training.CheckpointError, FileNotFoundError, FileExistsError) as err:
        print(f"{prefix}: error: {one_line(err)}", file=sys.stderr)
        return EXIT_USAGE
    except FloatingPointError as err:  # non-finite values (sample and inpaint add advice)
        print(f"{prefix}: error: {one_line(err)}", file=sys.stderr)
        return EXIT_FAILURE
    except ModuleNotFoundError as err:  # an optional dependency (ours are all there)
        if (err.name or "ncsn").startswith("ncsn"):
            raise
        print(f"{prefix}: error: this needs the package {err.name!r} (pip install {err.name})", file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    except ImportError as err:  # ours, naming the extra to install (hf:OWNER/NAME without the hub)
        print(f"{prefix}: error: {one_line(err)}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as err:  # e.g. a full disk while saving (what was saved before is kept)
        where = f" ({err.filename})" if err.filename else ""
        print(f"{prefix}: error: {err.strerror or one_line(err)}{where}", file=sys.stderr)
        return EXIT_FAILURE


def run() -> NoReturn:
    """The ``ncsn`` console script and ``python -m ncsn``: :func:`main`, then exit with its status.

    A process of a ``torchrun`` job (``WORLD_SIZE`` > 1) exits without finalising the
    interpreter, once its output is flushed: PyTorch's teardown of the autograd and gloo threads
    at interpreter exit can hang now and then (pytorch/pytorch#190489), which would leave
    ``torchrun`` waiting forever.
    """
    code = main()
    if training.distributed_env().distributed:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
