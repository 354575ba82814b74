"""Training-step benchmarks: DSM against sliced score matching, and the training optimisations.

For the RefineNet MNIST (1×28×28, ngf 64) and CIFAR-10 (3×32×32, ngf 128) configurations, one
training step (zero the gradients, loss, backward, Adam step) is timed for:

* ``dsm``: :class:`ncsn.losses.DenoisingScoreMatching` (the paper's objective);
* ``ssm_backward`` / ``ssm_forward``: :class:`ncsn.losses.SlicedScoreMatching` (SSM-VR, one
  projection) with the Jacobian-vector term by double backpropagation or by forward-mode AD; the
  two are first checked to give the same loss and gradients on the same weights and seed (to
  1e-10 relative in float64; the float32 difference, round-off of two summation orders, is shown);
* ``dsm_channels_last``: network and data in ``torch.channels_last``;
* ``dsm_bf16``: the loss under ``torch.autocast(dtype=torch.bfloat16)`` (weights, optimiser and
  loss reduction stay float32);
* ``dsm_checkpointing`` / ``ssm_backward_checkpointing``: ``RefineNet(gradient_checkpointing=
  True)``, which recomputes the stages' activations in backward (same gradients, less memory);
* on CUDA also ``dsm_tf32`` (TF32 matmuls and convolutions; the other variants run in IEEE
  float32) and ``dsm_channels_last_bf16``; with ``--compile``, ``dsm_compile`` (the network
  through ``torch.compile``; slow to compile, so off by default).

Before timing, every variant's loss and gradients on the same weights and seed are compared with
its plain counterpart (``dsm``, or ``ssm_backward`` for the sliced variants), each within a stated
tolerance: float round-off for ``channels_last``, gradient checkpointing and ``torch.compile``,
more for bf16 autocast and TF32. A variant outside its tolerance makes the script exit with 1.

The ``speed`` section times :func:`ncsn.training.train_step` (DSM, Adam) at the issue's batch sizes
(MNIST 16, CIFAR-10 8 on the CPU; 128 on CUDA) with the model options the Trainer offers:
``fp32_eager``, ``fp32_compiled`` (:func:`ncsn.nets.compiled`), ``bf16_eager``
(:func:`ncsn.nets.autocast` in bfloat16) and ``bf16_compiled`` (both), each against
``fp32_eager``: step time, its ratio (speed-up), the first call's seconds (compilation) and the
step's peak memory, with the targets best fp32 ≥ 1.3×, best bf16 ≥ 1.5× and no variant above
``fp32_eager``'s peak. Its loss and gradients are compared with ``fp32_eager``'s first, as above.

Reported: examples/s (batch ÷ median step time), the step-time ratio to ``dsm`` (the issue's
target: SSM ≤ 2.5× DSM) and the peak memory of one step: the peak of live tensor bytes above the
persistent state (parameters and optimiser moments; the gradients count as part of the step),
from ``max_memory_allocated`` on CUDA and the profiler's allocation records on the CPU.

Usage::

    python benchmarks/training.py [--device cpu|cuda] [--quick] [--batch N] [--repeats N]
                                  [--configs mnist cifar10] [--sections losses speed]
                                  [--compile] [--no-memory]

CPU batches of the ``losses`` section default to 8 (MNIST) and 4 (CIFAR-10), CUDA batches to 128.
Writes ``benchmarks/results/training_<device>[_quick].json`` (losses) and
``training_<device>_speed[_quick].json`` (speed) after every configuration; exits with status 1
if the two Jacobian modes disagree or a variant's loss or gradients leave its tolerance (the
speed targets are reported, not enforced).
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

warnings.filterwarnings("ignore", message="`torch.jit.script_method` is deprecated")

CONFIGS = {"mnist": (1, 28, 64), "cifar10": (3, 32, 128)}  # channels, size, ngf
QUICK_NGF = 16
CPU_BATCH = {"mnist": 8, "cifar10": 4}
TARGET_SSM_OVER_DSM = 2.5
JACOBIAN_RTOL = 1e-10  # float64 agreement of loss and gradients between the two Jacobian modes
# Agreement of a variant's loss and gradients with its plain counterpart (relative): float32
# round-off of another summation order, or the precision of the reduced format.
ROUND_OFF_RTOL = 1e-4
# Forward against reverse mode in float32: two summation orders through a second-order graph
# (measured up to 9e-4 on the CIFAR-10 gradients; float64 agreement, 1e-10, is checked above).
JACOBIAN_MODE_RTOL = 1e-2
BF16_RTOL = 1e-1  # bfloat16 keeps 8 bits of mantissa (measured 2–4e-2 on the gradients)
TF32_RTOL = 1e-2  # TF32 keeps 10 bits


def tolerance(v: Variant) -> float:
    if v.bf16:
        return BF16_RTOL
    if v.precision == "tf32":
        return TF32_RTOL
    if v.loss == "ssm" and v.jacobian == "forward":
        return JACOBIAN_MODE_RTOL
    return ROUND_OFF_RTOL


def reference_of(v: Variant) -> str:
    """The plain variant a variant's outputs are compared with."""
    return "dsm" if v.loss == "dsm" else "ssm_backward"


