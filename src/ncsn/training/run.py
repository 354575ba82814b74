"""A training run's state and folder: what a checkpoint of it holds, whether a checkpoint fits a
trainer and restoring one, whether a state is finite, and the rules of the run folder.

A run folder holds ``checkpoint-{step:08d}.pt`` files, ``metrics.jsonl``, ``tensorboard/`` and
``run.json``, which names the run (a random id that every checkpoint of the run records too):
restoring a checkpoint of another run into the folder is refused, as is writing into a folder
whose newest checkpoint this trainer did not write or restore.
"""

from __future__ import annotations

import json
import math
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import torch
from torch import Tensor, nn
from torch.optim.lr_scheduler import LRScheduler

from ncsn._checks import CheckpointError
from ncsn.training._sources import Source
from ncsn.training.checkpoints import latest_checkpoint, state_dict_mismatch
from ncsn.training.ema import EMA

__all__ = [
    "RUN_FILE",
    "NonFiniteLossError",
    "Restored",
    "RunParts",
    "check_finite",
    "check_fits",
    "check_folder",
    "check_run",
    "claim_folder",
    "first_non_finite",
    "read_run_id",
    "restore_state",
    "training_state",
]

RUN_FILE = "run.json"
"""The file of a run folder that names its run: ``{"run_id": "..."}``."""

