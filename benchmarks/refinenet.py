"""RefineNet speed and memory on the CPU: ``ncsn.nets.RefineNet`` against a direct transcription.

Compares, in one process, interleaved, after a warm-up, with medians over a few repeats:

* ``ncsn``: :class:`ncsn.nets.RefineNet` (NCHW, the library's default);
* ``naive``: a direct transcription of the official ``CondRefineNetDilated`` forward pass, kept in
  this file: CondInstanceNorm++ as ``torch.mean`` + ``torch.var`` over the channel means plus a
  separate ``F.instance_norm`` and three elementwise ops, ConvMeanPool as the average of four
  strided slices, fusion that always interpolates. It runs on the *same weights*;
* ``ncsn_channels_last``: the library network and input converted to ``torch.channels_last``.

Timed: ``forward`` (under ``torch.no_grad``, as in Langevin sampling) and ``forward+backward``
(``out.square().sum().backward()``, as in training), for the MNIST (1×28×28, ngf 64) and CIFAR-10
(3×32×32, ngf 128) configurations at batch 8.

Peak memory: the increase of the peak resident set size (Linux ``VmHWM`` from
``/proc/self/status``, reset through ``/proc/self/clear_refs`` before each run) over the resident
size just before the run, in a fresh child process per (configuration, variant) after a batch-1
warm-up, with glibc's mmap threshold fixed at 64 KiB so that freed tensors leave the resident set.
It counts everything the process touches during the run (activations, saved tensors, gradients,
kernel scratch), not only tensor bytes. Linux only.

Usage::

    python benchmarks/refinenet.py [--repeats 2] [--batch 8] [--threads 2] [--configs mnist cifar10]

Times are medians of wall-clock seconds and of process CPU seconds (``time.process_time``, all
threads); on a shared machine the CPU times are the steadier of the two. Prints a table and ratios
(``naive/ncsn`` > 1 means the library is faster or leaner) and writes
``benchmarks/results/refinenet.json``. Asserts nothing: timings are for reading.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

import ncsn
from ncsn.nets import RefineNet

CONFIGS = {"mnist": (1, 28, 64), "cifar10": (3, 32, 128)}  # channels, image size, ngf
VARIANTS = ("ncsn", "naive", "ncsn_channels_last")
RESULTS = Path(__file__).parent / "results" / "refinenet.json"


# --- the direct transcription ------------------------------------------------------------------


class Naive:
    """The official forward pass written out op by op over a state dict (no nn.Modules)."""

    def __init__(self, state: dict[str, Tensor]) -> None:
        self.p = state

    def norm(self, name: str, x: Tensor, y: Tensor) -> Tensor:
        means = torch.mean(x, dim=(2, 3))
        m = torch.mean(means, dim=-1, keepdim=True)
        v = torch.var(means, dim=-1, keepdim=True)
        means = (means - m) / torch.sqrt(v + 1e-5)
        h = F.instance_norm(x, eps=1e-5)
        gamma, alpha, beta = F.embedding(y, self.p[f"{name}.embed.weight"]).chunk(3, dim=-1)
        h = h + means[..., None, None] * alpha[..., None, None]
        return gamma[..., None, None] * h + beta[..., None, None]

    def conv(self, name: str, x: Tensor, dilation: int = 1) -> Tensor:
        w = self.p[f"{name}.weight"]
        pad = dilation * (w.shape[-1] // 2)
        return F.conv2d(x, w, self.p.get(f"{name}.bias"), padding=pad, dilation=dilation)

    def conv_mean_pool(self, name: str, x: Tensor) -> Tensor:
        h = self.conv(f"{name}.conv", x)
        return (
            h[:, :, ::2, ::2] + h[:, :, 1::2, ::2] + h[:, :, ::2, 1::2] + h[:, :, 1::2, 1::2]
        ) / 4

    def res_block(self, name: str, x: Tensor, y: Tensor, down: bool, dilation: int) -> Tensor:
        h = F.elu(self.norm(f"{name}.normalize1", x, y))
        h = self.conv(f"{name}.conv1", h, dilation)
        h = F.elu(self.norm(f"{name}.normalize2", h, y))
        if down and dilation == 1:
            return self.conv_mean_pool(f"{name}.shortcut", x) + self.conv_mean_pool(
                f"{name}.conv2", h
            )
        h = self.conv(f"{name}.conv2", h, dilation)
        skip = self.conv(f"{name}.shortcut", x, dilation) if down else x
        return skip + h

    def rcu(self, name: str, x: Tensor, y: Tensor, n_blocks: int) -> Tensor:
        for i in range(1, n_blocks + 1):
            residual = x
            for j in range(1, 3):
                x = F.elu(self.norm(f"{name}.{i}_{j}_norm", x, y))
                x = self.conv(f"{name}.{i}_{j}_conv", x)
            x += residual
        return x

    def crp(self, name: str, x: Tensor, y: Tensor) -> Tensor:
        x = F.elu(x)
        path = x
        for i in range(2):
            path = self.norm(f"{name}.norms.{i}", path, y)
            path = F.avg_pool2d(path, 5, stride=1, padding=2)
            path = self.conv(f"{name}.convs.{i}", path)
            x = path + x
        return x

    def refine(self, name: str, xs: list[Tensor], y: Tensor, end: bool = False) -> Tensor:
        hs = [self.rcu(f"{name}.adapt_convs.{i}", x, y, 2) for i, x in enumerate(xs)]
        if len(hs) > 1:
            size = xs[0].shape[2:]
            out = self.p[f"{name}.msf.convs.0.weight"].shape[0]
            h = torch.zeros(xs[0].shape[0], out, *size, device=xs[0].device, dtype=xs[0].dtype)
            for i, hi in enumerate(hs):
                hi = self.conv(f"{name}.msf.convs.{i}", self.norm(f"{name}.msf.norms.{i}", hi, y))
                h += F.interpolate(hi, size=size, mode="bilinear", align_corners=True)
        else:
            h = hs[0]
        h = self.crp(f"{name}.crp", h, y)
        return self.rcu(f"{name}.output_convs", h, y, 3 if end else 1)

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        h = self.conv("begin_conv", 2 * x - 1.0)
        for i in range(2):
            h = self.res_block(f"res1.{i}", h, y, False, 1)
        layer1 = h
        h = self.res_block("res2.0", h, y, True, 1)
        layer2 = self.res_block("res2.1", h, y, False, 1)
        h = self.res_block("res3.0", layer2, y, True, 2)
        layer3 = self.res_block("res3.1", h, y, False, 2)
        h = self.res_block("res4.0", layer3, y, True, 4)
        layer4 = self.res_block("res4.1", h, y, False, 4)
        ref1 = self.refine("refine1", [layer4], y)
        ref2 = self.refine("refine2", [layer3, ref1], y)
        ref3 = self.refine("refine3", [layer2, ref2], y)
        h = self.refine("refine4", [layer1, ref3], y, end=True)
        return self.conv("end_conv", F.elu(self.norm("normalizer", h, y)))


# --- set-up and measurement ------------------------------------------------------------------


Fn = Callable[[Tensor, Tensor], Tensor]


def build(config: str, batch: int) -> tuple[dict[str, tuple[Fn, list[Tensor], Tensor]], Tensor]:
    channels, size, ngf = CONFIGS[config]
    g = torch.Generator().manual_seed(0)
    sigmas = ncsn.geometric_sigmas(1.0, 0.01, 10)
    net = RefineNet(channels, ngf, sigmas, generator=g)
    net_cl = RefineNet(channels, ngf, sigmas)
    net_cl.load_state_dict(net.state_dict())
    net_cl = net_cl.to(memory_format=torch.channels_last)
    naive_params = {k: v.detach().clone().requires_grad_() for k, v in net.state_dict().items()}
    x = torch.rand(batch, channels, size, size, generator=g)
    labels = torch.arange(batch) % 10
    variants: dict[str, tuple[Fn, list[Tensor], Tensor]] = {
        "ncsn": (net.forward_levels, list(net.parameters()), x),
        "naive": (Naive(naive_params), list(naive_params.values()), x),
        "ncsn_channels_last": (
            net_cl.forward_levels,
            list(net_cl.parameters()),
            x.contiguous(memory_format=torch.channels_last),
        ),
    }
    return variants, labels


def forward(fn: Fn, x: Tensor, labels: Tensor) -> None:
    with torch.no_grad():
        fn(x, labels)


def forward_backward(fn: Fn, params: list[Tensor], x: Tensor, labels: Tensor) -> None:
    for p in params:
        p.grad = None
    fn(x, labels).square().sum().backward()


def timed(run: Callable[[], None]) -> tuple[float, float]:
    """Wall-clock and process CPU seconds (all threads) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not found in /proc/self/status")


