"""Ctrl-C and SIGTERM during :meth:`Trainer.fit`: raised as exceptions, held back while the
trainer's state is being updated.

Private. Plain inputs: nothing here imports the trainer.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

import torch


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived during :meth:`Trainer.fit`: how SLURM, Kubernetes and torchrun's elastic
    agent stop a job.

    A subclass of :class:`KeyboardInterrupt`, so the handler that saves a checkpoint on Ctrl-C
    serves pre-emption too; like Ctrl-C, it leaves the trainer consistent at :attr:`Trainer.step`.
    By convention a process stopped by SIGTERM exits with status 143 (128 + 15), as ``ncsn train``
    does after its checkpoint.
    """


# The signals fit takes over, each with the handler it must find (no one else's) and what it raises.
_SIGNALS = {
    signal.SIGINT: (signal.default_int_handler, KeyboardInterrupt),
    signal.SIGTERM: (signal.SIG_DFL, Terminated),
}


class HeldInterrupts:
    """Turns SIGINT (Ctrl-C) into :class:`KeyboardInterrupt` and SIGTERM into :class:`Terminated`,
    held back while the trainer's state is being updated.

    Installed for the duration of :meth:`Trainer.fit`, in the main thread, for each signal that
    still has Python's default handler (a handler the program set itself is left alone); the
    previous handlers are restored afterwards.
    """

    def __init__(self) -> None:
        self.holding = False
        self.pending: type[KeyboardInterrupt] | None = None

    def _handler(self, signum: int, frame: object) -> None:
        error = _SIGNALS[signal.Signals(signum)][1]
        if not self.holding:
            raise error
        self.pending = self.pending or error  # the first signal decides

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for signum, (default, _) in _SIGNALS.items():
                if signal.getsignal(signum) is default:
                    previous[signum] = signal.signal(signum, self._handler)
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self.holding, self.pending = False, None

    @contextlib.contextmanager
    def held(self, *, begin: bool = True) -> Iterator[Callable[[], None]]:
        """Hold the signals back inside the block (from the call of the yielded function on, with
        ``begin=False``), and raise the first of them when the block completes."""

        def start() -> None:
            self.holding = True

        if begin:
            start()
        try:
            yield start
        finally:
            self.holding = False
        error, self.pending = self.pending, None
        if error is not None:
            raise error


class HeldUpdate:
    """The trainer's optimizer as :func:`train_step` sees it: ``step()`` first calls ``begin``
    (which starts holding back Ctrl-C and SIGTERM until the trainer's state is whole again)."""

    def __init__(self, optimizer: torch.optim.Optimizer, begin: Callable[[], None]) -> None:
        self.optimizer, self.begin = optimizer, begin

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        self.begin()
        self.optimizer.step()

    def __getattr__(self, name: str) -> Any:  # param_groups and state, for a GradScaler
        return getattr(self.optimizer, name)