@dataclass(frozen=True)
class Variant:
    """One training configuration: a loss, an optional memory format, autocast and precision."""

    loss: str
    jacobian: str = "backward"
    channels_last: bool = False
    bf16: bool = False
    precision: str | None = None  # CUDA float32 precision, "ieee" or "tf32"
    compile: bool = False
    checkpointing: bool = False


def variants(device: torch.device, compile_: bool) -> dict[str, Variant]:
    cuda = device.type == "cuda"
    ieee = "ieee" if cuda else None
    out = {
        "dsm": Variant("dsm", precision=ieee),
        "ssm_backward": Variant("ssm", jacobian="backward", precision=ieee),
        "ssm_forward": Variant("ssm", jacobian="forward", precision=ieee),
        "dsm_channels_last": Variant("dsm", channels_last=True, precision=ieee),
        "dsm_bf16": Variant("dsm", bf16=True, precision=ieee),
        "dsm_checkpointing": Variant("dsm", checkpointing=True, precision=ieee),
        "ssm_backward_checkpointing": Variant("ssm", checkpointing=True, precision=ieee),
    }
    if cuda:
        out["dsm_tf32"] = Variant("dsm", precision="tf32")
        out["dsm_channels_last_bf16"] = Variant(
            "dsm", channels_last=True, bf16=True, precision=ieee
        )
    if compile_:
        out["dsm_compile"] = Variant("dsm", compile=True, precision=ieee)
    return out


@contextlib.contextmanager
def fp32_precision(mode: str | None) -> Iterator[None]:
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


def build_net(config: str, quick: bool, device: torch.device) -> nn.Module:
    channels, _, ngf = CONFIGS[config]
    sigmas = ncsn.geometric_sigmas(1.0, 0.01, 10)
    g = torch.Generator().manual_seed(0)
    return ncsn.nets.RefineNet(channels, QUICK_NGF if quick else ngf, sigmas, generator=g).to(
        device
    )


def make_loss(v: Variant) -> ncsn.ScoreLoss:
    schedule = ncsn.GeometricSchedule(1.0, 0.01, 10)
    if v.loss == "dsm":
        return ncsn.losses.DenoisingScoreMatching(schedule)
    return ncsn.losses.SlicedScoreMatching(schedule, jacobian=v.jacobian)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Step:
    """One variant's training step on its own copy of the network and optimiser."""

    run: Callable[[], None]  # zero the gradients, loss, backward, Adam step
    zero_grad: Callable[[], None]
    outputs: Callable[[], tuple[Tensor, Tensor]]  # (loss, flat gradients) at a fixed seed, no step


