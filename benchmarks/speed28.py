"""Training and sampling speed at 28×28 (MNIST, Fashion-MNIST) on the machine at hand.

What ``ncsn.presets`` picks its 28×28 defaults from, measured rather than assumed.

``train``: for each network (the paper's level-conditioned RefineNet at widths 16, 32 and 64, and
NCSNv2's unconditional RefineNet with the 1/σ output at width 32) and each way of running it
(``fp32_eager``, ``fp32_compiled`` through :func:`ncsn.nets.compiled`, ``bf16_eager`` through
:func:`ncsn.nets.autocast`, ``bf16_compiled``), one :func:`ncsn.training.train_step` of DSM and Adam
at ``--batch``: the median step time (variants of one network interleaved, see ``_timing``),
examples/s, the first call's seconds (compilation), the loss and gradients' relative difference
from ``fp32_eager`` at the same weights and noise, the counted FLOPs of the forward and backward
(``torch.utils.flop_counter``: convolutions and matrix products), the achieved GFLOP/s as a
fraction of what the machine reaches on one large matrix product in the same dtype (the distance
to its limit), and, for the eager variants, the share of the step's CPU time by operator family
from the profiler (convolutions, normalisation, pooling, upsampling, activations, the optimizer,
the rest): where the time goes, as the lever for the next speed-up.

``sample``: for the network the recipe picks (``--sample-network``), the time of one model call
per example at ``--sample-batch`` for each way of running it, and for each sampler with the fastest
way: model calls per sample, samples/s and the minutes 10,000 samples take (what a Fréchet
distance at paper scale needs). Each sampler is timed on the first ``--sample-levels`` levels of
the recipe's MNIST grid and its rate scaled to the whole grid (the per-call cost does not depend on
the level).

Run alone on a quiet machine (other jobs on the same cores change every number):

    python benchmarks/speed28.py                  # about 30 minutes on 2 CPU cores
    python benchmarks/speed28.py --quick          # a smoke run (widths 4, 2 repeats)

Writes ``benchmarks/results/speed28_<device>[_quick].json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _timing

import ncsn

NETWORKS = ("refinenet:16", "refinenet:32", "refinenet:64", "scaled:32")
VARIANTS: dict[str, tuple[torch.dtype | None, bool]] = {
    "fp32_eager": (None, False),
    "fp32_compiled": (None, True),
    "bf16_eager": (torch.bfloat16, False),
    "bf16_compiled": (torch.bfloat16, True),
}
# The recipe's grid for MNIST (ncsn.presets.recipe on the 60,000 training images): σ₁ = 16.88,
# L = 96 down to 0.01. The network's cost does not depend on the σ values.
SIGMA_MAX, SIGMA_MIN, NUM_LEVELS = 16.88, 0.01, 96
FAMILIES = {
    "convolution": ("conv", "mkldnn_convolution"),
    "normalisation": ("batch_norm", "instance_norm", "var_mean", "native_group_norm", "layer_norm"),
    "pooling": ("avg_pool", "max_pool"),
    "upsampling": ("upsample", "interpolate", "_upsample"),
    "activation": ("elu", "relu", "silu", "gelu"),
    "optimizer": ("Optimizer.step", "_foreach", "adam"),
}


def build(network: str, sigmas: Tensor, *, quick: bool) -> nn.Module:
    kind, _, width_text = network.partition(":")
    width = 4 if quick else int(width_text)
    gen = torch.Generator().manual_seed(0)
    if kind == "refinenet":
        return ncsn.nets.RefineNet(1, width, sigmas, generator=gen)
    if kind == "scaled":
        return ncsn.nets.ScaledByInverseSigma(ncsn.nets.RefineNetBaseline(1, width, generator=gen))
    raise ValueError(f"unknown network {network!r}; expected refinenet:W or scaled:W")


def wrap(net: nn.Module, dtype: torch.dtype | None, compile_: bool) -> nn.Module:
    """The model as ``Trainer(autocast_dtype=dtype, compile=compile_)`` runs it."""
    model: nn.Module = ncsn.nets.compiled(net) if compile_ else net
    return ncsn.nets.autocast(model, dtype) if dtype is not None else model


def matmul_gflops(dtype: torch.dtype, size: int, device: torch.device) -> float:
    """GFLOP/s of one large square matrix product in ``dtype`` (the best of five)."""
    a = torch.randn(size, size, generator=torch.Generator().manual_seed(0)).to(device, dtype)
    b = torch.randn(size, size, generator=torch.Generator().manual_seed(1)).to(device, dtype)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(5):
        _timing.synchronize(device)
        start = time.perf_counter()
        torch.mm(a, b)
        _timing.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def step_flops(model: nn.Module, loss: ncsn.ScoreLoss, x: Tensor) -> int:
    """FLOPs of one loss forward and backward (convolutions and matrix products)."""
    counter = FlopCounterMode(display=False)
    with counter:
        value = loss(model, x, generator=torch.Generator(device=x.device).manual_seed(0))
        value.backward()
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def family_shares(step: Callable[[], object]) -> dict[str, float]:
    """The share of one step's self CPU time by operator family (profiler)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        step()
    totals = dict.fromkeys([*FAMILIES, "other"], 0.0)
    for event in prof.key_averages():
        name = event.key.lower()
        family = next(
            (f for f, keys in FAMILIES.items() if any(k.lower() in name for k in keys)), "other"
        )
        totals[family] += event.self_cpu_time_total
    whole = sum(totals.values()) or 1.0
    return {family: value / whole for family, value in totals.items()}


