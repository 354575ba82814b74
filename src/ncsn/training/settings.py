"""The settings of a :class:`~ncsn.training.Trainer` that are values of their own: where it writes
(:class:`Output`), what it evaluates (:class:`Evaluation`) and the sample grids it draws while it
trains (:class:`Samples`)."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from ncsn._checks import positive_int
from ncsn._types import Sampler
from ncsn.training._sources import Data

__all__ = ["Evaluation", "Output", "Samples"]


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
        samples: draw a grid of samples every so many steps (:class:`Samples`), written to
            ``folder/samples/`` and to TensorBoard.

    Raises:
        TypeError: a ``folder`` that is not a path or ``None``.
        ValueError: a cadence or ``keep`` below 1; ``tensorboard=True`` or ``samples``
            without a folder.

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
    samples: Samples | None = None

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
        if self.samples is not None and not isinstance(self.samples, Samples):
            raise TypeError(f"samples must be a Samples or None; got {self.samples!r}")
        if self.samples is not None and self.folder is None:
            raise ValueError("samples needs a folder to write the grids to")

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


@dataclass(frozen=True, eq=False)
class Samples:
    """A grid of samples from the EMA model every ``every`` steps, to see a run train.

    The :class:`~ncsn.training.Trainer` draws ``count`` images with ``sampler`` from the same
    uniform noise at every draw (a generator seeded with ``seed``, so grids of successive steps
    differ only by the training between them) and writes them as ``samples/samples-{step:08d}.png``
    in the run folder and as the TensorBoard image ``samples``. With ``score``, the grid's
    quality figures follow it: one JSON line ``{"step": ..., name: value, ...}`` per grid in
    ``samples/scores.jsonl`` and the TensorBoard scalars ``samples/NAME``. The draw uses its own generator:
    it changes nothing in training, and a resumed run trains bit-exactly as before. A cheap
    sampler suits it: consistent annealed sampling takes one network call per level.

    Attributes:
        sampler: any :class:`~ncsn.Sampler` on the run's σ grid.
        shape: one image's shape ``[C, H, W]``, C = 1 or 3, pixels in [0, 1].
        every: steps between grids.
        count: images in a grid.
        seed: the seed of the uniform noise and of the sampler's noise.
        score: a function of the grid's images ``[count, C, H, W]`` in [0, 1] returning named
            quality figures ``{name: float}``, e.g. a classifier's
            (:meth:`ncsn.metrics.ClassifierEvaluator.figures`, what ``ncsn train --data digits
            --sample-every N`` uses) or a score of your own feature extractor; ``None``: none.

    Raises:
        TypeError: a ``sampler`` or ``score`` that is not callable.
        ValueError: ``shape`` not ``[C, H, W]`` with 1 or 3 channels; ``every`` or ``count``
            below 1.

    Example:
        >>> sigmas = ncsn.geometric_sigmas(1.0, 0.01, 10)
        >>> sampler = ncsn.samplers.ConsistentAnnealedSampling(sigmas, 0.9)
        >>> grids = ncsn.training.Samples(sampler, (1, 8, 8), every=500, count=16)
        >>> grids.draw(ncsn.nets.RefineNet(channels=1, ngf=4, sigmas=sigmas)).shape
        torch.Size([16, 1, 8, 8])
    """

    sampler: Sampler
    shape: tuple[int, ...]
    every: int = 1000
    count: int = 64
    seed: int = 0
    score: Callable[[Tensor], Mapping[str, float]] | None = None

    def __post_init__(self) -> None:
        if not callable(self.sampler):
            raise TypeError(f"sampler must be a callable Sampler; got {self.sampler!r}")
        if self.score is not None and not callable(self.score):
            raise TypeError(f"score must be a callable of the images or None; got {self.score!r}")
        shape = tuple(self.shape)
        if len(shape) != 3 or shape[0] not in (1, 3) or min(shape) < 1:
            raise ValueError(f"shape must be an image shape [C, H, W] with C = 1 or 3; got {shape}")
        object.__setattr__(self, "shape", shape)
        positive_int(self.every, "every")
        positive_int(self.count, "count")

    def draw(self, model: nn.Module) -> Tensor:
        """``[count, C, H, W]`` samples of ``model`` (in eval mode, without gradients), clamped to
        [0, 1], on the CPU.

        Raises:
            FloatingPointError: the sampler's chain left the finite numbers (named by it).
        """
        device = next(model.parameters()).device
        generator = torch.Generator(device=device).manual_seed(self.seed)
        x0 = torch.rand((self.count, *self.shape), generator=generator, device=device)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                x = self.sampler(model, x0, generator=generator)
        finally:
            model.train(was_training)
        return x.detach().float().clamp(0, 1).cpu()

    def figures(self, images: Tensor) -> dict[str, float]:
        """``score(images)`` checked: plain finite floats by name (empty without ``score``).

        Raises:
            TypeError: ``score`` returned something other than a mapping of names to numbers.
            ValueError: a figure that is not finite (named).
        """
        if self.score is None:
            return {}
        figures = self.score(images)
        if not isinstance(figures, Mapping) or not all(isinstance(k, str) for k in figures):
            raise TypeError(
                f"score must return a mapping of names to numbers; got {type(figures).__name__}"
            )
        checked = {}
        for name, value in figures.items():
            try:
                checked[name] = float(value)
            except (TypeError, ValueError):
                raise TypeError(f"score's figure {name!r} is not a number: {value!r}") from None
            if not math.isfinite(checked[name]):
                raise ValueError(f"score's figure {name!r} is not finite: {checked[name]}")
        return checked
