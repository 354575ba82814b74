""":func:`ncsn.load`: a trained model from a training run, a checkpoint file, an official
checkpoint, a model folder or a pretrained model, with its σ grid and what its run recorded."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

from ncsn._checks import CheckpointError, as_sigmas
from ncsn._types import Sampler
from ncsn._version import __version__
from ncsn.ncsnv2 import ncsnv2_step_size
from ncsn.nets.config import build_model
from ncsn.nets.official import load_official_checkpoint
from ncsn.presets import SAMPLER_OPTIONS, build_sampler
from ncsn.training import (
    CHECKPOINT_FORMAT,
    latest_checkpoint,
    model_weights,
    read_file,
    state_dict_mismatch,
)

__all__ = [
    "CARD",
    "CONFIG",
    "DTYPES",
    "FORMAT",
    "PRETRAINED",
    "WEIGHTS",
    "LoadedModel",
    "hub_folder",
    "hub_repo",
    "is_model_folder",
    "load",
    "load_model",
    "pretrained_folder",
]

# Model folders (written by ncsn.sharing, read here with every other kind of source).
FORMAT = 1
"""The version of the folder layout this library writes and reads (``config.json``'s ``format``)."""
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
CARD = "README.md"
PRETRAINED = ("digits",)
"""The names :func:`pretrained` knows: the models shipped in the package."""

_HERE = Path(__file__).resolve().parent / "pretrained"
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32, "float64": torch.float64}  # fmt: skip
"""The dtypes a model folder's weights may have (``config.json``'s ``dtype``)."""

# The released code's sampler: annealed Langevin, step_lr = 2e-5 (ε = 4e-5), T = 100.
_OFFICIAL_SAMPLING = {"sampler": "annealed", "step_size": 4e-5, "steps_per_level": 100}
_OPTIONS = {name for names in SAMPLER_OPTIONS.values() for name in names}
PRETRAINED_PREFIX = "pretrained:"
"""``ncsn.load("pretrained:digits")`` (and ``ncsn sample pretrained:digits``) load a pretrained
model shipped with the package (:func:`ncsn.pretrained`)."""
HUB_PREFIX = "hf:"
"""``ncsn.load("hf:OWNER/NAME")`` (or ``hf:OWNER/NAME@REVISION``; ``ncsn sample hf:OWNER/NAME``
alike) downloads a model folder from the Hugging Face Hub into its cache and loads it: the one
way ncsn downloads a model, and only when a source names the Hub (``huggingface_hub``, the
``hub`` extra)."""
_NOT_A_CHECKPOINT = (
    "not a checkpoint (ncsn's own, or the official [model_state_dict, optimizer_state_dict] list)"
)


