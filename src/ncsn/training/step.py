"""One optimiser step on a score loss: the kernel of :class:`~ncsn.training.Trainer` and of any
hand-written loop (plain PyTorch, Lightning, Accelerate).

:func:`train_step` zeroes the gradients, runs :func:`accumulate_gradients` over the batch or its
micro-batches, then :func:`apply_update`. The two halves are public because they differ in what
an interruption does: the first changes no state a checkpoint holds, the second does (the
Trainer holds Ctrl-C and SIGTERM around it). Losses and gradient norms come back as device
tensors, so a loop that reads them only every few steps does not wait for the device.
"""

from __future__ import annotations

import contextlib
import functools
import math
import operator
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

from ncsn._checks import positive_float, positive_int
from ncsn._types import ScoreLoss
from ncsn.nets.wrappers import unwrap
from ncsn.training.ema import EMA

__all__ = [
    "MicroBatch",
    "StepResult",
    "TrainStep",
    "accumulate_gradients",
    "apply_update",
    "check_optimizer_params",
    "check_scheduler",
    "cosine_decay",
    "train_step",
]

Backward = Callable[[Tensor], object]
"""What backpropagates a loss: ``torch.autograd.backward``, or e.g. ``accelerator.backward``."""

# (id(model), id(optimizer)) pairs whose parameters were checked to overlap: the check is a
# Python loop over the parameters, done once per pair rather than at every step. An id reused
# after garbage collection can only skip a check, never raise wrongly.
_CHECKED: set[tuple[int, int]] = set()


class MicroBatch(NamedTuple):
    """One part of a batch: the examples ``x`` ``[b, *event]``, the generator of their noise and,
    for class-conditional training, their labels ``y`` ``[b]`` (passed as ``loss(..., y=y)``)."""

    x: Tensor
    generator: torch.Generator | None = None
    y: Tensor | None = None


class TrainStep(NamedTuple):
    """What the :class:`~ncsn.training.Trainer`'s per-step ``callback`` receives.

    Attributes:
        step: optimiser steps done so far (1 after the first update).
        loss: 0-d detached loss of this step on the device: the sum of this process's parts'
            losses divided by ``shards / processes``, so that the mean over processes is the
            batch's loss; reading it (``float(loss)``) synchronises with the device.
        grad_norm: 0-d total gradient norm before clipping when ``max_grad_norm`` is set, else
            ``None``.
    """

    step: int
    loss: Tensor
    grad_norm: Tensor | None


class StepResult(NamedTuple):
    """What :func:`train_step` returns.

    Attributes:
        loss: the 0-d detached loss whose gradient the step applied (the mean of the
            micro-batches' losses, or their ``weight``-ed sum), on the device;
            ``float(result.loss)`` synchronises with it.
        grad_norm: the 0-d total gradient norm before clipping when ``max_grad_norm`` is given
            (of the unscaled gradients with a ``scaler``), else ``None``.
    """

    loss: Tensor
    grad_norm: Tensor | None


def check_optimizer_params(optimizer: object, model: nn.Module) -> None:
    """Raise unless ``optimizer`` updates at least one of ``model``'s parameters (one built for
    another model's parameters would train nothing, silently).

    Raises:
        TypeError: ``optimizer`` without ``param_groups``.
        ValueError: an optimizer holding none of ``model``'s parameters.

    Example:
        >>> net = torch.nn.Linear(2, 2)
        >>> ncsn.training.step.check_optimizer_params(torch.optim.SGD(net.parameters(), lr=0.1), net)
    """
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


def check_scheduler(scheduler: object, optimizer: object) -> LRScheduler | None:
    """``scheduler`` if it is a learning-rate scheduler of ``optimizer`` that steps without a
    metric, or ``None``; raise otherwise (a scheduler of another optimizer would change nothing,
    silently).

    Raises:
        TypeError: not a ``torch.optim.lr_scheduler.LRScheduler``, or one that needs a metric
            (``ReduceLROnPlateau``: step it from a callback).
        ValueError: a scheduler without the ``optimizer`` it was built on, or of another one.

    Example:
        >>> net = torch.nn.Linear(2, 2)
        >>> optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
        >>> cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=100)
        >>> ncsn.training.step.check_scheduler(cosine, optimizer) is cosine
        True
    """
    if scheduler is None:
        return None
    plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    if plateau or not isinstance(scheduler, LRScheduler):
        what = "ReduceLROnPlateau steps on a metric" if plateau else type(scheduler).__name__
        raise TypeError(
            "scheduler must be a torch.optim.lr_scheduler.LRScheduler that steps once per "
            f"optimiser step; got {what} (a scheduler on a metric: step it in callback=)"
        )
    if optimizer is None:
        raise ValueError(
            f"scheduler {type(scheduler).__name__} needs optimizer=, the optimizer it was built "
            "on (the default Adam is built after it)"
        )
    if scheduler.optimizer is not optimizer:
        raise ValueError(
            f"scheduler {type(scheduler).__name__} was built on another optimizer than "
            "optimizer=; build it on the one the Trainer is given"
        )
    return scheduler


