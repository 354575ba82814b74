"""Argument checks and small tensor helpers shared by every module (private)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Generic, overload

import numpy as np
import torch
from torch import Tensor
from typing_extensions import TypeVar

from ncsn._types import ScoreModel

__all__: list[str] = []

Out = TypeVar("Out")
In = TypeVar("In", default=Out)


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


_REQUIRED = _Required()


class Checked(Generic[Out, In]):
    """A field of a frozen dataclass whose value is checked, and normalised, as it is set.

    ``step_size: Checked[float] = Checked(positive_float)`` makes the generated ``__init__`` store
    ``positive_float(value, "step_size")``: the check names the argument, and the stored value is
    the normalised one (a Python float for a numpy scalar, a :class:`~ncsn.schedules.SigmaGrid`
    for a tensor of levels), so that equal settings compare and hash equal. This is the
    descriptor-typed field of :mod:`dataclasses`; the class needs no ``object.__setattr__``.
    ``Checked[Out, In]`` takes ``In`` and stores ``Out`` (``In`` defaults to ``Out``).

    Args:
        check: ``check(value, name) -> normalised value``, raising ``TypeError``/``ValueError``.
        default: the field's default (checked too); without one the field is required.
    """

    def __init__(
        self, check: Callable[[In, str], Out], *, default: In | _Required = _REQUIRED
    ) -> None:
        self.check = check
        self.default = default
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> In: ...

    @overload
    def __get__(self, obj: object, owner: type | None = None) -> Out: ...

    def __get__(self, obj: object | None, owner: type | None = None) -> In | Out:
        if obj is None:  # the class attribute: what dataclasses reads as the field's default
            if isinstance(self.default, _Required):
                raise AttributeError(f"{self.name} has no default")
            return self.default
        value: Out = obj.__dict__[self.name]
        return value

    def __set__(self, obj: object, value: In) -> None:
        obj.__dict__[self.name] = self.check(value, self.name)


class CheckpointError(ValueError):
    """A checkpoint file exists but cannot be used: not a checkpoint, truncated, corrupt, refused by
    safe loading (a pickle that would execute code), or holding keys or shapes that do not fit.

    The message names the path and what was wrong. A path that does not exist raises
    :class:`FileNotFoundError` instead. Raised by :func:`ncsn.nets.load_official_checkpoint` and
    :func:`ncsn.training.load_checkpoint` alike (it is one class, exported as
    ``ncsn.CheckpointError``).
    """


def as_sigmas(sigmas: Tensor | Sequence[float], name: str = "sigmas") -> Tensor:
    """Validate a noise schedule: 1-D, at least one level, finite, positive, strictly decreasing."""
    if not isinstance(sigmas, Tensor):
        try:
            sigmas = torch.as_tensor(sigmas, dtype=torch.get_default_dtype())
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"{name} must be a 1-D tensor of floats; got {sigmas!r}") from err
    if not has_values(sigmas):
        raise ValueError(f"{name} must hold values; got a tensor on the meta device")
    if not torch.is_floating_point(sigmas):
        raise TypeError(f"{name} must be a floating-point tensor; got dtype {sigmas.dtype}")
    if sigmas.ndim != 1:
        raise ValueError(f"{name} must be 1-D; got shape {tuple(sigmas.shape)}")
    if sigmas.numel() < 1:
        raise ValueError(f"{name} must hold at least one level; got an empty tensor")
    values = sigmas.detach().cpu()
    if not bool(torch.isfinite(values).all()):
        raise ValueError(f"{name} must be finite; got {values.tolist()}")
    if not bool((values > 0).all()):
        raise ValueError(f"{name} must be positive; got {values.tolist()}")
    if values.numel() > 1 and not bool((values[1:] < values[:-1]).all()):
        raise ValueError(f"{name} must be strictly decreasing; got {values.tolist()}")
    return sigmas


def _real(value: object, name: str) -> float:
    """A real number (a Python or numpy float or int, not a bool) as a Python float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {name}={value!r}")
    return float(value)


def positive_float(value: float, name: str) -> float:
    """A finite, strictly positive real number (numpy scalars included) as a Python float."""
    number = _real(value, name)
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{name} must be positive and finite; got {name}={value!r}")
    return number


def finite_float(value: float, name: str) -> float:
    """A finite real number (numpy scalars included) as a Python float."""
    number = _real(value, name)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite; got {name}={value!r}")
    return number


def non_negative_float(value: float, name: str) -> float:
    """A finite real number ``>= 0`` (numpy scalars included) as a Python float."""
    number = finite_float(value, name)
    if number < 0:
        raise ValueError(f"{name} must be non-negative; got {name}={value!r}")
    return number


