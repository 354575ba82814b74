"""The ``ncsn`` command: ``ncsn train``, ``ncsn sample``, ``ncsn evaluate``, ``ncsn inpaint``,
``ncsn likelihood`` and ``ncsn demo``.

Every subcommand has ``--help``. A bad argument or a missing file prints one line and exits with
status 2, a training run whose loss becomes non-finite prints one line naming the step and exits
with status 1; an interrupted training run (Ctrl-C, or SIGTERM: exit 143) saves a checkpoint first,
so it can be resumed with ``--resume``, which rebuilds the run from the settings its checkpoints
record.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from ncsn import training
from ncsn.cli import demo, evaluate, inpaint, likelihood, sample, train
from ncsn.cli._common import EXIT_FAILURE, EXIT_USAGE, CommandError, Parser, one_line

__all__ = ["main", "run"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``ncsn`` command."""
    parser = Parser(
        prog="ncsn", description="Noise Conditional Score Networks (Song & Ermon, 2019)."
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    for command in (train, sample, evaluate, inpaint, likelihood, demo):
        command.add_parser(sub)
    return parser


def _given_options(argv: Sequence[str]) -> set[str]:
    """The destinations of the options written on the command line (not left at their defaults)."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for command in sub.choices.values():
        for action in command._actions:
            action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv))) - {"command", "run"}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ncsn`` console script (and ``python -m ncsn``).

    Returns the exit status: 0 on success, 2 for a bad argument or an unusable file, 1 for a run
    that failed on its own (a non-finite training loss, a diverging sampler, a disk that filled up),
    130 after Ctrl-C, 143 after SIGTERM. Each error is one line
    on stderr.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.given = _given_options(argv)
    try:
        return int(args.run(args))
    except CommandError as err:
        print(f"ncsn {args.command}: error: {err}", file=sys.stderr)
        return err.exit_code
    except (training.CheckpointError, FileNotFoundError, FileExistsError) as err:
        print(f"ncsn {args.command}: error: {one_line(err)}", file=sys.stderr)
        return EXIT_USAGE
    except FloatingPointError as err:  # a sampler diverged (non-finite values)
        print(
            f"ncsn {args.command}: error: {one_line(err)}; try a smaller --step-size",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    except OSError as err:  # e.g. a full disk while saving (the older checkpoints are kept)
        where = f" ({err.filename})" if err.filename else ""
        print(
            f"ncsn {args.command}: error: {err.strerror or one_line(err)}{where}", file=sys.stderr
        )
        return EXIT_FAILURE


def run() -> NoReturn:
    """The ``ncsn`` console script and ``python -m ncsn``: :func:`main`, then exit with its status.

    A process of a ``torchrun`` job (``WORLD_SIZE`` > 1) exits without finalising the
    interpreter, once its output is flushed and everything it wrote is closed: PyTorch's
    teardown of the autograd and gloo threads at interpreter exit can hang now and then
    (pytorch/pytorch#190489; seen here as a three-process ``ncsn train`` whose work was done
    and whose rank never exited), which would leave ``torchrun`` waiting forever.
    """
    code = main()
    if training.distributed_env().distributed:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
