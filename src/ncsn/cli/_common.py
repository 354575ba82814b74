"""What every ``ncsn`` subcommand shares: errors, devices, model loading, progress, option types."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ncsn import data as ncsn_data
from ncsn import training
from ncsn.nets.config import build_model
from ncsn.nets.official import load_official_checkpoint

EXIT_USAGE = 2
EXIT_FAILURE = 1


class CommandError(Exception):
    """A user error: printed as one line, exit status 2."""

    exit_code = EXIT_USAGE


class RunError(CommandError):
    """A run that failed on its own (e.g. a non-finite loss): printed as one line, exit status 1."""

    exit_code = EXIT_FAILURE


def load_model(
    path: str, *, image_size: int | None, use_ema: bool
) -> tuple[nn.Module, dict[str, Any]]:
    """A model from one of our checkpoints or an official one, plus what we know of its data
    (``shape``, ``logit_transform``, ``sigma``) and the sampling settings its run recorded
    (``meta["sampling"]``: a dict, empty when none are recorded)."""
    file = Path(path)
    if not file.exists():
        raise CommandError(f"{path}: no such checkpoint file or folder")
    if file.is_dir():
        found = training.latest_checkpoint(file)
        if found is None:
            raise CommandError(f"{path}: folder holds no checkpoint-*.pt file")
        file = found
    try:
        obj = training.read_file(file)
    except training.CheckpointError as err:
        raise CommandError(one_line(err)) from err
    if isinstance(obj, list):
        if not (len(obj) >= 1 and isinstance(obj[0], dict)):
            kinds = sorted({type(v).__name__ for v in obj}) or ["nothing"]
            raise CommandError(
                f"{file}: holds a list of {', '.join(kinds)}, not a checkpoint (ncsn's own, or "
                "the official [model_state_dict, optimizer_state_dict] list)"
            )
    elif not isinstance(obj, dict):
        raise CommandError(
            f"{file}: holds a {type(obj).__name__}, not a checkpoint (ncsn's own, or the "
            "official [model_state_dict, optimizer_state_dict] list)"
        )
    elif (
        "model" in obj
        and "step" in obj
        and not (isinstance(obj.get("config"), dict) and "model" in obj["config"])
    ):
        raise CommandError(
            f"{file}: a training checkpoint that records no model configuration (written by "
            "ncsn.training.Trainer without config=); rebuild the model in Python and load "
            "ncsn.training.model_weights(ncsn.training.load_checkpoint(path))"
        )
    if (
        isinstance(obj, dict)
        and "config" in obj
        and isinstance(obj["config"], dict)
        and "model" in obj["config"]
    ):
        if obj.get("format") != training.CHECKPOINT_FORMAT:
            raise CommandError(
                f"{file}: expected format={training.CHECKPOINT_FORMAT!r}; "
                f"got format={obj.get('format')!r}"
            )
        checkpoint, config = obj, obj["config"]
        if image_size is not None:
            raise CommandError(
                f"--image-size applies to official checkpoints only; {file} records its data "
                f"shape {config.get('data', {}).get('shape')}"
            )
        try:
            model = build_model(config["model"])
        except (ValueError, TypeError) as err:
            raise CommandError(f"{file}: cannot rebuild its model ({one_line(err)})") from err
        weights = training.model_weights(checkpoint, ema=use_ema)
        mismatch = training.state_dict_mismatch(model, weights)
        if mismatch is not None:
            raise CommandError(
                f"{file}: the weights do not fit its recorded {type(model).__name__}: {mismatch}"
            )
        model.load_state_dict(weights)
        sampling = config.get("sampling")
        return model, dict(config.get("data", {})) | {
            "sampling": dict(sampling) if isinstance(sampling, dict) else {}
        }
    net = load_official_checkpoint(file)
    size = image_size or (28 if net.channels == 1 else 32)
    return net, {
        "shape": [net.channels, size, size],
        "logit_transform": net.logit_transform,
        "sampling": {},
    }


def to_images(x: Tensor, meta: dict[str, Any]) -> Tensor:
    if meta.get("logit_transform"):
        x = ncsn_data.inverse_logit_transform(x)
    return x.clamp(0, 1)


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
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise CommandError(
                f"--device {text}: CUDA is not available (a CPU-only PyTorch build, or no GPU)"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise CommandError(f"--device {text}: this machine has {count} CUDA device(s)")
        return device
    if device.type == "mps":
        if not torch.backends.mps.is_available():
            raise CommandError(f"--device {text}: MPS is not available on this machine")
        return device
    raise CommandError(f"--device {text}: unsupported device type; expected cpu, cuda or mps")


@contextlib.contextmanager
def user_input() -> Iterator[None]:
    """The library checks the values the user gave: its ValueError/TypeError is a usage error."""
    try:
        yield
    except (ValueError, TypeError) as err:
        raise CommandError(one_line(err)) from err


def one_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def grid_scale(shape: Sequence[int]) -> int:
    return max(1, 64 // int(shape[-1]))


class Progress:
    """A tqdm bar over a sampler's model calls: ``progress.watch(model)`` counts each call (it
    syncs nothing), so the bar ends at ``num_model_calls`` whatever the sampler's steps are."""

    def __init__(self, sampler: Any, quiet: bool) -> None:
        self.total, self.quiet = int(sampler.num_model_calls), quiet
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


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit 2
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def positive_int_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def non_negative_int_arg(text: str) -> int:
    """An int >= 0 for argparse (a one-line error otherwise)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def positive_float_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def rate_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}")
    return value


# ---------------------------------------------------------------------------------------- checks
SEED_LIMIT = 2**64  # torch.Generator.manual_seed takes seeds in [0, 2**64)


def seed_arg(text: str) -> int:
    """``--seed``: an integer in [0, 2**64), the range of torch.Generator.manual_seed."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not 0 <= value < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, 2**64), got {text}")
    return value


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


def is_main_process() -> bool:
    """Rank 0 under torchrun (``RANK`` unset: a single process)."""
    return os.environ.get("RANK", "0") in ("", "0")


def say(message: str, *, file: Any = None) -> None:
    """Print a message on rank 0 only (every process of a torchrun job runs the command)."""
    if is_main_process():
        print(message, file=sys.stdout if file is None else file)


def warn_if_absurd(x: Tensor, low: float, high: float, what: str = "samples") -> None:
    """One warning line when finite samples lie far outside the data range [low, high]."""
    span = high - low
    seen_low, seen_high = float(x.min()), float(x.max())
    if seen_low < low - 10 * span or seen_high > high + 10 * span:
        say(
            f"warning: the {what} lie in [{seen_low:.3g}, {seen_high:.3g}], far outside the "
            f"data range [{low:g}, {high:g}]; the step size is probably too large "
            "(try a smaller --step-size)",
            file=sys.stderr,
        )
