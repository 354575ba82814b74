"""Which process am I: rank, world size and local rank under ``torchrun`` (or a single process)."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import NamedTuple

import torch
import torch.distributed as dist

__all__ = ["DistEnv", "distributed_env", "init_process_group"]


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
