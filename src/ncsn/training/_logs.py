"""Progress bar, metrics files, TensorBoard and Ctrl-C handling of :class:`Trainer` (private)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

if TYPE_CHECKING:
    from ncsn.training.trainer import Trainer

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"


class HeldInterrupts:
    """Holds back SIGINT (Ctrl-C) while the trainer's state is being updated.

    Installed for the duration of :meth:`Trainer.fit` when the process uses Python's default
    SIGINT handler in the main thread; elsewhere it does nothing.
    """

    def __init__(self) -> None:
        self.holding = False
        self.pending = False

    def _handler(self, signum: int, frame: object) -> None:
        if self.holding:
            self.pending = True
        else:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        if (
            threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
        ):
            yield
            return
        previous = signal.signal(signal.SIGINT, self._handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)
            self.holding = self.pending = False

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self.holding = True
        try:
            yield
        finally:
            self.holding = False
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt


class Logs:
    """The progress bar, JSON-lines metrics and TensorBoard writer of one :meth:`Trainer.fit`
    (all inactive on ranks other than 0)."""

    def __init__(self, trainer: Trainer, steps: int, active: bool) -> None:
        self.trainer = trainer
        self.bar = tqdm(
            total=steps,
            initial=trainer.step,
            disable=not (active and trainer.progress),
            unit="step",
            dynamic_ncols=True,
        )
        self.file = None
        self.writer: Any = None
        if active and trainer.out_dir is not None:
            trainer.out_dir.mkdir(parents=True, exist_ok=True)
            self.file = open(trainer.out_dir / METRICS_FILE, "a", encoding="utf-8")  # noqa: SIM115
            if trainer._writer_cls is not None:
                self.writer = trainer._writer_cls(
                    log_dir=str(trainer.out_dir / TENSORBOARD_DIR), purge_step=trainer.step + 1
                )

    def record(self, loss: float, eval_loss: float | None) -> None:
        t = self.trainer
        if t.env.rank != 0:
            return
        lr = float(t.optimizer.param_groups[0]["lr"])
        entry: dict[str, Any] = {
            "step": t.step,
            "loss": loss,
            "lr": lr,
            "time": round(t.seconds, 3),
        }
        if eval_loss is not None:
            entry["eval_loss"] = eval_loss
        postfix = {"loss": f"{loss:.4g}"} | (
            {"eval": f"{eval_loss:.4g}"} if eval_loss is not None else {}
        )
        self.bar.set_postfix(postfix, refresh=False)
        if self.file is not None:
            self.file.write(json.dumps(entry) + "\n")
            self.file.flush()
        if self.writer is not None:
            for key in ("loss", "eval_loss", "lr"):
                if key in entry:
                    self.writer.add_scalar(key, entry[key], t.step)

    def __enter__(self) -> Logs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()
        if self.file is not None:
            self.file.close()
        if self.writer is not None:
            self.writer.close()


def summary_writer(tensorboard: bool | None) -> Any:
    if tensorboard is False:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        if tensorboard:
            raise ImportError(
                "tensorboard=True needs the tensorboard package: pip install tensorboard"
            ) from err
        return None
    return SummaryWriter


def truncate_metrics(path: Path, step: int) -> None:
    """Drop the records after ``step`` (they belong to a run that was not checkpointed)."""
    if not path.exists():
        return
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if line.strip() and json.loads(line).get("step", 0) <= step]
    if len(kept) != len(lines):
        tmp = path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(kept), encoding="utf-8")
        os.replace(tmp, path)