class LoadedModel(NamedTuple):
    """A trained model and what its run recorded, from :func:`ncsn.load`."""

    model: nn.Module
    """The network with the loaded weights, in eval mode, on the CPU."""
    sigmas: Tensor | None
    """``[L]`` the σ grid to sample on: the network's own levels, else the grid its run trained
    on (a network that takes any σ, such as ``ScaledByInverseSigma``); ``None`` when unknown."""
    data: dict[str, Any]
    """What the run recorded of its data: ``shape`` (one example's), ``logit_transform``, and
    for runs of ``ncsn train`` ``source`` and ``sigma`` (σ_L)."""
    sampling: dict[str, Any]
    """The sampling settings the run recorded (``sampler``, ``step_size``, ``steps_per_level``,
    ``denoise``, ...; what :func:`ncsn.presets.build_sampler` takes), empty when none."""
    file: Path
    """The checkpoint file that was read."""
    step: int | None
    """Its training step (``None`` for an official checkpoint)."""

    def sampler(
        self, name: str | None = None, *, sigmas: Tensor | None = None, **options: Any
    ) -> Sampler:
        """The sampler the run recorded (:attr:`sampling`), or the one called ``name``, with
        ``options`` replacing the recorded settings (:func:`ncsn.presets.build_sampler`).

        When the run's ε follows NCSNv2's Technique 4 (``step_size_rule``), a new
        ``steps_per_level`` or grid without a ``step_size`` gets Technique 4's ε for them, times
        the recorded ``step_scale`` (the recipe's 2).

        Args:
            name: one of :data:`ncsn.presets.SAMPLERS` (default: the recorded one, else
                ``"annealed"``).
            sigmas: another ``[L]`` σ grid, for a network that takes any σ (default: the run's).
            options: settings of :func:`~ncsn.presets.build_sampler`.

        Raises:
            ValueError: the model records no σ grid; ``sigmas`` for a network that takes only its
                own levels; a bad setting (named).

        Example:
            >>> import tempfile
            >>> x, _ = ncsn.data.load("digits")
            >>> run = ncsn.presets.prepare(x, ncsn.presets.Settings(data="digits", ngf=4))
            >>> state = {"step": 0, "model": run.model.state_dict(), "config": run.config}
            >>> with tempfile.TemporaryDirectory() as folder:
            ...     _ = ncsn.training.save_checkpoint(ncsn.training.checkpoint_path(folder, 0), state)
            ...     loaded = ncsn.load(folder)
            >>> sampler = loaded.sampler()            # the recipe's: T = 10, 2 × Technique 4's ε
            >>> cas = loaded.sampler("cas")           # L = 22 levels + the recorded denoising step
            >>> sampler.steps_per_level, sampler.denoise, cas.num_model_calls
            (10, True, 23)
            >>> x = sampler(loaded.model, ncsn.samplers.uniform_init((4, 1, 8, 8)))
        """
        if self.sigmas is None:
            raise ValueError(f"{self.file}: the model records no noise levels to sample on")
        if sigmas is not None and isinstance(getattr(self.model, "sigmas", None), Tensor):
            raise ValueError(
                f"sigmas: {type(self.model).__name__} takes only the {len(self.sigmas)} levels it "
                "was trained on; a network that takes any σ (ScaledByInverseSigma or Preconditioned, `ncsn "
                "train --model scaled` or `precond`) can be sampled on another grid"
            )
        recorded = {k: v for k, v in self.sampling.items() if k in _OPTIONS}
        rule = self.sampling.get("step_size_rule") == "ncsnv2" and "step_size" not in options
        grid = self.sigmas if sigmas is None else sigmas
        if len(grid) == 1:
            grid = torch.tensor([float(self.data.get("sigma", grid[0]))])
        elif rule and ("steps_per_level" in options or sigmas is not None):
            # Technique 4's ε for the new T or grid, times the recorded scale
            steps = options.get("steps_per_level", recorded.get("steps_per_level", 100))
            scale = float(self.sampling.get("step_scale", 1.0))
            recorded["step_size"] = scale * ncsnv2_step_size(as_sigmas(grid), steps)
        settings = recorded | options
        return build_sampler(name or self.sampling.get("sampler", "annealed"), grid, **settings)


def _checkpoint_file(source: Path) -> Path:
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such checkpoint file or folder")
    if not source.is_dir():
        return source
    found = latest_checkpoint(source)
    if found is None:
        raise CheckpointError(f"{source}: folder holds no checkpoint-*.pt file")
    return found


def _check_finite(weights: dict[str, Tensor], file: Path) -> None:
    for key, value in weights.items():
        if value.is_floating_point() and not bool(value.isfinite().all()):
            raise CheckpointError(f"{file}: the weight {key} holds NaN or infinity")


def _model_folder(source: str | os.PathLike[str]) -> Path | None:
    """The model folder ``source`` names (``pretrained:NAME``, ``hf:OWNER/NAME[@REVISION]`` or a
    folder with a config.json)."""
    text = os.fspath(source)
    if text.startswith(PRETRAINED_PREFIX):
        return pretrained_folder(text.removeprefix(PRETRAINED_PREFIX))
    if text.startswith(HUB_PREFIX):
        return hub_folder(text.removeprefix(HUB_PREFIX))
    return Path(text) if (Path(text) / "config.json").is_file() else None


def hub_repo(name: str) -> tuple[str, str | None]:
    """``OWNER/NAME[@REVISION]`` as the Hub repository id and revision (``None``: the default
    branch).

    Raises:
        ValueError: not of that form (named).

    Example:
        >>> ncsn.sharing.hub_repo("me/digits@v1"), ncsn.sharing.hub_repo("me/digits")
        (('me/digits', 'v1'), ('me/digits', None))
    """
    repo_id, at, revision = name.partition("@")
    owner, slash, model = repo_id.partition("/")
    if not (owner and slash and model) or "/" in model or (at and not revision):
        raise ValueError(f"a Hub model is named OWNER/NAME or OWNER/NAME@REVISION; got {name!r}")
    return repo_id, revision or None