def cosine_decay(optimizer: torch.optim.Optimizer, steps: int) -> LambdaLR:
    r"""A scheduler that lowers ``optimizer``'s step size along a half cosine to 0 at ``steps``.

    Update :math:`k = 1, 2, \dots` takes the step size
    :math:`\eta_k = \eta \cdot \tfrac12\bigl(1 + \cos(\pi \min(k - 1, S) / S)\bigr)`, with
    :math:`\eta` the optimizer's ``lr`` and :math:`S` = ``steps``: the full ``lr`` first, 0 from
    update :math:`S + 1` on. Each step size is a function of the update's number alone, so a
    restored run (the scheduler's state is in every checkpoint) goes on along the same curve.
    Give it to :class:`~ncsn.training.Trainer` as ``scheduler=``.

    Raises:
        ValueError: ``steps`` not a positive int.

    Example:
        >>> net = torch.nn.Linear(2, 2)
        >>> optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
        >>> cosine = ncsn.training.cosine_decay(optimizer, steps=4)
        >>> lrs = []
        >>> for _ in range(5):
        ...     lrs.append(round(optimizer.param_groups[0]["lr"], 6))
        ...     optimizer.step()
        ...     cosine.step()
        >>> lrs
        [0.001, 0.000854, 0.0005, 0.000146, 0.0]
    """
    steps = positive_int(steps, "steps")

    def factor(done: int) -> float:  # ``done`` updates made: the factor of update done + 1
        return 0.5 * (1.0 + math.cos(math.pi * (min(done, steps) / steps)))

    return LambdaLR(optimizer, factor)


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


def _micro_batches(parts: object) -> list[MicroBatch]:
    if isinstance(parts, (str, bytes)) or not isinstance(parts, Sequence) or not parts:
        raise TypeError(
            "parts must be a non-empty sequence of MicroBatch(x, generator) pairs; got "
            f"{type(parts).__name__}"
        )
    out = []
    for i, part in enumerate(parts):
        if not (isinstance(part, tuple) and len(part) in (2, 3) and isinstance(part[0], Tensor)):
            raise TypeError(f"parts[{i}] must be a MicroBatch(x, generator); got {part!r}")
        if part[1] is not None and not isinstance(part[1], torch.Generator):
            raise TypeError(f"parts[{i}].generator must be a torch.Generator or None")
        if len(part) == 3 and part[2] is not None and not isinstance(part[2], Tensor):
            raise TypeError(f"parts[{i}].y must be a tensor of labels or None")
        out.append(MicroBatch(*part))
    return out


def _check_scaler(scaler: object) -> None:
    if scaler is not None and not isinstance(scaler, torch.amp.GradScaler):
        raise TypeError(f"scaler must be a torch.amp.GradScaler or None; got {scaler!r}")


