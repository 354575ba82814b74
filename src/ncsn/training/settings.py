"""The settings of a :class:`~ncsn.training.Trainer` that are values of their own: where it writes
(:class:`Output`) and what it evaluates (:class:`Evaluation`)."""

from __future__ import annotations

import os
from dataclasses import KW_ONLY, dataclass
from pathlib import Path

from ncsn._checks import positive_int
from ncsn.training._sources import Data

__all__ = ["Evaluation", "Output"]


@dataclass(frozen=True)
class Output:
    """Where a :class:`~ncsn.training.Trainer` writes, and how often.

    Attributes:
        folder: the run folder for checkpoints, ``metrics.jsonl``, ``run.json`` and TensorBoard
            files; ``None`` writes nothing.
        checkpoint_every: steps between checkpoints (``None``: only at the end of ``fit``).
        keep: how many of the newest checkpoints to keep.
        log_every: steps between metric records and progress-bar loss updates; also how often
            the loop synchronises with the device and checks the loss for NaN/inf.
        progress: show a tqdm progress bar (rank 0 only).
        tensorboard: write TensorBoard scalars to ``folder/tensorboard``; ``None`` does so when
            ``torch.utils.tensorboard`` imports.

    Raises:
        TypeError: a ``folder`` that is not a path or ``None``.
        ValueError: a cadence or ``keep`` below 1; ``tensorboard=True`` without a folder.

    Example:
        >>> output = ncsn.training.Output("runs/mixture", checkpoint_every=500, keep=2)
        >>> output.path.name, output.log_every
        ('mixture', 100)
    """

    folder: str | os.PathLike[str] | None = None
    _: KW_ONLY
    checkpoint_every: int | None = None
    keep: int = 3
    log_every: int = 100
    progress: bool = True
    tensorboard: bool | None = None

    def __post_init__(self) -> None:
        if self.folder is not None and not isinstance(self.folder, (str, os.PathLike)):
            raise TypeError(f"folder must be a str, an os.PathLike or None; got {self.folder!r}")
        if self.checkpoint_every is not None:
            positive_int(self.checkpoint_every, "checkpoint_every")
        positive_int(self.keep, "keep")
        positive_int(self.log_every, "log_every")
        if not isinstance(self.progress, bool):
            raise TypeError(f"progress must be a bool; got progress={self.progress!r}")
        if self.tensorboard is not None and not isinstance(self.tensorboard, bool):
            raise TypeError(f"tensorboard must be a bool or None; got {self.tensorboard!r}")
        if self.tensorboard and self.folder is None:
            raise ValueError("tensorboard=True needs a folder to write to")

    @property
    def path(self) -> Path | None:
        """:attr:`folder` as a :class:`~pathlib.Path` (``~`` expanded), or ``None``."""
        return None if self.folder is None else Path(self.folder).expanduser()


@dataclass(frozen=True, eq=False)
class Evaluation:
    """A held-out loss every ``every`` steps: the EMA model's loss on a fixed batch of ``data``
    with fixed noise, so that its values are comparable (see :meth:`Trainer.evaluate
    <ncsn.training.Trainer.evaluate>`).

    Attributes:
        data: held-out data, of the kinds the :class:`~ncsn.training.Trainer` takes as ``data``.
        every: steps between evaluations.
        batch_size: examples in the held-out batch (default the training ``batch_size``; at
            most the data's length).

    Raises:
        ValueError: ``every`` or ``batch_size`` below 1.

    Example:
        >>> held_out = ncsn.training.Evaluation(ncsn.toy.paper_mixture().sample, every=500)
    """

    data: Data
    every: int = 100
    batch_size: int | None = None

    def __post_init__(self) -> None:
        positive_int(self.every, "every")
        if self.batch_size is not None:
            positive_int(self.batch_size, "batch_size")
