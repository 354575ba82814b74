"""The training loop: one :class:`Trainer` for one CPU, one GPU, or many processes under ``torchrun``."""

from __future__ import annotations

import gc
import math
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.distributed as dist
from torch import nn
from torch.optim.lr_scheduler import LRScheduler

from ncsn._checks import check_bool, positive_float, positive_int
from ncsn._types import ScoreLoss
from ncsn.nets.wrappers import autocast, compiled
from ncsn.training import interrupts
from ncsn.training._logs import METRICS_FILE, Logs, LossWindow, summary_writer, truncate_metrics
from ncsn.training._sources import BatchTransform, Data, HeldOut, Source
from ncsn.training.checkpoints import (
    check_plain,
    check_writable_folder,
    checkpoint_path,
    load_checkpoint,
    save_checkpoint,
)
from ncsn.training.distributed import (
    check_shards,
    distributed_env,
    local_shards,
    process_device,
    shared_seed,
    wrap,
)
from ncsn.training.ema import EMA, check_rate
from ncsn.training.run import (
    check_finite,
    check_folder,
    check_run,
    claim_folder,
    new_run_id,
    restore_state,
    training_state,
)
from ncsn.training.settings import Evaluation, Output
from ncsn.training.step import (
    MicroBatch,
    TrainStep,
    accumulate_gradients,
    apply_update,
    check_optimizer_params,
    check_scheduler,
)

__all__ = ["TrainSummary", "Trainer"]


class TrainSummary(NamedTuple):
    """What :meth:`Trainer.fit` returns: the step reached, the last logged training loss (the mean
    over the steps since the previous record, across all processes), the last evaluation loss,
    and the seconds this call took."""

    step: int
    loss: float
    eval_loss: float | None
    seconds: float


