"""Exponential moving average of a model's weights (NCSNv2's Technique 5)."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ncsn.training.checkpoints import state_dict_mismatch

__all__ = ["EMA", "check_rate"]

_PREFIX = "model."


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


def _drop_prefix(module: nn.Module, state: dict[str, Any], prefix: str, metadata: Any) -> None:
    for key in [k for k in state if k.startswith(prefix + _PREFIX)]:
        state[prefix + key[len(prefix) + len(_PREFIX) :]] = state.pop(key)


def _add_prefix(
    module: nn.Module, state: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
) -> None:
    for key in [k for k in state if k.startswith(prefix) and not k.startswith(prefix + _PREFIX)]:
        state[prefix + _PREFIX + key[len(prefix) :]] = state.pop(key)


class EMA(nn.Module):
    """A frozen copy of a model whose weights track an exponential moving average of the model's.

    After each optimiser step, :meth:`update` applies θ̄ ← rate·θ̄ + (1 − rate)·θ to every
    floating-point parameter and copies the buffers. :attr:`model` is an ordinary module (in eval
    mode, ``requires_grad=False``) for sampling and evaluation; calling the EMA calls it.

    An :class:`torch.nn.Module` itself, so an EMA held by a Lightning module or prepared by
    Accelerate moves with ``.to(...)`` and is saved with its owner. Its ``state_dict`` holds the
    averaged model's own keys (``fc1.weight``, not ``model.fc1.weight``): the layout of the
    ``"ema"`` entry of training checkpoints.

    Args:
        model: the trained module; it is deep-copied once (θ̄₀ = θ₀).
        rate: the decay, in [0, 1) (NCSNv2: 0.999).

    Raises:
        TypeError: ``model`` not a module, ``rate`` not a real number.
        ValueError: ``rate`` outside [0, 1).

    Example:
        >>> net = ncsn.nets.ScoreMLP(2)
        >>> ema = ncsn.training.EMA(net, rate=0.999)
        >>> ema.update(net)                     # after each optimizer.step()
        >>> sampler = ncsn.samplers.Langevin(sigma=0.01, step_size=1e-4, num_steps=10)
        >>> x0 = ncsn.samplers.uniform_init((16, 2), generator=torch.Generator().manual_seed(0))
        >>> sampler(ema, x0, generator=torch.Generator().manual_seed(1)).shape
        torch.Size([16, 2])
        >>> list(ema.state_dict()) == list(net.state_dict())
        True

    References:
        Song & Ermon (2020), "Improved Techniques for Training Score-Based Generative Models", §3.5.
    """

    def __init__(self, model: nn.Module, rate: float = 0.999) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
        rate = check_rate(rate)
        super().__init__()
        self.rate = rate
        self.model: nn.Module = copy.deepcopy(model).eval().requires_grad_(False)
        self._fits: tuple[int, torch.device, torch.device] | None = None  # see update
        # The keys are the average's own (torch leaves these two hooks unannotated).
        self.register_state_dict_post_hook(_drop_prefix)  # type: ignore[no-untyped-call]
        self.register_load_state_dict_pre_hook(_add_prefix)  # type: ignore[no-untyped-call]

    def forward(self, x: Tensor, sigma: Tensor) -> Tensor:
        """The averaged model's output ``[B, *event]`` for ``x`` ``[B, *event]`` and ``sigma`` ``[B]``."""
        out: Tensor = self.model(x, sigma)
        return out

    def train(self, mode: bool = True) -> EMA:
        """Set the EMA's own flag only: the average stays in eval mode (it is never trained)."""
        self.training = mode
        return self

    def _params(self) -> list[Tensor]:
        return [p for p in self.model.parameters() if p.is_floating_point()]

    def _check_fits(self, model: nn.Module, params: Sequence[Tensor], mine: list[Tensor]) -> None:
        """Shapes, dtypes and devices of ``model``'s floating parameters against the average's
        (metadata only; once per model object and pair of devices, not at every step)."""
        if len(params) != len(mine):
            raise ValueError(
                f"model has {len(params)} floating parameters; the EMA tracks {len(mine)}"
            )
        names = [n for n, p in self.model.named_parameters() if p.is_floating_point()]
        for name, own, theirs in zip(names, mine, params, strict=True):
            if own.shape != theirs.shape:
                raise ValueError(
                    f"model does not fit this EMA: parameter {name} has shape "
                    f"{tuple(theirs.shape)}; the EMA tracks {tuple(own.shape)}"
                )
            if own.dtype != theirs.dtype:
                raise TypeError(
                    f"model does not fit this EMA: parameter {name} has dtype {theirs.dtype}; "
                    f"the EMA tracks {own.dtype} (convert the EMA with ema.to(...))"
                )
            if own.device != theirs.device:
                raise ValueError(
                    f"model does not fit this EMA: parameter {name} is on device "
                    f"{theirs.device}; the EMA is on device {own.device} (move one of them)"
                )

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average one step toward ``model``'s current weights (no host synchronisation).

        Args:
            model: the trained module (or a wrapper of it with the same parameters, such as
                ``DistributedDataParallel``).

        Raises:
            TypeError: ``model`` not a module, or with parameters of another dtype.
            ValueError: ``model`` with other parameters (count, shapes) or on another device.
        """
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
        params = [p for p in model.parameters() if p.is_floating_point()]
        mine = self._params()
        key = (id(model), params[0].device, mine[0].device) if params and mine else None
        if key is None or key != self._fits or len(params) != len(mine):
            self._check_fits(model, params, mine)
            self._fits = key
        torch._foreach_lerp_(mine, [p.detach() for p in params], 1.0 - self.rate)
        for own, theirs in zip(self.model.buffers(), model.buffers(), strict=True):
            own.copy_(theirs)

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> Any:
        """Restore averaged weights saved by :meth:`state_dict` (the averaged model's keys).

        Raises:
            TypeError: ``state_dict`` not a mapping.
            ValueError: with ``strict``, keys or shapes that do not fit the averaged model
                (named in one line).
        """
        if strict:
            mismatch = state_dict_mismatch(self.model, state_dict)
            if mismatch is not None:
                raise ValueError(
                    f"state does not fit this EMA's {type(self.model).__name__}: {mismatch}"
                )
        return super().load_state_dict(state_dict, strict=strict, assign=assign)
