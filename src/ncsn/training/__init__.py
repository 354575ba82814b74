"""Training score models: the loop, EMA, crash-safe checkpoints with exact resume, ``torchrun``.

* :class:`Trainer` — one loop for one CPU, one GPU or many processes (DistributedDataParallel);
  :class:`Terminated` is what its ``fit`` raises on SIGTERM.
* :func:`train_step` — one optimiser step (the kernel ``Trainer`` loops over, for one's own loop),
  returning a :class:`StepResult`.
* :class:`EMA` — exponential moving average of the weights.
* :func:`save_checkpoint`, :func:`load_checkpoint`, :func:`latest_checkpoint` — atomic files
  read with ``torch.load(weights_only=True)``; :class:`CheckpointError` for unusable files;
  :func:`read_file` for any other ``.pt`` file, :func:`state_dict_mismatch` to say in one line
  why weights do not fit a model.
* :func:`distributed_env` — rank, world size and local rank under ``torchrun``;
  :func:`init_process_group` joins the job's process group.

Example:
    >>> schedule = ncsn.GeometricSchedule(20.0, 1.0, 10)
    >>> net = ncsn.nets.ScoreMLP(2, sigmas=schedule.sigmas)
    >>> trainer = ncsn.training.Trainer(
    ...     net, ncsn.losses.DenoisingScoreMatching(schedule), ncsn.toy.paper_mixture().sample,
    ...     ema_rate=0.999, seed=0, progress=False,
    ... )
    >>> trainer.fit(100).step
    100
    >>> averaged = trainer.ema_model()          # sample and evaluate with this
"""

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
from ncsn.training.step import StepResult, train_step
from ncsn.training.trainer import (
    BatchTransform,
    NonFiniteLossError,
    Terminated,
    Trainer,
    TrainStep,
    TrainSummary,
)

__all__ = [
    "CHECKPOINT_FORMAT",
    "EMA",
    "BatchTransform",
    "CheckpointError",
    "DistEnv",
    "NonFiniteLossError",
    "StepResult",
    "Terminated",
    "TrainStep",
    "TrainSummary",
    "Trainer",
    "checkpoint_path",
    "distributed_env",
    "init_process_group",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "model_weights",
    "read_file",
    "save_checkpoint",
    "state_dict_mismatch",
    "train_step",
]
