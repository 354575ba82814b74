"""Model wrappers for faster score-model calls, shared by every sampler and the Trainer.

Each wrapper is an :class:`torch.nn.Module` that holds the wrapped model as ``.model`` (so its
parameters, ``train()``/``eval()`` and devices follow it) and is itself a
:class:`~ncsn.ScoreModel`:

* :func:`compiled` calls the model through :func:`torch.compile`;
* :func:`autocast` runs the model under :func:`torch.autocast` in bfloat16 or float16 and casts
  its output back to the input's dtype;
* :func:`cuda_graphed` replays the model call from a CUDA graph (inference only).

They compose (``autocast(compiled(net), torch.bfloat16)``), and :func:`unwrap` returns the model
inside, e.g. to save its ``state_dict``. Nothing falls back silently: a wrapper that cannot work
where it is called raises before any work with a message that says what to do.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import Tensor, nn

from ncsn._checks import check_batch, check_output
from ncsn._types import ScoreModel

__all__ = ["ModelWrapper", "autocast", "compiled", "cuda_graphed", "unwrap"]

_REDUCED_DTYPES = (torch.bfloat16, torch.float16)
_COMPILER_WORKS: set[str] = set()


class ModelWrapper(nn.Module):
    """Base of the wrappers: holds ``model`` (a module or any callable ScoreModel).

    A wrapper whose class sets ``forwards_labels`` passes a
    :class:`~ncsn.ConditionalScoreModel`'s labels through (``wrapper(x, sigma, y)``) and shows
    its ``num_classes``, so that it is a conditional model too (:mod:`ncsn.guidance` takes it).
    """

    forwards_labels = False

    def __init__(self, model: ScoreModel) -> None:
        super().__init__()
        if not callable(model):
            raise TypeError(f"model must be a callable ScoreModel; got {type(model).__name__}")
        self.model = model  # registered as a submodule when it is one
        number = getattr(model, "num_classes", None)
        if self.forwards_labels and number is not None:
            self.num_classes = number

    def extra_repr(self) -> str:
        return ""


def unwrap(model: ScoreModel) -> ScoreModel:
    """The model inside any stack of :class:`ModelWrapper` s (the model itself if unwrapped).

    Example:
        >>> net = ncsn.nets.ScoreMLP(dim=2, hidden=8, sigmas=ncsn.geometric_sigmas(1.0, 0.1, 3))
        >>> ncsn.nets.unwrap(ncsn.nets.autocast(net)) is net
        True
    """
    while isinstance(model, ModelWrapper):
        model = model.model
    return model


def _probe(t: Tensor) -> Tensor:
    return t * 2 + 1


def _require_compiler(device: torch.device) -> None:
    """Raise a clear error, before any work, where torch.compile cannot work on ``device``."""
    if device.type in _COMPILER_WORKS:
        return
    try:
        torch.compile(_probe, fullgraph=True)(torch.ones(4, device=device))
    except Exception as err:  # re-raised below with what to do about it
        reason = " ".join(
            line.strip()
            for line in str(err).splitlines()
            if line.strip() and not line.startswith(("Set TORCHDYNAMO_VERBOSE", "For even more"))
        )
        raise RuntimeError(
            f"compiled(model) needs a working torch.compile for {device.type} tensors (on the "
            "CPU a C++ compiler, on CUDA Triton), but compiling a probe failed with "
            f"{type(err).__name__}: {reason}. Install the compiler or use the model unwrapped."
        ) from err
    _COMPILER_WORKS.add(device.type)


class Compiled(ModelWrapper):
    """See :func:`compiled`."""

    def __init__(self, model: ScoreModel, options: dict[str, Any]) -> None:
        super().__init__(model)
        known = inspect.signature(torch.compile).parameters
        unknown = sorted(set(options) - set(known) - {"model"})
        if unknown or "model" in options:
            raise TypeError(
                f"options must be keyword arguments of torch.compile; got {unknown or ['model']} "
                f"(known: {sorted(set(known) - {'model'})})"
            )
        # Static shapes unless asked otherwise: torch's automatic dynamic shapes (the second shape
        # seen recompiles with symbolic sizes) crashed inductor on RefineNet in torch 2.13 with
        # "InductorError: TypeError: cannot determine truth value of Relational".
        self.options = {"dynamic": False, **options}
        self._compiled: Any = None

    forwards_labels = True

    def forward(self, x: Tensor, sigma: Tensor, *labels: Tensor) -> Tensor:
        check_batch(x)
        if self._compiled is None:
            _require_compiler(x.device)
            self._compiled = torch.compile(self.model, **self.options)
        out: Tensor = self._compiled(x, sigma, *labels)
        return out


def compiled(model: ScoreModel, **options: Any) -> Compiled:
    """``model`` called through :func:`torch.compile` (compiled on the first call, reused while the
    model, shapes and dtypes stay the same; ``options`` go to :func:`torch.compile`).

    The result differs from the eager model only by the compiled kernels' round-off (measured:
    1e-6 relative on a RefineNet score; about 1.9× faster sampling with a small RefineNet on the
    CPU after a first call that compiles for up to a couple of minutes; ``benchmarks/``). Shapes
    are static unless ``dynamic=`` says otherwise: a call with a new batch size or image size
    compiles again (up to :mod:`torch._dynamo`'s recompile limit, 8), because torch 2.13's
    automatic dynamic shapes crashed its inductor backend on RefineNet. It
    needs a working compiler (a C++ compiler on the CPU, Triton on CUDA): where there is none the
    first call raises :class:`RuntimeError` before any work; nothing falls back silently.
    Gradients flow through it, so the Trainer uses it too. A
    :class:`~ncsn.ConditionalScoreModel` stays one: its labels pass through
    (``compiled(net)(x, sigma, y)``) and its ``num_classes`` shows, so :mod:`ncsn.guidance` takes it.

    Args:
        model: a :class:`~ncsn.ScoreModel` or :class:`~ncsn.ConditionalScoreModel` (usually an
            :class:`torch.nn.Module`).
        **options: keyword arguments of :func:`torch.compile` (``mode=``, ``dynamic=`` ...).

    Returns:
        A :class:`ModelWrapper` holding ``model``.

    Raises:
        TypeError: a ``model`` that is not callable, or an option :func:`torch.compile` does
            not take (checked here, not at the first call).

    Example:
        The sampling line needs a C++ compiler, so it is skipped when the examples are tested:

        >>> sigmas = ncsn.geometric_sigmas(1.0, 0.01, 10)
        >>> net = ncsn.nets.ScoreMLP(dim=2, hidden=8, sigmas=sigmas)
        >>> x0 = ncsn.samplers.uniform_init((16, 2))
        >>> fast = ncsn.nets.compiled(net)  # nothing is compiled yet
        >>> x = ncsn.samplers.AnnealedLangevin(sigmas, 2e-5, 100)(fast, x0)  # doctest: +SKIP
    """
    return Compiled(model, options)


class Autocast(ModelWrapper):
    """See :func:`autocast`."""

    def __init__(self, model: ScoreModel, dtype: torch.dtype) -> None:
        super().__init__(model)
        if dtype not in _REDUCED_DTYPES:
            raise ValueError(f"dtype must be torch.bfloat16 or torch.float16; got dtype={dtype!r}")
        self.dtype = dtype

    forwards_labels = True

    def forward(self, x: Tensor, sigma: Tensor, *labels: Tensor) -> Tensor:
        check_batch(x)
        device_type = x.device.type
        if not torch.amp.is_autocast_available(device_type):
            raise ValueError(
                f"autocast(model, {self.dtype}) needs autocast support on {device_type}; torch "
                "has none there"
            )
        # No weight-cast cache: it must be off inside CUDA-graph capture, and it is cleared at
        # every exit of the context anyway.
        with torch.autocast(device_type, dtype=self.dtype, cache_enabled=False):
            out = self.model(x, sigma, *labels)
        check_output(out, x)
        return out.to(x.dtype)  # the caller's tensors keep their own precision


def autocast(model: ScoreModel, dtype: torch.dtype = torch.bfloat16) -> Autocast:
    """``model`` run under :func:`torch.autocast` in ``dtype``, its output cast back to x's dtype.

    A sampler's chain state, noise and update stay in x's dtype: a reduced-precision score
    (bfloat16 keeps about 3 significant digits; measured 2e-2 relative on a RefineNet score,
    1.2–1.35× faster sampling on a CPU with AVX-512 bfloat16), not a reduced-precision chain. In
    training the loss and the parameters stay in float32 too (mixed precision). A
    :class:`~ncsn.ConditionalScoreModel`'s labels pass through, as in :func:`compiled`.

    Args:
        model: a :class:`~ncsn.ScoreModel` or :class:`~ncsn.ConditionalScoreModel`.
        dtype: ``torch.bfloat16`` (default) or ``torch.float16`` (float16 training needs a
            gradient scaler: :class:`torch.amp.GradScaler`).

    Returns:
        A :class:`ModelWrapper` holding ``model``.

    Raises:
        ValueError: another dtype; at call time, a device type without autocast support.

    Example:
        >>> net = ncsn.nets.ScoreMLP(dim=2, hidden=8, sigmas=ncsn.geometric_sigmas(1.0, 0.1, 3))
        >>> fast = ncsn.nets.autocast(net, torch.bfloat16)
        >>> fast(torch.zeros(4, 2), torch.full((4,), 0.1)).dtype
        torch.float32
    """
    return Autocast(model, dtype)


class CudaGraphed(ModelWrapper):
    """See :func:`cuda_graphed`."""

    def __init__(self, model: ScoreModel) -> None:
        super().__init__(model)
        self._graphs: dict[tuple[object, ...], tuple[Any, Tensor, Tensor, Tensor]] = {}

    def forward(self, x: Tensor, sigma: Tensor) -> Tensor:
        check_batch(x)
        if x.device.type != "cuda":
            raise ValueError(
                f"cuda_graphed(model) needs x on a CUDA device; got x on {x.device} "
                f"(torch.cuda.is_available()={torch.cuda.is_available()})"
            )
        if torch.is_grad_enabled() and (x.requires_grad or sigma.requires_grad):
            raise ValueError("cuda_graphed(model) is for inference: call it under torch.no_grad()")
        key = (tuple(x.shape), x.stride(), x.dtype, x.device, tuple(sigma.shape), sigma.dtype)
        entry = self._graphs.get(key)
        if entry is None:
            entry = self._capture(x, sigma)
            self._graphs[key] = entry
        graph, static_x, static_sigma, static_out = entry
        static_x.copy_(x)
        static_sigma.copy_(sigma)
        graph.replay()
        return static_out

    def _capture(self, x: Tensor, sigma: Tensor) -> tuple[Any, Tensor, Tensor, Tensor]:
        static_x, static_sigma = x.clone(), sigma.clone()
        current = torch.cuda.current_stream(x.device)
        side = torch.cuda.Stream(device=x.device)  # type: ignore[no-untyped-call]
        side.wait_stream(current)
        with torch.no_grad(), torch.cuda.stream(side):
            # Warm-up outside the capture: lazy initialisation, compilation, σ lookups.
            check_output(self.model(static_x, static_sigma), x)
        current.wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.no_grad(), torch.cuda.graph(graph):
                static_out = self.model(static_x, static_sigma)
        except RuntimeError as err:
            raise RuntimeError(
                "cuda_graphed(model) could not capture the model call in a CUDA graph (a model "
                "that synchronises with the host, e.g. .item() or data-dependent Python control "
                f"flow, cannot be captured); use the model unwrapped. The capture failed with: {err}"
            ) from err
        return graph, static_x, static_sigma, static_out


def cuda_graphed(model: ScoreModel) -> CudaGraphed:
    """``model`` replayed from a CUDA graph, captured once per input shape, dtype and layout.

    Each call copies x and σ into the graph's static inputs and replays it; the returned tensor
    is the graph's static output, overwritten by the next call (every sampler here consumes it
    before the next call; clone it to keep it). For inference only (under :func:`torch.no_grad`);
    the model must not synchronise with the host after its first call (no ``.item()``, no
    data-dependent Python branches). Designed to give the eager model's outputs (the same kernels
    on the same values); not yet measured on a GPU.

    Args:
        model: a :class:`~ncsn.ScoreModel` on a CUDA device.

    Returns:
        A :class:`ModelWrapper` holding ``model``.

    Raises:
        ValueError: at call time, x off CUDA or a call that needs gradients.
        RuntimeError: the capture failed (the message says why).

    Example:
        The lines that need CUDA are skipped when the examples are tested:

        >>> sigmas = ncsn.geometric_sigmas(1.0, 0.01, 10)
        >>> net = ncsn.nets.ScoreMLP(dim=2, hidden=8, sigmas=sigmas)
        >>> x0 = ncsn.samplers.uniform_init((16, 2))
        >>> fast = ncsn.nets.cuda_graphed(net.cuda().eval())  # doctest: +SKIP
        >>> x = ncsn.samplers.AnnealedLangevin(sigmas, 2e-5, 100)(fast, x0.cuda())  # doctest: +SKIP
    """
    return CudaGraphed(model)