def run_train(
    args: argparse.Namespace, device: torch.device, peak: dict[str, float]
) -> list[dict[str, Any]]:
    sigmas = ncsn.geometric_sigmas(SIGMA_MAX, SIGMA_MIN, NUM_LEVELS)
    loss = ncsn.losses.DenoisingScoreMatching(ncsn.Schedule(sigmas))
    x = torch.rand(args.batch, 1, 28, 28, generator=torch.Generator().manual_seed(1)).to(device)
    rows: list[dict[str, Any]] = []
    for network in args.networks:
        base = build(network, sigmas, quick=args.quick).to(device)
        flops = step_flops(base, loss, x)
        print(f"\n== train, {network}, batch {args.batch}: {flops / 1e9:.2f} GFLOP per step ==")
        steps: dict[str, Callable[[], object]] = {}
        reference: tuple[Tensor, Tensor] | None = None
        first_call: dict[str, float] = {}
        agreement: dict[str, tuple[float, float]] = {}
        for name, (dtype, compile_) in VARIANTS.items():
            if name not in args.variants:
                continue
            own = copy.deepcopy(base)
            model = wrap(own, dtype, compile_)
            optimizer = torch.optim.Adam(own.parameters(), lr=1e-4)
            start = time.perf_counter()
            value = loss(model, x, generator=torch.Generator(device=device).manual_seed(5))
            value.backward()  # the first call compiles where compiled
            first_call[name] = time.perf_counter() - start
            grads = torch.cat([p.grad.flatten() for p in own.parameters() if p.grad is not None])
            own.zero_grad(set_to_none=True)
            if reference is None:
                reference = (value.detach().double(), grads.double())
            ref_loss, ref_grad = reference
            agreement[name] = (
                float((value.detach().double() - ref_loss).abs() / ref_loss.abs()),
                float((grads.double() - ref_grad).norm() / ref_grad.norm()),
            )
            gen = torch.Generator(device=device).manual_seed(0)

            def step(
                model: nn.Module = model,
                optimizer: torch.optim.Optimizer = optimizer,
                gen: torch.Generator = gen,
            ) -> object:
                return ncsn.training.train_step(model, loss, optimizer, x, generator=gen)

            step()  # optimiser state and the compiled backward's warm-up
            steps[name] = step
        samples = _timing.measure(steps, repeats=args.repeats, warmup=1, device=device)
        for name, s in samples.items():
            dtype = VARIANTS[name][0]
            achieved = flops / s.median_wall / 1e9
            limit = peak["bf16" if dtype == torch.bfloat16 else "fp32"]
            shares = family_shares(steps[name]) if not VARIANTS[name][1] else None
            rows.append(
                {
                    "network": network,
                    "variant": name,
                    "batch": args.batch,
                    "step_s": s.median_wall,
                    "examples_per_s": args.batch / s.median_wall,
                    "speedup_over_fp32_eager": (
                        _timing.ratio(samples["fp32_eager"], s) if "fp32_eager" in samples else None
                    ),
                    "first_call_s": first_call[name],
                    "loss_rel_diff": agreement[name][0],
                    "grad_rel_diff": agreement[name][1],
                    "gflop_per_step": flops / 1e9,
                    "gflops_achieved": achieved,
                    "fraction_of_matmul": achieved / limit,
                    "time_shares": shares,
                    "timings": s.as_dict(),
                }
            )
            print(_row_text(rows[-1]), flush=True)
    return rows


