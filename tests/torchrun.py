"""Launching ``torchrun`` jobs of CPU processes from the tests (shared by the distributed tests)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Mapping


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def torchrun(
    *target: str, nproc: int = 2, timeout: float = 300, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``torchrun --nproc_per_node=nproc TARGET...`` on this machine, one thread per process;
    ``target`` is a script and its arguments, or ``-m module ...``."""
    base = os.environ if env is None else env
    clean = {k: v for k, v in base.items() if k not in {"RANK", "WORLD_SIZE", "LOCAL_RANK"}}
    clean.setdefault("OMP_NUM_THREADS", "1")
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc_per_node={nproc}",
        "--nnodes=1",
        "--master_addr=127.0.0.1",
        f"--master_port={free_port()}",
        *target,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=clean)
