"""The training loop: one :class:`Trainer` for one CPU, one GPU, or many processes under ``torchrun``."""

from __future__ import annotations

import gc
import math
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from ncsn._checks import positive_float, positive_int
from ncsn._types import ScoreLoss
from ncsn.nets.wrappers import autocast, compiled
from ncsn.training import _sources
from ncsn.training._logs import METRICS_FILE, Logs, summary_writer, truncate_metrics
from ncsn.training._signals import HeldInterrupts, HeldUpdate, Terminated
from ncsn.training._sources import Data, Parts, Source, derive_seed
from ncsn.training.checkpoints import (
    _STATE_PARTS,
    CheckpointError,
    _check_plain,
    _first_non_finite,
    check_writable_folder,
    checkpoint_path,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
    state_dict_mismatch,
)
from ncsn.training.distributed import DistEnv, distributed_env, init_process_group, local_shards
from ncsn.training.ema import EMA
from ncsn.training.ema import _rate as _ema_rate
from ncsn.training.step import check_optimizer_params, train_step

__all__ = [
    "BatchTransform",
    "NonFiniteLossError",
    "Terminated",
    "TrainStep",
    "TrainSummary",
    "Trainer",
]


class BatchTransform(Protocol):
    """A per-batch transform ``transform(x, *, generator) -> x`` (e.g. uniform dequantisation)."""

    def __call__(self, x: Tensor, /, *, generator: torch.Generator | None = ...) -> Tensor: ...


class TrainStep(NamedTuple):
    """What the per-step ``callback`` receives.

    Attributes:
        step: optimiser steps done so far (1 after the first update).
        loss: 0-d detached loss of this step on the device: the sum of this rank's parts' losses
            divided by ``shards / processes`` (their mean when the parts split evenly), so that
            the mean over processes is the batch's loss; reading it (``float(loss)``)
            synchronises with the device.
        grad_norm: 0-d total gradient norm before clipping when ``max_grad_norm`` is set, else ``None``.
    """

    step: int
    loss: Tensor
    grad_norm: Tensor | None


