"""One optimiser step on a score loss: the kernel that :class:`~ncsn.training.Trainer` loops over.

:func:`train_step` is what a hand-written loop (plain PyTorch, Lightning, Accelerate) calls: zero
the gradients, compute the loss, backpropagate, optionally clip the total gradient norm, step the
optimizer and move an :class:`~ncsn.training.EMA`. It returns the loss and the gradient norm as
device tensors, so a loop that reads them only every few steps does not wait for the device after
every step.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from ncsn._checks import positive_float
from ncsn._types import ScoreLoss
from ncsn.training.ema import EMA

__all__ = ["StepResult", "train_step"]

# (id(model), id(optimizer)) pairs whose parameters were checked to overlap: the check is a
# Python loop over the parameters, done once per pair rather than at every step. An id reused
# after garbage collection can only skip a check, never raise wrongly.
_CHECKED: set[tuple[int, int]] = set()


class StepResult(NamedTuple):
    """What :func:`train_step` returns.

    Attributes:
        loss: the 0-d detached loss of the step, on the device (``float(result.loss)``
            synchronises with it).
        grad_norm: the 0-d total gradient norm before clipping when ``max_grad_norm`` is given
            (of the unscaled gradients with a ``scaler``), else ``None``.
    """

    loss: Tensor
    grad_norm: Tensor | None


def check_optimizer_params(optimizer: object, model: nn.Module) -> None:
    """``optimizer`` must update at least one of ``model``'s parameters (one built for another
    model's parameters would train nothing, silently)."""
    groups = getattr(optimizer, "param_groups", None)
    if not isinstance(groups, list):
        raise TypeError(
            f"optimizer must be a torch.optim.Optimizer; got {type(optimizer).__name__}"
        )
    mine = {id(p) for p in model.parameters()}
    if not any(id(p) in mine for group in groups for p in group["params"]):
        raise ValueError(
            "optimizer holds none of the model's parameters: it was built for another model "
            "(or a copy of it); build it from model.parameters()"
        )


def _check_value(value: object) -> Tensor:
    """What the loss returned: a 0-d real floating tensor that depends on the parameters
    (metadata only: no device synchronisation)."""
    if not isinstance(value, Tensor):
        raise TypeError(f"loss must return a 0-d torch.Tensor; got {type(value).__name__}")
    if not torch.is_floating_point(value):
        raise TypeError(f"loss must return a real floating-point tensor; got dtype {value.dtype}")
    if value.ndim != 0:
        raise ValueError(
            f"loss must return a 0-d tensor (the batch mean); got shape {tuple(value.shape)}"
        )
    if not value.requires_grad:
        raise ValueError(
            "loss returned a tensor that does not depend on the model's parameters (no "
            "grad_fn); was it computed under torch.no_grad(), or with a model that detaches?"
        )
    return value


def train_step(
    model: nn.Module,
    loss: ScoreLoss,
    optimizer: torch.optim.Optimizer,
    x: Tensor,
    *,
    generator: torch.Generator | None = None,
    max_grad_norm: float | None = None,
    ema: EMA | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> StepResult:
    r"""One optimiser step of ``loss`` on the batch ``x``.

    In order: ``optimizer.zero_grad(set_to_none=True)``; :math:`\ell = \mathrm{loss}(s_\theta, x)`;
    backpropagate :math:`\ell` (``scaler.scale(ℓ)`` with a scaler); with ``max_grad_norm``,
    rescale the gradients so that :math:`\lVert\nabla_\theta \ell\rVert_2 \le`
    ``max_grad_norm`` (:func:`torch.nn.utils.clip_grad_norm_`, after ``scaler.unscale_``);
    ``optimizer.step()`` (``scaler.step(optimizer)`` and ``scaler.update()``); then
    ``ema.update(model)``.

    No host synchronisation without a ``scaler`` (the results stay on the device), so on an
    accelerator the next step can be queued while this one runs; a
    :class:`torch.amp.GradScaler` reads its inf/NaN check on the host in ``scaler.step``.

    Args:
        model: the score network ``model(x [B, *event], sigma [B]) -> [B, *event]`` whose
            parameters ``optimizer`` updates; may be wrapped (:func:`ncsn.nets.autocast`,
            :func:`ncsn.nets.compiled`, ``DistributedDataParallel``), the wrapper's parameters
            being the model's.
        loss: a :class:`~ncsn.ScoreLoss`, called as ``loss(model, x, generator=generator)``.
        optimizer: the optimizer of ``model``'s parameters.
        x: the batch ``[B, *event]``.
        generator: the source of the loss's noise (σ levels, perturbations, projections).
        max_grad_norm: clip the total gradient norm to this value.
        ema: an :class:`~ncsn.training.EMA` of ``model`` (its unwrapped module) to update after
            the optimizer step.
        scaler: a :class:`torch.amp.GradScaler` for float16 autocast (bfloat16 needs none).

    Returns:
        A :class:`StepResult` ``(loss, grad_norm)``.

    Raises:
        ValueError: ``max_grad_norm`` not a positive number; an optimizer holding none of
            ``model``'s parameters; a loss value that is not 0-d or has no gradient.
        TypeError: ``model`` not an :class:`torch.nn.Module`, ``loss`` not callable, an
            ``optimizer``, ``ema`` or ``scaler`` of the wrong type, a loss value that is not a
            real floating tensor.

    Its checks read no values: a NaN or infinite loss (NaN in ``x``, say) is returned as it
    is, after an optimizer step with NaN gradients; a loop checks ``result.loss`` when it
    reads it back, as the :class:`~ncsn.training.Trainer` does
    (:class:`~ncsn.training.NonFiniteLossError`).

    Example:
        >>> schedule = ncsn.GeometricSchedule(5.0, 0.1, 5)
        >>> net = ncsn.nets.ScoreMLP(2, 16, sigmas=schedule.sigmas)
        >>> dsm = ncsn.losses.DenoisingScoreMatching(schedule)
        >>> optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
        >>> g = torch.Generator().manual_seed(0)
        >>> for _ in range(3):
        ...     x = ncsn.toy.paper_mixture().sample(64, generator=g)
        ...     result = ncsn.training.train_step(net, dsm, optimizer, x, generator=g)
        >>> result.loss.shape
        torch.Size([])
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    if not callable(loss):
        raise TypeError(f"loss must be a callable ScoreLoss; got {loss!r}")
    if not (
        callable(getattr(optimizer, "zero_grad", None))
        and callable(getattr(optimizer, "step", None))
    ):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer; got {optimizer!r}")
    if ema is not None and not isinstance(ema, EMA):
        raise TypeError(f"ema must be an ncsn.training.EMA or None; got {ema!r}")
    if scaler is not None and not isinstance(scaler, torch.amp.GradScaler):
        raise TypeError(f"scaler must be a torch.amp.GradScaler or None; got {scaler!r}")
    if max_grad_norm is not None:
        max_grad_norm = positive_float(max_grad_norm, "max_grad_norm")
    if (id(model), id(optimizer)) not in _CHECKED:
        check_optimizer_params(optimizer, model)
        _CHECKED.add((id(model), id(optimizer)))
    optimizer.zero_grad(set_to_none=True)
    value = _check_value(loss(model, x, generator=generator))
    torch.autograd.backward(value if scaler is None else scaler.scale(value))
    grad_norm = None
    if max_grad_norm is not None:
        if scaler is not None:
            scaler.unscale_(optimizer)
        grad_norm = nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    if scaler is None:
        optimizer.step()
    else:
        scaler.step(optimizer)
        scaler.update()
    if ema is not None:
        ema.update(model)
    return StepResult(value.detach(), grad_norm)
