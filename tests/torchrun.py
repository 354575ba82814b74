"""Launching ``torchrun`` jobs of CPU processes from the tests (shared by the distributed tests)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _descendants(root: int) -> list[int]:
    """The processes below ``root`` (Linux ``/proc``; none found elsewhere)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def torchrun(
    *target: str,
    nproc: int = 2,
    timeout: float = 300,
    env: Mapping[str, str] | None = None,
    retry_removing: Sequence[Path] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``torchrun --nproc_per_node=nproc TARGET...`` on this machine, each process with the test
    process's thread count (``NCSN_TEST_THREADS``, default 1);
    ``target`` is a script and its arguments, or ``-m module ...``.

    A launch that runs past ``timeout`` is killed with all its workers and fails with their
    output. With ``retry_removing`` (what the launch writes), a hung launch is tried once more
    after removing those paths: a three-process launch hung once on a loaded 2-core CI machine
    and was never seen to hang here; a second hang fails with both launches' output."""
    base = os.environ if env is None else env
    clean = {k: v for k, v in base.items() if k not in {"RANK", "WORLD_SIZE", "LOCAL_RANK"}}
    # As many threads per process as the test process has (conftest: NCSN_TEST_THREADS, else 1),
    # whatever the shell exports: tests compare the workers' results bitwise with one process's.
    clean["OMP_NUM_THREADS"] = os.environ.get("NCSN_TEST_THREADS", "1")

    def launch() -> subprocess.CompletedProcess[str]:
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
        proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean,
            start_new_session=True,  # the agent and its workers: one group to stop on a hang
        )
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            # The workers may sit in sessions of their own: kill every descendant, not only the
            # agent's group, or they keep the pipes open and the next read never ends.
            for pid in (*_descendants(proc.pid), proc.pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            try:
                out, err = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                out, err = "", "(the launch's output could not be read after it was killed)"
            raise TimeoutError(
                f"torchrun {' '.join(target)} hung for {timeout} s:\n{err[-3000:]}"
            ) from None
        return subprocess.CompletedProcess(command, proc.returncode, out, err)

    try:
        return launch()
    except TimeoutError as first:
        if retry_removing is None:
            raise AssertionError(str(first)) from None
        for path in retry_removing:
            shutil.rmtree(path, ignore_errors=True)
        try:
            return launch()
        except TimeoutError as second:
            raise AssertionError(f"{first}\n--- and again:\n{second}") from None
