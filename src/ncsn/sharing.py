"""Models that travel: a model folder holds a trained score network as safetensors weights, a
``config.json`` that rebuilds it with the σ grid and sampler it was made for, and a ``README.md``
model card; the package ships a pretrained digits model in this form.

=====================  ==========================================================================
file                   what it holds
=====================  ==========================================================================
``model.safetensors``  the weights (the ``safetensors`` format: reading it runs no code)
``config.json``        ``format``, ``ncsn_version``, ``model`` (:func:`ncsn.nets.model_config`),
                       ``dtype``, ``sigmas``, ``sampling`` (:func:`ncsn.presets.build_sampler`'s
                       settings), ``data`` (``shape``, ``logit_transform`` ...), ``metadata``
``README.md``          the model card: what the model is, how it was made, how it scored, licence
=====================  ==========================================================================

:func:`save_model` writes a folder, :func:`load_model` (and :func:`ncsn.load`, which takes
folders, runs and checkpoints alike) reads it back bit-exactly, and :func:`pretrained` returns
the models shipped with the package (:data:`PRETRAINED`). A model folder is what the Hugging
Face Hub keeps in a model repository: upload one as it is (``huggingface_hub.upload_folder``)
and :func:`ncsn.load` reads the downloaded copy (``huggingface_hub.snapshot_download``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save
from torch import Tensor, nn

from ncsn._checks import as_sigmas, positive_float
from ncsn._loading import (
    CARD,
    CONFIG,
    DTYPES,
    FORMAT,
    PRETRAINED,
    WEIGHTS,
    LoadedModel,
    hub_folder,
    hub_repo,
    is_model_folder,
    load,
    load_model,
    pretrained_folder,
)
from ncsn._version import __version__
from ncsn.nets.config import model_config
from ncsn.nets.wrappers import unwrap
from ncsn.presets import SAMPLER_OPTIONS, build_sampler

__all__ = [
    "CARD",
    "CONFIG",
    "FORMAT",
    "PRETRAINED",
    "WEIGHTS",
    "export",
    "hub_folder",
    "hub_repo",
    "is_model_folder",
    "load_model",
    "model_card",
    "pretrained",
    "pretrained_folder",
    "push_to_hub",
    "save_model",
]


def _plain(value: object, where: str) -> None:
    """JSON of numbers, strings, booleans, None, lists and string-keyed dicts only: what
    ``config.json`` holds (a tensor or another object would not survive the round trip)."""
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} must be finite; got {value!r}")
        return
    if isinstance(value, (list, tuple)):
        for k, item in enumerate(value):
            _plain(item, f"{where}[{k}]")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where} keys must be strings; got {key!r}")
            _plain(item, f"{where}[{key!r}]")
        return
    raise TypeError(
        f"{where} must hold plain JSON values (numbers, strings, lists, dicts); got "
        f"{type(value).__name__} {value!r}"
    )


def _dtype_name(model: nn.Module) -> str:
    dtypes = {t.dtype for t in model.state_dict().values() if t.is_floating_point()}
    if len(dtypes) > 1:
        names = sorted(str(d).removeprefix("torch.") for d in dtypes)
        raise ValueError(f"model must hold one floating-point dtype; got {names}")
    dtype = dtypes.pop() if dtypes else torch.float32
    name = str(dtype).removeprefix("torch.")
    if name not in DTYPES:
        raise ValueError(f"model dtype must be one of {list(DTYPES)}; got {name}")
    return name


def save_model(
    model: nn.Module,
    folder: str | os.PathLike[str],
    *,
    sigmas: Tensor | Sequence[float] | None = None,
    sampling: Mapping[str, Any] | None = None,
    data: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    card: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``model`` as a model folder: ``model.safetensors``, ``config.json`` and a
    ``README.md`` model card.

    The network is any of :func:`ncsn.nets.model_config`'s kinds (adapters such as
    :class:`~ncsn.nets.ScaledByInverseSigma` included). Wrappers (:func:`~ncsn.nets.compiled`,
    :func:`~ncsn.nets.autocast`, :func:`~ncsn.nets.cuda_graphed`) say how a model runs on one
    machine, not what it is: the folder holds the network inside them (wrap the loaded one
    again). The sampler settings are checked by building the sampler before anything is written.

    Args:
        model: the trained network (usually its EMA copy).
        folder: where to write; created if missing.
        sigmas: ``[L]`` the σ grid to sample on (default: the network's own levels; required for
            ``sampling`` when the network takes any σ).
        sampling: the sampler to sample with, as :func:`ncsn.presets.build_sampler` takes it:
            ``{"sampler": "annealed", "step_size": ..., "steps_per_level": ..., "denoise":
            True}`` (default: none recorded; :meth:`ncsn.LoadedModel.sampler` then builds
            annealed Langevin with NCSNv2's ε); ``"step_size_rule": "ncsnv2"`` says ε follows
            Technique 4 (times ``"step_scale"``, default 1), so that sampling with another T recomputes
            it, as for a training run.
        data: what the model was trained on, e.g. ``{"shape": [1, 8, 8], "logit_transform":
            False, "source": "digits"}`` (``ncsn sample`` needs ``shape``).
        metadata: anything else to keep (plain JSON values): training steps, the recipe, the
            command that made it, scores; the card shows it.
        card: the model card's Markdown (default: written from the other arguments).
        overwrite: replace a model folder already there (default: refuse).

    Returns:
        The folder.

    Raises:
        TypeError: ``model`` is not one of the library's networks, or an argument holds
            something JSON cannot keep.
        ValueError: a bad σ grid or sampler setting (named), a model of mixed dtypes.
        FileExistsError: ``folder`` already holds a model and ``overwrite`` is false.

    Example:
        >>> import tempfile
        >>> sigmas = ncsn.geometric_sigmas(1.0, 0.01, 10)
        >>> net = ncsn.nets.ScoreMLP(dim=2, hidden=16, sigmas=sigmas)
        >>> sampling = {"sampler": "annealed", "step_size": 2e-5, "steps_per_level": 100}
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     folder = ncsn.save_model(net, f"{tmp}/mlp", sampling=sampling, data={"shape": [2]})
        ...     loaded = ncsn.load(folder)
        ...     sorted(p.name for p in folder.iterdir())
        ['README.md', 'config.json', 'model.safetensors']
        >>> torch.equal(loaded.model.fc1.weight, net.fc1.weight), loaded.sampler().steps_per_level
        (True, 100)
    """
    net = unwrap(model)
    if not isinstance(net, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    config_model = model_config(net)
    own = getattr(getattr(net, "module", net), "sigmas", None)
    grid: Tensor | None = None
    if sigmas is not None:
        grid = as_sigmas(sigmas)
        if isinstance(own, Tensor) and not torch.equal(
            grid.cpu(), own.detach().cpu().to(grid.dtype)
        ):
            raise ValueError(
                f"sigmas must be the network's own {len(own)} levels (it takes no other σ); got "
                f"{len(grid)} levels {grid.tolist()[:3]}..."
            )
    elif isinstance(own, Tensor):
        grid = own.detach().cpu()
    settings = dict(sampling or {})
    if settings:
        if grid is None:
            raise ValueError("sampling needs sigmas: the network keeps no σ grid of its own")
        rule = settings.get("step_size_rule", "ncsnv2")
        if rule != "ncsnv2":
            raise ValueError(f"sampling['step_size_rule'] must be 'ncsnv2'; got {rule!r}")
        if "step_scale" in settings:
            positive_float(settings["step_scale"], "sampling['step_scale']")
        rules = ("sampler", "step_size_rule", "step_scale")
        options = {k: v for k, v in settings.items() if k not in rules}
        build_sampler(settings.get("sampler", "annealed"), grid, **options)
    for name, value in (("sampling", settings), ("data", data), ("metadata", metadata)):
        _plain(value, name)
    if card is not None and not isinstance(card, str):
        raise TypeError(f"card must be a str (Markdown) or None; got {type(card).__name__}")
    config = {
        "format": FORMAT,
        "ncsn_version": __version__,
        "model": config_model,
        "dtype": _dtype_name(net),
        "sigmas": None if grid is None else grid.tolist(),
        "sampling": settings,
        "data": dict(data or {}),
        "metadata": dict(metadata or {}),
    }
    out = Path(folder)
    if (out / CONFIG).exists() and not overwrite:
        raise FileExistsError(
            f"{out / CONFIG} exists: {out} already holds a model (overwrite=True replaces it)"
        )
    out.mkdir(parents=True, exist_ok=True)
    # Contiguous CPU copies: safetensors refuses views that share memory.
    weights = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in net.state_dict().items()}
    # Each file is written beside its place and renamed: a reader never sees half a file.
    # From bytes, so that the file gets the umask's permissions (save_file writes it 0600).
    (out / f".{WEIGHTS}.tmp").write_bytes(save(weights, metadata={"format": "pt"}))
    (out / f".{CONFIG}.tmp").write_text(json.dumps(config, indent=2) + "\n", "utf-8")
    (out / f".{CARD}.tmp").write_text(card if card is not None else model_card(config), "utf-8")
    for name in (WEIGHTS, CONFIG, CARD):
        (out / f".{name}.tmp").replace(out / name)
    return out


