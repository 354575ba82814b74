"""Plain-data descriptions of the library's networks, to rebuild a model from a checkpoint.

A configuration is a dict of Python scalars and lists only (so checkpoints load with
``torch.load(weights_only=True)``): ``{"kind": "RefineNet", "channels": 1, "ngf": 64,
"sigmas": [...], ...}``.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ncsn.nets.adapters import (
    DenoiserScore,
    DiffusersScore,
    NoisePredictorScore,
    Preconditioned,
    ScaledByInverseSigma,
)
from ncsn.nets.conditional import ConditionalRefineNet, ConditionalScoreMLP, NoisyClassifierMLP
from ncsn.nets.mlp import ScoreMLP
from ncsn.nets.refinenet import RefineNet, RefineNetBaseline

__all__ = ["build_model", "model_config"]

KINDS = (
    "RefineNet",
    "RefineNetBaseline",
    "ScoreMLP",
    "ScaledByInverseSigma",
    "Preconditioned",
    "ConditionalRefineNet",
    "ConditionalScoreMLP",
    "NoisyClassifierMLP",
)

ADAPTERS = ("DenoiserScore", "NoisePredictorScore", "DiffusersScore")
"""Adapters :func:`model_config` records too: ``{"kind": "DenoiserScore", "module": <a network
above>}`` (``NoisePredictorScore`` alike), and :class:`~ncsn.nets.DiffusersScore` around a
diffusers model, ``{"kind": "DiffusersScore", "network": {"class": "UNet2DModel", "config":
{...}}, "alphas_cumprod": [...] or None, "prediction_type": ...}`` (building it needs diffusers)."""


def model_config(model: nn.Module) -> dict[str, Any]:
    """The plain-data configuration that :func:`build_model` turns back into ``model``'s architecture.

    Supports :class:`RefineNet`, :class:`RefineNetBaseline`, :class:`ScoreMLP`,
    :class:`ScaledByInverseSigma` or :class:`Preconditioned` wrapping one of them, the class-conditional
    :class:`ConditionalRefineNet` and :class:`ConditionalScoreMLP`, and the
    :class:`NoisyClassifierMLP`.

    Example:
        >>> net = ncsn.nets.RefineNet(1, 8, ncsn.geometric_sigmas(1.0, 0.01, 10))
        >>> ncsn.nets.build_model(ncsn.nets.model_config(net)).num_levels
        10

    Raises:
        TypeError: for any other module.
    """
    if isinstance(model, RefineNet):
        return {
            "kind": "RefineNet",
            "channels": model.channels,
            "ngf": model.ngf,
            "sigmas": model.sigmas.tolist(),
            "logit_transform": model.logit_transform,
            "norm": model.norm,
        }
    if isinstance(model, RefineNetBaseline):
        return {
            "kind": "RefineNetBaseline",
            "channels": model.channels,
            "ngf": model.ngf,
            "logit_transform": model.logit_transform,
            "norm": model.norm,
        }
    if isinstance(model, ScoreMLP):
        sigmas = model.sigmas
        return {
            "kind": "ScoreMLP",
            "dim": model.dim,
            "hidden": model.hidden,
            "sigmas": None if sigmas is None else sigmas.tolist(),
        }
    if isinstance(model, ConditionalRefineNet):
        return {
            "kind": "ConditionalRefineNet",
            "channels": model.channels,
            "ngf": model.ngf,
            "sigmas": model.sigmas.tolist(),
            "num_classes": model.num_classes,
            "logit_transform": model.logit_transform,
            "norm": model.norm,
        }
    if isinstance(model, ConditionalScoreMLP):
        return {
            "kind": "ConditionalScoreMLP",
            "dim": model.dim,
            "num_classes": model.num_classes,
            "hidden": model.hidden,
            "sigmas": model.sigmas.tolist(),
        }
    if isinstance(model, NoisyClassifierMLP):
        return {
            "kind": "NoisyClassifierMLP",
            "event_shape": list(model.event_shape),
            "num_classes": model.num_classes,
            "hidden": model.hidden,
        }
    if isinstance(model, ScaledByInverseSigma) and isinstance(model.module, nn.Module):
        return {"kind": "ScaledByInverseSigma", "module": model_config(model.module)}
    if isinstance(model, Preconditioned) and isinstance(model.module, nn.Module):
        return {
            "kind": "Preconditioned",
            "sigma_data": model.sigma_data,
            "module": model_config(model.module),
        }
    if isinstance(model, (DenoiserScore, NoisePredictorScore)) and isinstance(model.module, nn.Module):  # fmt: skip
        return {"kind": type(model).__name__, "module": model_config(model.module)}
    if isinstance(model, DiffusersScore):
        return _diffusers_config(model)
    raise TypeError(
        f"model_config supports {', '.join(KINDS + ADAPTERS)}; got {type(model).__name__}. Store your own "
        "configuration for custom models."
    )


def _diffusers_config(model: DiffusersScore) -> dict[str, Any]:
    network = model.module
    config = getattr(network, "config", None)
    if not (type(network).__module__.startswith("diffusers.") and isinstance(config, Mapping)):
        raise TypeError(
            "model_config supports DiffusersScore around a diffusers model (one with a .config); "
            f"got one around {type(network).__name__}"
        )
    settings = {k: v for k, v in config.items() if not k.startswith("_")}
    abar = model.alphas_cumprod
    return {
        "kind": "DiffusersScore",
        "network": {"class": type(network).__name__, "config": json.loads(json.dumps(settings))},
        "alphas_cumprod": None if abar is None else abar.tolist(),
        "prediction_type": model.prediction_type,
    }


def _diffusers_score(config: dict[str, Any], generator: torch.Generator | None) -> nn.Module:
    if generator is not None:
        raise ValueError(
            "generator: diffusers initialises its networks from the global RNG; build a "
            "DiffusersScore without generator= (loading its weights needs none)"
        )
    network = config["network"]
    diffusers = importlib.import_module("diffusers")  # an optional dependency
    cls = getattr(diffusers, str(network["class"]), None)
    if cls is None or not hasattr(cls, "from_config"):
        raise ValueError(f"diffusers has no model class {network['class']!r}")
    abar = config.get("alphas_cumprod")
    return DiffusersScore(
        cls.from_config(network["config"]),
        None if abar is None else torch.tensor(abar, dtype=torch.float32),
        prediction_type=config.get("prediction_type"),
    )


def build_model(config: dict[str, Any], *, generator: torch.Generator | None = None) -> nn.Module:
    """Build a freshly initialised network from its kind and settings: the one builder of the
    library's networks (:mod:`ncsn.presets` and the ``ncsn`` command use it too).

    ``config`` is :func:`model_config`'s output, or written by hand:
    ``{"kind": "RefineNet", "channels": C, "ngf": W, "sigmas": [...]}`` (``logit_transform`` and
    ``norm`` optional), ``{"kind": "RefineNetBaseline", "channels": C, "ngf": W}``,
    ``{"kind": "ScoreMLP", "dim": D, "hidden": H, "sigmas": [...] or None}``,
    ``{"kind": "ScaledByInverseSigma", "module": <one of these>}``,
    ``{"kind": "Preconditioned", "sigma_data": σ_d, "module": <one of these>}``, the class-conditional
    ``{"kind": "ConditionalRefineNet", ..., "num_classes": K}`` and
    ``{"kind": "ConditionalScoreMLP", "dim": D, "num_classes": K, "hidden": H, "sigmas": [...]}``,
    or ``{"kind": "NoisyClassifierMLP", "event_shape": [...], "num_classes": K, "hidden": H}``.

    Args:
        config: the network's kind and settings (plain Python values), or an adapter of
            :data:`ADAPTERS` around one.
        generator: for the initial weights (default: the global RNG, as any ``nn.Module``).

    Returns:
        The network, in training mode.

    Raises:
        ValueError: ``config`` is not a dict with a known ``kind``, or lacks a field (named).
        TypeError: ``generator`` is not a ``torch.Generator``.

    Example:
        >>> config = {"kind": "ScoreMLP", "dim": 2, "hidden": 16, "sigmas": [1.0, 0.5]}
        >>> a = ncsn.nets.build_model(config, generator=torch.Generator().manual_seed(0))
        >>> b = ncsn.nets.build_model(config, generator=torch.Generator().manual_seed(0))
        >>> torch.equal(a.fc1.weight, b.fc1.weight), a.sigmas.tolist()
        (True, [1.0, 0.5])
    """
    if not isinstance(config, dict) or "kind" not in config:
        raise ValueError(
            f"config must be a dict with a 'kind' among {KINDS + ADAPTERS}; got {config!r}"
        )
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None; got {generator!r}")
    kind = config["kind"]
    try:
        if kind == "RefineNet":
            return RefineNet(
                config["channels"],
                config["ngf"],
                torch.tensor(config["sigmas"], dtype=torch.float32),
                logit_transform=config.get("logit_transform", False),
                norm=config.get("norm", "official"),
                generator=generator,
            )
        if kind == "RefineNetBaseline":
            return RefineNetBaseline(
                config["channels"],
                config["ngf"],
                logit_transform=config.get("logit_transform", False),
                norm=config.get("norm", "official"),
                generator=generator,
            )
        if kind == "ScoreMLP":
            sigmas = config.get("sigmas")
            return ScoreMLP(
                config["dim"], config.get("hidden", 128), sigmas=sigmas, generator=generator
            )
        if kind == "ScaledByInverseSigma":
            return ScaledByInverseSigma(build_model(config["module"], generator=generator))
        if kind == "Preconditioned":
            return Preconditioned(
                build_model(config["module"], generator=generator),
                sigma_data=config["sigma_data"],
            )
        if kind == "DenoiserScore":
            return DenoiserScore(build_model(config["module"], generator=generator))
        if kind == "NoisePredictorScore":
            return NoisePredictorScore(build_model(config["module"], generator=generator))
        if kind == "DiffusersScore":
            return _diffusers_score(config, generator)
        if kind == "ConditionalRefineNet":
            return ConditionalRefineNet(
                config["channels"],
                config["ngf"],
                torch.tensor(config["sigmas"], dtype=torch.float32),
                config["num_classes"],
                logit_transform=config.get("logit_transform", False),
                norm=config.get("norm", "official"),
                generator=generator,
            )
        if kind == "ConditionalScoreMLP":
            return ConditionalScoreMLP(
                config["dim"],
                config["num_classes"],
                config.get("hidden", 128),
                sigmas=config["sigmas"],
                generator=generator,
            )
        if kind == "NoisyClassifierMLP":
            return NoisyClassifierMLP(
                config["event_shape"],
                config["num_classes"],
                config.get("hidden", 256),
                generator=generator,
            )
    except KeyError as err:
        raise ValueError(
            f"config for {kind} is missing the field {err.args[0]!r}: {config!r}"
        ) from err
    raise ValueError(f"config kind must be one of {KINDS + ADAPTERS}; got kind={kind!r}")
