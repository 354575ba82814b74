"""Sampling benchmarks: the loop's overhead over the bare model calls, and each optimisation.

1. Overhead (issue 6, item 1): wall time of ``AnnealedLangevin`` ÷ the wall time of the same
   L·T model calls made bare (a plain loop of ``model(x, sigma)`` under ``torch.no_grad`` on the
   same batch), for the toy ``ScoreMLP`` with 1,280 chains (targets on the CPU: ≤ 1.25) and a small
   ``RefineNet`` (ngf 16, 1×28×28, batch 16; target ≤ 1.05).
2. Optimisations (item 3): time per Langevin step, samples/s at the paper's 1,000 steps and the
   speed-up over the plain eager float32 sampler, for ``ncsn.nets.compiled``, a ``channels_last`` chain
   and network, ``ncsn.nets.autocast(net, torch.bfloat16)`` and, on CUDA, ``ncsn.nets.cuda_graphed``, TF32 and
   their combinations; every variant's samples are compared with the plain sampler's (same seed)
   against a stated tolerance, and a mismatch makes the script exit with status 1. On the CPU the
   network is the small RefineNet (batch 16); on CUDA the CIFAR-10 configuration (3×32×32,
   ngf 128, batch 128), with peak memory per variant.
3. On CUDA only: samples/s of the CIFAR-10 network for 128 to 1,024 chains, eager float32 against
   CUDA graphs with bf16 and channels_last.

Usage::

    python benchmarks/sampling.py [--device cpu|cuda] [--quick] [--repeats N]
                                  [--no-compile | --only-compile]

``--only-compile`` runs only section 2's eager and compiled variants (``gpu.sh`` runs them last,
in whatever time is left, since compiling the network takes the longest). Writes
``benchmarks/results/sampling_<device>[_quick][_compile].json``. Timing assertions: none (the
ratios are printed for reading); correctness assertions: the tolerances above.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _timing

import ncsn
from ncsn.samplers import AnnealedLangevin

# torch's own inductor import uses a deprecated TorchScript decorator; not ours to act on.
warnings.filterwarnings("ignore", message="`torch.jit.script_method` is deprecated")

TARGETS = {"mlp": 1.25, "refinenet": 1.05}

# Largest accepted relative differences from the plain eager float32 sampler (same seed):
# (first score, samples), each as max|variant − plain| / max|plain|. The first score is the model
# output at the first step, where every variant sees the same x: it isolates the option's own
# numerics. Exact options must agree bit for bit.
TOLERANCES = {
    "eager": (0.0, 0.0),
    "compile": (1e-4, 1e-4),
    "channels_last": (1e-4, 1e-4),
    "autocast_bf16": (1e-1, 1e-2),
    "cuda_graph": (0.0, 0.0),
    "tf32": (2e-2, 1e-3),
    "cuda_graph+bf16": (1e-1, 1e-2),
    "cuda_graph+bf16+channels_last": (1e-1, 1e-2),
    "compile+cuda_graph": (1e-4, 1e-4),
}


@dataclass
class Workload:
    name: str
    model: nn.Module
    x: Tensor
    sigmas: Tensor  # the levels the sampler runs through (a prefix of the network's)
    steps_per_level: int
    step_size: float

    @property
    def steps(self) -> int:
        return len(self.sigmas) * self.steps_per_level


def mlp_workload(device: torch.device, quick: bool) -> Workload:
    g = torch.Generator().manual_seed(0)
    sigmas = ncsn.geometric_sigmas(20.0, 1.0, 10)
    net = ncsn.nets.ScoreMLP(2, hidden=128, sigmas=sigmas).to(device).eval()
    x = ncsn.samplers.uniform_init((1280, 2), low=-8, high=8, generator=g).to(device)
    return Workload("mlp", net, x, sigmas, 5 if quick else 20, 1e-4)


def refinenet_workload(
    device: torch.device, *, channels: int, size: int, ngf: int, batch: int, levels: int, steps: int
) -> Workload:
    g = torch.Generator().manual_seed(0)
    sigmas = ncsn.geometric_sigmas(1.0, 0.01, 10)
    net = ncsn.nets.RefineNet(channels, ngf, sigmas, generator=g).to(device).eval()
    x = torch.rand(batch, channels, size, size, generator=g).to(device)
    return Workload(f"refinenet_ngf{ngf}", net, x, sigmas[:levels], steps, 2e-5)


def bare_calls(work: Workload) -> Callable[[], None]:
    """The L·T model calls alone, on the same batch and with the same σ tensors as the sampler."""
    sigmas = work.sigmas.to(work.x.device)
    batch = work.x.shape[0]

    def run() -> None:
        with torch.no_grad():
            for level in range(len(sigmas)):
                sigma = sigmas[level].expand(batch)
                for _ in range(work.steps_per_level):
                    work.model(work.x, sigma)

    return run


def sampler_call(
    work: Workload,
    *,
    model: nn.Module | None = None,
    x: Tensor | None = None,
    precision: str | None = None,
    **options: Any,
) -> Callable[[list[Tensor] | None], None]:
    """One sampler call; given a list, it records [samples, the first step's score] there.

    ``options`` (``compile``, ``autocast_dtype``, ``cuda_graph``) select the model wrappers of
    :mod:`ncsn.nets`, stacked as cuda_graphed(autocast(compiled(net))).
    """
    sampler = AnnealedLangevin(work.sigmas, work.step_size, work.steps_per_level)
    net: Any = work.model if model is None else model
    if options.pop("compile", False):
        net = ncsn.nets.compiled(net)
    dtype = options.pop("autocast_dtype", None)
    if dtype is not None:
        net = ncsn.nets.autocast(net, dtype)
    if options.pop("cuda_graph", False):
        net = ncsn.nets.cuda_graphed(net)
    if options:
        raise TypeError(f"unknown sampler options {sorted(options)}")
    start = work.x if x is None else x
    device = work.x.device

    def run(record: list[Tensor] | None = None) -> None:
        g = torch.Generator(device=device).manual_seed(1)
        first: list[Tensor] = []

        def keep_first(info: ncsn.samplers.StepInfo) -> None:
            if not first:
                first.append(info.score.detach().clone())

        with fp32_precision(precision):
            result = sampler(
                net, start, generator=g, callback=None if record is None else keep_first
            )
        if record is not None:
            record[:] = [result, first[0]]

    return run


@contextlib.contextmanager
def fp32_precision(mode: str | None) -> Iterator[None]:
    """Temporarily set the CUDA float32 matmul/convolution precision ("ieee" or "tf32")."""
    if mode is None:
        yield
        return
    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv
    saved = (matmul.fp32_precision, conv.fp32_precision)
    matmul.fp32_precision = conv.fp32_precision = mode
    try:
        yield
    finally:
        matmul.fp32_precision, conv.fp32_precision = saved


def overhead(device: torch.device, quick: bool, repeats: int) -> dict[str, Any]:
    print("\n== 1. sampler overhead: AnnealedLangevin ÷ the same L·T bare model calls ==")
    cuda = device.type == "cuda"
    # On CUDA more steps per level, so that cuda_graph's one capture per level is amortised as
    # it is in real use (T = 100) instead of dominating the ratio.
    steps = 1 if quick else 20 if cuda else 3
    refine = refinenet_workload(
        device, channels=1, size=28, ngf=16, batch=16, levels=10, steps=steps
    )
    results: dict[str, Any] = {}
    rows = []
    for key, work in (("mlp", mlp_workload(device, quick)), ("refinenet", refine)):
        cases = {"sampler": sampler_call(work), "bare": bare_calls(work)}
        if cuda:  # the same loop replayed from CUDA graphs, against the same bare eager calls
            cases["sampler_cuda_graph"] = sampler_call(work, cuda_graph=True)
        samples = _timing.measure(cases, repeats=repeats, warmup=1, device=device)
        ratios = {
            c: _timing.ratio(samples["sampler"], samples["bare"], c) for c in _timing.clocks(device)
        }
        results[key] = {
            "workload": f"{work.name}, batch {work.x.shape[0]}, L·T = {work.steps}",
            "ratio": ratios,
            "target": TARGETS[key],
            "meets_target": ratios["wall"] <= TARGETS[key],
            **{name: s.as_dict() for name, s in samples.items()},
        }
        per_call = samples["bare"].median_wall / work.steps
        row = [key, work.x.shape[0], work.steps, per_call * 1e3]
        row += [ratios[c] for c in _timing.clocks(device)]
        if cuda:
            graph_ratio = _timing.ratio(samples["sampler_cuda_graph"], samples["bare"], "wall")
            results[key]["ratio_cuda_graph"] = {"wall": graph_ratio}
            row.append(graph_ratio)
        rows.append([*row, TARGETS[key]])
    header = ["model", "batch", "L·T", "bare ms/call"]
    header += [f"ratio ({c})" for c in _timing.clocks(device)]
    header += ["cuda_graph ratio"] if cuda else []
    header += ["target (CPU)"]
    print(_timing.format_table(header, rows))
    return results


def optimisations(
    device: torch.device, quick: bool, repeats: int, compile_mode: str
) -> tuple[dict[str, Any], bool]:
    """``compile_mode``: "with" (every variant), "without" (no compile) or "only" (eager and the
    compile variants, for a separate run where compilation may be cut short)."""
    cuda = device.type == "cuda"
    if cuda:
        work = refinenet_workload(
            device, channels=3, size=32, ngf=128, batch=128, levels=2, steps=5 if quick else 20
        )
    else:
        work = refinenet_workload(
            device, channels=1, size=28, ngf=16, batch=16, levels=2, steps=2 if quick else 4
        )
    print(
        f"\n== 2. sampling optimisations: {work.name}, {tuple(work.x.shape)}, "
        f"{len(work.sigmas)} levels × {work.steps_per_level} steps =="
    )
    net_cl = copy.deepcopy(work.model).to(memory_format=torch.channels_last)
    x_cl = work.x.contiguous(memory_format=torch.channels_last)
    ieee = "ieee" if cuda else None
    runs: dict[str, Callable[..., None]] = {"eager": sampler_call(work, precision=ieee)}
    skipped: dict[str, str] = {}
    if compile_mode != "without":
        runs["compile"] = sampler_call(work, compile=True, precision=ieee)
        if cuda:
            runs["compile+cuda_graph"] = sampler_call(
                work, compile=True, cuda_graph=True, precision=ieee
            )
    else:
        skipped["compile"] = "--no-compile (or --quick on the CPU, where compiling takes minutes)"
    if compile_mode != "only":
        runs["channels_last"] = sampler_call(work, model=net_cl, x=x_cl, precision=ieee)
        runs["autocast_bf16"] = sampler_call(work, autocast_dtype=torch.bfloat16, precision=ieee)
        if cuda:
            runs["cuda_graph"] = sampler_call(work, cuda_graph=True, precision=ieee)
            runs["tf32"] = sampler_call(work, precision="tf32")
            runs["cuda_graph+bf16"] = sampler_call(
                work, cuda_graph=True, autocast_dtype=torch.bfloat16, precision=ieee
            )
            runs["cuda_graph+bf16+channels_last"] = sampler_call(
                work,
                model=net_cl,
                x=x_cl,
                cuda_graph=True,
                autocast_dtype=torch.bfloat16,
                precision=ieee,
            )
        else:
            for name in ("cuda_graph", "tf32", "cuda_graph+bf16", "cuda_graph+bf16+channels_last"):
                skipped[name] = "needs CUDA"

    # The first call of each variant compiles / captures / warms up, and records its outputs.
    records: dict[str, list[Tensor]] = {}
    first_call: dict[str, float] = {}
    for name, run in runs.items():
        records[name] = []
        start = time.perf_counter()
        run(records[name])
        _timing.synchronize(device)
        first_call[name] = time.perf_counter() - start
    samples = _timing.measure(runs, repeats=repeats, warmup=0, device=device)
    memory = (
        {name: _timing.peak_cuda_mib(run, device) for name, run in runs.items()} if cuda else {}
    )

    def rel_diff(a: Tensor, b: Tensor) -> float:
        return (a.float() - b.float()).abs().max().item() / b.float().abs().max().item()

    ref_samples, ref_score = records["eager"]
    ok = True
    rows = []
    results: dict[str, Any] = {
        "workload": f"{work.name}, x {tuple(work.x.shape)}, {work.steps} steps per call",
        "variants": {},
        "skipped": skipped,
    }
    for name, s in samples.items():
        score_diff = rel_diff(records[name][1], ref_score)
        sample_diff = rel_diff(records[name][0], ref_samples)
        score_tol, sample_tol = TOLERANCES[name]
        within = score_diff <= score_tol and sample_diff <= sample_tol
        ok &= within
        step_s = s.median_wall / work.steps
        speedup = _timing.ratio(samples["eager"], s, "wall")
        row: dict[str, Any] = {
            "ms_per_step": step_s * 1e3,
            "samples_per_s_at_1000_steps": work.x.shape[0] / (step_s * 1000),
            "speedup_vs_eager_wall": speedup,
            "first_call_s": first_call[name],
            "max_rel_diff_first_score": score_diff,
            "max_rel_diff_samples": sample_diff,
            "tolerance_score_samples": [score_tol, sample_tol],
            "within_tolerance": within,
            "timings": s.as_dict(),
        }
        if cuda:
            row["peak_mib"] = memory[name]
        else:
            row["speedup_vs_eager_cpu"] = _timing.ratio(samples["eager"], s, "cpu")
        results["variants"][name] = row
        rows.append(
            [
                name,
                row["ms_per_step"],
                row["samples_per_s_at_1000_steps"],
                speedup,
                row.get("speedup_vs_eager_cpu", float("nan")),
                row.get("peak_mib", float("nan")),
                first_call[name],
                f"{score_diff:.1e} / {sample_diff:.1e}",
                "ok" if within else f"MISMATCH (tolerance {score_tol:g} / {sample_tol:g})",
            ]
        )
    header = ["variant", "ms/step", "samples/s@1000", "speed-up (wall)", "speed-up (cpu)"]
    header += ["peak MiB", "1st call s", "rel diff score / samples", "check"]
    print(_timing.format_table(header, rows))
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")
    return results, ok


def batch_sweep(device: torch.device, quick: bool, repeats: int) -> dict[str, Any]:
    """CUDA only: samples/s of the CIFAR-10 network for growing batches of chains."""
    batches = (128, 512) if quick else (128, 256, 512, 1024)
    print("\n== 3. large batches of chains: CIFAR-10 RefineNet, 1 level × 10 steps ==")
    results: dict[str, Any] = {}
    rows = []
    for batch in batches:
        work = refinenet_workload(
            device, channels=3, size=32, ngf=128, batch=batch, levels=1, steps=10
        )
        net_cl = copy.deepcopy(work.model).to(memory_format=torch.channels_last)
        x_cl = work.x.contiguous(memory_format=torch.channels_last)
        runs = {
            "eager": sampler_call(work, precision="ieee"),
            "cuda_graph+bf16+channels_last": sampler_call(
                work,
                model=net_cl,
                x=x_cl,
                cuda_graph=True,
                autocast_dtype=torch.bfloat16,
                precision="ieee",
            ),
        }
        samples = _timing.measure(runs, repeats=repeats, warmup=1, device=device)
        memory = {name: _timing.peak_cuda_mib(run, device) for name, run in runs.items()}
        for name, s in samples.items():
            per_s = batch / (s.median_wall / work.steps * 1000)
            results[f"{name}@{batch}"] = {
                "samples_per_s_at_1000_steps": per_s,
                "peak_mib": memory[name],
                "timings": s.as_dict(),
            }
            rows.append([name, batch, per_s, memory[name]])
        del work, net_cl, x_cl, runs
        torch.cuda.empty_cache()
    print(_timing.format_table(["variant", "batch", "samples/s@1000", "peak MiB"], rows))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--quick", action="store_true", help="tiny sizes for a CI smoke run")
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed rounds (default 7, CUDA 5, quick 2)"
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--no-compile", action="store_true", help="skip the torch.compile variants")
    group.add_argument(
        "--only-compile",
        action="store_true",
        help="only the eager and torch.compile sampling variants (results: *_compile.json)",
    )
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("sampling.py: CUDA is not available on this machine; skipping the GPU benchmarks.")
        return 0
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    repeats = args.repeats or (2 if args.quick else 5 if cuda else 7)
    if args.only_compile:
        compile_mode = "only"
    elif args.no_compile or (args.quick and not cuda):
        compile_mode = "without"
    else:
        compile_mode = "with"
    env = _timing.environment(device)
    print(f"torch {env['torch']} on {env.get('gpu', device)}, {env['torch_threads']} threads")
    suffix = ("_quick" if args.quick else "") + ("_compile" if args.only_compile else "")
    name = f"sampling_{device.type}{suffix}"
    # Written after every part, so a run stopped at a time limit (gpu.sh) keeps what it measured.
    payload: dict[str, Any] = {"environment": env, "repeats": repeats, "complete": False}
    if not args.only_compile:
        payload["overhead"] = overhead(device, args.quick, repeats)
        _timing.write_results(name, payload)
    payload["optimisations"], ok = optimisations(device, args.quick, repeats, compile_mode)
    _timing.write_results(name, payload)
    if cuda and not args.only_compile:
        payload["batch_sweep"] = batch_sweep(device, args.quick, max(2, repeats - 2))
    payload["complete"] = True
    path = _timing.write_results(name, payload)
    print(f"\nwrote {path}")
    if not ok:
        print("FAILED: a variant's samples differ from the plain sampler's beyond its tolerance")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
