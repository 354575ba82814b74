"""``ncsn likelihood``: bits per dimension (or nats) of held-out data under a trained model's
probability-flow ODE, with its standard error."""

from __future__ import annotations

import argparse
import math
from typing import Any

import torch

from ncsn import data as ncsn_data
from ncsn import geometric_sigmas, likelihood
from ncsn.cli._common import (
    CommandError,
    device_from,
    load_model,
    positive_int_arg,
    say,
    seed_arg,
    user_input,
)
from ncsn.cli.sample import sigmas_of
from ncsn.cli.train import GREY_LEVELS

__all__: list[str] = []  # the command is reached through ncsn.cli.main

# Below this many levels the ODE's discretisation error is large (measured on the toy mixture:
# Heun on 50 levels is off by 0.02 nats, on 200 by 0.0015).
_FINE_GRID = 100


def _cmd_likelihood(args: argparse.Namespace) -> int:
    device = device_from(args.device)
    model, meta = load_model(args.checkpoint, image_size=args.image_size, use_ema=not args.no_ema)
    model = model.to(device).eval()
    shape = meta.get("shape")
    if not shape:
        raise CommandError(f"{args.checkpoint}: the checkpoint does not say its data shape")
    if meta.get("logit_transform"):
        raise CommandError(
            f"{args.checkpoint}: the model was trained on logit-transformed pixels; its "
            "likelihood in pixel space needs the transform's Jacobian, which is not implemented"
        )
    sigmas = sigmas_of(model, meta)
    if sigmas is None:
        raise CommandError(f"{args.checkpoint}: the model records no noise levels")
    if args.ode_levels is not None:
        sigmas = geometric_sigmas(float(sigmas[0]), float(sigmas[-1]), args.ode_levels)
    if len(sigmas) < 2:
        raise CommandError(
            f"{args.checkpoint}: the ODE needs a model with two or more noise levels"
        )
    toy = args.data in ncsn_data.TOY_NAMES
    extra: dict[str, Any] = (
        {"num_samples": args.num_examples, "generator": torch.Generator().manual_seed(args.seed)}
        if toy
        else {"split": args.split}
    )
    try:
        x, _ = ncsn_data.load(args.data, **extra)
    except (FileNotFoundError, ValueError) as err:
        raise CommandError(str(err).splitlines()[0]) from err
    if tuple(x.shape[1:]) != tuple(shape):
        raise CommandError(
            f"{args.data}: examples of shape {list(x.shape[1:])} do not fit the model's {list(shape)}"
        )
    x = x[: args.num_examples]
    images = len(shape) == 3
    if args.levels is not None and not images:
        raise CommandError(
            f"--levels applies to images (bits/dim over grey levels); {args.data} holds vectors "
            f"of shape {list(shape)}, scored in nats"
        )
    if len(sigmas) < _FINE_GRID:
        say(
            f"warning: the ODE runs on {len(sigmas)} levels (the model's grid); the "
            "discretisation error is large below ~100 levels"
            + (" (--ode-levels refines it for networks that accept any σ)" if images else "")
        )
    gen = torch.Generator(device=device).manual_seed(args.seed)
    levels = args.levels or GREY_LEVELS.get(str(args.data), 256)
    values = []
    with user_input():
        for batch in torch.split(x, args.batch_size):
            batch = batch.to(device=device, dtype=torch.get_default_dtype())
            options: dict[str, Any] = {"trace": args.trace, "probes": args.probes, "generator": gen}
            if images:
                values.append(
                    likelihood.bits_per_dim(model, batch, sigmas, levels=levels, **options)
                )
            else:
                values.append(likelihood.log_prob(model, batch, sigmas, **options))
    result = torch.cat(values).double().cpu()
    mean = float(result.mean())
    se = float(result.std()) / math.sqrt(len(result)) if len(result) > 1 else float("nan")
    if images:
        say(
            f"{mean:.4f} ± {se:.4f} bits/dim on {len(result)} examples of {args.data} "
            f"({levels} grey levels, {len(sigmas)} ODE levels, trace {args.trace})"
        )
    else:
        say(
            f"log-likelihood {mean:.4f} ± {se:.4f} nats per example on {len(result)} examples "
            f"of {args.data} ({len(sigmas)} ODE levels, trace {args.trace})"
        )
    return 0


def add_parser(sub: Any) -> None:
    """Register ``ncsn likelihood``."""
    p = sub.add_parser(
        "likelihood",
        help="bits/dim of data under a trained model (probability-flow ODE)",
        description="Exact likelihood of data under the model's probability-flow ODE: bits per "
        "dimension for images (uniform dequantisation), nats per example for vectors, each with "
        "its standard error over the examples.",
    )
    p.add_argument("checkpoint", help="a checkpoint file or a training folder (newest checkpoint)")
    p.add_argument("--data", required=True, help="the data to score (same sources as train)")
    p.add_argument(
        "--split",
        default=None,
        help="split where the source has one (e.g. test for held-out digits; default: the "
        "source's own, train); a toy draws --num-examples fresh points",
    )
    p.add_argument("--num-examples", type=positive_int_arg, default=256)
    p.add_argument("--batch-size", type=positive_int_arg, default=64)
    p.add_argument(
        "--trace",
        choices=("hutchinson", "exact"),
        default="hutchinson",
        help="Hutchinson's unbiased estimate (default) or the exact trace (D backward passes)",
    )
    p.add_argument("--probes", type=positive_int_arg, default=1, help="Hutchinson probes")
    p.add_argument(
        "--levels",
        type=positive_int_arg,
        default=None,
        help="grey levels of the images (default 17 for digits, else 256)",
    )
    p.add_argument(
        "--ode-levels",
        type=positive_int_arg,
        default=None,
        help="integrate on N geometric levels between the model's σ_1 and σ_L instead of its "
        "own grid (only for networks that accept any σ)",
    )
    p.add_argument("--no-ema", action="store_true", help="use the raw weights")
    p.add_argument("--image-size", type=positive_int_arg, default=None)
    p.add_argument("--seed", type=seed_arg, default=0)
    p.add_argument("--device", default="cpu")
    p.set_defaults(run=_cmd_likelihood)
