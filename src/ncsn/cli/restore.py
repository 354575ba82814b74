"""``ncsn restore``: solve a linear inverse problem y = A·x + σ_y·n on images with a trained
model as the prior (super-resolution, deblurring, inpainting, ...), with the posterior samplers of
:mod:`ncsn.inverse`."""

from __future__ import annotations

import argparse
import math
from typing import Any

import torch
from torch import Tensor

from ncsn import inverse, ncsnv2_step_size, samplers, viz
from ncsn.cli import _common as common

__all__: list[str] = []  # the command is reached through ncsn.cli.main

TASKS = ("super-resolution", "deblur", "inpaint", "denoise", "compressed-sensing", "colourize")
SAMPLERS = ("posterior-langevin", "snips", "ddrm", "dps")
# The options each task and each sampler takes (an option of another is refused, not ignored).
_TASK_OPTIONS = {
    "super-resolution": ("factor",),
    "deblur": ("kernel_size", "blur_std"),
    "inpaint": ("mask", "fraction"),
    "denoise": (),
    "compressed-sensing": ("measurements",),
    "colourize": (),
}
_SAMPLER_OPTIONS = {
    "posterior-langevin": ("steps_per_level", "step_size", "denoise"),
    "snips": ("steps_per_level", "step_size"),
    "ddrm": ("eta",),
    "dps": ("zeta",),
}
_REMEDY = {
    "posterior-langevin": "a smaller --step-size",
    "snips": "a smaller --step-size",
    "ddrm": "a larger --noise-std",
    "dps": "a smaller --zeta",
}


def _cmd_restore(args: argparse.Namespace) -> int:
    _refuse_foreign_options(args)
    device = common.device_from(args.device)
    out = common.writable_folder(args.output)
    loaded = common.load_model(args, device)
    shape = tuple(loaded.data.get("shape") or ())
    if len(shape) != 3:
        raise common.CommandError(f"{args.checkpoint}: restoring needs an image model")
    if loaded.data.get("logit_transform"):
        raise common.CommandError(
            f"{args.checkpoint}: the model was trained in logit space; restore measures pixels "
            "in [0, 1] and takes models trained on them"
        )
    if loaded.sigmas is None:
        raise common.CommandError(f"{args.checkpoint}: the model records no noise levels")
    source = args.data or loaded.data.get("source")
    if not source:
        raise common.CommandError(f"{args.checkpoint}: the run does not record its data; give --data")  # fmt: skip
    images = common.load_data(args, source, split=args.split, download=args.download or None)
    if tuple(images.shape[1:]) != shape:
        raise common.CommandError(
            f"{source}: images of shape {list(images.shape[1:])} do not fit the model's {list(shape)}"
        )
    images = images[: args.num_images]
    n, k = len(images), args.samples
    gen = torch.Generator(device=device).manual_seed(args.seed)
    with common.user_input(args):
        operator = _operator(args, shape)
        y = inverse.measure(operator, images.to(device), args.noise_std, generator=gen).y
        measurement = inverse.Measurement(operator, y.repeat_interleave(k, 0), args.noise_std)
        sampler = _sampler(args, loaded.sigmas.to(device), measurement)
    with common.Progress(sampler, args.quiet) as progress:
        try:
            model = progress.watch(common.score_model(loaded, args))
            restored = sampler(model, sampler.start(generator=gen), generator=gen)
        except FloatingPointError as err:
            raise _diverged(err, args.sampler) from err
    restored = restored.detach().clamp(0, 1).cpu()
    truth = images.repeat_interleave(k, 0)
    scores = {
        "PSNR": f"{float(inverse.psnr(restored, truth).mean()):.2f} dB",
        "SSIM": f"{float(inverse.ssim(restored, truth).mean()):.3f}",
        "‖A·x − y‖": f"{float(inverse.consistency(restored.to(device), measurement).mean()):.3f} "
        f"(the noise alone: {args.noise_std * math.sqrt(math.prod(operator.out_shape)):.3f})",
    }
    seen = _pseudo_inverse(operator, y).clamp(0, 1).cpu()
    rows = [
        torch.cat([seen[i : i + 1], restored[i * k : (i + 1) * k], images[i : i + 1]])
        for i in range(n)
    ]
    viz.save_image_grid(
        torch.cat(rows), out / "restored.png", nrow=k + 2, scale=common.grid_scale(shape)
    )
    common.save_atomic(restored, out / "restored.pt")
    common.say(
        f"{n} images x {k} samples -> {out / 'restored.png'} (columns: A⁺y | samples | "
        f"original); " + ", ".join(f"{name} {value}" for name, value in scores.items())
    )
    return 0