def make_step(v: Variant, net: nn.Module, x: Tensor, device: torch.device) -> Step:
    """Closures over one copy of the network and optimiser configured for ``v``."""
    net = copy.deepcopy(net)
    net.gradient_checkpointing = v.checkpointing
    if v.channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    model: Any = torch.compile(net) if v.compile else net
    loss_fn = make_loss(v)
    generator = torch.Generator(device=device).manual_seed(0)

    def loss_and_backward(gen: torch.Generator) -> Tensor:
        with fp32_precision(v.precision):
            if v.bf16:
                with torch.autocast(device.type, dtype=torch.bfloat16):
                    loss = loss_fn(model, x, generator=gen)
            else:
                loss = loss_fn(model, x, generator=gen)
            loss.backward()
        return loss.detach()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_and_backward(generator)
        optimizer.step()

    def zero_grad() -> None:
        optimizer.zero_grad(set_to_none=True)

    def outputs() -> tuple[Tensor, Tensor]:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_and_backward(torch.Generator(device=device).manual_seed(5))
        grads = torch.cat([p.grad.flatten() for p in net.parameters() if p.grad is not None])
        optimizer.zero_grad(set_to_none=True)
        return loss.float(), grads.float()

    return Step(step, zero_grad, outputs)


def output_agreement(
    vs: dict[str, Variant], made: dict[str, Step]
) -> tuple[dict[str, dict[str, float]], bool]:
    """Each variant's loss and gradients against its plain counterpart's, before any step.

    Relative differences: |Δloss| / |loss| and ‖Δgrad‖ / ‖grad‖ over all parameters (a
    per-entry comparison would be dominated by near-zero gradients).
    """
    outs = {name: made[name].outputs() for name in vs}  # first calls compile where compiled
    report, ok, rows = {}, True, []
    for name, v in vs.items():
        (loss, grad), (ref_loss, ref_grad) = outs[name], outs[reference_of(v)]
        diffs = {
            "loss_rel_diff": ((loss - ref_loss).abs() / ref_loss.abs()).item(),
            "grad_rel_diff": ((grad - ref_grad).norm() / ref_grad.norm()).item(),
            "tolerance": tolerance(v),
        }
        good = max(diffs["loss_rel_diff"], diffs["grad_rel_diff"]) <= diffs["tolerance"]
        ok &= good
        report[name] = diffs
        verdict = "ok" if good else "MISMATCH"
        rows.append([name, reference_of(v), *diffs.values(), verdict])
    header = ["variant", "against", "loss rel diff", "grad rel diff", "tolerance", ""]
    print(_timing.format_table(header, rows))
    return report, ok


def jacobian_agreement(net: nn.Module, x: Tensor, device: torch.device) -> dict[str, float]:
    """Loss and gradients of SSM by double backprop and by forward mode, same weights and seed."""
    results = []
    for mode in ("backward", "forward"):
        net.zero_grad(set_to_none=True)
        loss = make_loss(Variant("ssm", jacobian=mode))(
            net, x, generator=torch.Generator(device=device).manual_seed(3)
        )
        loss.backward()
        results.append((loss.detach(), [p.grad.detach().clone() for p in net.parameters()]))
    net.zero_grad(set_to_none=True)
    (lb, gb), (lf, gf) = results
    flat_b, flat_f = torch.cat([g.flatten() for g in gb]), torch.cat([g.flatten() for g in gf])
    return {
        "loss_rel_diff": ((lb - lf).abs() / lb.abs()).item(),
        # ‖g_backward − g_forward‖ / ‖g_backward‖ over all parameters: float32 round-off of two
        # different summation orders, not a per-entry comparison of near-zero gradients
        "grad_rel_diff": ((flat_b - flat_f).norm() / flat_b.norm()).item(),
    }


# --- the speed section: train_step with the Trainer's model options ---------------------------

SPEED_BATCH = {"mnist": 16, "cifar10": 8}  # the CPU configurations
# name → (autocast dtype, compiled); fp32_eager first: it is every ratio's reference
SPEED_VARIANTS: dict[str, tuple[torch.dtype | None, bool]] = {
    "fp32_eager": (None, False),
    "fp32_compiled": (None, True),
    "bf16_eager": (torch.bfloat16, False),
    "bf16_compiled": (torch.bfloat16, True),
}
TARGET_FP32 = 1.3  # best fp32 variant over fp32_eager
TARGET_BF16 = 1.5  # best bf16 variant over fp32_eager


