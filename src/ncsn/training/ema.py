"""Exponential moving average of a model's weights (NCSNv2's Technique 5)."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ncsn.training.checkpoints import state_dict_mismatch

__all__ = ["EMA", "check_rate"]


def check_rate(rate: float, name: str = "ema_rate") -> float:
    """``rate`` as a float in [0, 1), or a :class:`TypeError`/:class:`ValueError` naming it.

    Example:
        >>> ncsn.training.ema.check_rate(0.999)
        0.999
    """
    if isinstance(rate, bool) or not isinstance(rate, (int, float)):
        raise TypeError(f"{name} must be a real number; got {rate!r}")
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"{name} must be in [0, 1); got {name}={rate!r}")
    return float(rate)


class EMA:
    """A frozen copy of a model whose weights track an exponential moving average of the model's.

    After each optimiser step, :meth:`update` applies θ̄ ← rate·θ̄ + (1 − rate)·θ to every
    floating-point parameter and copies the buffers. :attr:`model` is an ordinary module (in eval
    mode, ``requires_grad=False``) for sampling and evaluation.

    Args:
        model: the trained module; it is deep-copied once (θ̄₀ = θ₀).
        rate: the decay, in [0, 1) (NCSNv2: 0.999).

    Example:
        >>> net = ncsn.nets.ScoreMLP(2)
        >>> ema = ncsn.training.EMA(net, rate=0.999)
        >>> ema.update(net)                     # after each optimizer.step()
        >>> sampler = ncsn.samplers.Langevin(sigma=0.01, step_size=1e-4, num_steps=10)
        >>> x0 = ncsn.samplers.uniform_init((16, 2), generator=torch.Generator().manual_seed(0))
        >>> sampler(ema.model, x0, generator=torch.Generator().manual_seed(1)).shape
        torch.Size([16, 2])

    References:
        Song & Ermon (2020), "Improved Techniques for Training Score-Based Generative Models", §3.5.
    """

    def __init__(self, model: nn.Module, rate: float = 0.999) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
        self.rate = check_rate(rate)
        self.model: nn.Module = copy.deepcopy(model).eval().requires_grad_(False)
        self._params: list[Tensor] = [p for p in self.model.parameters() if p.is_floating_point()]
        self._fits: int | None = None  # id of the last model checked to fit (see update)

    def _check_fits(self, model: nn.Module, params: Sequence[Tensor]) -> None:
        """Shapes, dtypes and devices of ``model``'s floating parameters against the average's
        (metadata only; once per model object, not at every step)."""
        if len(params) != len(self._params):
            raise ValueError(
                f"model has {len(params)} floating parameters; the EMA tracks {len(self._params)}"
            )
        names = [n for n, p in self.model.named_parameters() if p.is_floating_point()]
        for name, mine, theirs in zip(names, self._params, params, strict=True):
            if mine.shape != theirs.shape:
                raise ValueError(
                    f"model does not fit this EMA: parameter {name} has shape "
                    f"{tuple(theirs.shape)}; the EMA tracks {tuple(mine.shape)}"
                )
            if mine.dtype != theirs.dtype:
                raise TypeError(
                    f"model does not fit this EMA: parameter {name} has dtype {theirs.dtype}; "
                    f"the EMA tracks {mine.dtype} (convert the EMA with ema.model.to(...))"
                )
            if mine.device != theirs.device:
                raise ValueError(
                    f"model does not fit this EMA: parameter {name} is on device "
                    f"{theirs.device}; the EMA is on device {mine.device} (move one of them)"
                )
        self._fits = id(model)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average one step toward ``model``'s current weights (no host synchronisation).

        Raises:
            TypeError: ``model`` not a module, or with parameters of another dtype.
            ValueError: ``model`` with other parameters (count, shapes) or on another device.
        """
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
        params = [p for p in model.parameters() if p.is_floating_point()]
        if self._fits != id(model) or len(params) != len(self._params):
            self._check_fits(model, params)
        torch._foreach_lerp_(self._params, [p.detach() for p in params], 1.0 - self.rate)
        for mine, theirs in zip(self.model.buffers(), model.buffers(), strict=True):
            mine.copy_(theirs)

    def state_dict(self) -> dict[str, Tensor]:
        """The averaged weights (the :attr:`model`'s ``state_dict``)."""
        return self.model.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore averaged weights saved by :meth:`state_dict` (strict).

        Raises:
            TypeError: ``state`` not a mapping.
            ValueError: keys or shapes that do not fit the averaged model (named in one line).
        """
        mismatch = state_dict_mismatch(self.model, state)
        if mismatch is not None:
            raise ValueError(
                f"state does not fit this EMA's {type(self.model).__name__}: {mismatch}"
            )
        self.model.load_state_dict(state)
