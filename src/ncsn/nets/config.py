"""Plain-data descriptions of the library's networks, to rebuild a model from a checkpoint.

A configuration is a dict of Python scalars and lists only (so checkpoints load with
``torch.load(weights_only=True)``): ``{"kind": "RefineNet", "channels": 1, "ngf": 64,
"sigmas": [...], ...}``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ncsn.nets.adapters import ScaledByInverseSigma
from ncsn.nets.conditional import ConditionalRefineNet, ConditionalScoreMLP, NoisyClassifierMLP
from ncsn.nets.mlp import ScoreMLP
from ncsn.nets.refinenet import RefineNet, RefineNetBaseline

__all__ = ["build_model", "model_config"]

KINDS = (
    "RefineNet",
    "RefineNetBaseline",
    "ScoreMLP",
    "ScaledByInverseSigma",
    "ConditionalRefineNet",
    "ConditionalScoreMLP",
    "NoisyClassifierMLP",
)


def model_config(model: nn.Module) -> dict[str, Any]:
    """The plain-data configuration that :func:`build_model` turns back into ``model``'s architecture.

    Supports :class:`RefineNet`, :class:`RefineNetBaseline`, :class:`ScoreMLP`,
    :class:`ScaledByInverseSigma` wrapping one of them, the class-conditional
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
    raise TypeError(
        f"model_config supports {', '.join(KINDS)}; got {type(model).__name__}. Store your own "
        "configuration for custom models."
    )


def build_model(config: dict[str, Any], *, generator: torch.Generator | None = None) -> nn.Module:
    """Build a freshly initialised network from its kind and settings: the one builder of the
    library's networks (:mod:`ncsn.presets` and the ``ncsn`` command use it too).

    ``config`` is :func:`model_config`'s output, or written by hand:
    ``{"kind": "RefineNet", "channels": C, "ngf": W, "sigmas": [...]}`` (``logit_transform`` and
    ``norm`` optional), ``{"kind": "RefineNetBaseline", "channels": C, "ngf": W}``,
    ``{"kind": "ScoreMLP", "dim": D, "hidden": H, "sigmas": [...] or None}``,
    ``{"kind": "ScaledByInverseSigma", "module": <one of these>}``, the class-conditional
    ``{"kind": "ConditionalRefineNet", ..., "num_classes": K}`` and
    ``{"kind": "ConditionalScoreMLP", "dim": D, "num_classes": K, "hidden": H, "sigmas": [...]}``,
    or ``{"kind": "NoisyClassifierMLP", "event_shape": [...], "num_classes": K, "hidden": H}``.

    Args:
        config: the network's kind and settings (plain Python values).
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
        raise ValueError(f"config must be a dict with a 'kind' among {KINDS}; got {config!r}")
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
    raise ValueError(f"config kind must be one of {KINDS}; got kind={kind!r}")