def _refuse_foreign_options(args: argparse.Namespace) -> None:
    """An option of another task or sampler is an error, before any work."""
    for chosen, table, what in (
        (args.task, _TASK_OPTIONS, "--task"),
        (args.sampler, _SAMPLER_OPTIONS, "--sampler"),
    ):
        theirs = {name for names in table.values() for name in names} - set(table[chosen])
        foreign = sorted(theirs & args.given)
        if foreign:
            flags = ", ".join("--" + name.replace("_", "-") for name in foreign)
            takes = ", ".join("--" + name.replace("_", "-") for name in table[chosen]) or "none"
            raise common.CommandError(f"{flags}: not an option of {what} {chosen}, which takes {takes}")  # fmt: skip


def _operator(args: argparse.Namespace, shape: tuple[int, ...]) -> inverse.LinearOperator:
    """The task's operator A on images of ``shape`` ``[C, H, W]``."""
    if args.task == "super-resolution":
        return inverse.Downsample(shape, args.factor)
    if args.task == "deblur":
        try:
            kernel = inverse.gaussian_kernel(args.kernel_size, args.blur_std)
        except ValueError as err:
            raise common.CommandError(f"--kernel-size: {err}") from err
        return inverse.Blur(shape, kernel)
    if args.task == "inpaint":
        generator = torch.Generator().manual_seed(args.seed)
        try:
            known = samplers.inpainting_mask(args.mask, shape, fraction=args.fraction, generator=generator)  # fmt: skip
        except ValueError as err:
            raise common.CommandError(f"--mask: {err}") from err
        return inverse.Mask(known)
    if args.task == "compressed-sensing":
        generator = torch.Generator().manual_seed(args.seed)
        count = args.measurements or max(1, math.prod(shape) // 4)
        return inverse.GaussianProjection(shape, count, generator=generator)
    if args.task == "colourize":
        if shape[0] == 1:
            raise common.CommandError("--task colourize: the model's images are grey (1 channel)")
        return inverse.ChannelMix(shape)
    return inverse.Identity(shape)


def _sampler(args: argparse.Namespace, sigmas: Tensor, m: inverse.Measurement) -> Any:
    """The posterior sampler ``--sampler`` names, on the model's σ grid."""
    if args.sampler == "ddrm":
        return inverse.DDRM(sigmas, measurement=m, eta=args.eta)
    if args.sampler == "dps":
        return inverse.DPS(sigmas, measurement=m, zeta=args.zeta)
    steps = args.steps_per_level
    step_size = args.step_size or ncsnv2_step_size(sigmas, steps)
    if args.sampler == "snips":
        return inverse.SNIPS(sigmas, step_size, steps, measurement=m)
    return inverse.PosteriorLangevin(sigmas, step_size, steps, measurement=m, denoise=args.denoise)


def _pseudo_inverse(operator: inverse.LinearOperator, y: Tensor) -> Tensor:
    """A⁺y where A has an SVD (what the measurement shows as an image), else Aᵀy."""
    svd = inverse.operator_svd(operator)
    if svd is None:
        return operator.adjoint(y)
    s = svd.singular_values.to(y)
    return svd.v(torch.where(s > 0, svd.u_t(y) / torch.where(s > 0, s, 1.0), 0.0))


def _diverged(err: FloatingPointError, sampler: str) -> common.RunError:
    if isinstance(err, samplers.NonFiniteError) and err.source == "model":
        return common.RunError(f"{common.one_line(err)}; no sampler option helps (try --no-ema, or another checkpoint)")  # fmt: skip
    return common.RunError(f"{common.one_line(err)}; try {_REMEDY[sampler]}")


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``ncsn restore``."""
    r: argparse.ArgumentParser = sub.add_parser(
        "restore",
        help="restore measured images (super-resolution, deblurring, inpainting, ...)",
        description="Measure images with a linear operator and noise, y = A·x + σ_y·n, and sample "
        "the posterior p(x | y) with the model as the prior (ncsn.inverse).",
    )
    r.add_argument("checkpoint", help=common.MODEL_HELP)
    r.add_argument("--task", choices=TASKS, required=True, help="the operator A")
    r.add_argument("--sampler", choices=SAMPLERS, default="ddrm", help="the posterior sampler: annealed Langevin with the measurement term or SNIPS (L·T calls), DDRM or DPS (L calls; default ddrm)")  # fmt: skip
    r.add_argument("--noise-std", type=common.positive_float_arg, default=0.05, help="σ_y, the measurement noise in pixel units (default 0.05)")  # fmt: skip
    r.add_argument("--data", default=None, help="the images to measure (default: the run's data)")
    r.add_argument("--split", default=None, help="the split where the source has one")
    r.add_argument("--download", action="store_true", help="download mnist or fashion-mnist if not found")  # fmt: skip
    r.add_argument("--num-images", type=common.positive_int_arg, default=8)
    r.add_argument("--samples", type=common.positive_int_arg, default=4, help="posterior samples per image (default 4)")  # fmt: skip
    r.add_argument("--factor", type=common.positive_int_arg, default=2, help="super-resolution: the downsampling factor (default 2)")  # fmt: skip
    r.add_argument("--kernel-size", type=common.positive_int_arg, default=3, help="deblur: the Gaussian kernel's size, odd (default 3)")  # fmt: skip
    r.add_argument("--blur-std", type=common.positive_float_arg, default=1.0, help="deblur: the Gaussian kernel's std in pixels (default 1)")  # fmt: skip
    r.add_argument("--mask", default="right_half", help=f"inpaint: a preset of the missing region ({', '.join(samplers.MASK_PRESETS)})")  # fmt: skip
    r.add_argument("--fraction", type=common.rate_arg, default=0.5, help="inpaint: missing fraction for the random and centre_box presets")  # fmt: skip
    r.add_argument("--measurements", type=common.positive_int_arg, default=None, help="compressed-sensing: M Gaussian measurements (default: a quarter of the pixels)")  # fmt: skip
    r.add_argument("--steps-per-level", type=common.positive_int_arg, default=5, help="posterior-langevin, snips: T steps per level (default 5)")  # fmt: skip
    r.add_argument("--step-size", type=common.positive_float_arg, default=None, help="posterior-langevin, snips: ε (default: Technique 4's for T on the model's grid)")  # fmt: skip
    r.add_argument("--denoise", action=argparse.BooleanOptionalAction, default=True, help="posterior-langevin: end with the denoising step (default on)")  # fmt: skip
    r.add_argument("--eta", type=common.positive_float_arg, default=0.85, help="ddrm: η, the fresh noise of each step, in (0, 1] (default 0.85)")  # fmt: skip
    r.add_argument("--zeta", type=common.positive_float_arg, default=1.0, help="dps: ζ, the weight of the measurement gradient (default 1)")  # fmt: skip
    r.add_argument("--no-ema", action="store_true", help="the raw weights instead of the EMA weights")  # fmt: skip
    r.add_argument("--image-size", type=common.positive_int_arg, default=None, help="image size of an official checkpoint (default 32; 28 for 1 channel)")  # fmt: skip
    r.add_argument("--compile", action="store_true", help="call the network through torch.compile (ncsn.nets.compiled): faster after a first call that compiles for minutes (dps differentiates through it); the samples differ by round-off only")  # fmt: skip
    r.add_argument("--seed", type=common.seed_arg, default=0)
    r.add_argument("--output", default="restored")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    common.add_common_options(r)
    r.set_defaults(run=_cmd_restore)
    return r
