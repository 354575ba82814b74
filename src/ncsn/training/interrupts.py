"""Ctrl-C and SIGTERM as exceptions, and a block that holds them back until a state is whole.

How a cluster stops a job (SLURM, Kubernetes, torchrun's elastic agent) is SIGTERM, whose default
action ends the process at once, and Ctrl-C raises :class:`KeyboardInterrupt` wherever the
program happens to be. :func:`interruptible` makes both catchable exceptions inside a block
(:class:`Terminated` for SIGTERM), and :func:`held` defers them while a state is being changed,
so that after an interruption the state is the old one or the new one, never a mix.
:meth:`Trainer.fit <ncsn.training.Trainer.fit>` runs in :func:`interruptible` and holds the
signals from the optimizer update until the step, the EMA and the data position agree again.

Only signals that still have Python's default handler are taken over (a handler the program set
itself is left alone), only in the main thread, and the previous handlers are back when the
outermost block ends. Blocks nest.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

__all__ = ["Terminated", "held", "interruptible"]


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived inside :func:`interruptible` (e.g. during :meth:`Trainer.fit
    <ncsn.training.Trainer.fit>`).

    A subclass of :class:`KeyboardInterrupt`, so the handler that saves a checkpoint on Ctrl-C
    serves pre-emption too. By convention a process stopped by SIGTERM exits with status 143
    (128 + 15), as ``ncsn train`` does.
    """


_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers

# The signals taken over, each with the handler it must find (no one else's) and what it raises.
_SIGNALS: dict[signal.Signals, tuple[_Handler, type[KeyboardInterrupt]]] = {
    signal.SIGINT: (signal.default_int_handler, KeyboardInterrupt),
    signal.SIGTERM: (signal.SIG_DFL, Terminated),
}


class _Interrupts:
    """The process's one set of handlers: how many blocks installed them, how many hold."""

    def __init__(self) -> None:
        self.installed = 0
        self.holding = 0
        self.pending: type[KeyboardInterrupt] | None = None
        self.taken: list[signal.Signals] = []  # the signals whose default handler was replaced

    def handler(self, signum: int, frame: object) -> None:
        error = _SIGNALS[signal.Signals(signum)][1]
        if not self.holding:
            raise error
        self.pending = self.pending or error  # the first signal decides

    @contextlib.contextmanager
    def install(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        if not self.installed:
            for signum, (default, _) in _SIGNALS.items():
                if signal.getsignal(signum) is default:
                    signal.signal(signum, self.handler)
                    self.taken.append(signum)
        self.installed += 1
        try:
            yield
        finally:
            self.installed -= 1
            if not self.installed:
                for signum in self.taken:
                    signal.signal(signum, _SIGNALS[signum][0])
                self.taken.clear()
                self.holding, self.pending = 0, None


_INTERRUPTS = _Interrupts()


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Inside the block, SIGINT raises :class:`KeyboardInterrupt` and SIGTERM :class:`Terminated`.

    Wrap a program's set-up in it (loading data, building and compiling the model) so that a job
    stopped before its first step ends with a clean exception instead of being killed silently
    by SIGTERM. :meth:`Trainer.fit <ncsn.training.Trainer.fit>` uses it too; inside an outer
    block it keeps the outer block's handlers.

    Example:
        >>> try:
        ...     with ncsn.training.interrupts.interruptible():
        ...         data = ncsn.toy.paper_mixture().sample(64)  # set-up that SIGTERM may stop
        ... except ncsn.training.Terminated:
        ...     print("stopped before the first step: nothing was trained yet")
    """
    with _INTERRUPTS.install():
        yield


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back inside the block; the first of them is raised when the
    outermost :func:`held` block completes (a block that raises propagates its own exception).

    Implies :func:`interruptible` for the block.

    Example:
        >>> state = {"step": 0, "weights": [0.0]}
        >>> with ncsn.training.interrupts.held():  # a Ctrl-C here waits until both are updated
        ...     state["weights"] = [1.0]
        ...     state["step"] = 1
    """
    main = threading.current_thread() is threading.main_thread()
    with _INTERRUPTS.install():
        if main:
            _INTERRUPTS.holding += 1
        try:
            yield
        finally:
            if main:
                _INTERRUPTS.holding -= 1
        error = _INTERRUPTS.pending if main and not _INTERRUPTS.holding else None
        if error is not None:
            _INTERRUPTS.pending = None
            raise error