def speed_model(net: nn.Module, dtype: torch.dtype | None, compile_: bool) -> nn.Module:
    """The model as ``Trainer(autocast_dtype=dtype, compile=compile_)`` wraps it."""
    model: nn.Module = ncsn.nets.compiled(net) if compile_ else net
    return ncsn.nets.autocast(model, dtype) if dtype is not None else model


def run_speed(
    config: str, device: torch.device, batch: int, args: argparse.Namespace
) -> tuple[dict[str, Any], bool]:
    channels, size, ngf = CONFIGS[config]
    ngf = QUICK_NGF if args.quick else ngf
    net = build_net(config, args.quick, device)
    x = torch.rand(batch, channels, size, size, generator=torch.Generator().manual_seed(1))
    x = x.to(device)
    loss = make_loss(Variant("dsm"))
    print(f"\n== speed, {config}: RefineNet {channels}×{size}×{size}, ngf {ngf}, batch {batch} ==")
    steps: dict[str, Callable[[], object]] = {}
    outputs: dict[str, Callable[[], tuple[Tensor, Tensor]]] = {}
    zero: dict[str, Callable[[], None]] = {}
    for name, (dtype, compile_) in SPEED_VARIANTS.items():
        own = copy.deepcopy(net)
        model = speed_model(own, dtype, compile_)
        optimizer = torch.optim.Adam(own.parameters(), lr=1e-4)
        generator = torch.Generator(device=device).manual_seed(0)

        def step(
            model: nn.Module = model,
            optimizer: torch.optim.Optimizer = optimizer,
            generator: torch.Generator = generator,
        ) -> object:
            return ncsn.training.train_step(model, loss, optimizer, x, generator=generator)

        def output(
            model: nn.Module = model, own: nn.Module = own
        ) -> tuple[Tensor, Tensor]:  # loss and gradients at a fixed seed, no update
            own.zero_grad(set_to_none=True)
            value = loss(model, x, generator=torch.Generator(device=device).manual_seed(5))
            value.backward()
            grads = torch.cat([p.grad.flatten() for p in own.parameters() if p.grad is not None])
            own.zero_grad(set_to_none=True)
            return value.detach().float(), grads.float()

        steps[name], outputs[name] = step, output
        zero[name] = lambda own=own: own.zero_grad(set_to_none=True)
    first_call: dict[str, float] = {}
    agreement, ok, rows = {}, True, []
    ref_loss, ref_grad = outputs["fp32_eager"]()
    for name, (dtype, _) in SPEED_VARIANTS.items():
        start = time.perf_counter()
        out_loss, out_grad = outputs[name]()  # the first call compiles where compiled
        first_call[name] = time.perf_counter() - start
        diffs = {
            "loss_rel_diff": ((out_loss - ref_loss).abs() / ref_loss.abs()).item(),
            "grad_rel_diff": ((out_grad - ref_grad).norm() / ref_grad.norm()).item(),
            "tolerance": BF16_RTOL if dtype is not None else ROUND_OFF_RTOL,
        }
        good = max(diffs["loss_rel_diff"], diffs["grad_rel_diff"]) <= diffs["tolerance"]
        ok &= good
        agreement[name] = diffs
        rows.append([name, *diffs.values(), "ok" if good else "MISMATCH"])
    print(
        _timing.format_table(["variant", "loss rel diff", "grad rel diff", "tolerance", ""], rows)
    )
    for step in steps.values():  # optimiser state, the backward's compilation, allocator warm-up
        step()
    samples = _timing.measure(steps, repeats=args.repeats, warmup=1, device=device)
    memory: dict[str, float] = {}
    if not args.no_memory:
        for name, step in steps.items():
            zero[name]()  # the gradients count as part of the step
            if device.type == "cuda":
                memory[name] = _timing.peak_cuda_mib(step, device)
            else:
                memory[name] = _timing.peak_cpu_tensor_mib(step)
    results: dict[str, Any] = {}
    rows = []
    reference = samples["fp32_eager"]
    for name, s in samples.items():
        speedup = {c: _timing.ratio(reference, s, c) for c in _timing.clocks(device)}
        results[name] = {
            "step_s": s.median_wall,
            "examples_per_s": batch / s.median_wall,
            "speedup_over_fp32_eager": speedup,
            "first_call_s": first_call[name],
            "peak_mib": memory.get(name),
            "timings": s.as_dict(),
        }
        rows.append(
            [name, s.median_wall, batch / s.median_wall]
            + [speedup[c] for c in _timing.clocks(device)]
            + [first_call[name], memory.get(name, float("nan"))]
        )
    header = ["variant", "step s", "examples/s"]
    header += [f"speed-up ({c})" for c in _timing.clocks(device)]
    header += ["first call s", "step peak MiB"]
    print(_timing.format_table(header, rows))
    targets = {}
    for kind, target in (("fp32", TARGET_FP32), ("bf16", TARGET_BF16)):
        best = max(
            (n for n in results if n.startswith(kind)),
            key=lambda n: results[n]["speedup_over_fp32_eager"]["wall"],
        )
        speedup_wall = results[best]["speedup_over_fp32_eager"]["wall"]
        targets[kind] = {"best": best, "speedup": speedup_wall, "target": target}
        verdict = "meets" if speedup_wall >= target else "misses"
        print(
            f"best {kind}: {best}, {speedup_wall:.2f}× fp32_eager ({verdict} the ≥ {target}× target)"
        )
    if memory:
        over = [n for n in memory if memory[n] > memory["fp32_eager"]]
        targets["memory"] = {"above_fp32_eager": over}
        print(
            "peak memory: "
            + (f"above fp32_eager's for {', '.join(over)}" if over else "none above fp32_eager's")
        )
    return {
        "batch": batch,
        "ngf": ngf,
        "output_agreement": agreement,
        "targets": targets,
        "variants": results,
    }, ok