def accumulate_gradients(
    model: nn.Module,
    loss: ScoreLoss,
    parts: Sequence[MicroBatch],
    *,
    weight: float | None = None,
    scaler: torch.amp.GradScaler | None = None,
    backward: Backward | None = None,
) -> Tensor:
    r"""Backpropagate ``weight`` × the loss of each micro-batch, adding to the gradients.

    For each part :math:`k` in order, :math:`\ell_k = \mathrm{loss}(s_\theta, x_k)` with the
    part's generator, then ``backward(weight * ℓ_k)`` (``scaler.scale(...)`` of it with a
    scaler). Under ``DistributedDataParallel`` (found inside any :mod:`ncsn.nets` wrapper) all
    but the last part run in ``no_sync()``: the last backward all-reduces the accumulated
    gradients once. The gradients are not zeroed first.

    Args:
        model: the score network, possibly wrapped (:func:`ncsn.nets.autocast`,
            :func:`ncsn.nets.compiled`, ``DistributedDataParallel``).
        loss: a :class:`~ncsn.ScoreLoss`, called as ``loss(model, x, generator=generator)``, or
            ``loss(model, x, y=y, generator=generator)`` for a part with labels.
        parts: the micro-batches, each a :class:`MicroBatch` ``(x [b, *event], generator)``
            (and labels ``y``).
        weight: what each part's loss is multiplied by before its backward; default
            ``1 / len(parts)`` (the gradient of the parts' mean).
        scaler: a :class:`torch.amp.GradScaler` for float16 autocast.
        backward: called with each weighted (and scaled) loss; default
            :func:`torch.autograd.backward`. Pass ``accelerator.backward`` under Accelerate.

    Returns:
        The 0-d detached sum of the parts' unweighted losses, on the device.

    Raises:
        TypeError: a ``parts`` entry that is not a ``MicroBatch``; a ``backward`` or ``loss``
            that is not callable; a loss value that is not a real floating tensor.
        ValueError: ``weight`` not positive; a loss value that is not 0-d or has no gradient.

    Example:
        >>> schedule = ncsn.GeometricSchedule(5.0, 0.1, 5)
        >>> net = ncsn.nets.ScoreMLP(2, 16, sigmas=schedule.sigmas)
        >>> x = ncsn.toy.paper_mixture().sample(64, generator=torch.Generator().manual_seed(0))
        >>> parts = [ncsn.training.MicroBatch(x[:32], torch.Generator().manual_seed(1)),
        ...          ncsn.training.MicroBatch(x[32:], torch.Generator().manual_seed(2))]
        >>> total = ncsn.training.accumulate_gradients(net, ncsn.losses.DenoisingScoreMatching(schedule), parts)
        >>> total.shape, net.fc1.weight.grad is not None
        (torch.Size([]), True)
    """
    if not callable(loss):
        raise TypeError(f"loss must be a callable ScoreLoss; got {loss!r}")
    if backward is not None and not callable(backward):
        raise TypeError(f"backward must be callable or None; got {backward!r}")
    _check_scaler(scaler)
    parts = _micro_batches(parts)
    weight = 1.0 / len(parts) if weight is None else positive_float(weight, "weight")
    backward = torch.autograd.backward if backward is None else backward
    ddp = unwrap(model)
    values = []
    for k, (x, generator, y) in enumerate(parts):
        last = k == len(parts) - 1
        with (
            ddp.no_sync()  # the last part's backward all-reduces what all of them accumulated
            if isinstance(ddp, DistributedDataParallel) and not last
            else contextlib.nullcontext()
        ):
            if y is None:
                value = _check_value(loss(model, x, generator=generator))
            else:  # class-conditional: the losses of ncsn.losses take the labels as y=
                value = _check_value(loss(model, x, y=y, generator=generator))  # type: ignore[call-arg]
            values.append(value.detach())
            if weight != 1.0:
                value = value * weight
            backward(value if scaler is None else scaler.scale(value))
    return functools.reduce(operator.add, values)


