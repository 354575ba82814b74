"""Training score models: the loop, EMA, crash-safe checkpoints with exact resume, ``torchrun``.

* :class:`Trainer` — one loop for one CPU, one GPU or many processes (DistributedDataParallel),
  configured with an :class:`Output` (run folder, cadences, :class:`Samples` grids while it
  trains) and an :class:`Evaluation`.
* :func:`train_step` — one optimiser step over a batch or its :class:`MicroBatch` es (the kernel
  for one's own loop), returning a :class:`StepResult`; its halves :func:`accumulate_gradients`
  and :func:`apply_update`.
* :func:`cosine_decay` — a learning-rate schedule for the Trainer's ``scheduler=`` (any PyTorch
  scheduler fits; it is saved with the run).
* :class:`EMA` — exponential moving average of the weights (an ``nn.Module``).
* :func:`save_checkpoint`, :func:`load_checkpoint`, :func:`latest_checkpoint` — atomic files
  read with ``torch.load(weights_only=True)``; :class:`CheckpointError` for unusable files;
  :func:`read_file` for any other ``.pt`` file, :func:`state_dict_mismatch` to say in one line
  why weights do not fit a model.
* :func:`interruptible` — Ctrl-C and SIGTERM as exceptions (:class:`Terminated`) in a block, e.g.
  a program's set-up; :mod:`~ncsn.training.interrupts` also holds them back.
* :func:`distributed_env` — rank, world size and local rank under ``torchrun``;
  :func:`init_process_group` joins the job's process group.

Example:
    >>> schedule = ncsn.GeometricSchedule(20.0, 1.0, 10)
    >>> net = ncsn.nets.ScoreMLP(2, sigmas=schedule.sigmas)
    >>> trainer = ncsn.training.Trainer(
    ...     net, ncsn.losses.DenoisingScoreMatching(schedule), ncsn.toy.paper_mixture().sample,
    ...     ema_rate=0.999, seed=0, output=ncsn.training.Output(progress=False),
    ... )
    >>> trainer.fit(100).step
    100
    >>> averaged = trainer.ema_model()          # sample and evaluate with this
"""

from ncsn.training import interrupts
from ncsn.training._sources import BatchTransform
from ncsn.training.checkpoints import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    checkpoint_path,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    model_weights,
    read_file,
    save_checkpoint,
    state_dict_mismatch,
)
from ncsn.training.distributed import DistEnv, distributed_env, init_process_group
from ncsn.training.ema import EMA
from ncsn.training.interrupts import Terminated, interruptible
from ncsn.training.run import NonFiniteLossError
from ncsn.training.settings import Evaluation, Output, Samples
from ncsn.training.step import (
    MicroBatch,
    StepResult,
    TrainStep,
    accumulate_gradients,
    apply_update,
    cosine_decay,
    train_step,
)
from ncsn.training.trainer import Trainer, TrainSummary

__all__ = [
    "CHECKPOINT_FORMAT",
    "EMA",
    "BatchTransform",
    "CheckpointError",
    "DistEnv",
    "Evaluation",
    "MicroBatch",
    "NonFiniteLossError",
    "Output",
    "Samples",
    "StepResult",
    "Terminated",
    "TrainStep",
    "TrainSummary",
    "Trainer",
    "accumulate_gradients",
    "apply_update",
    "checkpoint_path",
    "cosine_decay",
    "distributed_env",
    "init_process_group",
    "interruptible",
    "interrupts",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "model_weights",
    "read_file",
    "save_checkpoint",
    "state_dict_mismatch",
    "train_step",
]
