"""Loading the official NCSN checkpoints (ermongroup/ncsn) into :class:`~ncsn.nets.RefineNet`.

The official runner saves ``torch.save([model_state_dict, optimizer_state_dict], path)`` of a
``CondRefineNetDilated`` wrapped in ``nn.DataParallel`` (every key starts with ``module.``).
:class:`~ncsn.nets.RefineNet` uses the same module names, so the weights load without renaming.
Files are always read with ``torch.load(..., weights_only=True)``: a pickle that would run code is
refused, never executed.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path

import torch
from torch import Tensor

from ncsn._checks import CheckpointError, as_sigmas
from ncsn.nets.refinenet import RefineNet
from ncsn.schedules import geometric_sigmas

__all__ = ["CheckpointError", "load_official_checkpoint"]

_PREFIX = "module."
_MAX_LISTED = 20


def _listed(keys: Sequence[str]) -> str:
    shown = list(keys[:_MAX_LISTED])
    more = len(keys) - len(shown)
    return repr(shown) + (f" and {more} more" if more else "")


def _device(map_location: str | torch.device | None) -> torch.device:
    """Where to load the tensors: the CPU by default, else a device this process can use."""
    if map_location is None:
        # The network is built on the CPU; the official files were saved from CUDA and would
        # otherwise need a GPU just to be read.
        return torch.device("cpu")
    if not isinstance(map_location, (str, torch.device)):
        raise TypeError(
            f"map_location must be a device (a str or torch.device) or None; got {map_location!r}"
        )
    try:
        device = torch.device(map_location)
    except RuntimeError as err:
        raise ValueError(f"map_location={map_location!r} is not a device: {err}") from err
    try:
        torch.empty(1, device=device)
    except Exception as err:  # AssertionError, RuntimeError, NotImplementedError, by backend
        raise ValueError(
            f"map_location={map_location!r}: cannot load tensors onto {device} in this process "
            f"({type(err).__name__}: {err}); use map_location='cpu' or an available device"
        ) from err
    return device


def _read(path: Path, map_location: torch.device) -> object:
    if not path.exists():
        raise FileNotFoundError(f"checkpoint file not found: {str(path)!r}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint path {str(path)!r} is not a file")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights only load failed" in str(err).lower():
            raise CheckpointError(
                f"refused to load {str(path)!r}: it contains Python objects that safe loading "
                f"(torch.load(weights_only=True)) does not allow, e.g. code that would run while "
                f"unpickling. Official checkpoints hold only tensors and containers."
            ) from err
        raise CheckpointError(
            f"{str(path)!r} is not a PyTorch checkpoint (or it is corrupted): {err}"
        ) from err
    except Exception as err:  # torch.load raises RuntimeError, EOFError, KeyError, ... on junk
        raise CheckpointError(
            f"{str(path)!r} is not a PyTorch checkpoint (or it is truncated or corrupted): "
            f"{type(err).__name__}: {err}"
        ) from err


def _state_dict(obj: object, path: Path) -> dict[str, Tensor]:
    if isinstance(obj, (list, tuple)):
        if not obj:
            raise CheckpointError(f"{str(path)!r} holds an empty list, not a checkpoint")
        obj = obj[0]  # official format: [model_state_dict, optimizer_state_dict]
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"{str(path)!r} holds a {type(obj).__name__}; expected a state dict or the official "
            f"[model_state_dict, optimizer_state_dict] list"
        )
    bad = [str(k) for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        raise CheckpointError(
            f"{str(path)!r} is not a state dict: entries that are not (str, Tensor): {_listed(bad)}"
        )
    keys = list(obj)
    if keys and all(k.startswith(_PREFIX) for k in keys):
        return {k[len(_PREFIX) :]: v for k, v in obj.items()}
    return dict(obj)


def _shape(sd: Mapping[str, Tensor], key: str, ndim: int, path: Path) -> tuple[int, ...]:
    if key not in sd:
        raise CheckpointError(
            f"{str(path)!r} is not a RefineNet state dict: missing keys {[key]!r} "
            f"(needed to infer channels, ngf and the number of levels)"
        )
    shape = tuple(sd[key].shape)
    if len(shape) != ndim:
        raise CheckpointError(
            f"{str(path)!r}: {key!r} has shape {shape}; expected a {ndim}-D tensor"
        )
    return shape


def load_official_checkpoint(
    path: str | PathLike[str],
    *,
    sigmas: Tensor | Sequence[float] | None = None,
    map_location: str | torch.device | None = None,
) -> RefineNet:
    """Build a :class:`~ncsn.nets.RefineNet` from an official NCSN checkpoint.

    Accepts the official file (``[model_state_dict, optimizer_state_dict]`` with ``module.``-
    prefixed keys, e.g. ``run/logs/cifar10/checkpoint.pth`` from the official ``run.zip``) and
    plain ``state_dict`` files with or without the prefix. ``channels`` and ``ngf`` are read from
    ``begin_conv.weight [ngf, channels, 3, 3]`` and the number of levels L from
    ``normalizer.embed.weight [L, 3·ngf]``. The optimizer state is ignored. The network uses the
    official CondInstanceNorm++ form and the ``2x − 1`` input rescaling (the official configs set
    ``logit_transform: false``).

    Args:
        path: the checkpoint file.
        sigmas: the ``[L]`` noise levels the checkpoint was trained with. Default: the paper's
            schedule ``geometric_sigmas(1.0, 0.01, L)`` (what every official image run used).
        map_location: the device to load the weights onto, where the network then stays
            (e.g. ``"cuda"``). Default: the CPU, whatever device the file was saved from (the
            official checkpoints were saved from CUDA; they load on a CPU-only machine).

    Returns:
        The network with the checkpoint's weights, in the checkpoint's dtype, on the
        ``map_location`` device (default: the CPU).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: the file is not a (complete) PyTorch checkpoint, safe loading refuses it,
            keys are missing or unexpected (both lists are given), or a tensor's shape differs
            from the network's (the key and both shapes are given). A subclass of
            :class:`ValueError`.
        ValueError: ``sigmas`` does not have L levels, or is not a valid schedule;
            ``map_location`` is not a device, or not one this process can use (e.g. ``"cuda"``
            without a GPU); the message says which, and never calls the file corrupt.
        TypeError: ``map_location`` is neither a ``str``, a :class:`torch.device` nor ``None``.

    Example:
        With the official ``run.zip`` extracted into the working directory::

            net = ncsn.nets.load_official_checkpoint("run/logs/cifar10/checkpoint.pth")
            x = torch.rand(8, 3, 32, 32)
            score = net(x, net.sigmas[torch.full((8,), 9)])  # σ_L = 0.01 for every image
    """
    path = Path(path)
    device = _device(map_location)
    sd = _state_dict(_read(path, device), path)
    ngf, channels, kh, kw = _shape(sd, "begin_conv.weight", 4, path)
    levels, width = _shape(sd, "normalizer.embed.weight", 2, path)
    if (kh, kw) != (3, 3) or ngf < 2 or levels < 1:
        raise CheckpointError(
            f"{str(path)!r}: begin_conv.weight has shape {(ngf, channels, kh, kw)} and "
            f"normalizer.embed.weight {(levels, width)}; not a RefineNet (expected "
            f"[ngf >= 2, channels, 3, 3] and [L, 3·ngf])"
        )
    if sigmas is None:
        sigmas = geometric_sigmas(1.0, 0.01, levels)
    else:
        sigmas = as_sigmas(sigmas)
        if sigmas.numel() != levels:
            raise ValueError(
                f"sigmas has {sigmas.numel()} levels but the checkpoint {str(path)!r} was trained "
                f"with L={levels} levels; got sigmas={sigmas.tolist()}"
            )
    sigmas = sigmas.detach().to("cpu")
    with torch.device("meta"):
        net = RefineNet(channels, ngf, sigmas)
    expected = net.state_dict()
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    if missing or unexpected:
        raise CheckpointError(
            f"{str(path)!r} does not match RefineNet(channels={channels}, ngf={ngf}, "
            f"L={levels}): missing keys {_listed(missing)}; unexpected keys {_listed(unexpected)}"
        )
    for key, ref in expected.items():
        if sd[key].shape != ref.shape:
            raise CheckpointError(
                f"{str(path)!r}: shape mismatch for {key!r}: the checkpoint has "
                f"{tuple(sd[key].shape)}, RefineNet(channels={channels}, ngf={ngf}, L={levels}) "
                f"expects {tuple(ref.shape)}"
            )
    net.load_state_dict(sd, assign=True)
    net.lookup.sigmas = sigmas.to(device=sd["begin_conv.weight"].device)
    return net
