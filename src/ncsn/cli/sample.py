"""``ncsn sample``: draw samples from a checkpoint with any of the library's samplers."""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch
from torch import Tensor, nn

from ncsn import data as ncsn_data
from ncsn import presets, samplers, viz
from ncsn.cli._common import (
    CommandError,
    Progress,
    device_from,
    grid_scale,
    load_model,
    positive_float_arg,
    positive_int_arg,
    say,
    seed_arg,
    to_images,
    user_input,
    warn_if_absurd,
    writable_folder,
)

__all__: list[str] = []  # the command is reached through ncsn.cli.main


def _sigmas_of(model: nn.Module) -> Tensor | None:
    inner = getattr(model, "module", model)
    sigmas = getattr(inner, "sigmas", None)
    return sigmas if isinstance(sigmas, Tensor) else None


def sampler_for(
    model: nn.Module, meta: dict[str, Any], args: argparse.Namespace
) -> samplers.AnnealedLangevin | samplers.Langevin:
    sigmas = _sigmas_of(model)
    if sigmas is None or len(sigmas) == 1:
        sigma = float(meta.get("sigma", sigmas[0] if sigmas is not None else 0.01))
        return samplers.Langevin(sigma, args.step_size, args.num_steps)
    return samplers.AnnealedLangevin(
        sigmas, args.step_size, args.steps_per_level, denoise=args.denoise
    )


# ---------------------------------------------------------------------------------------- sample
def _cmd_sample(args: argparse.Namespace) -> int:
    device = device_from(args.device)
    out = writable_folder(args.output)
    model, meta = load_model(args.checkpoint, image_size=args.image_size, use_ema=not args.no_ema)
    model = model.to(device).eval()
    shape = meta.get("shape")
    if not shape:
        raise CommandError(f"{args.checkpoint}: the checkpoint does not say its data shape")
    with user_input():
        sampler = sampler_for(model, meta, args)
    gen = torch.Generator(device=device).manual_seed(args.seed)
    x0 = samplers.uniform_init((args.num_samples, *shape), generator=gen, device=device)
    if meta.get("logit_transform"):
        x0 = ncsn_data.logit_transform(x0)
    start = time.perf_counter()
    with Progress(sampler, args.quiet) as callback:
        x = sampler(model, x0, generator=gen, callback=callback)
    if len(shape) == 3 and not meta.get("logit_transform"):
        warn_if_absurd(x, 0.0, 1.0)  # pixels live in [0, 1]
    torch.save(x.cpu(), out / "samples.pt")
    if len(shape) == 3:
        viz.save_image_grid(to_images(x, meta), out / "samples.png", scale=grid_scale(shape))
    say(
        f"{args.num_samples} samples in {time.perf_counter() - start:.1f} s -> {out / 'samples.pt'}"
        + (f", {out / 'samples.png'}" if len(shape) == 3 else "")
    )
    return 0


def add_sampling_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--step-size",
        type=positive_float_arg,
        default=presets.OFFICIAL_STEP_SIZE,
        help="Langevin ε in the paper's convention (default 4e-5 = the released code's step_lr 2e-5)",
    )
    p.add_argument(
        "--steps-per-level",
        type=positive_int_arg,
        default=100,
        help="T, Langevin steps per noise level (default 100)",
    )
    p.add_argument(
        "--num-steps",
        type=positive_int_arg,
        default=1000,
        help="steps of plain Langevin for single-level models (default 1000)",
    )
    p.add_argument(
        "--denoise",
        action="store_true",
        help="add the final denoising step x + σ_L² s(x, σ_L) (NCSNv2)",
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
        description="Sample with annealed Langevin dynamics from one of our checkpoints or an official one.",
    )
    s.add_argument(
        "checkpoint",
        help="a checkpoint file or a training folder (newest checkpoint), or an official checkpoint.pth",
    )
    s.add_argument("--num-samples", type=positive_int_arg, default=64)
    s.add_argument("--output", default="samples")
    add_sampling_options(s)
    s.set_defaults(run=_cmd_sample)
