"""``ncsn sample``: draw samples from a checkpoint with any of the library's samplers."""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ncsn import Sampler, presets, samplers, training, viz
from ncsn import data as ncsn_data
from ncsn.cli._common import (
    CommandError,
    Progress,
    grid_scale,
    join_job,
    load_model,
    non_negative_int_arg,
    one_line,
    positive_float_arg,
    positive_int_arg,
    say,
    seed_arg,
    to_images,
    user_input,
    warn_if_absurd,
    writable_folder,
)
from ncsn.ncsnv2 import ncsnv2_step_size

__all__: list[str] = []  # the command is reached through ncsn.cli.main


def sigmas_of(model: nn.Module, meta: dict[str, Any]) -> Tensor | None:
    """The σ grid to sample on: the network's own levels, else the ones its run recorded (a
    network that takes any σ, such as ``ScaledByInverseSigma``, is sampled on its training grid)."""
    inner = getattr(model, "module", model)
    sigmas = getattr(inner, "sigmas", None)
    if isinstance(sigmas, Tensor):
        return sigmas
    recorded = meta.get("sampling", {}).get("sigmas")
    return torch.tensor(recorded) if recorded else None


SAMPLERS = ("annealed", "cas", "pc", "ode")

# The options each sampler takes ("langevin": plain Langevin, for single-level models).
_OPTIONS = {
    "langevin": ("step_size", "num_steps"),
    "annealed": ("step_size", "steps_per_level", "denoise"),
    "cas": ("eta", "denoise"),
    "pc": ("snr", "corrector_steps", "denoise"),
    "ode": ("solver", "denoise"),
}
_DEFAULT_DENOISE = {"annealed": False, "cas": False, "pc": True, "ode": True}


def _settings(meta: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """The sampling settings: the options given, else what the run recorded (``ncsn train``
    records its recipe's sampler), else the options' defaults."""
    given: set[str] = getattr(args, "given", set())
    recorded = meta.get("sampling", {})
    names = {"sampler", *(name for names in _OPTIONS.values() for name in names)}
    settings = {name: getattr(args, name, None) for name in names}
    for name, value in recorded.items():
        if name in names and name not in given:
            settings[name] = value
    # The recipe's ε depends on T: a new --steps-per-level gets Technique 4's ε for it.
    if (
        recorded.get("step_size_rule") == "ncsnv2"
        and "steps_per_level" in given
        and "step_size" not in given
    ):
        settings["step_size"] = None
    return settings


def sampler_for(model: nn.Module, meta: dict[str, Any], args: argparse.Namespace) -> Sampler:
    """The sampler ``--sampler`` names (or the run recorded), on the model's own σ grid (no
    retraining). An option the chosen sampler does not take is refused, not ignored."""
    sigmas = sigmas_of(model, meta)
    settings = _settings(meta, args)
    kind = str(settings["sampler"] or "annealed")
    single = sigmas is None or len(sigmas) == 1
    if single and kind != "annealed":
        raise CommandError(
            f"--sampler {kind} needs a model trained on several noise levels; this one has one"
        )
    takes = _OPTIONS["langevin" if single else kind]
    ignored = sorted(
        name
        for name in getattr(args, "given", set())
        if name in settings and name != "sampler" and name not in takes
    )
    if ignored:
        named = "plain Langevin (a single-level model)" if single else f"--sampler {kind}"
        options = ", ".join("--" + name.replace("_", "-") for name in ignored)
        raise CommandError(
            f"{options}: not an option of {named}, which takes "
            + ", ".join("--" + name.replace("_", "-") for name in takes)
        )
    denoise = settings["denoise"]
    denoise = _DEFAULT_DENOISE.get(kind, False) if denoise is None else bool(denoise)
    if single:
        sigma = float(meta.get("sigma", sigmas[0] if sigmas is not None else 0.01))
        return samplers.Langevin(sigma, settings["step_size"], settings["num_steps"])
    assert sigmas is not None
    if kind == "cas":
        eta = settings["eta"]
        if eta is None:  # halfway between the deterministic end 1 − γ and Tweedie's η = 1
            ratio = float((sigmas[1:] / sigmas[:-1]).max())
            eta = 1.0 - ratio / 2
        return samplers.ConsistentAnnealedSampling(sigmas, eta, denoise=denoise)
    if kind == "pc":
        return samplers.PredictorCorrector(
            sigmas,
            snr=settings["snr"],
            corrector_steps=settings["corrector_steps"],
            denoise=denoise,
        )
    if kind == "ode":
        return samplers.ProbabilityFlowODE(sigmas, solver=settings["solver"], denoise=denoise)
    steps = settings["steps_per_level"]
    step_size = settings["step_size"]
    if step_size is None:
        step_size = ncsnv2_step_size(sigmas, steps)
    return samplers.AnnealedLangevin(sigmas, step_size, steps, denoise=denoise)


def start_for(
    sampler: Sampler, shape: tuple[int, ...], gen: torch.Generator, device: torch.device
) -> Tensor:
    """U[0, 1] for Langevin and annealed Langevin (the paper); N(0, σ_1²I) for the samplers that
    start at p_{σ_1} (consistent annealed sampling, predictor-corrector, the ODE)."""
    if isinstance(sampler, (samplers.Langevin, samplers.AnnealedLangevin)):
        return samplers.uniform_init(shape, generator=gen, device=device)
    first = float(sampler.sigmas[0])  # type: ignore[attr-defined]
    return samplers.gaussian_init(shape, first, generator=gen, device=device)


# ---------------------------------------------------------------------------------------- sample
def chunk_seed(seed: int, chunk: int) -> int:
    """The seed of chunk ``chunk`` of a run seeded ``seed``: every chunk of ``--batch-size``
    samples draws its start and noise from its own ``torch.Generator().manual_seed(...)``, so
    the set of samples does not depend on how many processes draw it."""
    state = np.random.SeedSequence([seed, chunk]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 32 | int(state[1])) >> 1  # 63 bits, any device's generator takes it


def _manifest(args: argparse.Namespace, sampler: Sampler, checkpoint: Path) -> dict[str, Any]:
    return {
        "checkpoint": str(checkpoint),
        "num_samples": args.num_samples,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "sampler": repr(sampler),
        "ema": not args.no_ema,
    }


def _chunk_folder(out: Path, manifest: dict[str, Any], rank: int) -> Path:
    """``out/chunks``, created with the run's manifest, or checked to hold this run's chunks."""
    folder = out / "chunks"
    file = folder / "manifest.json"
    if file.exists():
        try:
            theirs = json.loads(file.read_text())
        except (OSError, ValueError) as err:
            raise CommandError(f"{file}: unreadable ({one_line(err)}); remove {folder}") from err
        differ = sorted(k for k in manifest if theirs.get(k) != manifest[k])
        if differ:
            raise CommandError(
                f"{folder} holds the chunks of a run with other settings ({', '.join(differ)} "
                "differ); remove it, or sample into another --output"
            )
        return folder
    if rank == 0:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(manifest, indent=1))
        os.replace(tmp, file)
    return folder