def apply_update(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    max_grad_norm: float | None = None,
    ema: EMA | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> Tensor | None:
    r"""Apply the accumulated gradients: clip, step the optimizer, move the EMA.

    In order: with ``max_grad_norm``, rescale the gradients so that
    :math:`\lVert\nabla_\theta\rVert_2 \le` ``max_grad_norm``
    (:func:`torch.nn.utils.clip_grad_norm_`, after ``scaler.unscale_``); ``optimizer.step()``
    (``scaler.step(optimizer)`` and ``scaler.update()``); then ``ema.update(model)``.

    Args:
        model: the model whose gradients ``optimizer`` applies (possibly wrapped).
        optimizer: the optimizer of ``model``'s parameters.
        max_grad_norm: clip the total gradient norm to this value.
        ema: an :class:`~ncsn.training.EMA` of ``model`` to update after the optimizer step.
        scaler: the :class:`torch.amp.GradScaler` that scaled the gradients.

    Returns:
        The 0-d total gradient norm before clipping with ``max_grad_norm``, else ``None``.

    Raises:
        ValueError: ``max_grad_norm`` not positive; an optimizer holding none of ``model``'s
            parameters.
        TypeError: an ``optimizer``, ``ema`` or ``scaler`` of the wrong type.

    Example:
        >>> net = torch.nn.Linear(2, 1)
        >>> optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
        >>> net(torch.ones(1, 2)).sum().backward()
        >>> float(ncsn.training.apply_update(net, optimizer, max_grad_norm=1.0)) > 1.0
        True
    """
    if not (
        callable(getattr(optimizer, "zero_grad", None))
        and callable(getattr(optimizer, "step", None))
    ):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer; got {optimizer!r}")
    if ema is not None and not isinstance(ema, EMA):
        raise TypeError(f"ema must be an ncsn.training.EMA or None; got {ema!r}")
    _check_scaler(scaler)
    if max_grad_norm is not None:
        max_grad_norm = positive_float(max_grad_norm, "max_grad_norm")
    if (id(model), id(optimizer)) not in _CHECKED:
        check_optimizer_params(optimizer, model)
        _CHECKED.add((id(model), id(optimizer)))
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
    return grad_norm


def train_step(
    model: nn.Module,
    loss: ScoreLoss,
    optimizer: torch.optim.Optimizer,
    x: Tensor | Sequence[MicroBatch],
    *,
    y: Tensor | None = None,
    generator: torch.Generator | None = None,
    max_grad_norm: float | None = None,
    ema: EMA | None = None,
    scaler: torch.amp.GradScaler | None = None,
    backward: Backward | None = None,
    weight: float | None = None,
) -> StepResult:
    r"""One optimiser step of ``loss`` on the batch ``x`` (or on its micro-batches).

    In order: ``optimizer.zero_grad(set_to_none=True)``; :func:`accumulate_gradients` over the
    micro-batches (one, ``(x, generator)``, for a tensor ``x``); :func:`apply_update`. A
    batch given as micro-batches takes one step on the mean of their losses (gradient
    accumulation); under ``DistributedDataParallel`` only the last one all-reduces.

    No host synchronisation without a ``scaler`` (the results stay on the device), so on an
    accelerator the next step can be queued while this one runs; a
    :class:`torch.amp.GradScaler` reads its inf/NaN check on the host in ``scaler.step``. Its
    checks read no values: a NaN loss is returned as it is, after an optimizer step with NaN
    gradients; a loop checks ``result.loss`` when it reads it back, as the
    :class:`~ncsn.training.Trainer` does (:class:`~ncsn.training.NonFiniteLossError`).

    Args:
        model: the score network ``model(x [B, *event], sigma [B]) -> [B, *event]`` whose
            parameters ``optimizer`` updates; may be wrapped (:func:`ncsn.nets.autocast`,
            :func:`ncsn.nets.compiled`, ``DistributedDataParallel``).
        loss: a :class:`~ncsn.ScoreLoss`, called as ``loss(model, x, generator=generator)``.
        optimizer: the optimizer of ``model``'s parameters.
        x: the batch ``[B, *event]``, or a sequence of :class:`MicroBatch` ``(x, generator)``
            parts of it, each with the generator of its own noise (and its labels).
        y: the labels ``[B]`` of a tensor ``x`` for class-conditional training, passed as
            ``loss(model, x, y=y, generator=generator)`` (micro-batches carry their own).
        generator: the source of the loss's noise for a tensor ``x`` (with micro-batches each
            carries its own).
        max_grad_norm: clip the total gradient norm to this value.
        ema: an :class:`~ncsn.training.EMA` of ``model`` to update after the optimizer step.
        scaler: a :class:`torch.amp.GradScaler` for float16 autocast (bfloat16 needs none).
        backward: what backpropagates each loss; default :func:`torch.autograd.backward`.
            ``accelerator.backward`` under Accelerate (its scaling and accumulation).
        weight: each micro-batch's loss factor (default ``1 / len(parts)``, their mean).

    Returns:
        A :class:`StepResult` ``(loss, grad_norm)``.

    Raises:
        ValueError: ``max_grad_norm`` or ``weight`` not positive; an optimizer holding none of
            ``model``'s parameters; a loss value that is not 0-d or has no gradient.
        TypeError: ``model`` not an :class:`torch.nn.Module`, ``loss`` not callable, an
            ``optimizer``, ``ema`` or ``scaler`` of the wrong type, micro-batches with a
            ``generator=``, a loss value that is not a real floating tensor.

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

        Gradient accumulation over two micro-batches of 32, each with its own generator:

        >>> parts = [ncsn.training.MicroBatch(x[:32], g), ncsn.training.MicroBatch(x[32:], g)]
        >>> result = ncsn.training.train_step(net, dsm, optimizer, parts)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    if isinstance(x, Tensor):
        parts = [MicroBatch(x, generator, y)]
    elif generator is not None:
        raise TypeError(
            "generator= goes with a tensor x; each MicroBatch of x carries its own generator"
        )
    elif y is not None:
        raise TypeError("y= goes with a tensor x; each MicroBatch of x carries its own labels")
    else:
        parts = _micro_batches(x)
    if not callable(loss):
        raise TypeError(f"loss must be a callable ScoreLoss; got {loss!r}")
    if max_grad_norm is not None:
        max_grad_norm = positive_float(max_grad_norm, "max_grad_norm")
    weight = 1.0 / len(parts) if weight is None else positive_float(weight, "weight")
    if ema is not None and not isinstance(ema, EMA):
        raise TypeError(f"ema must be an ncsn.training.EMA or None; got {ema!r}")
    _check_scaler(scaler)
    if not callable(getattr(optimizer, "zero_grad", None)):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer; got {optimizer!r}")
    optimizer.zero_grad(set_to_none=True)
    total = accumulate_gradients(
        model, loss, parts, weight=weight, scaler=scaler, backward=backward
    )
    grad_norm = apply_update(model, optimizer, max_grad_norm=max_grad_norm, ema=ema, scaler=scaler)
    return StepResult(total * weight if weight != 1.0 else total, grad_norm)