def positive_int(value: int, name: str) -> int:
    """An integer ``>= 1`` (a Python or numpy integer, not a bool) as a Python int."""
    number: object = value  # typed int for callers; checked here for any object
    if isinstance(number, bool) or not isinstance(number, numbers.Integral):
        raise TypeError(f"{name} must be an int; got {name}={value!r}")
    if number < 1:
        raise ValueError(f"{name} must be >= 1; got {name}={value}")
    return int(number)


def non_negative_int(value: int, name: str) -> int:
    """An integer ``>= 0`` (a Python or numpy integer, not a bool) as a Python int."""
    number: object = value
    if isinstance(number, bool) or not isinstance(number, numbers.Integral):
        raise TypeError(f"{name} must be an int; got {name}={value!r}")
    if number < 0:
        raise ValueError(f"{name} must be >= 0; got {name}={value}")
    return int(number)


def has_values(t: Tensor) -> bool:
    """Whether a tensor's values can be read (a ``meta`` tensor has a shape but no values)."""
    return t.device.type != "meta"


def check_finite(t: Tensor, name: str) -> None:
    """``t`` must be finite (a ``meta`` tensor has no values to check).

    Reading the values synchronises with an accelerator: for entry points that check their
    arguments once (the loss kernels, the samplers' starts), never for a per-step hot path.
    """
    if not has_values(t):
        return
    finite = torch.isfinite(t.detach())
    if not bool(finite.all()):
        bad = int((~finite).sum())
        first = tuple(int(i) for i in (~finite).nonzero()[0].tolist())
        value = t.detach()[first].item() if first else t.detach().item()
        raise ValueError(
            f"{name} must be finite; got {bad} NaN or infinite value(s) in {name} of shape "
            f"{tuple(t.shape)}, the first {name}[{', '.join(map(str, first))}]={value}"
        )


def to_device_of(t: Tensor, x: Tensor, name: str, xname: str = "x") -> Tensor:
    """``t`` moved to ``x``'s device (a no-op when it is there already); a move that cannot be
    made (e.g. out of a ``meta`` tensor) is a ``ValueError`` naming both devices."""
    if same_device(t.device, x.device):
        return t
    try:
        return t.to(x.device)
    except (NotImplementedError, RuntimeError) as err:
        raise ValueError(
            f"{name} is on device {t.device} but {xname} is on device {x.device}; "
            f"move {name} to {x.device}"
        ) from err


def check_same_device(device: torch.device, x: Tensor, owner: str, xname: str = "x") -> None:
    """``x`` must be on the device of ``owner``'s parameters: no implicit move."""
    if not same_device(x.device, device):
        raise ValueError(
            f"{xname} is on device {x.device} but the {owner} parameters are on device "
            f"{device}; move one of them (e.g. net.to({str(x.device)!r}))"
        )


def check_sigma_values(sigma: Tensor, *, allow_zero: bool, name: str = "sigma") -> None:
    """σ values must be finite and positive (or non-negative with ``allow_zero``).

    Reading the values synchronises with the device: call this in kernels, not in loops whose σ
    come from a schedule validated once. A ``meta`` tensor has no values to check.
    """
    if not has_values(sigma):
        return
    values = sigma.detach()
    bad = ~torch.isfinite(values) | ((values < 0) if allow_zero else (values <= 0))
    if bool(bad.any()):
        what = "non-negative" if allow_zero else "positive"
        if values.numel() <= 16:
            shown = f"{name}={values.cpu().tolist()}"
        else:
            shown = f"{name} holding {values[bad][:8].cpu().tolist()} (first invalid values)"
        raise ValueError(f"{name} must be {what} and finite; got {shown}")


def check_batch(x: Tensor, name: str = "x") -> None:
    """``x`` must be a floating tensor with a batch dimension ``[B, *event]``."""
    check_float_tensor(x, name)
    if x.ndim < 1:
        raise ValueError(f"{name} must have a batch dimension [B, *event]; got a 0-d tensor")


def check_float_tensor(x: object, name: str) -> None:
    """``x`` must be a floating-point tensor (of any shape)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    if not torch.is_floating_point(x):
        raise TypeError(f"{name} must be a floating-point tensor; got dtype {x.dtype}")


def check_nonempty(x: Tensor, name: str = "x") -> None:
    """The one rule for empty batches everywhere (samplers, losses, nets, metrics): an error.

    An empty batch has no loss to average, no chain to run, no statistics to report; refusing
    it at the top names the problem instead of a reshape error deep inside torch.
    """
    if x.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one example; got shape {tuple(x.shape)}")


def check_bool(value: object, name: str) -> bool:
    """A Python or numpy bool (not a string, whose truth value is almost never what was meant)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool; got {name}={value!r}")
    return bool(value)