def _row_text(r: dict[str, Any]) -> str:
    shares = r["time_shares"]
    where = (
        ", ".join(
            f"{k} {v:.0%}" for k, v in sorted(shares.items(), key=lambda kv: -kv[1]) if v >= 0.02
        )
        if shares
        else "(compiled)"
    )
    speedup = r["speedup_over_fp32_eager"]
    return (
        f"{r['network']:>13} {r['variant']:>13}: {r['step_s']:.3f} s/step, "
        f"{r['examples_per_s']:.1f} ex/s, ×{speedup if speedup is None else f'{speedup:.2f}'}, "
        f"{r['gflops_achieved']:.1f} GFLOP/s = {r['fraction_of_matmul']:.0%} of matmul; "
        f"grad diff {r['grad_rel_diff']:.1e}; first call {r['first_call_s']:.1f} s; {where}"
    )


def samplers_for(sigmas: Tensor) -> dict[str, ncsn.Sampler]:
    """The quality table's samplers on a grid (annealed: Technique 4's ε for its T)."""
    gamma = float((sigmas[1:] / sigmas[:-1]).max())
    return {
        "annealed (T = 5)": ncsn.samplers.AnnealedLangevin(
            sigmas, ncsn.ncsnv2_step_size(sigmas, 5), 5, denoise=True
        ),
        "annealed (T = 2)": ncsn.samplers.AnnealedLangevin(
            sigmas, ncsn.ncsnv2_step_size(sigmas, 2), 2, denoise=True
        ),
        "cas": ncsn.samplers.ConsistentAnnealedSampling(sigmas, 1 - gamma / 2, denoise=True),
        "pc": ncsn.samplers.PredictorCorrector(sigmas),
        "ode": ncsn.samplers.ProbabilityFlowODE(sigmas),
    }


