"""What the ``ncsn`` subcommands share: errors, devices, option types, progress, files, and the
sampling options of ``ncsn sample`` and ``ncsn inpaint``."""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ncsn import (
    LoadedModel,
    Sampler,
    data,
    geometric_sigmas,
    load,
    nets,
    presets,
    samplers,
    training,
)

EXIT_USAGE = 2
EXIT_FAILURE = 1


class CommandError(Exception):
    """A user error: printed as one line, exit status 2."""

    exit_code = EXIT_USAGE


class RunError(CommandError):
    """A run that failed on its own (e.g. a non-finite loss): printed as one line, exit status 1."""

    exit_code = EXIT_FAILURE


def one_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def as_options(message: str, names: Any) -> str:
    """A library message in the command's terms: ``sigma_max=3`` reads ``--sigma-max 3`` and
    ``logit=True`` reads ``--logit``, for the option names in ``names``."""

    def option(match: re.Match[str]) -> str:
        if match[1] not in names:
            return match[0]
        flag = "--" + match[1].replace("_", "-")
        return flag if match[2] == "True" else f"{flag} {match[2]}"

    return re.sub(r"\b([a-z][a-z_]*)=([^\s,;)]+)", option, message)


@contextlib.contextmanager
def user_input(args: argparse.Namespace) -> Iterator[None]:
    """The library checks the values the user gave: its ValueError/TypeError is a usage error,
    in the command's terms."""
    try:
        yield
    except (ValueError, TypeError) as err:
        raise CommandError(as_options(one_line(err), vars(args))) from err


def load_data(args: argparse.Namespace, source: str, **options: Any) -> Tensor:
    """``ncsn.data.load``: a missing or unusable source is a usage error."""
    with user_input(args):
        x, _ = data.load(source, **{k: v for k, v in options.items() if v is not None})
    return x


def load_model(args: argparse.Namespace, device: torch.device) -> LoadedModel:
    """:func:`ncsn.load` of the command's ``checkpoint``, on ``device``."""
    with user_input(args):
        loaded = load(args.checkpoint, ema=not args.no_ema, image_size=args.image_size)
    return loaded._replace(model=loaded.model.to(device))


# --------------------------------------------------------------------------- devices, processes
def join_job(device_text: str | None) -> tuple[training.DistEnv, torch.device]:
    """This process's place in a ``torchrun`` job (or a single process) and its ``--device``:
    ``cuda`` without an index becomes ``cuda:LOCAL_RANK``, one device per process; a process of a
    job of several joins its process group."""
    env = training.distributed_env()
    device = device_from(device_text)
    if env.distributed:
        if device == torch.device("cuda"):
            device = torch.device("cuda", env.local_rank)
        training.init_process_group(device, timeout=3600.0)
    return env, device


