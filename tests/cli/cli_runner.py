"""Running `ncsn` in-process in the tests of the command (imported by tests/cli/*)."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import pytest

from ncsn.cli import main


class Outcome(NamedTuple):
    """The exit status of ``ncsn ARGS`` (returned, or raised by argparse) and its output."""

    code: int
    out: str
    err: str

    def one_line(self, code: int, *needles: str) -> None:
        """Assert the status, and that stderr is one line naming each needle, no traceback."""
        assert self.code == code, self
        assert "Traceback" not in self.err and len(self.err.splitlines()) == 1, self.err
        for needle in needles:
            assert needle in self.err, self.err


Runner = Callable[..., Outcome]
"""``cli(*args)``: run ``ncsn ARGS`` and return its :class:`Outcome` (the ``cli`` fixture)."""


def runner(capsys: pytest.CaptureFixture[str]) -> Runner:
    def run(*args: str) -> Outcome:
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exit_info:
            code = int(exit_info.code or 0)
        captured = capsys.readouterr()
        return Outcome(code, captured.out.strip(), captured.err.strip())

    return run