class Trainer:
    """Train a score model with a :class:`~ncsn.ScoreLoss`: Adam, optional EMA and clipping, logs,
    crash-safe checkpoints, exact resume, and DistributedDataParallel under ``torchrun``.

    Each step takes one optimiser step on the mean loss of ``shards`` micro-batches of a global
    batch (shared by the processes under ``torchrun``). All randomness derives from ``(seed,
    step, micro-batch)``: N steps equal N/2, save, restore, N/2 more, bit for bit on the CPU.

    Args:
        model: the score network ``model(x [B, *event], sigma [B]) -> [B, *event]`` (a
            :class:`~ncsn.ConditionalScoreModel` ``model(x, sigma, y)`` with labelled data).
        loss: a :class:`~ncsn.ScoreLoss`, called as ``loss(model, x, generator=g)``, or as
            ``loss(model, x, y=labels, generator=g)`` with labelled data.
        data: a tensor ``[N, *event]``, a pair ``(x, y)`` of examples and their integer labels
            ``[N]`` (as :func:`ncsn.data.load` returns them; class-conditional training), a
            dataset (``data[i]`` a tensor, array or ``(x, label)``) or a callable
            ``sample(n, *, generator)``.
        batch_size: the *global* batch size, over all processes and shards (paper: 128).
        optimizer: default ``Adam(model.parameters(), lr=1e-3)`` (the paper's).
        scheduler: a learning-rate scheduler of ``optimizer`` (which must then be given), e.g.
            ``torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)``: stepped
            after every optimiser step and saved in every checkpoint, so a restored run goes on
            along the same curve.
        ema_rate: keep an :class:`~ncsn.training.EMA` with this decay (NCSNv2: 0.999).
        max_grad_norm: clip the total gradient norm to this value.
        transform: ``transform(x, *, generator)`` for every micro-batch (e.g. dequantisation).
        evaluation: an :class:`~ncsn.training.Evaluation` (held-out data and cadence).
        output: an :class:`~ncsn.training.Output` (run folder, cadences); default no files.
        config: a plain dict that rebuilds the model, stored in every checkpoint.
        callback: called with a :class:`~ncsn.training.TrainStep` after every step.
        seed: what all randomness derives from (default: a fresh one, rank 0's everywhere).
        shards: micro-batches per batch, a multiple of the number of processes dividing
            ``batch_size``; default the number of processes (on :meth:`restore`, the run's).
        device: default the model's; ``"cuda"`` under ``torchrun`` is each process's GPU.
        autocast_dtype: ``torch.bfloat16`` or ``torch.float16``: :func:`ncsn.nets.autocast`.
        compile: call the model through :func:`ncsn.nets.compiled`.
        labels: train on a dataset's labels too: its items are ``(x, label)`` pairs whose labels
            go to the loss (a tensor pair ``(x, y)`` always carries its labels; without this a
            dataset's labels are dropped, for unconditional training).

    Raises:
        TypeError: an argument of the wrong type (named, with its value).
        ValueError: an argument of a wrong value (named, with its value).
        OSError: an output folder that cannot be created or written to.

    Example:
        >>> schedule = ncsn.GeometricSchedule(20.0, 1.0, 10)
        >>> net = ncsn.nets.ScoreMLP(2, sigmas=schedule.sigmas)
        >>> loss, data = ncsn.losses.DenoisingScoreMatching(schedule), ncsn.toy.paper_mixture().sample
        >>> quiet = ncsn.training.Output(progress=False)
        >>> trainer = ncsn.training.Trainer(net, loss, data, ema_rate=0.999, seed=0, output=quiet)
        >>> trainer.fit(200).step
        200
    """

    def __init__(
        self,
        model: nn.Module,
        loss: ScoreLoss,
        data: Data,
        *,
        batch_size: int = 128,
        optimizer: torch.optim.Optimizer | None = None,
        scheduler: LRScheduler | None = None,
        ema_rate: float | None = None,
        max_grad_norm: float | None = None,
        transform: BatchTransform | None = None,
        evaluation: Evaluation | None = None,
        output: Output | None = None,
        config: Mapping[str, Any] | None = None,
        callback: Callable[[TrainStep], None] | None = None,
        seed: int | None = None,
        shards: int | None = None,
        device: torch.device | str | None = None,
        autocast_dtype: torch.dtype | None = None,
        compile: bool = False,
        labels: bool = False,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
        params = list(model.parameters())
        if not params:
            raise ValueError("model has no parameters to train")
        if not callable(loss):
            raise TypeError(f"loss must be a callable ScoreLoss; got {loss!r}")
        for fn, name in ((transform, "transform"), (callback, "callback")):
            if fn is not None and not callable(fn):
                raise TypeError(f"{name} must be callable or None; got {fn!r}")
        for value, cls in ((output, Output), (evaluation, Evaluation)):
            if value is not None and not isinstance(value, cls):
                raise TypeError(f"{cls.__name__.lower()} must be an {cls.__name__} or None")
        if autocast_dtype not in (None, torch.bfloat16, torch.float16):
            raise ValueError(f"autocast_dtype must be bfloat16, float16 or None; {autocast_dtype=}")
        self.autocast_dtype, self.compile = autocast_dtype, check_bool(compile, "compile")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"seed must be an int; got seed={seed!r}")
        if config is not None and not isinstance(config, Mapping):
            raise TypeError(f"config must be a dict or None; got {type(config).__name__}")
        check_plain(config or {}, "config")
        self.batch_size = positive_int(batch_size, "batch_size")
        clip, ema_rate = max_grad_norm, None if ema_rate is None else check_rate(ema_rate)
        self.max_grad_norm = None if clip is None else positive_float(clip, "max_grad_norm")
        if optimizer is not None:
            check_optimizer_params(optimizer, model)
        self.scheduler = check_scheduler(scheduler, optimizer)
        self.output, self.evaluation = output or Output(), evaluation
        self.config = dict(config or {})
        self._writer_cls = summary_writer(self.output.tensorboard) if self.output.path else None
        self.env = distributed_env()
        self.is_main = self.env.rank == 0  # the process that writes checkpoints and logs
        if self.output.path is not None and self.is_main:
            check_writable_folder(self.output.path, "output folder")  # before any work is lost
        self._shards_given = shards is not None  # if not, restore() takes the checkpoint's
        shards = self.env.world_size if shards is None else shards
        self.shards = check_shards(shards, self.batch_size, self.env.world_size)
        labels = check_bool(labels, "labels")
        self.data = Source(data, "data", labels=labels)
        size = self.batch_size if evaluation is None else evaluation.batch_size or self.batch_size
        held_out = None if evaluation is None else HeldOut(evaluation.data, size, labels=labels)
        if held_out is not None and held_out.source.labelled != self.data.labelled:
            raise ValueError(
                "data and evaluation data must both carry labels or both not (a conditional "
                "model needs labels everywhere)"
            )
        self._held_out = held_out
        self.loss, self.transform, self.callback = loss, transform, callback
        # Every argument is checked: now place the model and join the process group.
        place = params[0].device if device is None else torch.device(device)
        self.device = process_device(place, self.env)
        self.model = model.to(self.device)
        floating = [p.dtype for p in params if p.is_floating_point()]
        self.dtype = floating[0] if floating else torch.get_default_dtype()
        for source in [self.data] + ([] if self._held_out is None else [self._held_out.source]):
            source.place(self.device, self.dtype, transform)
        self._ddp, self._owns_group = wrap(self.model, self.device, self.env)
        self.optimizer = optimizer or torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.ema = None if ema_rate is None else EMA(self.model, ema_rate)
        # What the step calls; the parameters, optimizer, EMA and checkpoints stay the model's.
        forward = compiled(self._ddp or self.model) if compile else self._ddp or self.model
        self._forward = forward if autocast_dtype is None else autocast(forward, autocast_dtype)
        # float16 gradients underflow without loss scaling; bfloat16 has float32's range.
        fp16 = autocast_dtype == torch.float16
        self.scaler = torch.amp.GradScaler(self.device.type) if fp16 else None
        self.seed = seed if seed is not None else shared_seed(self.device, self.env)
        self.run_id = new_run_id()  # a restored run's replaces it
        self.step, self.seconds = 0, 0.0  # seconds: training time over all runs, for the logs
        self.last_eval_loss: float | None = None
        self._saved_step, self._closed = -1, False

    def ema_model(self) -> nn.Module:
        """The module to sample and evaluate with: the EMA's average, else the model (live)."""
        return self.model if self.ema is None else self.ema.model

    def _draw(self) -> tuple[list[MicroBatch], tuple[int, int] | None]:
        local = local_shards(self.shards, self.env.rank, self.env.world_size)
        step, seed, size = self.step + 1, self.seed, self.batch_size
        return self.data.parts(step, seed=seed, batch_size=size, shards=self.shards, local=local)

    def _step(self, parts: list[MicroBatch], position: tuple[int, int] | None) -> TrainStep:
        self.optimizer.zero_grad(set_to_none=True)
        # DDP averages over processes: weigh each part so the result is the mean over all shards.
        weight = self.env.world_size / self.shards
        # The forward and backward change nothing a checkpoint holds: a signal is raised at once.
        total = accumulate_gradients(
            self._forward, self.loss, parts, weight=weight, scaler=self.scaler
        )
        # The update does: a signal waits until the weights, EMA, step and data position agree.
        with interrupts.held():
            grad_norm = apply_update(
                self._forward,
                self.optimizer,
                max_grad_norm=self.max_grad_norm,
                ema=self.ema,
                scaler=self.scaler,
            )
            if self.scheduler is not None:
                self.scheduler.step()
            if position is not None:
                self.data.advance(position)
            self.step += 1
        return TrainStep(self.step, total / (self.shards / self.env.world_size), grad_norm)

    def evaluate(self) -> float:
        """The loss of :meth:`ema_model` on the fixed held-out batch with fixed noise.

        Raises:
            ValueError: if the trainer has no ``evaluation``.
        """
        if self._held_out is None:
            raise ValueError("no evaluation data: pass evaluation=Evaluation(data) to the Trainer")
        self.last_eval_loss = self._held_out.loss(self.ema_model(), self.loss, self.seed)
        return self.last_eval_loss

    def fit(self, steps: int) -> TrainSummary:
        """Train until :attr:`step` equals ``steps`` (a total: a restored trainer continues).

        Ctrl-C raises :class:`KeyboardInterrupt` and SIGTERM :class:`~ncsn.training.Terminated`;
        one arriving during the update waits until the step is whole, so ``trainer.save()`` in
        the handler resumes exactly. Records of ``metrics.jsonl`` after the current step go.

        Raises:
            ValueError: ``steps`` below the current step.
            FileExistsError: the output folder holds a newer checkpoint of another run.
            NonFiniteLossError: a NaN/inf loss (checked at every record) or state to be saved.
            KeyboardInterrupt: on Ctrl-C, and :class:`~ncsn.training.Terminated` on SIGTERM.
        """
        if isinstance(steps, bool) or not isinstance(steps, int):
            raise TypeError(f"steps must be an int; got steps={steps!r}")
        if steps < self.step:
            raise ValueError(f"steps must be >= the current step {self.step}; got steps={steps}")
        if self._closed:
            raise RuntimeError("this Trainer was closed; its processes no longer share gradients")
        out, every = self.output, self.evaluation.every if self.evaluation else 0
        if out.path is not None and self.is_main:
            check_folder(out.path, self.step, own=self._saved_step)
            truncate_metrics(out.path / METRICS_FILE, self.step)
            claim_folder(out.path, self.run_id)
        start, seconds_before, loss = time.perf_counter(), self.seconds, math.nan
        window = LossWindow(out.log_every, distributed=self._ddp is not None)
        logs = Logs(out, self._writer_cls, step=self.step, steps=steps, active=self.is_main)
        self.model.train()
        with interrupts.interruptible(), logs:
            while self.step < steps:
                info = self._step(*self._draw())
                window.add(info.loss)
                logs.bar.update(1)
                if self.callback is not None:
                    self.callback(info)
                last, due_eval = self.step == steps, bool(every) and self.step % every == 0
                every_save = out.checkpoint_every or steps + 1  # None: only at the end
                due_save = out.path is not None and (last or self.step % every_save == 0)
                if last or due_eval or due_save or self.step % out.log_every == 0:
                    loss = window.mean(self.step)
                    self.seconds = seconds_before + time.perf_counter() - start
                    eval_loss = self.evaluate() if due_eval and self.is_main else None
                    lr = float(self.optimizer.param_groups[0]["lr"])
                    logs.record(self.step, loss, lr=lr, seconds=self.seconds, eval_loss=eval_loss)
                if due_save:
                    self.save()
                logs.grid(self.step, self.ema_model())
        if out.path is not None and self._saved_step != self.step:
            self.save()  # fit(steps) with steps == step: make sure the end state is on disk
        return TrainSummary(self.step, loss, self.last_eval_loss, time.perf_counter() - start)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly (:func:`ncsn.training.run.training_state`)."""
        return training_state(self)

    def save(self, path: str | os.PathLike[str] | None = None) -> Path | None:
        """Write a checkpoint of a finite state (rank 0 only; others return ``None``), by default
        ``checkpoint-{step:08d}.pt`` in the output folder, and keep the newest ``keep``.

        Raises:
            NonFiniteLossError: a NaN/inf in the model, the optimizer state or the EMA (named).
            ValueError: with neither ``path`` nor an output folder.
            FileExistsError: without ``path``, if the output folder holds a later checkpoint.
            OSError: the disk is full (``errno.ENOSPC``; the earlier checkpoints are intact).
        """
        if path is None:
            if self.output.path is None:
                raise ValueError("save() needs a path when the Trainer has no output folder")
            if self.is_main:
                check_folder(self.output.path, self.step, own=self.step)
                claim_folder(self.output.path, self.run_id)
            path = checkpoint_path(self.output.path, self.step)
        self._saved_step = self.step
        if not self.is_main:
            return None
        state = self.state_dict()
        check_finite(state, self.step, self.device)
        with interrupts.held():  # a signal inside torch.save would break the file and hide itself
            return save_checkpoint(path, state, keep=self.output.keep)

    def restore(
        self, path: str | os.PathLike[str], *, allow_data_change: bool = False
    ) -> dict[str, Any]:
        """Continue a checkpoint's run (a file, or a folder's newest) with the same parts and data.

        Args:
            path: a checkpoint file or a run folder.
            allow_data_change: continue although the data changed (length, example shape or
                content); a data position beyond the new data starts the next epoch.

        Returns:
            The checkpoint dict (e.g. its ``"config"``).

        Raises:
            FileNotFoundError: a missing file or a folder without checkpoints.
            CheckpointError: a corrupt file, one of another run (``run.json``), or one that does
                not fit (data, weights, EMA, scheduler, ``batch_size``, ``shards``), naming both
                values.
        """
        ckpt = load_checkpoint(path, map_location=self.device)
        check_run(ckpt, path, self.output.path)
        restored = restore_state(
            ckpt, path, self, check_shards=self._shards_given, allow_data_change=allow_data_change
        )
        self.step, self.seed, self.seconds = restored.step, restored.seed, restored.seconds
        self.run_id = restored.run_id or self.run_id
        if not self._shards_given:  # the checkpoint's parts when the processes can share them
            self.shards = max(restored.shards, self.env.world_size)
        self._saved_step = self.step
        if self.is_main and self.output.path is not None:
            truncate_metrics(self.output.path / METRICS_FILE, self.step)
        return ckpt

    def close(self) -> None:
        """End a ``torchrun`` job's training (as ``with Trainer(...)`` does): release DDP, and
        destroy the process group if this trainer created it and no other trainer shares it."""
        if self._ddp is not None:
            self._ddp, self._closed = None, True
            gc.collect()  # the reducer holds pending collective work; free it before the group
        if self._owns_group and dist.is_initialized():
            dist.destroy_process_group()
            self._owns_group = False

    def __enter__(self) -> Trainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