def _save_atomic(x: Tensor, path: Path, rank: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{rank}")
    torch.save(x, tmp)
    os.replace(tmp, path)


def _barrier(env: training.DistEnv) -> None:
    if env.distributed:
        torch.distributed.barrier()


def _cmd_sample(args: argparse.Namespace) -> int:
    env, device = join_job(args.device)
    out = writable_folder(args.output)
    model, meta = load_model(args.checkpoint, image_size=args.image_size, use_ema=not args.no_ema)
    model = model.to(device).eval()
    shape = meta.get("shape")
    if not shape:
        raise CommandError(f"{args.checkpoint}: the checkpoint does not say its data shape")
    with user_input():
        sampler = sampler_for(model, meta, args)
    manifest = _manifest(args, sampler, Path(args.checkpoint).resolve())
    chunks = _chunk_folder(out, manifest, env.rank)
    _barrier(env)  # rank 0 has written the manifest and created the folder
    count = math.ceil(args.num_samples / args.batch_size)
    names = [chunks / f"chunk-{k:06d}.pt" for k in range(count)]
    mine = [k for k in range(env.rank, count, env.world_size)]
    todo = [k for k in mine if not names[k].exists()]
    if len(todo) < len(mine):
        say(f"kept {len(mine) - len(todo)} finished chunk(s) in {chunks}")
    start = time.perf_counter()
    per_chunk = Progress(sampler, args.quiet)
    per_chunk.total *= len(todo)
    try:
        with per_chunk as progress:
            for k in todo:
                n = min(args.batch_size, args.num_samples - k * args.batch_size)
                gen = torch.Generator(device=device).manual_seed(chunk_seed(args.seed, k))
                x0 = start_for(sampler, (n, *shape), gen, device)
                if meta.get("logit_transform") and isinstance(sampler, samplers.AnnealedLangevin):
                    x0 = ncsn_data.logit_transform(x0)
                x = sampler(progress.watch(model), x0, generator=gen)
                _save_atomic(x.cpu(), names[k], env.rank)
    except KeyboardInterrupt:
        done = sum(name.exists() for name in names)
        say(
            f"\ninterrupted: {done} of {count} chunks are finished in {chunks}; rerun the same "
            "command to finish the others",
            file=sys.stderr,
        )
        return 130
    _barrier(env)  # every chunk is on disk
    if env.rank == 0:
        x = torch.cat([torch.load(name, weights_only=True) for name in names])
        if len(shape) == 3 and not meta.get("logit_transform"):
            warn_if_absurd(x, 0.0, 1.0)  # pixels live in [0, 1]
        _save_atomic(x, out / "samples.pt", env.rank)
        if len(shape) == 3:
            grid = to_images(x[:64], meta)
            viz.save_image_grid(grid, out / "samples.png", scale=grid_scale(shape))
        shutil.rmtree(chunks)
    say(
        f"{args.num_samples} samples in {time.perf_counter() - start:.1f} s -> {out / 'samples.pt'}"
        + (f", {out / 'samples.png'}" if len(shape) == 3 else "")
        + (f" ({env.world_size} processes)" if env.distributed else "")
    )
    if env.distributed:
        torch.distributed.destroy_process_group()
    return 0


def add_sampling_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--sampler",
        choices=SAMPLERS,
        default="annealed",
        help="annealed: annealed Langevin (Algorithm 1, L·T calls); cas: consistent annealed "
        "sampling (one call per level); pc: predictor-corrector for the VE SDE; ode: the "
        "probability-flow ODE (deterministic); all on the model's own σ grid (default: what the "
        "run recorded, else annealed)",
    )
    p.add_argument(
        "--step-size",
        type=positive_float_arg,
        default=presets.OFFICIAL_STEP_SIZE,
        help="Langevin ε in the paper's convention (default: what the run recorded, else 4e-5 = "
        "the released code's step_lr 2e-5)",
    )
    p.add_argument(
        "--steps-per-level",
        type=positive_int_arg,
        default=100,
        help="T, Langevin steps per noise level (default: what the run recorded, else 100)",
    )
    p.add_argument(
        "--num-steps",
        type=positive_int_arg,
        default=1000,
        help="steps of plain Langevin for single-level models (default 1000)",
    )
    p.add_argument(
        "--denoise",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="end with the denoising step x + σ_L² s(x, σ_L) (NCSNv2); default: what the run "
        "recorded, else on for pc and ode, off for annealed and cas",
    )
    p.add_argument(
        "--eta",
        type=positive_float_arg,
        default=None,
        help="cas: the fraction η of Tweedie's step taken per level, 1 − γ ≤ η ≤ 1 for the "
        "grid's ratio γ = σ_(i+1)/σ_i (default 1 − γ/2)",
    )
    p.add_argument(
        "--snr", type=positive_float_arg, default=0.16, help="pc: corrector snr (default 0.16)"
    )
    p.add_argument(
        "--corrector-steps",
        type=non_negative_int_arg,
        default=1,
        help="pc: Langevin corrector steps per level (default 1; 0 = reverse diffusion only)",
    )
    p.add_argument(
        "--solver",
        choices=("heun", "euler"),
        default="heun",
        help="ode: Heun (2 calls a step) or Euler (1) (default heun)",
    )
    p.add_argument(
        "--no-ema", action="store_true", help="use the raw weights instead of the EMA weights"
    )
    p.add_argument(
        "--image-size",
        type=positive_int_arg,
        default=None,
        help="image size for official checkpoints (default 32, or 28 for 1 channel)",
    )
    p.add_argument("--seed", type=seed_arg, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_parser(sub: Any) -> None:
    """Register ``ncsn sample``."""
    s = sub.add_parser(
        "sample",
        help="draw samples from a checkpoint",
        description="Sample from one of our checkpoints or an official one with annealed Langevin "
        "dynamics, consistent annealed sampling, predictor-corrector or the probability-flow ODE.",
    )
    s.add_argument(
        "checkpoint",
        help="a checkpoint file or a training folder (newest checkpoint), or an official checkpoint.pth",
    )
    s.add_argument("--num-samples", type=positive_int_arg, default=64)
    s.add_argument(
        "--batch-size",
        type=positive_int_arg,
        default=256,
        help="samples drawn together; each such chunk has its own seed, so the samples depend on "
        "--seed and --batch-size, not on the number of processes (default 256)",
    )
    s.add_argument("--output", default="samples")
    add_sampling_options(s)
    s.set_defaults(run=_cmd_sample)