def hub_folder(name: str) -> Path:
    """The local copy of the Hub model folder ``OWNER/NAME[@REVISION]``, downloaded into the
    Hugging Face cache (only its weights, config and card) unless it is there already.

    Raises:
        ValueError: a name not of that form.
        ImportError: ``huggingface_hub`` is not installed.
    """
    repo_id, revision = hub_repo(name)
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise ImportError(
            f"{HUB_PREFIX}{name}: loading from the Hugging Face Hub needs huggingface_hub "
            "(pip install 'ncsn[hub]')"
        ) from None
    path = snapshot_download(
        repo_id,
        revision=revision,
        allow_patterns=[WEIGHTS, CONFIG, CARD],
        library_name="ncsn",
        library_version=__version__,
    )
    return Path(str(path))


def load(
    source: str | os.PathLike[str], *, ema: bool = True, image_size: int | None = None
) -> LoadedModel:
    """Load a trained model: from a training run's folder (its newest checkpoint), one of its
    checkpoint files, an official NCSN ``checkpoint.pth``, a model folder
    (:func:`ncsn.save_model`, ``ncsn export``), or a pretrained model (``"pretrained:digits"``,
    :func:`ncsn.pretrained`).

    Our checkpoints record the network's configuration (``ncsn train`` and
    ``Trainer(config=...)`` write it, see :func:`ncsn.presets.prepare`), which rebuilds it; the
    EMA weights are loaded when the run kept them. An official checkpoint holds the paper's
    RefineNet; its data shape is ``[C, image_size, image_size]``.

    Args:
        source: a run folder, a checkpoint file, or an official checkpoint.
        ema: load the EMA weights (when the run has them) rather than the raw ones; a model
            folder holds one set of weights (``ema=False`` is an error there).
        image_size: the image size of an official checkpoint (default 32, 28 for one channel);
            an error for our checkpoints, which record their data shape.

    Returns:
        A :class:`LoadedModel`.

    Raises:
        FileNotFoundError: ``source`` does not exist.
        CheckpointError: a file that is not a usable checkpoint (named, with why): unreadable,
            refused by safe loading, holding no model configuration, weights that do not fit
            the recorded network or hold NaN or infinity.
        ValueError: ``image_size`` for one of our checkpoints or a model folder, ``ema=False``
            for a model folder, an unknown pretrained name.

    Example:
        >>> import tempfile
        >>> x, _ = ncsn.data.load("digits")
        >>> run = ncsn.presets.prepare(x, ncsn.presets.Settings(data="digits", ngf=4))
        >>> state = {"step": 0, "model": run.model.state_dict(), "config": run.config}
        >>> with tempfile.TemporaryDirectory() as folder:   # a run's folder, as a Trainer leaves it
        ...     _ = ncsn.training.save_checkpoint(ncsn.training.checkpoint_path(folder, 0), state)
        ...     loaded = ncsn.load(folder)
        >>> type(loaded.model).__name__, len(loaded.sigmas), loaded.data["shape"], loaded.step
        ('RefineNet', 22, [1, 8, 8], 0)
    """
    folder = _model_folder(source)
    if folder is not None:
        if image_size is not None or not ema:
            given = "image_size" if image_size is not None else "ema=False"
            raise ValueError(
                f"{given} does not apply to the model folder {folder} (its config.json records "
                "its data shape, and it holds one set of weights)"
            )
        return load_model(folder)
    file = _checkpoint_file(Path(source))
    obj = read_file(file)
    if isinstance(obj, list):
        if not (len(obj) >= 1 and isinstance(obj[0], dict)):
            kinds = sorted({type(v).__name__ for v in obj}) or ["nothing"]
            raise CheckpointError(
                f"{file}: holds a list of {', '.join(kinds)}, {_NOT_A_CHECKPOINT}"
            )
    elif not isinstance(obj, dict):
        raise CheckpointError(f"{file}: holds a {type(obj).__name__}, {_NOT_A_CHECKPOINT}")
    elif isinstance(obj.get("config"), dict) and "model" in obj["config"]:
        return _ours(obj, file, ema=ema, image_size=image_size)
    elif "model" in obj and "step" in obj:
        raise CheckpointError(
            f"{file}: a training checkpoint that records no model configuration (written by "
            "ncsn.training.Trainer without config=); rebuild the model in Python and load "
            "ncsn.training.model_weights(ncsn.training.load_checkpoint(path))"
        )
    net = load_official_checkpoint(file)
    size = image_size or (28 if net.channels == 1 else 32)
    data = {"shape": [net.channels, size, size], "logit_transform": net.logit_transform}
    return LoadedModel(net.eval(), net.sigmas, data, dict(_OFFICIAL_SAMPLING), file, None)


