"""``ncsn inpaint``: complete partly observed images (Algorithm 2) with any sampler."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ncsn import data as ncsn_data
from ncsn import samplers, viz
from ncsn.cli._common import (
    CommandError,
    Progress,
    device_from,
    grid_scale,
    load_model,
    positive_int_arg,
    say,
    to_images,
    user_input,
    writable_folder,
)
from ncsn.cli.sample import add_sampling_options, sampler_for, start_for

__all__: list[str] = []  # the command is reached through ncsn.cli.main


# ---------------------------------------------------------------------------------------- inpaint
def _cmd_inpaint(args: argparse.Namespace) -> int:
    device = device_from(args.device)
    out = writable_folder(args.output)
    model, meta = load_model(args.checkpoint, image_size=args.image_size, use_ema=not args.no_ema)
    model = model.to(device).eval()
    shape = meta.get("shape")
    if not shape or len(shape) != 3:
        raise CommandError(f"{args.checkpoint}: inpainting needs an image model")
    gen = torch.Generator().manual_seed(args.seed)
    try:
        images, _ = ncsn_data.load(args.data, split=args.split)
    except (FileNotFoundError, ValueError) as err:
        raise CommandError(str(err).splitlines()[0]) from err
    if tuple(images.shape[1:]) != tuple(shape):
        raise CommandError(
            f"{args.data}: images of shape {list(images.shape[1:])} do not fit the model's {list(shape)}"
        )
    images = images[: args.num_images]
    n, k = len(images), args.completions
    if args.mask.lower().endswith((".png", ".jpg", ".jpeg")):
        known = _mask_from_image(args.mask, tuple(shape)).expand(n, *shape)
    else:
        try:
            known = samplers.inpainting_mask(
                args.mask, (n, *shape), fraction=args.fraction, generator=gen
            )
        except ValueError as err:
            raise CommandError(f"--mask: {err}") from err
    if bool(known.all()):
        raise CommandError(
            f"--mask {args.mask}: the mask marks every pixel as known; nothing to inpaint"
        )
    # One mask per image, shared by its k completions (they are the observed column's mask).
    known_b = known.repeat_interleave(k, dim=0)
    observed = images.repeat_interleave(k, dim=0).to(device)
    if meta.get("logit_transform"):
        observed = ncsn_data.logit_transform(observed)
    with user_input():
        sampler = sampler_for(model, meta, args)
    device_gen = torch.Generator(device=device).manual_seed(args.seed)
    init = start_for(sampler, tuple(observed.shape), device_gen, device)
    if meta.get("logit_transform") and isinstance(sampler, samplers.AnnealedLangevin):
        init = ncsn_data.logit_transform(init)
    with Progress(sampler, args.quiet) as progress:
        completions = samplers.inpaint(
            sampler,
            progress.watch(model),
            observed,
            known_b.to(device),
            init=init,
            generator=device_gen,
        )
    completions = to_images(completions, meta).cpu()
    completions = torch.where(known_b, images.repeat_interleave(k, dim=0), completions)
    shown_observed = torch.where(known, images, torch.full_like(images, 0.5))
    rows = [
        torch.cat([shown_observed[i : i + 1], completions[i * k : (i + 1) * k], images[i : i + 1]])
        for i in range(n)
    ]
    viz.save_image_grid(
        torch.cat(rows), out / "inpainting.png", nrow=k + 2, scale=grid_scale(shape)
    )
    torch.save(completions, out / "inpainting.pt")
    say(
        f"{n} images x {k} completions -> {out / 'inpainting.png'} (columns: observed | completions | original)"
    )
    return 0


def _mask_from_image(path: str, shape: tuple[int, ...]) -> Tensor:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            gray = torch.from_numpy(np.array(img.convert("L"), dtype=np.float32))
    except (FileNotFoundError, UnidentifiedImageError, OSError) as err:
        raise CommandError(f"--mask {path}: not a readable image ({err})") from err
    if tuple(gray.shape) != tuple(shape[-2:]):
        raise CommandError(
            f"--mask {path}: size {gray.shape[1]}x{gray.shape[0]} differs from the images' {shape[-1]}x{shape[-2]}"
        )
    return (gray > 127).expand(*shape)  # white = known


def add_parser(sub: Any) -> None:
    """Register ``ncsn inpaint``."""
    i = sub.add_parser(
        "inpaint",
        help="complete partly observed images",
        description="Inpaint images with Algorithm 2 of the paper.",
    )
    i.add_argument("checkpoint")
    i.add_argument("--data", required=True, help="the images to complete (same sources as train)")
    i.add_argument("--split", default=None)
    i.add_argument(
        "--mask",
        default="right_half",
        help=f"a preset ({', '.join(samplers.MASK_PRESETS)}) or a mask image (white = known)",
    )
    i.add_argument(
        "--fraction",
        type=float,
        default=0.5,
        help="missing fraction for the random and centre_box presets",
    )
    i.add_argument("--num-images", type=positive_int_arg, default=8)
    i.add_argument("--completions", type=positive_int_arg, default=4, help="completions per image")
    i.add_argument("--output", default="inpainting")
    add_sampling_options(i)
    i.set_defaults(run=_cmd_inpaint)