class TrainSummary(NamedTuple):
    """What :meth:`Trainer.fit` returns: the step reached, the last logged training loss (the mean
    over the steps since the previous record, across all processes), the last evaluation loss,
    and the seconds this call took."""

    step: int
    loss: float
    eval_loss: float | None
    seconds: float


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss, or a NaN/inf anywhere in the parameters, the
    optimizer state or the EMA weights; ``step`` is the step at which it was found.

    Raised before any checkpoint of the bad state is written, so the newest checkpoint in the
    output folder is the last good one.
    """

    def __init__(self, message: str, step: int) -> None:
        super().__init__(message)
        self.step = step


def _every(value: int | None, name: str) -> int | None:
    return None if value is None else positive_int(value, name)


class Trainer:
    """Train a score model with a :class:`~ncsn.ScoreLoss`: Adam, optional EMA and clipping, logs,
    crash-safe checkpoints, exact resume, and DistributedDataParallel under ``torchrun``.

    Each step draws a global batch of ``batch_size`` examples, splits it into ``shards`` equal
    parts, computes the loss of every part with its own generator, and takes one optimiser step on
    the mean. Under ``torchrun --nproc_per_node=W`` each process computes ``shards / W`` parts and
    DistributedDataParallel averages the gradients (gloo on the CPU, nccl on CUDA); rank 0 writes
    checkpoints and logs.

    Randomness is counter-based: the data, transform and loss noise of part ``k`` at step ``t`` come
    from a generator seeded with ``derive(seed, t, k)``, and the shuffling of epoch ``e`` from
    ``derive(seed, e)``. So the seed, the step and the data position are the complete RNG state
    (that is what checkpoints store), and a run depends on ``(seed, batch_size, shards)`` but not on
    the number of processes: 2 processes give the parameters of 1 process with ``shards=2`` (up to
    the rounding of the gradient all-reduce), and a run may resume on a different number of
    processes. Training N steps equals training N/2, saving, restoring and training N/2 more, bit
    for bit on the CPU.

    Args:
        model: the score network ``model(x [B, *event], sigma [B]) -> [B, *event]``; moved to
            ``device``.
        loss: a :class:`~ncsn.ScoreLoss`, called as ``loss(model, x, generator=g)``.
        data: a tensor ``[N, *event]``, a dataset (``len`` and ``data[i]`` giving a tensor, an array
            or an ``(x, label)`` tuple), or a callable ``sample(n, *, generator) -> [n, *event]``
            for infinite toy sources such as ``ncsn.toy.paper_mixture().sample`` (it receives a
            generator on ``device``).
        batch_size: the *global* batch size, over all processes and shards (paper: 128).
        optimizer: defaults to ``Adam(model.parameters(), lr=1e-3)`` (the paper's setting).
        ema_rate: keep an exponential moving average of the weights with this decay (NCSNv2:
            0.999); evaluation, :meth:`ema_model` and checkpoints' ``"ema"`` then use it.
        max_grad_norm: clip the total gradient norm to this value.
        transform: ``transform(x, *, generator) -> x`` applied to every training batch part
            (e.g. uniform dequantisation) with the part's generator; also to the held-out batch.
        eval_data: held-out data (same kinds as ``data``) for an evaluation loss every
            ``eval_every`` steps, on a fixed batch with fixed noise so the values are comparable.
        eval_every: steps between evaluations.
        eval_batch_size: size of the held-out batch (default ``batch_size``; at most ``len(eval_data)``).
        out_dir: folder for checkpoints, ``metrics.jsonl`` and TensorBoard files; ``None`` writes
            nothing. One run per folder: :meth:`fit` refuses a folder that holds another run's
            checkpoints (restore the newest one to continue that run).
        checkpoint_every: steps between checkpoints (``None``: only at the end of :meth:`fit`).
        keep: how many of the newest checkpoints to keep.
        log_every: steps between metric records and progress-bar loss updates; this is also how
            often the loop synchronises with the device and checks the loss for NaN/inf.
        progress: show a tqdm progress bar (rank 0 only).
        tensorboard: write TensorBoard scalars to ``out_dir/tensorboard``; ``None`` does so when
            ``torch.utils.tensorboard`` imports (the ``tensorboard`` package is installed).
        config: a plain dict describing how to rebuild the model (e.g.
            ``{"kind": "ScoreMLP", "kwargs": {"dim": 2}}``), stored in every checkpoint.
        callback: called as ``callback(TrainStep(...))`` after every optimiser step.
        seed: the one seed all randomness of the loop derives from.
        generator: alternatively, a generator from which the seed is drawn once (seeded alike on
            every process). With neither, a fresh seed is drawn from the OS (and shared from rank
            0 when distributed).
        shards: parts per global batch; a multiple of the number of processes that divides
            ``batch_size``. The default is the number of processes, and :meth:`restore` then
            takes the checkpoint's, so that the process count is free on resume (see there).
        device: where to train (default: the model's device).
        timeout: seconds a collective may wait for another process before failing.
        autocast_dtype: run the model's forward (and so its backward) under
            :func:`ncsn.nets.autocast` in ``torch.bfloat16`` or ``torch.float16`` (mixed
            precision): the parameters, the optimizer state, the loss reduction and the
            checkpoints stay in the model's dtype. float16 adds a
            :class:`torch.amp.GradScaler` (one host synchronisation per step; its state is in
            the checkpoints); bfloat16 needs none. Evaluation runs the EMA model unwrapped.
        compile: call the model through :func:`ncsn.nets.compiled` (:func:`torch.compile`;
            the first step compiles). Where the compiler cannot work, the first step raises
            :class:`RuntimeError`.

    Each step is one call of :func:`~ncsn.training.train_step` (with, when a process computes
    several parts, the earlier parts' gradients accumulated first).

    Files in ``out_dir`` (written by rank 0): ``checkpoint-{step:08d}.pt`` (see
    :meth:`state_dict`), ``metrics.jsonl`` with one JSON object per record — ``step``, ``loss``
    (the mean over all processes and over the steps since the previous record), ``lr``, ``time``
    (training seconds so far, summed over resumed runs) and ``eval_loss`` at evaluation steps —
    written every ``log_every`` steps, at evaluations, checkpoints and the end; and
    ``tensorboard/`` with the same scalars.

    Example:
        >>> schedule = ncsn.GeometricSchedule(20.0, 1.0, 10)
        >>> net = ncsn.nets.ScoreMLP(2, sigmas=schedule.sigmas)
        >>> trainer = ncsn.training.Trainer(
        ...     net, ncsn.losses.DenoisingScoreMatching(schedule), ncsn.toy.paper_mixture().sample,
        ...     batch_size=128, ema_rate=0.999, seed=0, progress=False,
        ... )
        >>> trainer.fit(200).step
        200
        >>> sampler = ncsn.samplers.AnnealedLangevin(schedule.sigmas, step_size=0.1, steps_per_level=10)
        >>> x0 = ncsn.samplers.uniform_init((64, 2), low=-8.0, high=8.0)
        >>> sampler(trainer.ema_model(), x0, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([64, 2])

        With an output folder, checkpoints and resuming (also under ``torchrun``):

        >>> import tempfile
        >>> loss, data = ncsn.losses.DenoisingScoreMatching(schedule), ncsn.toy.paper_mixture().sample
        >>> with tempfile.TemporaryDirectory() as run:
        ...     trainer = ncsn.training.Trainer(net, loss, data, out_dir=run, checkpoint_every=100, seed=0, progress=False)
        ...     trainer.fit(200).step                # writes checkpoints at steps 100 and 200
        ...     trainer = ncsn.training.Trainer(net, loss, data, out_dir=run, progress=False)
        ...     trainer.restore(run)["step"]         # the newest checkpoint
        ...     trainer.fit(300).step                # continues from the restored step
        200
        200
        300
    """

    def __init__(
        self,
        model: nn.Module,
        loss: ScoreLoss,
        data: Data,
        *,
        batch_size: int = 128,
        optimizer: torch.optim.Optimizer | None = None,
        ema_rate: float | None = None,
        max_grad_norm: float | None = None,
        transform: BatchTransform | None = None,
        eval_data: Data | None = None,
        eval_every: int = 100,
        eval_batch_size: int | None = None,
        out_dir: str | os.PathLike[str] | None = None,
        checkpoint_every: int | None = None,
        keep: int = 3,
        log_every: int = 100,
        progress: bool = True,
        tensorboard: bool | None = None,
        config: Mapping[str, Any] | None = None,
        callback: Callable[[TrainStep], None] | None = None,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        shards: int | None = None,
        device: torch.device | str | None = None,
        timeout: float = 1800.0,
        autocast_dtype: torch.dtype | None = None,
        compile: bool = False,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
        params = list(model.parameters())
        if not params:
            raise ValueError("model has no parameters to train")
        if not callable(loss):
            raise TypeError(f"loss must be a callable ScoreLoss; got {loss!r}")
        for fn, fn_name in ((transform, "transform"), (callback, "callback")):
            if fn is not None and not callable(fn):
                raise TypeError(f"{fn_name} must be callable or None; got {fn!r}")
        self.batch_size = positive_int(batch_size, "batch_size")
        self.eval_every = positive_int(eval_every, "eval_every")
        self.log_every = positive_int(log_every, "log_every")
        self.checkpoint_every = _every(checkpoint_every, "checkpoint_every")
        self.keep = positive_int(keep, "keep")
        self.max_grad_norm = (
            None if max_grad_norm is None else positive_float(max_grad_norm, "max_grad_norm")
        )
        self.timeout = positive_float(timeout, "timeout")
        self.progress = bool(progress)
        if ema_rate is not None:
            _ema_rate(ema_rate)
        if autocast_dtype is not None and autocast_dtype not in (torch.bfloat16, torch.float16):
            raise ValueError(
                "autocast_dtype must be torch.bfloat16, torch.float16 or None; got "
                f"autocast_dtype={autocast_dtype!r}"
            )
        if not isinstance(compile, bool):
            raise TypeError(f"compile must be a bool; got compile={compile!r}")
        self.autocast_dtype = autocast_dtype
        self.compile = compile
        if config is not None and not isinstance(config, Mapping):
            raise TypeError(f"config must be a dict or None; got {type(config).__name__}")
        self.config = dict(config or {})
        _check_plain(self.config, "config")
        if out_dir is not None and not isinstance(out_dir, (str, os.PathLike)):
            raise TypeError(f"out_dir must be a str, an os.PathLike or None; got {out_dir!r}")
        self.out_dir = None if out_dir is None else Path(out_dir).expanduser()
        if tensorboard and self.out_dir is None:
            raise ValueError("tensorboard=True needs an out_dir to write to")
        self._writer_cls = summary_writer(tensorboard) if self.out_dir is not None else None

        self.env: DistEnv = distributed_env()
        if self.out_dir is not None and self.env.rank == 0:
            # Before any training: a run whose checkpoints cannot be written would be lost.
            check_writable_folder(self.out_dir, "out_dir")
        self._shards_given = shards is not None  # if not, restore() takes the checkpoint's
        if shards is None:
            shards = self.env.world_size
        self.shards = positive_int(shards, "shards")
        if self.shards % self.env.world_size:
            raise ValueError(
                f"shards must be a multiple of the number of processes {self.env.world_size}; "
                f"got shards={self.shards}"
            )
        if self.batch_size % self.shards:
            raise ValueError(
                f"batch_size must be divisible by shards={self.shards}; got batch_size={self.batch_size}"
            )

        if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer; got {optimizer!r}")
        if optimizer is not None:
            check_optimizer_params(optimizer, model)
        if seed is not None and generator is not None:
            raise ValueError("pass seed or generator, not both")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"seed must be an int; got seed={seed!r}")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None; got {generator!r}")
        self.data = Source(data, "data")
        self.eval_data = None if eval_data is None else Source(eval_data, "eval_data")
        self.eval_batch_size = positive_int(eval_batch_size or self.batch_size, "eval_batch_size")
        self.loss = loss
        self.transform = transform
        self.callback = callback

        # Every argument is checked: now join the process group and place the model.
        self.device = torch.device(device) if device is not None else params[0].device
        index: int | None = self.device.index  # torch's stubs say int; it is None for "cuda"
        if self.env.distributed and self.device.type == "cuda" and index is None:
            self.device = torch.device("cuda", self.env.local_rank)  # one GPU per process
        self.model = model.to(self.device)
        floating = [p.dtype for p in params if p.is_floating_point()]
        self.dtype = floating[0] if floating else torch.get_default_dtype()
        self._owns_group = False
        self._ddp: DistributedDataParallel | None = None
        if self.env.distributed:
            self._owns_group = init_process_group(self.device, self.timeout)
            ids = [self.device.index] if self.device.type == "cuda" else None
            # DDP broadcasts rank 0's weights, so the EMA below starts equal on every rank.
            self._ddp = DistributedDataParallel(self.model, device_ids=ids)
        if optimizer is None:
            optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.optimizer = optimizer
        self.ema = None if ema_rate is None else EMA(self.model, ema_rate)
        # What the step calls: the model (or its DDP wrapper) in the wrappers the options ask for.
        # The parameters, the optimizer, the EMA and the checkpoints stay the plain model's.
        forward: nn.Module = self._ddp or self.model
        if compile:
            forward = compiled(forward)
        if autocast_dtype is not None:
            forward = autocast(forward, autocast_dtype)
        self._forward = forward
        # float16 gradients underflow without loss scaling; bfloat16 has float32's range.
        self.scaler = (
            torch.amp.GradScaler(self.device.type) if autocast_dtype == torch.float16 else None
        )
        self.seed = self._resolve_seed(seed, generator)
        self.step = 0
        self.seconds = 0.0  # training time over all runs of this training, for the metrics
        self.last_eval_loss: float | None = None
        self._gens: list[torch.Generator] = []  # one per part of the batch on this process
        self._eval_batch: Tensor | None = None
        self._saved_step = -1
        self._interrupts = HeldInterrupts()
        self._closed = False

    def _resolve_seed(self, seed: int | None, generator: torch.Generator | None) -> int:
        if seed is not None:
            return seed
        if generator is not None:
            drawn = torch.randint(2**62, (), generator=generator, device=generator.device)
            return int(drawn)
        fresh = torch.tensor(torch.Generator().seed() >> 2, device=self.device)
        if self.env.distributed:
            dist.broadcast(fresh, src=0)
        return int(fresh)

    @property
    def is_main(self) -> bool:
        """Whether this process writes checkpoints and logs (rank 0)."""
        return self.env.rank == 0

    def ema_model(self) -> nn.Module:
        """The module to sample and evaluate with: the EMA copy when ``ema_rate`` is set, else the model.

        It is the live object: it keeps changing while training continues; ``copy.deepcopy`` it to
        keep a snapshot.
        """
        return self.model if self.ema is None else self.ema.model

    # ---------------------------------------------------------------- one step

    def _train_step(self) -> tuple[Tensor, Tensor | None]:
        step = self.step + 1
        slices = _sources.shard_slices(self.batch_size, self.shards)
        index, position = None, (0, 0)
        if self.data.indexed:
            index, position = self.data.next_indices(self.batch_size, self.seed)
        local = local_shards(self.shards, self.env.rank, self.env.world_size)
        if len(self._gens) < len(local):
            self._gens += [torch.Generator(device=self.device) for _ in range(len(local))]
        parts: list[tuple[Tensor, torch.Generator]] = []
        for j, k in enumerate(local):
            gen = self._gens[j].manual_seed(derive_seed(self.seed, _sources.STEP, step, k))
            if index is not None:
                x = self.data.gather(index[slices[k]], self.device, self.dtype)
            else:
                x = self.data.draw(self.batch_size // self.shards, gen, self.device, self.dtype)
            if self.transform is not None:
                x = self.transform(x, generator=gen)
            parts.append((x, gen))
        if not parts:  # shards >= world_size guarantees a part per process
            raise RuntimeError("this process has no shard of the batch")
        # DDP averages gradients over processes; scale so the result is the mean over all shards.
        loss = Parts(self.loss, parts[:-1], self.env.world_size / self.shards, self._ddp)
        x, gen = parts[-1]
        # The update: a Ctrl-C or SIGTERM arriving from optimizer.step() on is held back until the
        # state is whole again, so after any interruption the trainer is consistent at self.step
        # and save() is exact.
        with self._interrupts.held(begin=False) as begin:
            _, grad_norm = train_step(
                self._forward,
                loss,
                HeldUpdate(self.optimizer, begin),  # type: ignore[arg-type]
                x,
                generator=gen,
                max_grad_norm=self.max_grad_norm,
                ema=self.ema,
                scaler=self.scaler,
            )
            if index is not None:
                self.data.advance(position)
            self.step = step
        # Divided by the parts per process, so that the mean over processes is the batch's loss
        # also when the parts split unevenly (an even split gives this rank's mean).
        if loss.total is None:  # train_step called the loss, so this cannot happen
            raise RuntimeError("the training step did not compute the loss")
        return loss.total / (self.shards / self.env.world_size), grad_norm

    # ---------------------------------------------------------------- evaluation

    def _held_out_batch(self) -> Tensor:
        if self.eval_data is None:
            raise ValueError("no eval_data was given to this Trainer")
        if self._eval_batch is None:
            src = self.eval_data
            gen = torch.Generator(device=self.device).manual_seed(
                derive_seed(self.seed, _sources.EVAL_DATA)
            )
            if src.indexed:
                cpu = torch.Generator().manual_seed(derive_seed(self.seed, _sources.EVAL_DATA))
                index = torch.randperm(len(src), generator=cpu)[: self.eval_batch_size]
                x = src.gather(index, self.device, self.dtype)
            else:
                x = src.draw(self.eval_batch_size, gen, self.device, self.dtype)
            if self.transform is not None:
                x = self.transform(x, generator=gen)
            self._eval_batch = x
        return self._eval_batch

    def evaluate(self) -> float:
        """The loss of :meth:`ema_model` on the fixed held-out batch with fixed noise (no gradients
        for the parameters). Synchronises with the device.

        Raises:
            ValueError: if the trainer has no ``eval_data``.
        """
        x = self._held_out_batch()
        model = self.ema_model()
        was_training = model.training
        model.eval()
        gen = torch.Generator(device=self.device).manual_seed(
            derive_seed(self.seed, _sources.EVAL_NOISE)
        )
        try:
            with torch.no_grad():
                value = float(self.loss(model, x, generator=gen))
        finally:
            model.train(was_training)
        self.last_eval_loss = value
        return value

    # ---------------------------------------------------------------- the loop

    def _window_losses(self, window: Tensor, first_step: int) -> float:
        """Average the window over processes, check it for NaN/inf, and return its mean (a sync)."""
        if self._ddp is not None:
            window = window.clone()
            dist.all_reduce(window)
            window /= self.env.world_size
        values = window.double().cpu()
        bad = (~torch.isfinite(values)).nonzero()
        if bad.numel():
            step = first_step + int(bad[0, 0])
            raise NonFiniteLossError(
                f"the training loss became non-finite ({values[int(bad[0, 0])].item()}) at step "
                f"{step}; no checkpoint was written after it",
                step,
            )
        return float(values.mean())

    def fit(self, steps: int) -> TrainSummary:
        """Train until :attr:`step` equals ``steps`` (a total, so a restored trainer continues).

        Args:
            steps: the optimiser step to stop at.

        Returns:
            A :class:`TrainSummary`.

        An exception, Ctrl-C or SIGTERM leaves the trainer consistent at :attr:`step` (a signal
        during the parameter update is held back until the update, the EMA and the data position
        are all done), so ``trainer.save()`` in an ``except KeyboardInterrupt`` handler writes a
        checkpoint that resumes exactly. SIGINT raises :class:`KeyboardInterrupt` and SIGTERM
        :class:`Terminated` (a subclass of it; exit with status 143 after saving, as
        ``ncsn train`` does), each only while it has Python's default handler; the previous
        handlers are back when ``fit`` returns or raises.

        With an ``out_dir``, the records of ``metrics.jsonl`` after the current step are dropped
        first (they come from a run that left no checkpoint), and a folder that already holds a
        checkpoint this trainer did not write or restore, at or after its step, is refused: two
        runs would mix their checkpoints and logs.

        Raises:
            ValueError: if ``steps`` is below the current step.
            FileExistsError: if ``out_dir`` holds another run's checkpoints (see above).
            NonFiniteLossError: when a loss is NaN/inf; it names the first bad step. Losses are
                checked every ``log_every`` steps and before every checkpoint, the whole
                training state at every checkpoint (see :meth:`save`).
            KeyboardInterrupt: on Ctrl-C, and :class:`Terminated` on SIGTERM.
        """
        if isinstance(steps, bool) or not isinstance(steps, int):
            raise TypeError(f"steps must be an int; got steps={steps!r}")
        if steps < self.step:
            raise ValueError(f"steps must be >= the current step {self.step}; got steps={steps}")
        if self._closed:
            raise RuntimeError("this Trainer was closed; its processes no longer share gradients")
        self._check_out_dir(allow_same_step=False)
        if self.is_main and self.out_dir is not None:
            # Records after this step come from a run that left no checkpoint (as in restore).
            truncate_metrics(self.out_dir / METRICS_FILE, self.step)
        start = time.perf_counter()
        seconds_before = self.seconds
        window: Tensor | None = None  # this window's losses, kept on the device until a record
        filled, loss = 0, math.nan
        self.model.train()
        with (
            self._interrupts.installed(),
            Logs(
                self.out_dir,
                self._writer_cls,
                step=self.step,
                steps=steps,
                progress=self.progress,
                active=self.is_main,
            ) as logs,
        ):
            while self.step < steps:
                value, grad_norm = self._train_step()
                if window is None:
                    window = value.new_empty(self.log_every)
                window[filled] = value
                filled += 1
                logs.bar.update(1)
                if self.callback is not None:
                    self.callback(TrainStep(self.step, value, grad_norm))
                last = self.step == steps
                due_eval = self.eval_data is not None and self.step % self.eval_every == 0
                due_save = self.out_dir is not None and (
                    last
                    or (
                        self.checkpoint_every is not None and self.step % self.checkpoint_every == 0
                    )
                )
                if not (last or due_eval or due_save or self.step % self.log_every == 0):
                    continue
                loss = self._window_losses(window[:filled], self.step - filled + 1)
                filled = 0
                self.seconds = seconds_before + time.perf_counter() - start
                eval_loss = self.evaluate() if due_eval and self.is_main else None
                lr = float(self.optimizer.param_groups[0]["lr"])
                logs.record(self.step, loss, lr=lr, seconds=self.seconds, eval_loss=eval_loss)
                if due_save:
                    self.save()
        if self.out_dir is not None and self._saved_step != self.step:
            self.save()  # fit(steps) with steps == step: make sure the end state is on disk
        return TrainSummary(self.step, loss, self.last_eval_loss, time.perf_counter() - start)

    # ---------------------------------------------------------------- checkpoints

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue training exactly: a plain dict of tensors and values.

        Keys: ``step``, ``model``, ``optimizer``, ``ema`` (or ``None``), ``ema_rate``, ``rng``
        (``{"seed": …}``: all randomness derives from the seed and the step), ``data`` (the
        position ``{"epoch", "offset"}`` of an indexed source), ``batch_size``, ``shards``,
        ``seconds``, ``autocast_dtype`` (``"torch.bfloat16"``, ``"torch.float16"`` or ``None``),
        ``compile``, ``scaler`` (the float16 gradient scaler's state, or ``None``), ``config``,
        ``torch_version``. ``model`` is the plain model's ``state_dict``, never a wrapper's.
        """
        return {
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "ema": None if self.ema is None else self.ema.state_dict(),
            "ema_rate": None if self.ema is None else self.ema.rate,
            "rng": {"seed": self.seed, "derivation": "splitmix64(seed, stream, counters)"},
            "data": self.data.state(),
            "batch_size": self.batch_size,
            "shards": self.shards,
            "seconds": self.seconds,
            "autocast_dtype": None if self.autocast_dtype is None else str(self.autocast_dtype),
            "compile": self.compile,
            "scaler": None if self.scaler is None else self.scaler.state_dict(),
            "config": self.config,
            "torch_version": str(torch.__version__),
        }

    def save(self, path: str | os.PathLike[str] | None = None) -> Path | None:
        """Write a checkpoint (rank 0 only; others return ``None``) and keep the newest ``keep``.

        Args:
            path: the file; default ``out_dir/checkpoint-{step:08d}.pt``.

        Only a finite state is written: every tensor and number of the model, the optimizer state
        (Adam's moments) and the EMA weights is checked, so the newest checkpoint is always one
        that training can continue from.

        Raises:
            NonFiniteLossError: if any of them holds a NaN/inf; it names the first (nothing is
                written).
            ValueError: with neither ``path`` nor ``out_dir``.
            FileExistsError: without ``path``, if ``out_dir`` holds a checkpoint of a later step
                (it is neither overwritten nor pruned).
        """
        if path is None:
            if self.out_dir is None:
                raise ValueError("save() needs a path when the Trainer has no out_dir")
            self._check_out_dir(allow_same_step=True)
            path = checkpoint_path(self.out_dir, self.step)
        self._saved_step = self.step
        if not self.is_main:
            return None
        state = self.state_dict()
        bad = _first_non_finite(state, self.device)
        if bad is not None:
            raise NonFiniteLossError(
                f"{_STATE_PARTS[bad.split('[')[0]]} non-finite at step {self.step} ({bad}); refusing to "
                "write a checkpoint",
                self.step,
            )
        # A Ctrl-C or SIGTERM raised inside torch.save breaks its zip writer, whose error would
        # replace the interrupt: hold it until the file is complete (and then raise it).
        with self._interrupts.held():
            return save_checkpoint(path, state, keep=self.keep)

    def restore(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        """Load a checkpoint (a file, or a folder's newest) into this trainer to continue training.

        Restores the model, optimizer, EMA, step, seed and data position (the seed comes from the
        checkpoint, replacing the constructor's), and drops records after the restored step from
        ``out_dir/metrics.jsonl``. Every process reads the same file. The trainer must be built
        as the one that wrote the checkpoint: the same model architecture, EMA (present or not,
        and its rate), ``batch_size`` and ``shards`` when given; otherwise the run would not
        continue.

        The number of processes is free. With the default ``shards=None`` the trainer takes the
        checkpoint's ``shards`` N; on M <= N processes each computes its share of the N parts
        (``N / M`` each, or as evenly as possible when M does not divide N), and the run
        continues as it would have on N processes, up to the rounding of the gradient all-reduce
        (bit for bit in one process). On M > N processes, N parts cannot be shared, so the run
        continues with ``shards = M`` (:attr:`shards` says which): from the restored step on, the
        global batch is cut into M parts of ``batch_size / M`` examples whose transform and loss
        noise (and, for a sampler source, the examples) come from the generators
        ``derive(seed, t, k)`` of the M new parts. The examples of an indexed source, their
        order, and everything up to the restored step are the same; the later noise draws, and
        so the parameters, differ from a run on N processes (they are as good a draw, not the
        same one). Its later checkpoints record ``shards = M``.

        Returns:
            The checkpoint dict (e.g. its ``"config"``).

        Raises:
            FileNotFoundError: for a missing file or a folder without checkpoints.
            CheckpointError: for a corrupt file or one that does not fit this trainer, naming
                what differs: missing, unexpected or misshapen weights, the EMA (e.g. a
                checkpoint with EMA weights and a trainer with ``ema_rate=None``), ``batch_size``,
                ``shards`` or the data position.
        """
        ckpt = load_checkpoint(path, map_location=self.device)
        try:
            self._check_fits(ckpt, path)
            self.model.load_state_dict(ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
            if self.ema is not None:
                self.ema.load_state_dict(ckpt["ema"])
            if self.scaler is not None and ckpt.get("scaler") is not None:
                self.scaler.load_state_dict(ckpt["scaler"])
            self.data.load_state(ckpt["data"], str(path))
            step, seed, seconds, saved_shards = (
                int(ckpt["step"]),
                int(ckpt["rng"]["seed"]),
                float(ckpt["seconds"]),
                int(ckpt["shards"]),
            )
        except (KeyError, TypeError, RuntimeError, ValueError) as err:
            if isinstance(err, CheckpointError):
                raise
            reason = str(err).splitlines()[0] if str(err).strip() else type(err).__name__
            raise CheckpointError(f"{path}: does not fit this Trainer ({reason})") from err
        self.step, self.seed, self.seconds = step, seed, seconds
        if not self._shards_given:  # the checkpoint's parts when the processes can share them
            self.shards = (
                saved_shards if saved_shards >= self.env.world_size else self.env.world_size
            )
        self._saved_step = step
        self._eval_batch = None  # it derives from the seed
        if self.is_main and self.out_dir is not None:
            truncate_metrics(self.out_dir / METRICS_FILE, step)
        return ckpt

    def _check_fits(self, ckpt: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
        """Raise :class:`CheckpointError` naming both values where the checkpoint's recorded
        settings differ from this trainer's: resuming then would not continue that run."""
        mismatch = state_dict_mismatch(self.model, ckpt["model"])
        if mismatch is not None:
            raise CheckpointError(
                f"{path}: the model weights do not fit this Trainer's "
                f"{type(self.model).__name__}: {mismatch}"
            )
        rate = None if self.ema is None else self.ema.rate
        saved_rate = ckpt["ema_rate"] if ckpt["ema"] is not None else None
        if saved_rate != rate:
            if saved_rate is None:
                fix = "pass ema_rate=None"
                has = "has no EMA weights"
            else:
                fix = f"pass ema_rate={saved_rate}"
                has = f"has EMA weights with ema_rate={saved_rate}"
            raise CheckpointError(
                f"{path}: the checkpoint {has} but this Trainer has ema_rate={rate}; {fix}"
            )
        checked = [("batch_size", self.batch_size)]
        if self._shards_given:
            checked.append(("shards", self.shards))
        for name, mine in checked:
            if ckpt[name] != mine:
                raise CheckpointError(
                    f"{path}: the checkpoint was trained with {name}={ckpt[name]} but this "
                    f"Trainer has {name}={mine}; pass {name}={ckpt[name]}"
                )
        shards = ckpt["shards"]
        if not (isinstance(shards, int) and shards >= 1 and self.batch_size % shards == 0):
            raise CheckpointError(f"{path}: bad shards={shards!r} for batch_size={self.batch_size}")

    def _check_out_dir(self, *, allow_same_step: bool) -> None:
        """Refuse to write into an ``out_dir`` whose checkpoints belong to another run: one of a
        later step (or, before training, of this step but not written or restored here)."""
        if self.out_dir is None or not self.is_main or not self.out_dir.is_dir():
            return
        newest = latest_checkpoint(self.out_dir)
        if newest is None:
            return
        step = int(newest.name.removeprefix("checkpoint-").removesuffix(".pt"))
        if step > self.step or (
            step == self.step and not allow_same_step and self._saved_step != step
        ):
            raise FileExistsError(
                f"out_dir {str(self.out_dir)!r} already holds {newest.name}, which this Trainer "
                f"(at step {self.step}) did not write; restore it to continue that run, or use "
                "another out_dir"
            )

    def close(self) -> None:
        """End distributed training: release the DistributedDataParallel wrapper, and destroy the
        process group if this trainer created it. Does nothing in a single process.

        Call it once at the end of a ``torchrun`` job, after every trainer sharing the group has
        finished (``with Trainer(...) as trainer:`` does). Without it, PyTorch's gloo backend may
        abort the process at exit. Create the trainers of one job before closing any: a process
        group re-created in the same process reuses the old group's rendezvous keys. A closed
        trainer cannot train under ``torchrun`` any more.
        """
        if self._ddp is not None:
            self._ddp = None
            self._closed = True
            gc.collect()  # the reducer holds pending collective work; free it before the group
        if self._owns_group and dist.is_initialized():
            dist.destroy_process_group()
            self._owns_group = False

    def __enter__(self) -> Trainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