def _ours(
    checkpoint: dict[str, Any], file: Path, *, ema: bool, image_size: int | None
) -> LoadedModel:
    config = checkpoint["config"]
    if checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{file}: expected format={CHECKPOINT_FORMAT!r}; got format={checkpoint.get('format')!r}"
        )
    data = dict(config.get("data") or {})
    if image_size is not None:
        raise ValueError(
            f"image_size applies to official checkpoints only; {file} records its data shape "
            f"{data.get('shape')}"
        )
    try:
        model = build_model(config["model"])
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{file}: cannot rebuild its model ({err})") from err
    weights = model_weights(checkpoint, ema=ema)
    mismatch = state_dict_mismatch(model, weights)
    if mismatch is not None:
        raise CheckpointError(
            f"{file}: the weights do not fit its recorded {type(model).__name__}: {mismatch}"
        )
    _check_finite(weights, file)
    model.load_state_dict(weights)
    sampling = config.get("sampling")
    sampling = dict(sampling) if isinstance(sampling, dict) else {}
    inner = getattr(model, "module", model)
    sigmas = getattr(inner, "sigmas", None)
    if not isinstance(sigmas, Tensor):
        recorded = sampling.get("sigmas")
        sigmas = torch.tensor(recorded) if recorded else None
    step = checkpoint.get("step")
    return LoadedModel(
        model.eval(), sigmas, data, sampling, file, None if step is None else int(step)
    )


def _config_error(file: Path, message: str) -> CheckpointError:
    return CheckpointError(f"{file}: {message}")