def check_callable(value: object, name: str, what: str = "a callable score model") -> None:
    """A score model (or anything called like one) must be callable."""
    if not callable(value):
        raise TypeError(f"{name} must be {what}; got {value!r}")


def check_optional_callable(value: object, name: str) -> None:
    """``callback=``, ``hook=``, ``prior=``: a callable or None."""
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be callable or None; got {name}={value!r}")


def same_device(a: torch.device, b: torch.device) -> bool:
    """Whether two devices are the same one, the device index included.

    A CUDA device without an index means the current CUDA device (``torch.Generator("cuda")``
    reports ``cuda`` without an index and serves the current device). On other device types
    (``cpu``, ``meta``) a missing index matches any.
    """
    if a.type != b.type:
        return False
    # torch's stubs type the index as int; it is None for a device given without one.
    ia: int | None = a.index
    ib: int | None = b.index
    if ia is None and ib is None:
        return True
    if ia is not None and ib is not None:
        return ia == ib
    if a.type == "cuda":
        return (ia if ia is not None else ib) == torch.cuda.current_device()
    return True


def check_generator_type(generator: object) -> None:
    """``generator`` must be a ``torch.Generator`` or None (not a seed, not a numpy Generator)."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None; got {generator!r}")


def check_generator(generator: torch.Generator | None, x: Tensor, name: str = "x") -> None:
    """A generator must be a ``torch.Generator`` (or None) on the device (type and index) of the
    tensors it draws for."""
    check_generator_type(generator)
    if generator is None:
        return
    if not same_device(generator.device, x.device):
        raise ValueError(
            f"generator is on device {generator.device} but {name} is on device {x.device}; "
            f"create the generator with torch.Generator(device={str(x.device)!r})"
        )


def check_output(out: Tensor, x: Tensor, what: str = "model") -> None:
    """A score model must return a real floating tensor of the input's shape on its device
    (metadata only: no values are read)."""
    if not isinstance(out, Tensor):
        raise TypeError(f"{what} must return a torch.Tensor; got {type(out).__name__}")
    if not torch.is_floating_point(out):
        raise TypeError(
            f"{what} must return a real floating-point tensor; got dtype {out.dtype} for an "
            f"input of dtype {x.dtype}"
        )
    if not same_device(out.device, x.device):
        raise ValueError(
            f"{what} returned a tensor on device {out.device} but its input x is on device "
            f"{x.device}"
        )
    if out.shape != x.shape:
        raise ValueError(
            f"{what} output shape {tuple(out.shape)} differs from its input shape {tuple(x.shape)}"
        )


def call_model(model: ScoreModel, x: Tensor, sigma: Tensor) -> Tensor:
    """Call a score model and check the output shape (naming both shapes on mismatch)."""
    out = model(x, sigma)
    check_output(out, x)
    return out


def as_sigma_tensor(
    sigma: Tensor | float, x: Tensor, name: str = "sigma", *, dtype: torch.dtype | None = None
) -> Tensor:
    """σ (a number, a sequence or a tensor) as a tensor on ``x``'s device, in ``dtype`` (default
    ``x``'s); anything else is a ``TypeError`` naming it."""
    if isinstance(sigma, Tensor):
        if sigma.dtype == torch.bool or sigma.is_complex():
            raise TypeError(f"{name} must hold real numbers; got dtype {sigma.dtype}")
    elif isinstance(sigma, (bool, str, bytes)) or not isinstance(
        sigma, (numbers.Real, Sequence, np.ndarray)
    ):
        raise TypeError(f"{name} must be a real number or a tensor of them; got {name}={sigma!r}")
    if isinstance(sigma, Tensor):
        sigma = to_device_of(sigma, x, name)
    try:
        return torch.as_tensor(sigma, device=x.device, dtype=x.dtype if dtype is None else dtype)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(
            f"{name} must be a real number or a tensor of them; got {name}={sigma!r}"
        ) from err