def device_from(text: str | None) -> torch.device:
    """``--device``, checked to exist here (cpu, cuda, cuda:N or mps)."""
    if text is None:
        return torch.device("cpu")
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise CommandError(
            f"--device {text!r} is not a device; expected cpu, cuda, cuda:N or mps"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise CommandError(
                f"--device {text}: CUDA is not available (a CPU-only PyTorch build, or no GPU)"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise CommandError(f"--device {text}: this machine has {count} CUDA device(s)")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise CommandError(f"--device {text}: MPS is not available on this machine")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise CommandError(f"--device {text}: unsupported device type; expected cpu, cuda or mps")
    return device


def is_main_process() -> bool:
    """Rank 0 under torchrun (``RANK`` unset: a single process)."""
    return os.environ.get("RANK", "0") in ("", "0")


def say(message: str, *, file: Any = None) -> None:
    """Print a message on rank 0 only (every process of a torchrun job runs the command)."""
    if is_main_process():
        print(message, file=sys.stdout if file is None else file)


# ---------------------------------------------------------------------------------- option types
class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit 2
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _number(kind: type, text: str, what: str, ok: Any) -> Any:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def positive_int_arg(text: str) -> int:
    return int(_number(int, text, "a positive integer", lambda v: v >= 1))


def non_negative_int_arg(text: str) -> int:
    return int(_number(int, text, "an integer >= 0", lambda v: v >= 0))


def positive_float_arg(text: str) -> float:
    ok = lambda v: math.isfinite(v) and v > 0  # noqa: E731
    return float(_number(float, text, "a positive number", ok))


def non_negative_float_arg(text: str) -> float:
    ok = lambda v: math.isfinite(v) and v >= 0  # noqa: E731
    return float(_number(float, text, "a number >= 0", ok))


def rate_arg(text: str) -> float:
    return float(_number(float, text, "a number in (0, 1)", lambda v: 0.0 < v < 1.0))


def seed_arg(text: str) -> int:
    """``--seed``: an integer in [0, 2**64), the range of torch.Generator.manual_seed."""
    return int(_number(int, text, "an integer in [0, 2**64)", lambda v: 0 <= v < 2**64))


def add_common_options(p: argparse.ArgumentParser, device: bool = True) -> None:
    """``--threads`` for every subcommand, ``--device`` where the command has a choice."""
    p.add_argument(
        "--threads",
        type=positive_int_arg,
        default=None,
        help="CPU threads for torch (default: torch's, one per core; use 1 or 2 on a shared "
        "machine)",
    )
    if device:
        p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: cpu)")


# ------------------------------------------------------------------------------- files, progress
def writable_folder(path: str | Path, option: str = "--output") -> Path:
    """Create ``path`` if needed and check that a file can be written there, before any work."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise CommandError(f"{option} {folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".ncsn-write-test-"):
            pass
    except OSError as err:
        raise CommandError(
            f"{option} {folder}: cannot write there ({err.strerror or type(err).__name__})"
        ) from err
    return folder


def save_atomic(obj: Any, path: Path, tag: str = "") -> None:
    """``torch.save`` (or text) into a temporary file beside ``path``, then renamed over it.

    The bytes are made in memory and written with ``write``, so a full disk is an
    :class:`OSError` (ENOSPC) naming the file, not torch's RuntimeError; the temporary file is
    removed on any failure, and what ``path`` held before stays whole.
    """
    if isinstance(obj, str):
        payload = obj.encode()
    else:
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        payload = buffer.getvalue()
    tmp = path.with_name(f".{path.name}.tmp{tag}")
    try:
        with open(tmp, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def grid_scale(shape: Any) -> int:
    return max(1, 64 // int(shape[-1]))


def to_images(x: Tensor, logit: bool) -> Tensor:
    """Samples in pixel units [0, 1]: out of logit space when the model trained there."""
    return (data.inverse_logit_transform(x) if logit else x).clamp(0, 1)


class Progress:
    """A tqdm bar over a sampler's model calls: ``progress.watch(model)`` counts each call (it
    syncs nothing), so the bar ends at ``num_model_calls`` whatever the sampler's steps are."""

    def __init__(self, sampler: Any, quiet: bool, repeats: int = 1) -> None:
        self.total, self.quiet = int(sampler.num_model_calls) * repeats, quiet
        self.bar: Any = None

    def __enter__(self) -> Progress:
        if not self.quiet and is_main_process():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, desc="sampling", unit="call", mininterval=1.0)
        return self

    def watch(self, model: Any) -> Any:
        """``model`` itself, or a model that ticks the bar at each call."""
        if self.bar is None:
            return model

        def counted(x: Tensor, sigma: Tensor) -> Tensor:
            self.bar.update(1)
            return model(x, sigma)

        return counted

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()


# ------------------------------------------------------------------------------------- sampling
_SAMPLING = {name for names in presets.SAMPLER_OPTIONS.values() for name in names}
# What to try after a chain diverged, in options of that sampler.
_REMEDY = {
    "langevin": "a smaller --step-size",
    "annealed": "a smaller --step-size",
    "cas": "an --eta nearer 1 − γ",
    "pc": "a smaller --snr",
    "ode": "--solver heun",
}


MODEL_HELP = (
    "a run folder (its newest checkpoint), a checkpoint file, an official checkpoint.pth, a model "
    "folder (ncsn export), pretrained:digits or hf:OWNER/NAME (the Hugging Face Hub)"
)
"""What every command that takes a trained model accepts (:func:`ncsn.load`)."""