def _read_config(folder: Path) -> dict[str, Any]:
    file = folder / CONFIG
    try:
        config = json.loads(file.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _config_error(file, f"not a readable model config ({err})") from err
    if not isinstance(config, dict):
        raise _config_error(file, f"holds a {type(config).__name__}, not a model config")
    fmt = config.get("format")
    if type(fmt) is not int:
        raise _config_error(file, f"the key 'format' must be an integer; got {fmt!r}")
    if fmt > FORMAT:
        raise _config_error(
            file,
            f"'format' {fmt} is newer than this ncsn ({__version__}) reads ({FORMAT}); the "
            f"folder was written by ncsn {config.get('ncsn_version', '?')}: upgrade ncsn",
        )
    for key, kind in (("model", dict), ("sampling", dict), ("data", dict), ("metadata", dict)):
        if not isinstance(config.get(key), kind):
            raise _config_error(file, f"the key {key!r} must be a JSON object; got {config.get(key)!r}")  # fmt: skip
    if config.get("dtype") not in DTYPES:
        raise _config_error(file, f"the key 'dtype' must be one of {list(DTYPES)}; got {config.get('dtype')!r}")  # fmt: skip
    sigmas = config.get("sigmas")
    if sigmas is not None and not (
        isinstance(sigmas, list) and all(isinstance(s, (int, float)) for s in sigmas)
    ):
        raise _config_error(file, f"the key 'sigmas' must be a list of numbers or null; got {sigmas!r}")  # fmt: skip
    return config


def is_model_folder(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder with a model folder's ``config.json``.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     before = ncsn.sharing.is_model_folder(tmp)
        ...     _ = ncsn.save_model(ncsn.nets.ScoreMLP(dim=2, hidden=8), tmp)
        ...     before, ncsn.sharing.is_model_folder(tmp)
        (False, True)
    """
    return (Path(path) / CONFIG).is_file()


def load_model(folder: str | os.PathLike[str]) -> LoadedModel:
    """Read a model folder written by :func:`save_model`: the network with its weights (bit for
    bit), its σ grid, data record and sampler settings. :func:`ncsn.load` reads folders too.

    Args:
        folder: the model folder.

    Returns:
        A :class:`~ncsn.LoadedModel` (the network in eval mode on the CPU; ``file`` is the
        weights file; ``step`` the training step recorded in ``metadata``, if any).

    Raises:
        FileNotFoundError: ``folder`` is not a folder with a ``config.json``, or lacks
            ``model.safetensors``.
        CheckpointError: one line naming the file and the key: a config from a newer format, a
            missing or malformed key, a network it cannot rebuild, weights that are unreadable,
            missing or extra tensors, tensors of another shape, NaN or infinity.

    Example:
        >>> import tempfile
        >>> net = ncsn.nets.RefineNet(channels=1, ngf=4, sigmas=ncsn.geometric_sigmas(1.0, 0.01, 5))
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     _ = ncsn.save_model(net, tmp, data={"shape": [1, 8, 8]}, metadata={"step": 100})
        ...     loaded = ncsn.sharing.load_model(tmp)
        >>> type(loaded.model).__name__, loaded.data["shape"], len(loaded.sigmas), loaded.step
        ('RefineNet', [1, 8, 8], 5, 100)
    """
    source = Path(folder)
    if not source.is_dir():
        raise FileNotFoundError(f"{source}: no such model folder")
    if not (source / CONFIG).is_file():
        raise FileNotFoundError(f"{source}: not a model folder (no {CONFIG})")
    config = _read_config(source)
    file = source / WEIGHTS
    if not file.is_file():
        raise FileNotFoundError(f"{file}: the model folder has no weights file")
    try:
        model = build_model(config["model"])
    except (ValueError, TypeError) as err:
        raise _config_error(source / CONFIG, f"the key 'model' does not rebuild a network ({err})") from err  # fmt: skip
    model = model.to(DTYPES[config["dtype"]])
    try:
        weights = load_file(str(file))
    except (SafetensorError, OSError, ValueError) as err:
        raise _config_error(file, f"not a readable safetensors file ({err})") from err
    mismatch = state_dict_mismatch(model, weights)
    if mismatch is not None:
        kind = config["model"].get("kind")
        raise _config_error(file, f"{mismatch} (for the {kind} of {CONFIG})")
    for key, value in weights.items():
        if value.is_floating_point() and not bool(value.isfinite().all()):
            raise _config_error(file, f"the tensor {key} holds NaN or infinity")
        own = model.state_dict()[key]
        if value.dtype != own.dtype:
            raise _config_error(file, f"the tensor {key} is {value.dtype}, {CONFIG} says {own.dtype}")  # fmt: skip
    model.load_state_dict(weights)
    sigmas = config.get("sigmas")
    step = config["metadata"].get("step")
    return LoadedModel(
        model.eval(),
        None if sigmas is None else torch.tensor(sigmas, dtype=torch.float32),
        dict(config["data"]),
        dict(config["sampling"]),
        file,
        step if type(step) is int else None,
    )


def pretrained_folder(name: str) -> Path:
    """The model folder of the pretrained model ``name`` inside the installed package.

    Raises:
        ValueError: an unknown ``name`` (the known ones are :data:`PRETRAINED`).
        FileNotFoundError: this copy of the package was built without that model's folder
            (``benchmarks/pretrained.py`` writes it from the quality benchmark's weights).

    Example:
        >>> ncsn.sharing.pretrained_folder("digits").name  # doctest: +SKIP
        'digits'
    """
    if name not in PRETRAINED:
        raise ValueError(f"name must be one of {list(PRETRAINED)}; got name={name!r}")
    folder = _HERE / name
    if not is_model_folder(folder):
        raise FileNotFoundError(
            f"{folder}: the pretrained {name!r} model is not in this copy of ncsn (a source "
            "checkout makes it with benchmarks/pretrained.py, whose docstring gives the commands)"
        )
    return folder