def export(
    source: str | os.PathLike[str],
    folder: str | os.PathLike[str],
    *,
    ema: bool = True,
    metadata: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the model of a training run (its newest checkpoint's EMA weights), a checkpoint
    file, or anything else :func:`ncsn.load` reads, as a model folder (``ncsn export``): the
    network, its σ grid, the sampler and data the run recorded, and the step.

    Args:
        source: a run folder, a checkpoint file, an official checkpoint or a model folder.
        folder: the model folder to write.
        ema: the EMA weights (when the run has them) rather than the raw ones.
        metadata: more to keep in ``config.json`` and the card (plain JSON values).
        overwrite: replace a model folder already there.

    Returns:
        The folder.

    Raises:
        FileNotFoundError, CheckpointError: what :func:`ncsn.load` raises for ``source``.
        FileExistsError: ``folder`` already holds a model and ``overwrite`` is false.
        TypeError: a network :func:`ncsn.nets.model_config` does not know.

    Example:
        >>> import tempfile
        >>> x, _ = ncsn.data.load("digits")
        >>> run = ncsn.presets.prepare(x, ncsn.presets.Settings(data="digits", ngf=4))
        >>> state = {"step": 7, "model": run.model.state_dict(), "config": run.config}
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     _ = ncsn.training.save_checkpoint(ncsn.training.checkpoint_path(tmp, 7), state)
        ...     folder = ncsn.sharing.export(tmp, f"{tmp}/model")
        ...     loaded = ncsn.load(folder)
        >>> loaded.step, loaded.data["shape"], loaded.sampler().steps_per_level
        (7, [1, 8, 8], 10)
    """
    loaded = load(source, ema=ema)
    keys = {"sampler", "step_size_rule", "step_scale"}.union(*SAMPLER_OPTIONS.values())
    sampling = {k: v for k, v in loaded.sampling.items() if k in keys}
    recorded: dict[str, Any] = {"exported_from": str(loaded.file)}
    if loaded.step is not None:
        recorded["step"] = loaded.step
    return save_model(
        loaded.model,
        folder,
        sigmas=loaded.sigmas,
        sampling=sampling,
        data=loaded.data,
        metadata=recorded | dict(metadata or {}),
        overwrite=overwrite,
    )


def pretrained(name: str = "digits") -> LoadedModel:
    """A pretrained model shipped with the package, ready to sample: nothing is downloaded.

    ``"digits"``: the best model of the digits quality table (``benchmarks/quality.py``): the
    paper's RefineNet, width 16, trained with NCSNv2's recipe on the 8×8 digits for 8,000 steps
    at batch 128 (EMA weights); its sampler is annealed Langevin with T = 10 and twice
    Technique 4's ε, with the final denoising step. Its model card (``README.md`` in
    :func:`pretrained_folder`) gives the command that made it and its scores.

    Args:
        name: one of :data:`PRETRAINED`.

    Returns:
        A :class:`~ncsn.LoadedModel`: ``.model``, ``.sigmas``, ``.sampler()``.

    Raises:
        ValueError: an unknown ``name``.
        FileNotFoundError: the package was built without that model.

    Example:
        >>> digits = ncsn.pretrained("digits")  # doctest: +SKIP
        >>> x0 = ncsn.samplers.uniform_init((4, 1, 8, 8), generator=torch.Generator().manual_seed(0))
        >>> x = digits.sampler()(digits.model, x0, generator=torch.Generator().manual_seed(0))  # doctest: +SKIP
        >>> x.shape  # doctest: +SKIP
        torch.Size([4, 1, 8, 8])
    """
    return load_model(pretrained_folder(name))


def push_to_hub(
    folder: str | os.PathLike[str],
    repo: str,
    *,
    token: str | None = None,
    private: bool = False,
    commit_message: str | None = None,
) -> str:
    """Upload the model folder ``folder`` to the Hugging Face Hub repository ``repo``
    (``OWNER/NAME``, or ``OWNER/NAME@BRANCH``), creating the repository if it is missing; then
    ``ncsn.load("hf:OWNER/NAME")`` loads it anywhere. The folder is read back first (a folder that
    does not load is not uploaded), and only its weights, config and card are sent.

    Needs ``huggingface_hub`` (the ``hub`` extra) and a token with write access (``token``, else
    ``huggingface-cli login``'s).

    Args:
        folder: a model folder (:func:`save_model`, ``ncsn export``).
        repo: the Hub repository, ``OWNER/NAME[@BRANCH]``.
        token: a Hub token (default: the logged-in one).
        private: create a missing repository as private.
        commit_message: the commit's message (default: names the model and its training step).

    Returns:
        The URL of the commit.

    Raises:
        ValueError: ``repo`` not of the form ``OWNER/NAME[@BRANCH]``.
        FileNotFoundError, CheckpointError: ``folder`` is not a model folder that loads.
        ImportError: ``huggingface_hub`` is not installed.

    Example:
        >>> ncsn.sharing.push_to_hub("my-digits", "me/ncsn-digits")  # doctest: +SKIP
        'https://huggingface.co/me/ncsn-digits/commit/...'
    """
    repo_id, revision = hub_repo(repo)
    loaded = load_model(folder)
    try:
        from huggingface_hub import HfApi
    except ImportError:
        raise ImportError("push_to_hub needs huggingface_hub (pip install 'ncsn[hub]')") from None
    api = HfApi(token=token, library_name="ncsn", library_version=__version__)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    step = f" at step {loaded.step}" if loaded.step is not None else ""
    info = api.upload_folder(
        repo_id=repo_id,
        folder_path=os.fspath(folder),
        revision=revision,
        commit_message=commit_message or f"ncsn model folder: {type(loaded.model).__name__}{step}",
        allow_patterns=[WEIGHTS, CONFIG, CARD],
        repo_type="model",
    )
    return str(getattr(info, "commit_url", info))


def _grid_text(sigmas: Sequence[float] | None) -> str:
    if not sigmas:
        return "none recorded (the network takes any σ)"
    return f"{len(sigmas)} levels, σ from {sigmas[0]:.4g} down to {sigmas[-1]:.4g}"


def model_card(config: Mapping[str, Any]) -> str:
    """The default ``README.md`` of a model folder, from its ``config.json`` contents: a front
    matter the Hugging Face Hub reads, what the network is, its σ grid, sampler and data, the
    ``metadata`` (``description``, ``command``, ``quality`` and any other entry) and how to use
    it.

    Example:
        >>> net = ncsn.nets.ScoreMLP(dim=2, hidden=8, sigmas=[1.0, 0.1])
        >>> card = ncsn.sharing.model_card({"model": ncsn.nets.model_config(net), "sigmas": [1.0, 0.1]})
        >>> card.splitlines()[0], "ScoreMLP" in card
        ('---', True)
    """
    model = config.get("model", {})
    meta = dict(config.get("metadata") or {})
    data = dict(config.get("data") or {})
    sampling = dict(config.get("sampling") or {})
    title = meta.pop("name", None) or f"ncsn {model.get('kind', 'model')}"
    lines = [
        "---",
        "library_name: ncsn",
        f"license: {meta.pop('license', 'mit')}",
        "tags:",
        "- score-based-generative-modeling",
        "- ncsn",
        "---",
        "",
        f"# {title}",
        "",
    ]
    if "description" in meta:
        lines += [str(meta.pop("description")), ""]
    settings = ", ".join(f"{k}={v}" for k, v in model.items() if k not in ("kind", "sigmas"))
    lines += [
        "## Model",
        "",
        f"- network: `{model.get('kind')}` ({settings}), {config.get('dtype', 'float32')}",
        f"- noise levels: {_grid_text(config.get('sigmas'))}",
        "- sampler: "
        + (", ".join(f"{k}={v}" for k, v in sampling.items()) if sampling else "none recorded"),
        "- data: " + (", ".join(f"{k}={v}" for k, v in data.items()) if data else "not recorded"),
        f"- written by ncsn {config.get('ncsn_version', __version__)}, folder format "
        f"{config.get('format', FORMAT)}",
        "",
    ]
    if "command" in meta:
        lines += ["## How it was made", "", "```", str(meta.pop("command")), "```", ""]
    if "quality" in meta:
        lines += ["## Quality", "", str(meta.pop("quality")), ""]
    if meta:
        lines += ["## Metadata", ""]
        lines += [f"- {key}: {value}" for key, value in meta.items()]
        lines += [""]
    lines += [
        "## Use",
        "",
        "```python",
        "import ncsn",
        "",
        'loaded = ncsn.load("path/to/this/folder")',
        'x = loaded.sampler()(loaded.model, ncsn.samplers.uniform_init((16, *loaded.data["shape"])))',
        "```",
        "",
        "or `ncsn sample path/to/this/folder --output samples/`.",
        "",
    ]
    return "\n".join(lines)
