"""The shared timing helper of the benchmark suite: interleaved repeats, warm-up, medians, ratios.

Every benchmark compares its variants *in the same process, interleaved*: round ``r`` runs each
variant once (the order rotates from round to round so that no variant always follows the same
neighbour), the first ``warmup`` rounds are discarded, and the result of a variant is the median
over the remaining rounds. Ratios are medians of the per-round ratios (a paired comparison), which
cancels slow drifts of a shared machine's load better than a ratio of medians.

Two clocks are recorded for every run: wall time (``time.perf_counter``; what the issue's targets
are stated in) and the process's CPU time (``time.process_time``), which on a CPU run is much less
sensitive to other processes competing for the same cores. On CUDA the device is synchronised
before and after each run, and CPU time is meaningless (the host mostly waits), so only wall time
is reported.

Peak memory: the peak of live tensor bytes during one run above what was alive before it, from
``torch.cuda.max_memory_allocated`` on CUDA and from the profiler's allocation records on the CPU
(:func:`peak_cpu_tensor_mib`).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Samples:
    """The kept (post-warm-up) timings of one variant, in seconds, in round order."""

    wall: tuple[float, ...]
    cpu: tuple[float, ...]

    @property
    def median_wall(self) -> float:
        return statistics.median(self.wall)

    @property
    def median_cpu(self) -> float:
        return statistics.median(self.cpu)

    def median(self, clock: str) -> float:
        return self.median_wall if clock == "wall" else self.median_cpu

    def as_dict(self) -> dict[str, Any]:
        return {
            "median_wall_s": self.median_wall,
            "median_cpu_s": self.median_cpu,
            "wall_s": list(self.wall),
            "cpu_s": list(self.cpu),
        }


def synchronize(device: torch.device | str) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(
    cases: Mapping[str, Callable[[], object]],
    *,
    repeats: int,
    warmup: int = 1,
    device: torch.device | str = "cpu",
) -> dict[str, Samples]:
    """Time every case ``warmup + repeats`` times, interleaved, and keep the last ``repeats``.

    Args:
        cases: name → a function doing one complete unit of work.
        repeats: kept rounds (the medians are over these).
        warmup: discarded leading rounds (compilation, allocator and cache warm-up).
        device: synchronised before and after each run when it is a CUDA device.

    Returns:
        name → :class:`Samples`.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0; got {repeats=}, {warmup=}")
    names = list(cases)
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    for r in range(warmup + repeats):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            synchronize(device)
            c0, w0 = time.process_time(), time.perf_counter()
            cases[name]()
            synchronize(device)
            w1, c1 = time.perf_counter(), time.process_time()
            if r >= warmup:
                wall[name].append(w1 - w0)
                cpu[name].append(c1 - c0)
    return {n: Samples(tuple(wall[n]), tuple(cpu[n])) for n in names}


def ratio(a: Samples, b: Samples, clock: str = "wall") -> float:
    """Median over rounds of ``a / b`` (paired: both ran in the same round)."""
    xs, ys = (a.wall, b.wall) if clock == "wall" else (a.cpu, b.cpu)
    return statistics.median(x / y for x, y in zip(xs, ys, strict=True))


def clocks(device: torch.device | str) -> tuple[str, ...]:
    """The clocks worth reporting on a device: both on the CPU, wall time only on CUDA."""
    return ("wall",) if torch.device(device).type == "cuda" else ("wall", "cpu")


def peak_cuda_mib(run: Callable[[], object], device: torch.device | str) -> float:
    """Peak allocated CUDA memory (MiB) during ``run`` above what was allocated before it."""
    synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    run()
    synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - before) / 2**20


def peak_cpu_tensor_mib(run: Callable[[], object]) -> float:
    """Peak bytes (MiB) of live CPU tensors during ``run``, above those alive when it starts.

    Replays the CPU allocator's allocation and free records that the torch profiler collects with
    ``profile_memory=True``, so the number is exact and deterministic and counts what
    ``max_memory_allocated`` counts on CUDA: tensors, not the C library's or oneDNN's own caches.
    (The process's resident size was tried first and discarded: glibc's reuse of freed blocks
    made it non-monotonic in the batch size.)
    """
    with torch.profiler.profile(
        activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True
    ) as prof:
        run()
    assert prof.profiler is not None and prof.profiler.kineto_results is not None
    records = sorted(
        (event.start_ns(), event.nbytes())
        for event in prof.profiler.kineto_results.events()
        if event.name() == "[memory]" and event.device_type() == torch.autograd.DeviceType.CPU
    )
    total = peak = 0
    for _, nbytes in records:
        total += nbytes
        peak = max(peak, total)
    return peak / 2**20


def environment(device: torch.device | str) -> dict[str, Any]:
    """What the numbers were measured on."""
    device = torch.device(device)
    env: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


def write_results(name: str, payload: Mapping[str, Any]) -> Path:
    """Write ``benchmarks/results/<name>.json`` and return its path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


def format_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain fixed-width table (floats with 4 significant digits)."""

    def cell(v: object) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    cells = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)