def _reset_peak_rss() -> None:
    # Linux >= 4.0: writing 5 to clear_refs resets the peak resident set size (VmHWM).
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _peak_increase_mib(run: Callable[[], None]) -> float:
    gc.collect()
    _reset_peak_rss()
    before = _status_kib("VmRSS")
    run()
    return (_status_kib("VmHWM") - before) / 1024


def child_memory(config: str, variant: str, batch: int) -> None:
    """In a fresh process: peak RSS increase (MiB) of one forward and of one forward+backward."""
    variants, labels = build(config, batch)
    fn, params, x = variants[variant]
    del variants
    # Warm up at batch 1 so that one-time costs (lazily loaded kernels, thread pools) are not
    # counted, without leaving batch-sized buffers behind.
    forward(fn, x[:1], labels[:1])
    forward_backward(fn, params, x[:1], labels[:1])
    for p in params:
        p.grad = None
    fwd = _peak_increase_mib(lambda: forward(fn, x, labels))
    for p in params:
        p.grad = None
    both = _peak_increase_mib(lambda: forward_backward(fn, params, x, labels))
    print(json.dumps({"forward_mib": fwd, "forward_backward_mib": both}))


def measure_memory(config: str, variant: str, batch: int) -> dict[str, float]:
    # A fixed mmap threshold makes glibc return every large block to the system when it is freed,
    # so the resident size follows the live tensors instead of the allocator's high-water mark.
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    out = subprocess.run(
        [
            *(sys.executable, __file__, "--child", config, variant),
            *("--batch", str(batch), "--threads", str(torch.get_num_threads())),
        ],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


MODES = ("forward", "forward_backward")
CLOCKS = ("wall", "cpu")


def measure_time(
    config: str, batch: int, repeats: int
) -> tuple[dict[str, dict[str, float]], float]:
    """Median wall and CPU seconds per (variant, mode), rounds interleaved over the variants."""
    variants, labels = build(config, batch)
    with torch.no_grad():
        ref = variants["ncsn"][0](variants["ncsn"][2], labels)
        max_diff = max((fn(x, labels) - ref).abs().max().item() for fn, _, x in variants.values())
    samples: dict[str, dict[str, list[float]]] = {
        v: {f"{m}_{c}": [] for m in MODES for c in CLOCKS} for v in variants
    }
    for r in range(repeats + 1):  # round 0 is the warm-up
        for name, (fn, params, x) in variants.items():
            runs = {
                "forward": lambda fn=fn, x=x: forward(fn, x, labels),
                "forward_backward": lambda fn=fn, p=params, x=x: forward_backward(fn, p, x, labels),
            }
            for mode, run in runs.items():
                wall, cpu = timed(run)  # type: ignore[arg-type]
                if r > 0:
                    samples[name][f"{mode}_wall"].append(wall)
                    samples[name][f"{mode}_cpu"].append(cpu)
    medians = {v: {k: statistics.median(ts) for k, ts in d.items()} for v, d in samples.items()}
    return medians, max_diff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)"
    )
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument(
        "--no-memory", action="store_true", help="skip the child-process memory runs"
    )
    parser.add_argument("--child", nargs=2, metavar=("CONFIG", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.child:
        child_memory(args.child[0], args.child[1], args.batch)
        return

    results: dict[str, object] = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "batch": args.batch,
        "repeats": args.repeats,
        "time": "median wall and process-CPU seconds over repeats after one warm-up round, variants interleaved",
        "memory": "peak RSS (VmHWM) increase in MiB over the pre-run RSS; fresh process per variant",
        "configs": {},
    }
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}")
    header = (
        f"{'config':8} {'variant':19} {'fwd wall':>9} {'fwd cpu':>8} {'f+b wall':>9} "
        f"{'f+b cpu':>8} {'fwd MiB':>8} {'f+b MiB':>8}"
    )
    print(header)
    print("-" * len(header))
    keys = [f"{m}_{c}" for m in MODES for c in CLOCKS] + ["forward_mib", "forward_backward_mib"]
    for config in args.configs:
        medians, max_diff = measure_time(config, args.batch, args.repeats)
        nan = float("nan")
        memory = {
            v: (
                {"forward_mib": nan, "forward_backward_mib": nan}
                if args.no_memory
                else measure_memory(config, v, args.batch)
            )
            for v in VARIANTS
        }
        rows = {v: {**medians[v], **memory[v]} for v in VARIANTS}
        for v, row in rows.items():
            print(
                f"{config:8} {v:19} "
                + " ".join(
                    f"{row[k]:>{8 if 'cpu' in k or 'mib' in k else 9}.{0 if 'mib' in k else 3}f}"
                    for k in keys
                )
            )
        ratios = {
            f"{v}/ncsn": {k: rows[v][k] / rows["ncsn"][k] for k in keys}
            for v in VARIANTS
            if v != "ncsn"
        }
        for name, r in ratios.items():
            print(
                f"{config:8} {name:19} "
                + " ".join(
                    f"{'x' + format(r[k], '.2f'):>{8 if 'cpu' in k or 'mib' in k else 9}}"
                    for k in keys
                )
            )
        print(f"{config:8} max |output difference| between variants: {max_diff:.2e}")
        results["configs"][config] = {  # type: ignore[index]
            "channels_size_ngf": CONFIGS[config],
            "rows": rows,
            "ratios": ratios,
            "max_output_difference": max_diff,
        }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