# --- main ----------------------------------------------------------------------------------------


def run_config(
    config: str, device: torch.device, batch: int, args: argparse.Namespace
) -> tuple[dict[str, Any], bool]:
    channels, size, ngf = CONFIGS[config]
    ngf = QUICK_NGF if args.quick else ngf
    net = build_net(config, args.quick, device)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(batch, channels, size, size, generator=g).to(device)
    params_mib = sum(p.numel() * p.element_size() for p in net.parameters()) / 2**20
    print(
        f"\n== {config}: RefineNet {channels}×{size}×{size}, ngf {ngf}, batch {batch}, "
        f"{params_mib:.0f} MiB of parameters =="
    )
    vs = variants(device, args.compile)
    # Copies first: a forward-mode call can leave transform-wrapped tensors in a network's caches.
    made = {name: make_step(v, net, x, device) for name, v in vs.items()}
    steps = {name: m.run for name, m in made.items()}
    # Exact agreement is checked in float64 (on a few examples); the float32 difference is shown.
    net64 = copy.deepcopy(net).double()  # before any forward-mode call (see above)
    agreement = {
        "float32": jacobian_agreement(net, x, device),
        "float64": jacobian_agreement(net64, x[:4].double(), device),
    }
    agree = max(agreement["float64"].values()) <= JACOBIAN_RTOL
    for precision, diffs in agreement.items():
        print(
            f"jacobian modes in {precision}: loss rel diff {diffs['loss_rel_diff']:.1e}, "
            f"gradient rel diff {diffs['grad_rel_diff']:.1e}",
            f"({'ok' if agree else 'MISMATCH'} ≤ {JACOBIAN_RTOL:g})"
            if precision == "float64"
            else "",
        )
    outputs, outputs_ok = output_agreement(vs, made)
    for step in steps.values():  # first steps: optimiser state, compilation, allocator warm-up
        step()
    samples = _timing.measure(steps, repeats=args.repeats, warmup=1, device=device)
    memory: dict[str, float] = {}
    if not args.no_memory:
        for name, step in steps.items():
            made[name].zero_grad()  # the gradients count as part of the step
            if device.type == "cuda":
                memory[name] = _timing.peak_cuda_mib(step, device)
            else:
                memory[name] = _timing.peak_cpu_tensor_mib(step)
    rows, results = [], {}
    for name, s in samples.items():
        row: dict[str, Any] = {
            "examples_per_s": batch / s.median_wall,
            "step_s": s.median_wall,
            "ratio_to_dsm": {
                c: _timing.ratio(s, samples["dsm"], c) for c in _timing.clocks(device)
            },
            "peak_mib": memory.get(name),
            "timings": s.as_dict(),
        }
        results[name] = row
        rows.append(
            [name, row["examples_per_s"], s.median_wall]
            + [row["ratio_to_dsm"][c] for c in _timing.clocks(device)]
            + [memory.get(name, float("nan"))]
        )
    header = ["variant", "examples/s", "step s"]
    header += [f"÷ dsm ({c})" for c in _timing.clocks(device)] + ["step peak MiB"]
    print(_timing.format_table(header, rows))
    best = min(("ssm_backward", "ssm_forward"), key=lambda n: results[n]["ratio_to_dsm"]["wall"])
    ratio = results[best]["ratio_to_dsm"]["wall"]
    verdict = "meets" if ratio <= TARGET_SSM_OVER_DSM else "misses"
    print(f"faster SSM: {best}, {ratio:.2f}× DSM ({verdict} the ≤ {TARGET_SSM_OVER_DSM} target)")
    return {
        "batch": batch,
        "ngf": ngf,
        "params_mib": params_mib,
        "jacobian_agreement": agreement,
        "output_agreement": outputs,
        "faster_ssm": best,
        "ssm_over_dsm_target": TARGET_SSM_OVER_DSM,
        "variants": results,
    }, agree and outputs_ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--quick", action="store_true", help="ngf 16 and small batches (CI smoke)")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed rounds (default 3, quick 1)"
    )
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--compile", action="store_true", help="add the torch.compile variant")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument(
        "--sections", nargs="+", default=["losses", "speed"], choices=["losses", "speed"]
    )
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("training.py: CUDA is not available on this machine; skipping the GPU benchmarks.")
        return 0
    device = torch.device(args.device)
    args.repeats = args.repeats or (1 if args.quick else 3)
    env = _timing.environment(device)
    print(f"torch {env['torch']} on {env.get('gpu', device)}, {env['torch_threads']} threads")
    results: dict[str, Any] = {"environment": env, "repeats": args.repeats, "configs": {}}
    suffix = "_quick" if args.quick else ""
    ok = True
    speed: dict[str, Any] = {"environment": env, "repeats": args.repeats, "configs": {}}
    paths = []
    for config in args.configs:
        if "losses" in args.sections:
            if args.batch:
                batch = args.batch
            elif device.type == "cuda":
                batch = 128
            else:
                batch = 2 if args.quick else CPU_BATCH[config]
            results["configs"][config], agree = run_config(config, device, batch, args)
            ok &= agree
            # after every configuration, so a run stopped at a time limit keeps what it measured
            paths.append(_timing.write_results(f"training_{device.type}{suffix}", results))
        if "speed" in args.sections:
            if args.batch:
                batch = args.batch
            elif device.type == "cuda":
                batch = 128
            else:
                batch = 2 if args.quick else SPEED_BATCH[config]
            speed["configs"][config], agree = run_speed(config, device, batch, args)
            ok &= agree
            paths.append(_timing.write_results(f"training_{device.type}_speed{suffix}", speed))
    print("\nwrote " + ", ".join(sorted({str(p) for p in paths})))
    if not ok:
        print("FAILED: the Jacobian modes or a variant's outputs disagree beyond the tolerance")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