# The parts of a training state that must be finite, and how errors name them when they are not.
STATE_PARTS = {
    "model": "parameters are",
    "optimizer": "the optimizer state is",
    "ema": "the EMA weights are",
}


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss, or a NaN/inf anywhere in the parameters, the
    optimizer state or the EMA weights; ``step`` is the step at which it was found.

    Raised before any checkpoint of the bad state is written, so the newest checkpoint in the
    output folder is the last good one.
    """

    def __init__(self, message: str, step: int) -> None:
        super().__init__(message)
        self.step = step


def first_non_finite(state: Mapping[str, Any], device: torch.device) -> str | None:
    """Where the first NaN/inf in the ``model``, ``optimizer`` and ``ema`` entries of a training
    state is (e.g. ``optimizer['state'][0]['exp_avg_sq']``), or ``None``; one synchronisation
    with ``device`` for all the tensors.

    Example:
        >>> state = {"model": {"w": torch.ones(2)}, "optimizer": {}, "ema": None}
        >>> print(ncsn.training.run.first_non_finite(state, torch.device("cpu")))
        None
    """
    names: list[str] = []
    flags: list[Tensor] = []

    def walk(value: object, where: str) -> str | None:
        if isinstance(value, Tensor) and (value.is_floating_point() or value.is_complex()):
            names.append(where)
            flags.append(value.isfinite().all().to(device))
        elif isinstance(value, float) and not math.isfinite(value):
            return where
        elif isinstance(value, Mapping):
            return next((w for k, v in value.items() if (w := walk(v, f"{where}[{k!r}]"))), None)
        elif isinstance(value, (list, tuple)):
            return next((w for i, v in enumerate(value) if (w := walk(v, f"{where}[{i}]"))), None)
        return None

    for part in STATE_PARTS:
        if (bad := walk(state[part], part)) is not None:
            return bad
    finite = torch.stack(flags).cpu() if flags else torch.ones(0, dtype=torch.bool)
    return None if bool(finite.all()) else names[int((~finite).nonzero()[0, 0])]


def check_finite(state: Mapping[str, Any], step: int, device: torch.device) -> None:
    """Raise :class:`NonFiniteLossError` naming the first NaN/inf of a training state.

    Example:
        >>> state = {"model": {"w": torch.tensor([float("nan")])}, "optimizer": {}, "ema": None}
        >>> ncsn.training.run.check_finite(state, 7, torch.device("cpu"))
        Traceback (most recent call last):
        ...
        ncsn.training.run.NonFiniteLossError: parameters are non-finite at step 7 (model['w']); refusing to write a checkpoint
    """
    bad = first_non_finite(state, device)
    if bad is not None:
        raise NonFiniteLossError(
            f"{STATE_PARTS[bad.split('[')[0]]} non-finite at step {step} ({bad}); refusing to "
            "write a checkpoint",
            step,
        )


def _record_text(record: Mapping[str, Any] | None) -> str:
    if record is None:
        return "a sampler (no examples to count)"
    return (
        f"{record['length']} examples of shape {list(record['shape'])} "
        f"(fingerprint {record['fingerprint']})"
    )


def check_fits(
    checkpoint: Mapping[str, Any],
    where: str | os.PathLike[str],
    *,
    model: nn.Module,
    ema_rate: float | None,
    batch_size: int,
    shards: int | None,
    data: Mapping[str, Any] | None,
    check_data: bool = True,
) -> None:
    """Raise :class:`~ncsn.training.CheckpointError` naming both values where a checkpoint's
    recorded run differs from a trainer's: resuming then would not continue that run.

    Checked in order: the data (``data`` is the trainer's data record, ``None`` for a sampler;
    unless ``check_data`` is false), so that a changed channel count names the data and not a
    weight; the model's weights; the EMA (present or not, and its rate); ``batch_size``;
    ``shards`` (unless ``None``). Checkpoints written before the data was recorded skip its
    check.

    Example:
        >>> net = ncsn.nets.ScoreMLP(2, 8)
        >>> checkpoint = {"model": net.state_dict(), "ema": None, "ema_rate": None,
        ...               "batch_size": 128, "shards": 1}
        >>> ncsn.training.run.check_fits(checkpoint, "c.pt", model=net, ema_rate=None,
        ...                              batch_size=128, shards=None, data=None)
    """
    saved = checkpoint.get("data_fingerprint")
    if check_data and "data_fingerprint" in checkpoint and saved != data:
        raise CheckpointError(
            f"{where}: the data changed since this checkpoint: data holds {_record_text(data)}; "
            f"the run was trained on {_record_text(saved)}. Continue on the new data knowingly "
            "with restore(..., allow_data_change=True)"
        )
    mismatch = state_dict_mismatch(model, checkpoint["model"])
    if mismatch is not None:
        raise CheckpointError(
            f"{where}: the model weights do not fit this Trainer's "
            f"{type(model).__name__}: {mismatch}"
        )
    saved_rate = checkpoint["ema_rate"] if checkpoint["ema"] is not None else None
    if saved_rate != ema_rate:
        if saved_rate is None:
            has, fix = "has no EMA weights", "pass ema_rate=None"
        else:
            has, fix = f"has EMA weights with ema_rate={saved_rate}", f"pass ema_rate={saved_rate}"
        raise CheckpointError(
            f"{where}: the checkpoint {has} but this Trainer has ema_rate={ema_rate}; {fix}"
        )
    checked = [("batch_size", batch_size)] + ([] if shards is None else [("shards", shards)])
    for name, mine in checked:
        if checkpoint[name] != mine:
            raise CheckpointError(
                f"{where}: the checkpoint was trained with {name}={checkpoint[name]} but this "
                f"Trainer has {name}={mine}; pass {name}={checkpoint[name]}"
            )
    saved_shards = checkpoint["shards"]
    if not (isinstance(saved_shards, int) and saved_shards >= 1 and batch_size % saved_shards == 0):
        raise CheckpointError(f"{where}: bad shards={saved_shards!r} for batch_size={batch_size}")


def read_run_id(folder: str | os.PathLike[str]) -> str | None:
    """The run id that ``folder/run.json`` names, or ``None`` without a readable one.

    Example:
        >>> print(ncsn.training.run.read_run_id("no/such/folder"))
        None
    """
    try:
        record = json.loads((Path(folder) / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    run_id = record.get("run_id") if isinstance(record, dict) else None
    return run_id if isinstance(run_id, str) else None


def claim_folder(folder: str | os.PathLike[str], run_id: str) -> None:
    """Write ``folder/run.json`` naming ``run_id`` (atomically) unless it already does.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as run:
        ...     ncsn.training.run.claim_folder(run, "0123abcd")
        ...     ncsn.training.run.read_run_id(run)
        '0123abcd'
    """
    path = Path(folder) / RUN_FILE
    if read_run_id(folder) == run_id:
        return
    tmp = path.with_name(f".tmp-{RUN_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    tmp.write_text(json.dumps({"run_id": run_id}) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def check_run(
    checkpoint: Mapping[str, Any],
    path: str | os.PathLike[str],
    output_folder: Path | None = None,
) -> None:
    """Raise :class:`~ncsn.training.CheckpointError` when ``checkpoint`` (read from ``path``, a
    file or a run folder) records another run than its own folder or ``output_folder`` names in
    ``run.json``: it was copied in from another run, and continuing it there would prune that
    folder's checkpoints and mix its ``metrics.jsonl``.

    Example:
        >>> ncsn.training.run.check_run({"run_id": "0123abcd"}, "runs/a/checkpoint-00000100.pt")
    """
    run_id = checkpoint.get("run_id")
    if run_id is None:  # written before checkpoints recorded their run
        return
    source = Path(path).expanduser()
    folders = [source if source.is_dir() else source.parent]
    if output_folder is not None:
        folders.append(output_folder)
    for folder in folders:
        other = read_run_id(folder)
        if other is not None and other != run_id:
            raise CheckpointError(
                f"{path}: the checkpoint is of run {run_id}, but {str(folder)!r} holds run "
                f"{other} (its {RUN_FILE}): it comes from another run; restore it with that "
                "run's folder as the output folder, or a new one"
            )


def check_folder(folder: Path, step: int, *, own: int) -> None:
    """Refuse (:class:`FileExistsError`) to write a trainer at ``step`` into a ``folder`` whose
    newest checkpoint belongs to another run: one of a later step, or of this step unless it is
    ``own`` (the step of the checkpoint the trainer wrote or restored).

    Example:
        >>> import pathlib, tempfile
        >>> with tempfile.TemporaryDirectory() as run:
        ...     ncsn.training.run.check_folder(pathlib.Path(run), 0, own=-1)  # empty: free
    """
    if not folder.is_dir():
        return
    newest = latest_checkpoint(folder)
    if newest is None:
        return
    found = int(newest.name.removeprefix("checkpoint-").removesuffix(".pt"))
    if found > step or (found == step and own != step):
        raise FileExistsError(
            f"output folder {str(folder)!r} already holds {newest.name}, which this Trainer (at "
            f"step {step}) did not write; restore it to continue that run, or use another folder"
        )


def new_run_id() -> str:
    """A fresh random run id (16 hex digits)."""
    return secrets.token_hex(8)


class RunParts(Protocol):
    """The parts of a run that its checkpoints hold, as a :class:`~ncsn.training.Trainer` has
    them (its public attributes)."""

    step: int
    seed: int
    seconds: float
    run_id: str
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: LRScheduler | None
    ema: EMA | None
    scaler: torch.amp.GradScaler | None
    data: Source
    batch_size: int
    shards: int
    autocast_dtype: torch.dtype | None
    compile: bool
    config: dict[str, Any]


def training_state(run: RunParts) -> dict[str, Any]:
    """The checkpoint of a run: everything needed to continue it exactly, as plain values.

    Keys: ``step``, ``model`` (the plain model's ``state_dict``, never a wrapper's),
    ``optimizer``, ``scheduler`` (``{"class": name, "state": state_dict}`` of the learning-rate
    scheduler, or ``None``), ``ema`` (the averaged model's ``state_dict``, or ``None``), ``ema_rate``,
    ``rng`` (``{"seed": …}``: all randomness derives from the seed and the step), ``data`` (the
    position ``{"epoch", "offset"}`` of an indexed source), ``data_fingerprint`` (its
    ``length``, example ``shape`` and ``fingerprint``; ``None`` for a sampler), ``batch_size``,
    ``shards``, ``seconds``, ``autocast_dtype``, ``compile``, ``scaler``, ``config``,
    ``run_id``, ``torch_version``.

    Example:
        >>> schedule = ncsn.GeometricSchedule(2.0, 0.1, 4)
        >>> net = ncsn.nets.ScoreMLP(2, 8, sigmas=schedule.sigmas)
        >>> trainer = ncsn.training.Trainer(net, ncsn.losses.DenoisingScoreMatching(schedule),
        ...                                 torch.rand(16, 2), batch_size=8, seed=0)
        >>> state = ncsn.training.run.training_state(trainer)
        >>> state["step"], state["data_fingerprint"]["length"]
        (0, 16)
    """
    return {
        "step": run.step,
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": None
        if run.scheduler is None
        else {"class": type(run.scheduler).__name__, "state": run.scheduler.state_dict()},
        "ema": None if run.ema is None else run.ema.state_dict(),
        "ema_rate": None if run.ema is None else run.ema.rate,
        "rng": {"seed": run.seed, "derivation": "splitmix64(seed, stream, counters)"},
        "data": run.data.state(),
        "data_fingerprint": run.data.record(),
        "batch_size": run.batch_size,
        "shards": run.shards,
        "seconds": run.seconds,
        "autocast_dtype": None if run.autocast_dtype is None else str(run.autocast_dtype),
        "compile": run.compile,
        "scaler": None if run.scaler is None else run.scaler.state_dict(),
        "config": run.config,
        "run_id": run.run_id,
        "torch_version": str(torch.__version__),
    }


class Restored(NamedTuple):
    """Where a restored run stands: its ``step``, ``seed``, training ``seconds``, ``shards`` and
    ``run_id`` (``None`` for checkpoints written before runs had ids)."""

    step: int
    seed: int
    seconds: float
    shards: int
    run_id: str | None


def _restore_scheduler(
    scheduler: LRScheduler | None, saved: Mapping[str, Any] | None, where: object
) -> None:
    """Load a checkpoint's scheduler state: a run trained with a schedule continues only with
    the same kind of scheduler, and one trained without it only without one."""
    mine = None if scheduler is None else type(scheduler).__name__
    theirs = None if saved is None else saved["class"]
    if mine != theirs:
        was = f"with a {theirs} scheduler" if theirs else "without a learning-rate scheduler"
        now = f"has a {mine} scheduler" if mine else "has none (scheduler=None)"
        raise CheckpointError(
            f"{where}: the run was trained {was} and this Trainer {now}; continue it with "
            f"{'the same kind of scheduler' if theirs else 'none'}"
        )
    if scheduler is not None and saved is not None:
        scheduler.load_state_dict(saved["state"])


def restore_state(
    checkpoint: Mapping[str, Any],
    where: str | os.PathLike[str],
    run: RunParts,
    *,
    check_shards: bool = True,
    allow_data_change: bool = False,
) -> Restored:
    """Check that ``checkpoint`` fits ``run`` (:func:`check_fits`; ``shards`` only with
    ``check_shards``), then load it into the run's model, optimizer, learning-rate scheduler,
    EMA, gradient scaler and data position. The rest (step, seed, ...) is returned for the
    caller to take.

    Raises:
        CheckpointError: naming what does not fit, or what could not be loaded.

    Example:
        >>> schedule = ncsn.GeometricSchedule(2.0, 0.1, 4)
        >>> net = ncsn.nets.ScoreMLP(2, 8, sigmas=schedule.sigmas)
        >>> trainer = ncsn.training.Trainer(net, ncsn.losses.DenoisingScoreMatching(schedule),
        ...                                 torch.rand(16, 2), batch_size=8, seed=3)
        >>> state = ncsn.training.run.training_state(trainer)
        >>> ncsn.training.run.restore_state(state, "memory", trainer).seed
        3
    """
    try:
        check_fits(
            checkpoint,
            where,
            model=run.model,
            ema_rate=None if run.ema is None else run.ema.rate,
            batch_size=run.batch_size,
            shards=run.shards if check_shards else None,
            data=run.data.record(),
            check_data=not allow_data_change,
        )
        run.model.load_state_dict(checkpoint["model"])
        run.optimizer.load_state_dict(checkpoint["optimizer"])
        _restore_scheduler(run.scheduler, checkpoint.get("scheduler"), where)
        if run.ema is not None:
            run.ema.load_state_dict(checkpoint["ema"])
        if run.scaler is not None and checkpoint.get("scaler") is not None:
            run.scaler.load_state_dict(checkpoint["scaler"])
        run.data.load_state(checkpoint["data"], str(where), restart=allow_data_change)
        return Restored(
            int(checkpoint["step"]),
            int(checkpoint["rng"]["seed"]),
            float(checkpoint["seconds"]),
            int(checkpoint["shards"]),
            checkpoint.get("run_id"),
        )
    except (KeyError, TypeError, RuntimeError, ValueError) as err:
        if isinstance(err, CheckpointError):
            raise
        reason = str(err).splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{where}: does not fit this Trainer ({reason})") from err
