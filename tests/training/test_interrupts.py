"""ncsn.training.interrupts: Ctrl-C and SIGTERM as exceptions in a block, held back in another."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import Tensor

import ncsn
from ncsn.training import Output, Terminated, Trainer, interruptible, interrupts

ENV = {k: v for k, v in os.environ.items() if k not in {"RANK", "WORLD_SIZE", "LOCAL_RANK"}}


def _send(signum: int) -> None:
    os.kill(os.getpid(), signum)


def _handlers() -> tuple[object, object]:
    return signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)


def test_sigterm_inside_interruptible_is_terminated_and_the_handlers_come_back() -> None:
    before = _handlers()
    assert before == (signal.SIG_DFL, signal.default_int_handler)
    with pytest.raises(Terminated), interruptible():
        _send(signal.SIGTERM)
    assert _handlers() == before
    with pytest.raises(KeyboardInterrupt) as info, interruptible():
        _send(signal.SIGINT)
    assert type(info.value) is KeyboardInterrupt
    assert _handlers() == before


def test_blocks_nest_and_the_outermost_restores_the_handlers() -> None:
    with interruptible():
        installed = _handlers()
        assert installed[0] is not signal.SIG_DFL
        with interruptible():
            assert _handlers() == installed
        assert _handlers() == installed  # the inner block left the outer's handlers in place
        with pytest.raises(Terminated):
            _send(signal.SIGTERM)
    assert _handlers() == (signal.SIG_DFL, signal.default_int_handler)


def test_held_raises_the_first_signal_when_the_outermost_held_block_ends() -> None:
    done: list[str] = []
    with pytest.raises(KeyboardInterrupt) as info:
        with interrupts.held():
            _send(signal.SIGINT)
            with interrupts.held():
                _send(signal.SIGTERM)
            done.append("after the inner block")
        done.append("not reached")
    assert type(info.value) is KeyboardInterrupt  # the first signal decides
    assert done == ["after the inner block"]
    with interrupts.held():
        pass  # nothing pending is left over
    assert _handlers() == (signal.SIG_DFL, signal.default_int_handler)


def test_a_handler_the_program_set_is_left_alone() -> None:
    seen: list[int] = []

    def own(signum: int, frame: object) -> None:
        seen.append(signum)

    previous = signal.signal(signal.SIGTERM, own)
    try:
        with interruptible(), interrupts.held():
            _send(signal.SIGTERM)
        assert seen == [signal.SIGTERM]
        assert signal.getsignal(signal.SIGTERM) is own
    finally:
        signal.signal(signal.SIGTERM, previous)


SET_UP = """
import sys, time
import ncsn
try:
    with ncsn.training.interruptible():
        print("loading the data", flush=True)
        time.sleep(60)  # what SIGTERM interrupts: a program's set-up
except ncsn.training.Terminated:
    print("stopped before the first step: nothing was trained yet", flush=True)
    sys.exit(143)
"""


def test_sigterm_during_a_programs_set_up_is_a_clean_exception() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", SET_UP],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "loading the data\n"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == 143, err
    assert out == "stopped before the first step: nothing was trained yet\n" and not err


def test_sigterm_in_the_first_step_leaves_step_zero_and_no_checkpoint(tmp_path: Path) -> None:
    """What a compiling first step sees: the signal is raised at once, nothing was trained."""
    schedule = ncsn.GeometricSchedule(2.0, 0.1, 4)
    dsm = ncsn.losses.DenoisingScoreMatching(schedule)

    def terminated_forward(
        model: ncsn.ScoreModel, x: Tensor, *, generator: torch.Generator | None = None
    ) -> Tensor:
        _send(signal.SIGTERM)
        return dsm(model, x, generator=generator)

    net = ncsn.nets.ScoreMLP(2, hidden=8, sigmas=schedule.sigmas)
    trainer = Trainer(
        net,
        terminated_forward,
        torch.rand(16, 2),
        batch_size=8,
        seed=0,
        output=Output(tmp_path, progress=False),
    )
    with pytest.raises(Terminated):
        trainer.fit(5)
    assert trainer.step == 0
    assert ncsn.training.latest_checkpoint(tmp_path) is None