def run_sample(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    sigmas = ncsn.geometric_sigmas(SIGMA_MAX, SIGMA_MIN, NUM_LEVELS)
    base = build(args.sample_network, sigmas, quick=args.quick).to(device).eval()
    batch = args.sample_batch
    x = torch.rand(batch, 1, 28, 28, generator=torch.Generator().manual_seed(2)).to(device)
    sigma = sigmas[torch.arange(batch) % NUM_LEVELS].to(device)
    calls: dict[str, Callable[[], object]] = {}
    models: dict[str, nn.Module] = {}
    for name, (dtype, compile_) in VARIANTS.items():
        if name not in args.variants:
            continue
        model = wrap(copy.deepcopy(base), dtype, compile_)
        with torch.no_grad():
            model(x, sigma)  # compiles where compiled

        def call(model: nn.Module = model) -> object:
            with torch.no_grad():
                return model(x, sigma)

        calls[name], models[name] = call, model
    print(f"\n== sample, {args.sample_network}, batch {batch} ==")
    per_call = _timing.measure(calls, repeats=args.repeats, warmup=1, device=device)
    call_ms = {n: 1000 * s.median_wall / batch for n, s in per_call.items()}
    for name, ms in call_ms.items():
        print(f"{name:>13}: {ms:.2f} ms per example and model call", flush=True)
    fastest = min(call_ms, key=call_ms.__getitem__)
    model = models[fastest]
    sub = sigmas[: args.sample_levels]
    rows = []
    for name, sampler in samplers_for(sub).items():
        full = samplers_for(sigmas)[name]
        x0 = ncsn.samplers.uniform_init(
            (batch, 1, 28, 28), generator=torch.Generator().manual_seed(3)
        )
        _timing.synchronize(device)
        start = time.perf_counter()
        sampler(model, x0.to(device), generator=torch.Generator(device=device).manual_seed(4))
        _timing.synchronize(device)
        seconds = time.perf_counter() - start
        per_call_s = seconds / sampler.num_model_calls
        per_sample_s = per_call_s * full.num_model_calls / batch
        rows.append(
            {
                "sampler": name,
                "model_calls": full.num_model_calls,
                "samples_per_s": 1.0 / per_sample_s,
                "minutes_for_10000": 10_000 * per_sample_s / 60,
                "wrapper": fastest,
            }
        )
        print(
            f"{name:>17}: {full.num_model_calls} calls/sample, {1 / per_sample_s:.2f} samples/s, "
            f"10,000 samples in {10_000 * per_sample_s / 60:.0f} min ({fastest})",
            flush=True,
        )
    return {
        "network": args.sample_network,
        "batch": batch,
        "ms_per_example_call": call_ms,
        "fastest": fastest,
        "samplers": rows,
    }


def markdown(payload: dict[str, Any]) -> str:
    env = payload["environment"]
    lines = [
        f"Measured {env['date']} on {env['machine']}, {env['torch_threads']} threads, torch "
        f"{env['torch']} ({env['device']}); one large matrix product reaches "
        f"{payload['matmul_gflops']['fp32']:.0f} GFLOP/s in float32 and "
        f"{payload['matmul_gflops']['bf16']:.1f} in bfloat16."
        + (
            f" Not timed: {', '.join(payload['skipped']['variants'])} ({payload['skipped']['why']})."
            if payload.get("skipped")
            else ""
        ),
        "",
        "| network | variant | step s | examples/s | × fp32 eager | GFLOP/s | of matmul "
        "| grad rel. diff | first call s | where the time goes |",
        "| --- " * 10 + "|",
    ]
    for r in payload["train"]:
        shares = r["time_shares"]
        where = (
            ", ".join(
                f"{k} {v:.0%}"
                for k, v in sorted(shares.items(), key=lambda kv: -kv[1])
                if v >= 0.02
            )
            if shares
            else "compiled"
        )
        speedup = r["speedup_over_fp32_eager"]
        lines.append(
            f"| {r['network']} | {r['variant']} | {r['step_s']:.3f} | {r['examples_per_s']:.1f} "
            f"| {'—' if speedup is None else f'{speedup:.2f}'} | {r['gflops_achieved']:.1f} "
            f"| {r['fraction_of_matmul']:.0%} | {r['grad_rel_diff']:.1e} "
            f"| {r['first_call_s']:.1f} | {where} |"
        )
    sample = payload.get("sample")
    if sample:
        calls = ", ".join(f"{k} {v:.2f} ms" for k, v in sample["ms_per_example_call"].items())
        lines += [
            "",
            f"Sampling with {sample['network']} at batch {sample['batch']}: per example and "
            f"model call {calls}.",
            "",
            "| sampler | model calls per sample | samples/s | 10,000 samples |",
            "| --- | --- | --- | --- |",
        ]
        for r in sample["samplers"]:
            lines.append(
                f"| {r['sampler']} | {r['model_calls']} | {r['samples_per_s']:.2f} "
                f"| {r['minutes_for_10000']:.0f} min ({r['wrapper']}) |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--networks", nargs="+", default=list(NETWORKS))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--sections", nargs="+", default=["train", "sample"])
    parser.add_argument("--sample-network", default="refinenet:16")
    parser.add_argument("--sample-batch", type=int, default=250)
    parser.add_argument("--sample-levels", type=int, default=6)
    parser.add_argument("--force-bf16", action="store_true", help="time bf16 without bf16 hardware")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.batch, args.sample_batch, args.sample_levels = 2, 8, 16, 2
    device = torch.device(args.device)
    peak = {
        "fp32": matmul_gflops(torch.float32, 512 if args.quick else 2048, device),
        "bf16": matmul_gflops(torch.bfloat16, 512 if args.quick else 2048, device),
    }
    print(f"large matmul: fp32 {peak['fp32']:.0f} GFLOP/s, bf16 {peak['bf16']:.1f} GFLOP/s")
    payload: dict[str, Any] = {"environment": _timing.environment(device), "matmul_gflops": peak}
    slow = [v for v in args.variants if VARIANTS[v][0] == torch.bfloat16]
    if slow and peak["bf16"] < peak["fp32"] / 8 and not args.force_bf16:
        # No bfloat16 arithmetic in hardware (emulated): a bf16 step takes many minutes and can
        # only lose; the matrix products above are the measurement that says so.
        args.variants = [v for v in args.variants if v not in slow]
        payload["skipped"] = {
            "variants": slow,
            "why": f"bfloat16 matmul {peak['bf16']:.1f} GFLOP/s against float32 "
            f"{peak['fp32']:.0f} (no bf16 hardware; --force-bf16 times them anyway)",
        }
        print(f"skipped {', '.join(slow)}: {payload['skipped']['why']}", flush=True)
    name = f"speed28_{device.type}" + ("_quick" if args.quick else "")
    if "train" in args.sections:
        payload["train"] = run_train(args, device, peak)
        _timing.write_results(name, payload)
    else:
        payload["train"] = []
    if "sample" in args.sections:
        payload["sample"] = run_sample(args, device)
    path = _timing.write_results(name, payload)
    path.with_suffix(".md").write_text(markdown(payload))
    print(f"\nwrote {path} and {path.with_suffix('.md').name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
