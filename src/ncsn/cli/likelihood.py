"""``ncsn likelihood``: bits per dimension (or nats) of held-out data under a trained model's
probability-flow ODE, with its standard error."""

from __future__ import annotations

import argparse
import math
from typing import Any

import torch

from ncsn import data, geometric_sigmas, likelihood
from ncsn.cli import _common as common

__all__: list[str] = []  # the command is reached through ncsn.cli.main

# Below this many levels the ODE's discretisation error is large (benchmarks/README.md).
_FINE_GRID = 100


def _cmd_likelihood(args: argparse.Namespace) -> int:
    device = common.device_from(args.device)
    loaded = common.load_model(args, device)
    shape = list(loaded.data.get("shape") or [])
    if not shape:
        raise common.CommandError(f"{args.checkpoint}: the checkpoint does not say its data shape")
    if loaded.data.get("logit_transform"):
        raise common.CommandError(
            f"{args.checkpoint}: the model was trained on logit-transformed pixels; its "
            "likelihood in pixel space needs the transform's Jacobian, which is not implemented"
        )
    sigmas = loaded.sigmas
    if sigmas is None:
        raise common.CommandError(f"{args.checkpoint}: the model records no noise levels")
    if args.ode_levels is not None:
        sigmas = geometric_sigmas(float(sigmas[0]), float(sigmas[-1]), args.ode_levels)
    if len(sigmas) < 2:
        raise common.CommandError(
            f"{args.checkpoint}: the ODE needs a model with two or more noise levels"
        )
    toy = args.data in data.TOY_NAMES  # a toy draws fresh points
    x = common.load_data(
        args,
        args.data,
        split=args.split,
        download=args.download or None,
        num_samples=args.num_examples if toy else None,
        generator=torch.Generator().manual_seed(args.seed) if toy else None,
    )
    if list(x.shape[1:]) != shape:
        raise common.CommandError(
            f"{args.data}: examples of shape {list(x.shape[1:])} do not fit the model's {shape}"
        )
    x = x[: args.num_examples]
    images = len(shape) == 3
    if args.levels is not None and not images:
        raise common.CommandError(
            f"--levels applies to images (bits/dim over grey levels); {args.data} holds vectors "
            f"of shape {shape}, scored in nats"
        )
    if len(sigmas) < _FINE_GRID:
        common.say(
            f"warning: the ODE runs on {len(sigmas)} levels (the model's grid); the "
            "discretisation error is large below ~100 levels"
            + (" (--ode-levels refines it for networks that accept any σ)" if images else "")
        )
    gen = torch.Generator(device=device).manual_seed(args.seed)
    levels = args.levels or data.grey_levels(str(args.data))
    values = []
    with common.user_input(args):
        for batch in torch.split(x, args.batch_size):
            batch = batch.to(device=device, dtype=torch.get_default_dtype())
            options: dict[str, Any] = {"trace": args.trace, "probes": args.probes, "generator": gen}
            if images:
                values.append(
                    likelihood.bits_per_dim(loaded.model, batch, sigmas, levels=levels, **options)
                )
            else:
                values.append(likelihood.log_prob(loaded.model, batch, sigmas, **options))
    result = torch.cat(values).double().cpu()
    mean = float(result.mean())
    se = float(result.std()) / math.sqrt(len(result)) if len(result) > 1 else float("nan")
    if images:
        common.say(
            f"{mean:.4f} ± {se:.4f} bits/dim on {len(result)} examples of {args.data} "
            f"({levels} grey levels, {len(sigmas)} ODE levels, trace {args.trace})"
        )
    else:
        common.say(
            f"log-likelihood {mean:.4f} ± {se:.4f} nats per example on {len(result)} examples "
            f"of {args.data} ({len(sigmas)} ODE levels, trace {args.trace})"
        )
    return 0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``ncsn likelihood``."""
    p: argparse.ArgumentParser = sub.add_parser(
        "likelihood",
        help="bits/dim of data under a trained model (probability-flow ODE)",
        description="Exact likelihood of data under the model's probability-flow ODE: bits per "
        "dimension for images (uniform dequantisation), nats per example for vectors, each with "
        "its standard error over the examples.",
    )
    p.add_argument("checkpoint", help=common.MODEL_HELP)
    p.add_argument("--data", required=True, help="the data to score (same sources as train)")
    p.add_argument("--split", default=None, help="the split where the source has one (e.g. test; default: its own, train); a toy draws --num-examples fresh points")  # fmt: skip
    p.add_argument("--download", action="store_true", help="download mnist or fashion-mnist if not found")  # fmt: skip
    p.add_argument("--num-examples", type=common.positive_int_arg, default=256)
    p.add_argument("--batch-size", type=common.positive_int_arg, default=64)
    p.add_argument("--trace", choices=("hutchinson", "exact"), default="hutchinson", help="Hutchinson's unbiased estimate (default) or the exact trace (D backward passes)")  # fmt: skip
    p.add_argument("--probes", type=common.positive_int_arg, default=1, help="Hutchinson probes")
    p.add_argument("--levels", type=common.positive_int_arg, default=None, help="grey levels of the images (default 17 for digits, else 256)")  # fmt: skip
    p.add_argument("--ode-levels", type=common.positive_int_arg, default=None, help="integrate on N geometric levels between the model's σ₁ and σ_L (networks that accept any σ)")  # fmt: skip
    p.add_argument("--no-ema", action="store_true", help="use the raw weights")
    p.add_argument("--image-size", type=common.positive_int_arg, default=None)
    p.add_argument("--seed", type=common.seed_arg, default=0)
    common.add_common_options(p)
    p.set_defaults(run=_cmd_likelihood)
    return p
