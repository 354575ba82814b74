"""``ncsn inpaint``: complete partly observed images (Algorithm 2) with any sampler."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ncsn import data, samplers, viz
from ncsn.cli import _common as common

__all__: list[str] = []  # the command is reached through ncsn.cli.main


def _cmd_inpaint(args: argparse.Namespace) -> int:
    device = common.device_from(args.device)
    out = common.writable_folder(args.output)
    loaded = common.load_model(args, device)
    shape = tuple(loaded.data.get("shape") or ())
    if len(shape) != 3:
        raise common.CommandError(f"{args.checkpoint}: inpainting needs an image model")
    images = common.load_data(args, args.data, split=args.split, download=args.download or None)
    if tuple(images.shape[1:]) != shape:
        raise common.CommandError(
            f"{args.data}: images of shape {list(images.shape[1:])} do not fit the model's {list(shape)}"
        )
    images = images[: args.num_images]
    n, k = len(images), args.completions
    known = _mask(args, (n, *shape))
    # One mask per image, shared by its k completions (they are the observed column's mask).
    known_k = known.repeat_interleave(k, dim=0)
    observed = images.repeat_interleave(k, dim=0).to(device)
    logit = bool(loaded.data.get("logit_transform"))
    if logit:
        observed = data.logit_transform(observed)
    sampler, kind = common.build_sampler(loaded, args)
    gen = torch.Generator(device=device).manual_seed(args.seed)
    init = common.start_for(sampler, tuple(observed.shape), gen, device)
    if logit and kind in ("annealed", "langevin"):
        init = data.logit_transform(init)
    with common.Progress(sampler, args.quiet) as progress:
        try:
            completions = samplers.inpaint(
                sampler,
                progress.watch(common.score_model(loaded, args)),
                observed,
                known_k.to(device),
                init=init,
                generator=gen,
            )
        except FloatingPointError as err:
            raise common.diverged(err, kind) from err
    completions = common.to_images(completions, logit).cpu()
    completions = torch.where(known_k, images.repeat_interleave(k, dim=0), completions)
    shown = torch.where(known, images, torch.full_like(images, 0.5))
    rows = [
        torch.cat([shown[i : i + 1], completions[i * k : (i + 1) * k], images[i : i + 1]])
        for i in range(n)
    ]
    viz.save_image_grid(
        torch.cat(rows), out / "inpainting.png", nrow=k + 2, scale=common.grid_scale(shape)
    )
    common.save_atomic(completions, out / "inpainting.pt")
    common.say(
        f"{n} images x {k} completions -> {out / 'inpainting.png'} (columns: observed | "
        "completions | original)"
    )
    return 0


def _mask(args: argparse.Namespace, shape: tuple[int, ...]) -> Tensor:
    """``[n, C, H, W]`` True where a pixel is known: a preset or a mask image (white = known)."""
    if args.mask.lower().endswith((".png", ".jpg", ".jpeg")):
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(args.mask) as img:
                grey = torch.from_numpy(np.array(img.convert("L"), dtype=np.float32))
        except (FileNotFoundError, UnidentifiedImageError, OSError) as err:
            raise common.CommandError(f"--mask {args.mask}: not a readable image ({err})") from err
        if tuple(grey.shape) != tuple(shape[-2:]):
            raise common.CommandError(
                f"--mask {args.mask}: size {grey.shape[1]}x{grey.shape[0]} differs from the "
                f"images' {shape[-1]}x{shape[-2]}"
            )
        known = (grey > 127).expand(*shape)
    else:
        generator = torch.Generator().manual_seed(args.seed)
        try:
            known = samplers.inpainting_mask(
                args.mask, shape, fraction=args.fraction, generator=generator
            )
        except ValueError as err:
            raise common.CommandError(f"--mask: {err}") from err
    if bool(known.all()):
        raise common.CommandError(
            f"--mask {args.mask}: the mask marks every pixel as known; nothing to inpaint"
        )
    return known


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``ncsn inpaint``."""
    i: argparse.ArgumentParser = sub.add_parser(
        "inpaint",
        help="complete partly observed images",
        description="Inpaint images with Algorithm 2 of the paper, with any sampler.",
    )
    i.add_argument("--data", required=True, help="the images to complete (same sources as train)")
    i.add_argument("--split", default=None, help="the split where the source has one")
    i.add_argument("--download", action="store_true", help="download mnist or fashion-mnist if not found")  # fmt: skip
    i.add_argument("--mask", default="right_half", help=f"a preset ({', '.join(samplers.MASK_PRESETS)}) or a mask image (white = known)")  # fmt: skip
    i.add_argument("--fraction", type=float, default=0.5, help="missing fraction for the random and centre_box presets")  # fmt: skip
    i.add_argument("--num-images", type=common.positive_int_arg, default=8)
    i.add_argument(
        "--completions", type=common.positive_int_arg, default=4, help="completions per image"
    )
    i.add_argument("--output", default="inpainting")
    common.add_sampling_options(i)
    i.set_defaults(run=_cmd_inpaint)
    return i