def add_sampling_options(p: argparse.ArgumentParser) -> None:
    """The options of ``ncsn sample`` and ``ncsn inpaint`` that choose and set the sampler."""
    p.add_argument("checkpoint", help=MODEL_HELP)
    p.add_argument("--sampler", choices=presets.SAMPLERS, default="annealed", help="annealed Langevin (L·T calls), consistent annealed sampling (L), predictor-corrector, or the probability-flow ODE (default: the run's, else annealed)")  # fmt: skip
    p.add_argument("--step-size", type=positive_float_arg, default=presets.OFFICIAL_STEP_SIZE, help="Langevin ε, the paper's convention (default: the run's, else 4e-5)")  # fmt: skip
    p.add_argument("--steps-per-level", type=positive_int_arg, default=100, help="T, Langevin steps per level (default: the run's, else 100)")  # fmt: skip
    p.add_argument("--num-steps", type=positive_int_arg, default=1000, help="plain Langevin steps of a one-level model (default 1000)")  # fmt: skip
    p.add_argument("--denoise", action=argparse.BooleanOptionalAction, default=None, help="end with the denoising step x + σ_L² s(x, σ_L) (default: the run's, else on for pc and ode)")  # fmt: skip
    p.add_argument("--eta", type=positive_float_arg, default=None, help="cas: fraction of Tweedie's step per level, in [1 − γ, 1] (default 1 − γ/2)")  # fmt: skip
    p.add_argument("--snr", type=positive_float_arg, default=0.16, help="pc: corrector snr (default 0.16)")  # fmt: skip
    p.add_argument("--corrector-steps", type=non_negative_int_arg, default=1, help="pc: corrector steps per level (default 1)")  # fmt: skip
    p.add_argument("--solver", choices=("heun", "euler"), default="heun", help="ode: Heun (2 calls a step) or Euler (default heun)")  # fmt: skip
    p.add_argument("--num-levels", type=positive_int_arg, default=None, help="sample on L geometric levels instead of the run's grid (networks that take any σ: --model scaled or precond)")  # fmt: skip
    p.add_argument("--sigma-max", type=positive_float_arg, default=None, help="σ₁ of that grid (default: the run's)")  # fmt: skip
    p.add_argument("--sigma-min", type=positive_float_arg, default=None, help="σ_L of that grid (default: the run's)")  # fmt: skip
    p.add_argument("--no-ema", action="store_true", help="the raw weights instead of the EMA weights")  # fmt: skip
    p.add_argument("--image-size", type=positive_int_arg, default=None, help="image size of an official checkpoint (default 32; 28 for 1 channel)")  # fmt: skip
    p.add_argument("--compile", action="store_true", help="call the network through torch.compile (ncsn.nets.compiled): faster after a first call that compiles for minutes; the samples differ by round-off only")  # fmt: skip
    p.add_argument("--seed", type=seed_arg, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_common_options(p)


def score_model(loaded: LoadedModel, args: argparse.Namespace) -> Any:
    """The network the sampler calls: ``loaded.model``, through :func:`ncsn.nets.compiled` with
    ``--compile``."""
    return nets.compiled(loaded.model) if args.compile else loaded.model


def build_sampler(loaded: LoadedModel, args: argparse.Namespace) -> tuple[Sampler, str]:
    """The sampler the options name, else the one the run recorded (:meth:`LoadedModel.sampler
    <ncsn.LoadedModel.sampler>`), and its kind (``langevin`` for a one-level model). An option
    the chosen sampler does not take is refused, not ignored."""
    if loaded.sigmas is None:
        raise CommandError(f"{args.checkpoint}: the model records no noise levels")
    sigmas, grid = None, {"num_levels", "sigma_max", "sigma_min"} & args.given
    if grid and isinstance(getattr(loaded.model, "sigmas", None), Tensor):
        raise CommandError(
            f"{', '.join('--' + n.replace('_', '-') for n in sorted(grid))}: "
            f"{type(loaded.model).__name__} takes only the {len(loaded.sigmas)} noise levels it "
            "was trained on; a network trained with --model scaled or precond takes any σ"
        )
    if grid:  # another grid, for a network that takes any σ
        high = float(loaded.sigmas[0]) if args.sigma_max is None else args.sigma_max
        low = float(loaded.sigmas[-1]) if args.sigma_min is None else args.sigma_min
        with user_input(args):
            sigmas = geometric_sigmas(high, low, args.num_levels or len(loaded.sigmas))
    name = args.sampler if "sampler" in args.given else loaded.sampling.get("sampler", "annealed")
    levels = len(loaded.sigmas if sigmas is None else sigmas)
    kind = "langevin" if levels == 1 and name == "annealed" else name
    takes = presets.SAMPLER_OPTIONS[kind]
    ignored = [f"--{n.replace('_', '-')}" for n in sorted(_SAMPLING & args.given - set(takes))]
    if ignored:
        named = "plain Langevin (a one-level model)" if kind == "langevin" else f"--sampler {kind}"
        options = ", ".join(f"--{n.replace('_', '-')}" for n in takes)
        raise CommandError(f"{', '.join(ignored)}: not an option of {named}, which takes {options}")
    given = {n: getattr(args, n) for n in _SAMPLING & args.given}
    with user_input(args):
        return loaded.sampler(name, sigmas=sigmas, **given), kind


def start_for(
    sampler: Sampler, shape: tuple[int, ...], generator: torch.Generator, device: torch.device
) -> Tensor:
    """U[0, 1] for Langevin and annealed Langevin (the paper); N(0, σ₁²I) for the samplers that
    start at p_σ₁ (consistent annealed sampling, predictor-corrector, the ODE)."""
    if isinstance(sampler, (samplers.Langevin, samplers.AnnealedLangevin)):
        return samplers.uniform_init(shape, generator=generator, device=device)
    first = float(sampler.sigmas[0])  # type: ignore[attr-defined]
    return samplers.gaussian_init(shape, first, generator=generator, device=device)


def diverged(err: FloatingPointError, kind: str) -> RunError:
    """The error of a sampler whose values became non-finite, with advice that fits the cause:
    an option of sampler ``kind`` when its chain diverged, none of them when the model did."""
    if isinstance(err, samplers.NonFiniteError) and err.source == "model":
        return RunError(f"{one_line(err)}; no sampler option helps (try --no-ema, or another checkpoint)")  # fmt: skip
    return RunError(f"{one_line(err)}; try {_REMEDY[kind]}")
