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
        ValueError: ``max_grad_norm`` not a positive number.
        TypeError: ``loss`` not callable.

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
    if not callable(loss):
        raise TypeError(f"loss must be a callable ScoreLoss; got {loss!r}")
    if max_grad_norm is not None:
        max_grad_norm = positive_float(max_grad_norm, "max_grad_norm")
    optimizer.zero_grad(set_to_none=True)
    value = loss(model, x, generator=generator)
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