def sigma_vector(
    sigma: Tensor | float, x: Tensor, *, allow_zero: bool = True, name: str = "sigma"
) -> Tensor:
    """σ as ``[B]`` on x's device and dtype: the one rule for a per-example σ, everywhere.

    A Python number is checked (finite, ≥ 0, or > 0 without ``allow_zero``) in Python and filled
    in on the device; a 0-d tensor is broadcast to ``[B]``, a ``[B]`` tensor kept, any other shape
    refused. A tensor is moved to x's device and dtype and its values are checked only where
    reading them is free (on the CPU), so that a loop on an accelerator never waits for the
    device: the configured samplers pass Python numbers (levels validated once, at
    construction), and the σ-dividing network adapters (:class:`~ncsn.nets.ScaledByInverseSigma`
    ...) follow the same rule.
    """
    if isinstance(sigma, Tensor):
        if sigma.dtype == torch.bool or sigma.is_complex():
            raise TypeError(f"{name} must hold real numbers; got dtype {sigma.dtype}")
        s = to_device_of(sigma, x, name).to(dtype=x.dtype)
        if s.device.type == "cpu":
            check_sigma_values(s, allow_zero=allow_zero, name=name)
    else:
        value = _real(sigma, name)
        if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
            what = "non-negative" if allow_zero else "positive"
            raise ValueError(f"{name} must be {what} and finite; got {name}={sigma!r}")
        # A fill kernel: no host-to-device copy, so no synchronisation on an accelerator.
        return torch.full((x.shape[0],), value, dtype=x.dtype, device=x.device)
    if s.ndim == 0:
        return s.expand(x.shape[0])
    if s.shape != (x.shape[0],):
        raise ValueError(
            f"{name} must be a scalar or have shape [B]={[x.shape[0]]}; got {tuple(s.shape)}"
        )
    return s


def pad_event(v: Tensor, x: Tensor) -> Tensor:
    """Reshape a ``[B]`` tensor to ``[B, 1, …, 1]`` so it broadcasts over ``x``'s event dims."""
    return v.reshape(v.shape[0], *([1] * (x.ndim - 1)))


def randn_like(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """Standard normal noise of ``x``'s shape, dtype and device from ``generator``, drawn in x's
    logical (row-major) order whatever its memory format, so that a ``channels_last`` chain draws
    the same noise as a contiguous one."""
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)


def sum_event(v: Tensor) -> Tensor:
    """Sum over every dimension but the first: ``[B, *event] -> [B]``."""
    return v.reshape(v.shape[0], -1).sum(dim=1)


def draw_device_dtype(
    generator: torch.Generator | None,
    device: torch.device | str | None,
    dtype: torch.dtype | None,
) -> tuple[torch.device, torch.dtype]:
    """Where and in what dtype a random function draws: ``device``, else the generator's, else the
    CPU; ``dtype``, else torch's default. A generator on another device than ``device`` is refused."""
    check_generator_type(generator)
    dtype = torch.get_default_dtype() if dtype is None else dtype
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point torch.dtype; got dtype={dtype!r}")
    if device is None:
        return (generator.device if generator is not None else torch.device("cpu")), dtype
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device must name a torch device; got device={device!r}") from err
    if generator is not None and not same_device(generator.device, dev):
        raise ValueError(
            f"generator is on device {generator.device} but device={str(dev)!r} was asked for"
        )
    return dev, dtype


def check_label(value: object, num_classes: int, *, null: bool, name: str = "y") -> int | Tensor:
    """Class labels given once, for every call to come: a Python int, or an integer tensor
    (0-d for every example, or ``[B]``), each in ``0 … K − 1`` (``0 … K`` with the null label
    ``K = num_classes`` when ``null``). A tensor's values are read here, once (not per call).
    """
    top = num_classes if null else num_classes - 1
    if isinstance(value, Tensor):
        if value.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
            raise TypeError(f"{name} must be an int or an integer tensor; got dtype {value.dtype}")
        if value.ndim > 1:
            raise ValueError(f"{name} must be 0-d or [B]; got {name}.shape={tuple(value.shape)}")
        if not has_values(value):
            raise ValueError(f"{name} must hold values; got a tensor on the meta device")
        if value.numel() == 0:
            raise ValueError(f"{name} must hold at least one label; got an empty tensor")
        low, high = int(value.min()), int(value.max())
        if low < 0 or high > top:
            raise ValueError(f"{name} must lie in [0, {top}]; got {name}={value.tolist()}")
        return value.long()
    number: object = value
    if isinstance(number, bool) or not isinstance(number, numbers.Integral):
        raise TypeError(f"{name} must be an int or an integer tensor; got {name}={value!r}")
    if not 0 <= int(number) <= top:
        raise ValueError(f"{name} must lie in [0, {top}]; got {name}={value}")
    return int(number)


def batch_labels(labels: int | Tensor, x: Tensor, name: str = "y") -> Tensor:
    """Labels from :func:`check_label` as ``[B]`` int64 on ``x``'s device, for x's batch."""
    if isinstance(labels, int):
        # A fill kernel: no host-to-device copy.
        return torch.full((x.shape[0],), labels, dtype=torch.int64, device=x.device)
    y = to_device_of(labels, x, name)
    if y.ndim == 0:
        return y.expand(x.shape[0])
    if y.shape != (x.shape[0],):
        raise ValueError(
            f"{name} has {y.shape[0]} labels but x holds {x.shape[0]} examples "
            f"(x.shape={tuple(x.shape)}); give one label per example, or an int for all"
        )
    return y
