"""Progress bar, metrics files, TensorBoard and the window of losses of :class:`Trainer`.

Private. Plain inputs: nothing here imports the trainer.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor
from tqdm import tqdm

from ncsn.training.run import NonFiniteLossError
from ncsn.training.settings import Output

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
SAMPLES_DIR = "samples"
SCORES_FILE = "scores.jsonl"


class Logs:
    """The progress bar, JSON-lines metrics and TensorBoard writer of one :meth:`Trainer.fit`.

    Args:
        output: the run folder of ``metrics.jsonl`` and ``tensorboard/`` (``None``: no files)
            and whether to show the progress bar.
        writer_cls: the TensorBoard ``SummaryWriter`` class, or ``None`` for no TensorBoard.
        step: the step training starts from; ``steps``: the step it stops at.
        active: whether this process logs at all (rank 0); inactive, every method does nothing.
    """

    def __init__(
        self, output: Output, writer_cls: Any, *, step: int, steps: int, active: bool
    ) -> None:
        folder, progress = output.path, output.progress
        self.active, self.folder, self.samples = active, folder, output.samples
        self.bar = tqdm(
            total=steps,
            initial=step,
            disable=not (active and progress),
            unit="step",
            dynamic_ncols=True,
        )
        self.file = None
        self.writer: Any = None
        if active and folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            self.file = open(folder / METRICS_FILE, "a", encoding="utf-8")  # noqa: SIM115
            if writer_cls is not None:
                self.writer = writer_cls(log_dir=str(folder / TENSORBOARD_DIR), purge_step=step + 1)

    def record(
        self, step: int, loss: float, *, lr: float, seconds: float, eval_loss: float | None
    ) -> None:
        if not self.active:
            return
        entry: dict[str, Any] = {
            "step": step,
            "loss": loss,
            "lr": lr,
            "time": round(seconds, 3),
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
                    self.writer.add_scalar(key, entry[key], step)

    def grid(self, step: int, model: torch.nn.Module) -> Path | None:
        """Draw :attr:`Output.samples`'s grid of ``model`` at ``step`` if one is due, as
        ``samples/samples-{step:08d}.png`` and the TensorBoard image ``samples``; a chain that
        diverges (early in training) is a warning, never the end of the run."""
        samples = self.samples
        if not self.active or samples is None or self.folder is None or step % samples.every:
            return None
        from ncsn.viz import image_grid, save_image_grid

        try:
            images = samples.draw(model)
        except FloatingPointError as err:
            warnings.warn(f"no sample grid at step {step}: {err}", RuntimeWarning, stacklevel=2)
            return None
        path = save_image_grid(images, self.folder / SAMPLES_DIR / f"samples-{step:08d}.png")
        figures = samples.figures(images)
        if figures:
            with open(self.folder / SAMPLES_DIR / SCORES_FILE, "a", encoding="utf-8") as file:
                file.write(json.dumps({"step": step} | figures) + "\n")
            if not self.bar.disable:
                self.bar.write(
                    f"samples at step {step}: "
                    + ", ".join(f"{name} {value:.4g}" for name, value in figures.items())
                )
        if self.writer is not None:
            self.writer.add_image("samples", image_grid(images), step)
            for name, value in figures.items():
                self.writer.add_scalar(f"samples/{name}", value, step)
        return path

    def __enter__(self) -> Logs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()
        if self.file is not None:
            self.file.close()
        if self.writer is not None:
            self.writer.close()


class LossWindow:
    """This process's training losses since the last record, kept on the device until
    :meth:`mean` reads them (one synchronisation per record, not per step)."""

    def __init__(self, size: int, *, distributed: bool) -> None:
        self.size, self.distributed = size, distributed
        self.values: Tensor | None = None
        self.filled = 0

    def add(self, value: Tensor) -> None:
        if self.values is None:
            self.values = value.new_empty(self.size)
        self.values[self.filled] = value
        self.filled += 1

    def mean(self, step: int) -> float:
        """The mean over the window (and over processes), whose last loss is of ``step``.

        Raises:
            NonFiniteLossError: naming the first step whose loss is NaN/inf.
        """
        if self.values is None or not self.filled:
            raise RuntimeError("no loss was added since the last record")
        window, first = self.values[: self.filled], step - self.filled + 1
        self.filled = 0
        if self.distributed:
            window = window.clone()
            dist.all_reduce(window)
            window /= dist.get_world_size()
        values = window.double().cpu()
        bad = (~torch.isfinite(values)).nonzero()
        if bad.numel():
            at = int(bad[0, 0])
            raise NonFiniteLossError(
                f"the training loss became non-finite ({values[at].item()}) at step "
                f"{first + at}; no checkpoint was written after it",
                first + at,
            )
        return float(values.mean())


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


def _record_step(line: str) -> int | None:
    """The step of a metrics record, or ``None`` for a line that is not one (torn or foreign)."""
    try:
        record = json.loads(line)
    except ValueError:  # JSONDecodeError, and UnicodeDecodeError's kin
        return None
    step = record.get("step") if isinstance(record, dict) else None
    return step if isinstance(step, int) and not isinstance(step, bool) else None


def truncate_metrics(path: Path, step: int) -> None:
    """Drop the records after ``step`` (they belong to a run that was not checkpointed).

    A line that is not a record (one torn by a crash, or written by something else) and every line
    after it are dropped too, with one :class:`RuntimeWarning` naming the line: what follows it
    cannot be trusted to be this run's, and the run could not be resumed with it in place.
    """
    if not path.exists():
        return
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
    steps = [_record_step(line) for line in lines]
    bad = next((i for i, s in enumerate(steps) if s is None and lines[i].strip()), len(lines))
    kept = [
        line
        for line, s in zip(lines[:bad], steps[:bad], strict=True)
        if s is not None and s <= step
    ]
    if bad < len(lines):
        warnings.warn(
            f"{path} line {bad + 1} is not a metrics record (torn or foreign); dropped it and "
            f"the {len(lines) - bad - 1} lines after it",
            RuntimeWarning,
            stacklevel=3,
        )
    if len(kept) != len(lines):
        tmp = path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(kept), encoding="utf-8")
        os.replace(tmp, path)
