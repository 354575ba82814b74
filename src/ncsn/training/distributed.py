"""Which process am I: rank, world size and local rank under ``torchrun`` (or a single process)."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import NamedTuple

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ncsn._checks import positive_int

__all__ = [
    "DistEnv",
    "check_shards",
    "distributed_env",
    "init_process_group",
    "process_device",
    "shared_seed",
    "wrap",
]


class DistEnv(NamedTuple):
    """The process's place in a (possibly single-process) job.

    Attributes:
        rank: global rank, 0 … world_size − 1 (0 writes checkpoints and logs).
        world_size: number of processes.
        local_rank: rank on this machine (the CUDA device index to use).
    """

    rank: int
    world_size: int
    local_rank: int

    @property
    def distributed(self) -> bool:
        """Whether more than one process takes part."""
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(
            f"environment variable {name} must be an integer; got {name}={raw!r}"
        ) from None


def distributed_env() -> DistEnv:
    """Read the rank, world size and local rank.

    From the initialised default process group when there is one, otherwise from the environment
    variables ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` that ``torchrun`` sets; a plain
    ``python script.py`` gives ``DistEnv(rank=0, world_size=1, local_rank=0)``.

    Example:
        >>> env = ncsn.training.distributed_env()
        >>> device = f"cuda:{env.local_rank}" if torch.cuda.is_available() else "cpu"
    """
    local_rank = _env_int("LOCAL_RANK", 0)
    if dist.is_available() and dist.is_initialized():
        return DistEnv(dist.get_rank(), dist.get_world_size(), local_rank)
    rank, world_size = _env_int("RANK", 0), _env_int("WORLD_SIZE", 1)
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"invalid environment: RANK={rank}, WORLD_SIZE={world_size}")
    return DistEnv(rank, world_size, local_rank)


def local_shards(shards: int, rank: int, world_size: int) -> range:
    """The parts of each global batch that process ``rank`` of ``world_size`` computes: contiguous,
    and as even as possible (``shards / world_size`` each when that divides; otherwise the later
    ranks take one more). Needs ``shards >= world_size``, so that every process has a part.
    """
    return range(rank * shards // world_size, (rank + 1) * shards // world_size)


def init_process_group(device: torch.device, timeout: float) -> bool:
    """Join the default process group of a ``torchrun`` job unless this process already has one.

    The backend follows the device: nccl for CUDA (whose device is made current), gloo
    otherwise. Call :func:`torch.distributed.destroy_process_group` at the end when this returned
    ``True``.

    Args:
        device: this process's device.
        timeout: seconds a collective may wait for the other processes.

    Returns:
        ``True`` if this call created the group.

    Example:
        >>> env = ncsn.training.distributed_env()
        >>> if env.distributed:  # under torchrun only; a single process skips this
        ...     created = ncsn.training.init_process_group(torch.device("cpu"), timeout=600.0)
    """
    if dist.is_initialized():
        return False
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout))
    return True


def process_device(device: torch.device, env: DistEnv) -> torch.device:
    """``device``, where a bare ``"cuda"`` under ``torchrun`` means this process's GPU
    (``cuda:LOCAL_RANK``, one GPU per process).

    Example:
        >>> env = ncsn.training.distributed_env()
        >>> ncsn.training.distributed.process_device(torch.device("cpu"), env)
        device(type='cpu')
    """
    index: int | None = device.index  # torch's stubs say int; it is None for "cuda"
    if env.distributed and device.type == "cuda" and index is None:
        return torch.device("cuda", env.local_rank)
    return device


def wrap(
    model: nn.Module, device: torch.device, env: DistEnv
) -> tuple[DistributedDataParallel | None, bool]:
    """Under ``torchrun``, join the job's process group (:func:`init_process_group`, 30 minutes'
    timeout, unless already joined) and wrap ``model`` in ``DistributedDataParallel``, which
    broadcasts rank 0's weights.

    Returns:
        The wrapper (``None`` in a single process) and whether this call created the group.

    Example:
        >>> net = torch.nn.Linear(2, 2)
        >>> ncsn.training.distributed.wrap(net, torch.device("cpu"), ncsn.training.distributed_env())
        (None, False)
    """
    if not env.distributed:
        return None, False
    created = init_process_group(device, timeout=1800.0)
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids), created


def shared_seed(device: torch.device, env: DistEnv) -> int:
    """A fresh seed from the OS, rank 0's on every process.

    Example:
        >>> seed = ncsn.training.distributed.shared_seed(torch.device("cpu"), ncsn.training.distributed_env())
    """
    fresh = torch.tensor(torch.Generator().seed() >> 2, device=device)
    if env.distributed:
        dist.broadcast(fresh, src=0)
    return int(fresh)


def check_shards(shards: int, batch_size: int, world_size: int) -> int:
    """``shards`` when it is a multiple of the number of processes that divides ``batch_size``.

    Raises:
        ValueError: naming ``shards`` or ``batch_size``.

    Example:
        >>> ncsn.training.distributed.check_shards(4, 128, 2)
        4
    """
    shards = positive_int(shards, "shards")
    if shards % world_size:
        raise ValueError(
            f"shards must be a multiple of the number of processes {world_size}; got shards={shards}"
        )
    if batch_size % shards:
        raise ValueError(
            f"batch_size must be divisible by shards={shards}; got batch_size={batch_size}"
        )
    return shards
