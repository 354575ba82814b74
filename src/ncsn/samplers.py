"""Langevin dynamics and annealed Langevin dynamics (Algorithm 1 of Song & Ermon, 2019).

Paper convention throughout: one step at noise level σ with step size α is

    x ← x + (α/2) · s_θ(x, σ) + √α · z,    z ~ N(0, I).

The official image code writes the same step as ``x + step_lr·s + sqrt(2·step_lr)·z``, so its
``step_lr`` is α/2: use ``step_size = 2 * step_lr`` to reproduce it exactly.

In this module: the :class:`StepInfo` record, the pure kernel :func:`langevin_step`, then the
configured samplers :class:`Langevin` and :class:`AnnealedLangevin` (each a :class:`~ncsn.Sampler`),
inpainting (:func:`inpaint`, Algorithm 2) and initialisers.

Speed. A sampler costs L·T model evaluations, so the loop around them is kept at its floor: it runs
under :func:`torch.no_grad` (not :func:`torch.inference_mode`: measured no faster here, and its
tensors could not later enter autograd), updates the chains in place, draws the noise into one
preallocated buffer and computes each level's step size once (``benchmarks/sampling.py``
measures the loop at 0.99–1.05 × the bare model calls). The loop itself reads nothing back from
the device: the sampler synchronises when it checks x for finite values, once before the first
step and once after the last. A model may synchronise on its own: a level-conditioned network
of ``ncsn.nets`` looks its σ up once per level (the lookup is cached for the level's σ tensor);
the exact scores of ``ncsn.toy`` check σ only where that is free, on the CPU. Noise is always drawn in the
logical (row-major) order of ``x``, so a ``torch.channels_last`` chain gives the same samples
as a contiguous one. Opt-in options of both samplers (``compile``, ``cuda_graph``,
``autocast_dtype``; see :class:`AnnealedLangevin`) trade exactness or set-up time for speed.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import Tensor

from ncsn._checks import (
    as_sigmas,
    call_model,
    check_batch,
    check_generator,
    check_output,
    check_sigma_values,
    draw_device_dtype,
    finite_float,
    positive_float,
    positive_int,
    randn_like,
)
from ncsn._types import ScoreModel, StepCallback

__all__ = [
    "AnnealedLangevin",
    "Langevin",
    "StepInfo",
    "gaussian_init",
    "inpaint",
    "inpainting_mask",
    "langevin_step",
    "uniform_init",
]


class StepInfo(NamedTuple):
    """What a sampler's ``callback`` sees after each step.

    Attributes:
        level: index of the noise level (0 = largest σ; always 0 for plain Langevin).
        step: index of the step within the level.
        sigma: σ given to the model at this step.
        step_size: α used at this step.
        x: the iterate after the step ``[B, *event]`` (the sampler's buffer: clone it to keep it).
        score: the model output used by the step ``[B, *event]``.
    """

    level: int
    step: int
    sigma: float
    step_size: float
    x: Tensor
    score: Tensor


def langevin_step(
    model: ScoreModel,
    x: Tensor,
    sigma: Tensor | float,
    step_size: float,
    *,
    generator: torch.Generator | None = None,
    noise: Tensor | None = None,
) -> Tensor:
    """One Langevin step, x + (α/2)·s_θ(x, σ) + √α·z (Eq. 4 of Song & Ermon, 2019).

    A pure function: it returns a new tensor and leaves ``x`` unchanged. No autograd graph is built.

    Args:
        model: a :class:`~ncsn.ScoreModel`.
        x: current iterate ``[B, *event]``.
        sigma: scalar or ``[B]`` σ given to the model (finite, ≥ 0; 0 asks an exact model for
            the data score).
        step_size: α > 0.
        generator: source of z.
        noise: optional z of x's shape (used instead of drawing it; cast to x's dtype and
            device).

    Returns:
        The next iterate ``[B, *event]``, in x's dtype and on x's device.

    Raises:
        ValueError: a negative or non-finite σ, a σ of the wrong shape, a non-positive step size,
            a ``noise`` of another shape than x (checked before the model is called), or a
            model output whose shape differs from x's.

    Example:
        >>> exact = ncsn.toy.paper_mixture().score_model()
        >>> x = ncsn.samplers.uniform_init((4, 2), low=-8, high=8)
        >>> ncsn.samplers.langevin_step(exact, x, 0.0, 0.1).shape
        torch.Size([4, 2])
    """
    check_batch(x)
    check_generator(generator, x)
    step_size = positive_float(step_size, "step_size")
    sig = _sigma_vector(sigma, x)
    if noise is not None:
        if not isinstance(noise, Tensor):
            raise TypeError(f"noise must be a torch.Tensor or None; got {type(noise).__name__}")
        if noise.shape != x.shape:
            raise ValueError(
                f"noise must have the shape of x {tuple(x.shape)}; got {tuple(noise.shape)}"
            )
    with torch.no_grad():
        score = call_model(model, x, sig)
        z = randn_like(x, generator) if noise is None else noise.to(x)
        # Products are rounded before the sums, as in the official code, so that
        # step_size = 2 * step_lr reproduces its update bit for bit.
        return x + score * (step_size / 2) + z * math.sqrt(step_size)


def _sigma_vector(sigma: Tensor | float, x: Tensor) -> Tensor:
    """σ as ``[B]`` on x's device and dtype, checked finite and ≥ 0 (a device sync: kernels only)."""
    s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    check_sigma_values(s, allow_zero=True)
    if s.ndim == 0:
        return s.expand(x.shape[0])
    if s.shape != (x.shape[0],):
        raise ValueError(
            f"sigma must be a scalar or have shape [B]={[x.shape[0]]}; got {tuple(s.shape)}"
        )
    return s


def _check_start(x: Tensor, generator: torch.Generator | None) -> None:
    check_batch(x)
    check_generator(generator, x)
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x (the initial points) contains NaN or infinite values")


def _check_end(x: Tensor, what: str) -> None:
    if not bool(torch.isfinite(x).all()):
        raise FloatingPointError(
            f"{what} produced non-finite values; the step size is probably too large for this model"
        )


def _run_level(
    call: Callable[[Tensor, Tensor], Tensor],
    x: Tensor,
    sigma: Tensor,
    sigma_value: float,
    step_size: float,
    num_steps: int,
    *,
    level: int,
    z: Tensor,
    generator: torch.Generator | None,
    callback: StepCallback | None,
    check: bool,
    known: tuple[Tensor, Tensor] | None = None,
    graph: bool = False,
) -> None:
    """``num_steps`` in-place Langevin steps at one level; the same arithmetic as langevin_step.

    ``call`` is the model (possibly compiled or under autocast; see :func:`_model_call`). ``z`` is
    a contiguous noise buffer of x's shape. With ``known = (mask, y)`` the entries where ``mask``
    is set are re-imposed from ``y`` after every step (Algorithm 2). With ``graph`` one step is
    captured in a CUDA graph and replayed ``num_steps`` times (see :func:`_run_level_graph`).
    """
    if graph:
        _run_level_graph(
            call,
            x,
            sigma,
            sigma_value,
            step_size,
            num_steps,
            level=level,
            z=z,
            generator=generator,
            callback=callback,
            check=check,
            known=known,
        )
        return
    half, root = step_size / 2, math.sqrt(step_size)
    drift = torch.empty_like(x)
    for step in range(num_steps):
        score = call(x, sigma)
        if check and step == 0:
            check_output(score, x)
        torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device, out=z)
        torch.mul(score, half, out=drift)
        x.add_(drift).add_(z.mul_(root))
        if known is not None:
            torch.where(known[0], known[1], x, out=x)
        if callback is not None:
            callback(StepInfo(level, step, sigma_value, step_size, x, score))


def _run_level_graph(
    call: Callable[[Tensor, Tensor], Tensor],
    x: Tensor,
    sigma: Tensor,
    sigma_value: float,
    step_size: float,
    num_steps: int,
    *,
    level: int,
    z: Tensor,
    generator: torch.Generator | None,
    callback: StepCallback | None,
    check: bool,
    known: tuple[Tensor, Tensor] | None,
) -> None:
    """:func:`_run_level` with one step (model call and update) captured in a CUDA graph.

    The noise is drawn eagerly into ``z`` before each replay, from the same generator in the same
    order as the eager loop, and the graph replays the eager loop's kernels on the same buffers,
    so the chain follows the eager path. The model is called once before the capture (on a side
    stream, without touching ``x``) so that lazy initialisation, compilation and a σ-lookup cache
    happen outside the capture. A graph is captured per level (σ and the step size are part of
    it) and released at the end of the level.
    """
    half, root = step_size / 2, math.sqrt(step_size)
    drift = torch.empty_like(x)
    current = torch.cuda.current_stream(x.device)
    side = torch.cuda.Stream(device=x.device)  # type: ignore[no-untyped-call]
    side.wait_stream(current)
    with torch.cuda.stream(side):
        warm = call(x, sigma)
        if check:
            check_output(warm, x)
    current.wait_stream(side)
    del warm

    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            score = call(x, sigma)
            torch.mul(score, half, out=drift)
            x.add_(drift).add_(z.mul_(root))
            if known is not None:
                torch.where(known[0], known[1], x, out=x)
    except RuntimeError as err:
        raise RuntimeError(
            "cuda_graph=True could not capture the model call in a CUDA graph (a model that "
            "synchronises with the host, e.g. .item() or data-dependent Python control flow, "
            f"cannot be captured); use cuda_graph=False. The capture failed with: {err}"
        ) from err
    for step in range(num_steps):
        torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device, out=z)
        graph.replay()
        if callback is not None:
            callback(StepInfo(level, step, sigma_value, step_size, x, score))


_REDUCED_DTYPES = (torch.bfloat16, torch.float16)
_COMPILER_WORKS: set[str] = set()


def _check_options(compile: bool, cuda_graph: bool, autocast_dtype: torch.dtype | None) -> None:
    """Construction-time checks of the performance options."""
    for name, value in (("compile", compile), ("cuda_graph", cuda_graph)):
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be a bool; got {name}={value!r}")
    if autocast_dtype is not None and autocast_dtype not in _REDUCED_DTYPES:
        raise ValueError(
            "autocast_dtype must be None, torch.bfloat16 or torch.float16; "
            f"got autocast_dtype={autocast_dtype!r}"
        )


def _probe(t: Tensor) -> Tensor:
    return t * 2 + 1


def _require_compiler(device: torch.device) -> None:
    """Raise a clear error, before the loop starts, where torch.compile cannot work on ``device``."""
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
            f"compile=True needs a working torch.compile for {device.type} tensors (on the CPU a "
            "C++ compiler, on CUDA Triton), but compiling a probe failed with "
            f"{type(err).__name__}: {reason}. Install the compiler or pass compile=False."
        ) from err
    _COMPILER_WORKS.add(device.type)


def _model_call(
    model: ScoreModel,
    x: Tensor,
    *,
    compile: bool,
    cuda_graph: bool,
    autocast_dtype: torch.dtype | None,
) -> Callable[[Tensor, Tensor], Tensor]:
    """Call-time checks of the options; the model call the loop should use.

    Without options this is ``model`` itself (the plain eager path).
    """
    if cuda_graph and x.device.type != "cuda":
        raise ValueError(
            f"cuda_graph=True needs x on a CUDA device; got x on {x.device} "
            f"(torch.cuda.is_available()={torch.cuda.is_available()})"
        )
    if autocast_dtype is not None and not torch.amp.is_autocast_available(x.device.type):
        raise ValueError(
            f"autocast_dtype={autocast_dtype} needs autocast support on {x.device.type}; "
            "torch has none there"
        )
    call: Callable[[Tensor, Tensor], Tensor] = model
    if compile:
        _require_compiler(x.device)
        call = torch.compile(model)
    if autocast_dtype is None:
        return call
    device_type, dtype, inner = x.device.type, autocast_dtype, call

    def autocast_call(xi: Tensor, sigma: Tensor) -> Tensor:
        # No weight-cast cache: it must be off inside CUDA-graph capture, and it is cleared at
        # every exit of the context anyway.
        with torch.autocast(device_type, dtype=dtype, cache_enabled=False):
            out = inner(xi, sigma)
        check_output(out, xi)
        return out.to(xi.dtype)  # the chain state keeps its own precision

    return autocast_call


@dataclass(frozen=True)
class Langevin:
    """Langevin dynamics at one noise level (Eq. 4 of Song & Ermon, 2019), a :class:`~ncsn.Sampler`.

    ``num_steps`` times: x ← x + (α/2)·s_θ(x, σ) + √α·z.

    Args:
        sigma: σ given to the model at every step (σ ≥ 0; 0 asks an exact model for the data score).
        step_size: α > 0 (paper convention; the official code's ``step_lr`` is α/2).
        num_steps: T ≥ 1.
        compile: compile the model call with :func:`torch.compile` (keyword-only; see
            :class:`AnnealedLangevin`).
        cuda_graph: replay each step from a CUDA graph (keyword-only; CUDA only).
        autocast_dtype: run the model under autocast in this dtype, the chain in x's (keyword-only).

    Example:
        >>> exact = ncsn.toy.paper_mixture().score_model()
        >>> g = torch.Generator().manual_seed(0)
        >>> x0 = ncsn.samplers.uniform_init((1280, 2), low=-8, high=8, generator=g)
        >>> x = ncsn.samplers.Langevin(sigma=0.0, step_size=0.1, num_steps=1000)(exact, x0, generator=g)
    """

    sigma: float
    step_size: float
    num_steps: int
    compile: bool = field(default=False, kw_only=True)
    cuda_graph: bool = field(default=False, kw_only=True)
    autocast_dtype: torch.dtype | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        sigma = finite_float(self.sigma, "sigma")
        if sigma < 0:
            raise ValueError(f"sigma must be non-negative; got sigma={sigma}")
        # Stored as Python numbers, so that equal settings compare and hash equal whatever
        # number types (numpy scalars, ints) they were given as.
        object.__setattr__(self, "sigma", sigma)
        object.__setattr__(self, "step_size", positive_float(self.step_size, "step_size"))
        object.__setattr__(self, "num_steps", positive_int(self.num_steps, "num_steps"))
        _check_options(self.compile, self.cuda_graph, self.autocast_dtype)

    @property
    def num_model_calls(self) -> int:
        """Model evaluations per call: T."""
        return self.num_steps

    def _call(self, model: ScoreModel, x: Tensor) -> Callable[[Tensor, Tensor], Tensor]:
        return _model_call(
            model,
            x,
            compile=self.compile,
            cuda_graph=self.cuda_graph,
            autocast_dtype=self.autocast_dtype,
        )

    def __call__(
        self,
        model: ScoreModel,
        x: Tensor,
        *,
        generator: torch.Generator | None = None,
        callback: StepCallback | None = None,
    ) -> Tensor:
        call = self._call(model, x)
        _check_start(x, generator)
        with torch.no_grad():
            x = x.clone()
            sigma = torch.full((x.shape[0],), self.sigma, dtype=x.dtype, device=x.device)
            _run_level(
                call,
                x,
                sigma,
                float(self.sigma),
                float(self.step_size),
                self.num_steps,
                level=0,
                z=_noise_buffer(x),
                generator=generator,
                callback=callback,
                check=True,
                graph=self.cuda_graph,
            )
        _check_end(x, "Langevin")
        return x

    def inpaint(
        self,
        model: ScoreModel,
        x: Tensor,
        mask: Tensor,
        *,
        init: Tensor | None = None,
        generator: torch.Generator | None = None,
        callback: StepCallback | None = None,
    ) -> Tensor:
        """Sample the unknown entries given the known ones (``mask`` = 1), at the single level σ.

        The known entries are perturbed with N(0, σ²) once and re-imposed after every step. See
        :func:`inpaint`.
        """
        call = self._call(model, x)
        mask_b, observed, start = _inpaint_start(x, mask, init, generator)
        with torch.no_grad():
            z = _noise_buffer(start)
            torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device, out=z)
            y = observed + self.sigma * z
            torch.where(mask_b, y, start, out=start)
            sigma = torch.full((x.shape[0],), self.sigma, dtype=x.dtype, device=x.device)
            _run_level(
                call,
                start,
                sigma,
                float(self.sigma),
                float(self.step_size),
                self.num_steps,
                level=0,
                z=z,
                generator=generator,
                callback=callback,
                check=True,
                known=(mask_b, y),
                graph=self.cuda_graph,
            )
        _check_end(start, "Langevin.inpaint")
        return start


def _noise_buffer(x: Tensor) -> Tensor:
    """A contiguous buffer for z: noise is drawn in x's logical order whatever x's memory format."""
    return torch.empty(x.shape, dtype=x.dtype, device=x.device)


@dataclass(frozen=True, eq=False)
class AnnealedLangevin:
    """Annealed Langevin dynamics (Algorithm 1 of Song & Ermon, 2019), a :class:`~ncsn.Sampler`.

    For each level i = 1..L with α_i = ε·(σ_i/σ_L)², T times: x ← x + (α_i/2)·s_θ(x, σ_i) + √α_i·z.
    With ``denoise=True`` a final step x ← x + σ_L²·s_θ(x, σ_L) removes the last level's noise
    (Tweedie's formula; NCSNv2). Off by default, as in NCSN v1.

    Performance options (keyword-only, off by default; :class:`Langevin` has the same ones):

    * ``compile=True`` calls the model through :func:`torch.compile` (compiled on the first call
      and reused while the model, shapes and dtypes stay the same). The Langevin update itself
      stays eager, so the chain differs from the eager one only by the compiled network's
      round-off (measured: 1e-6 relative on a RefineNet score; 1.9–2.0× faster sampling with a small
      RefineNet on the CPU, after a first call that compiles for up to a couple of minutes). It
      needs a working compiler (a C++ compiler on the CPU, Triton on CUDA): where there is none,
      the call raises :class:`RuntimeError` before the loop starts; nothing falls back silently.
    * ``cuda_graph=True`` (CUDA only; :class:`ValueError` elsewhere) captures one step, model call
      and update, in a CUDA graph per level and replays it T times, drawing the noise eagerly
      from ``generator`` in the eager order before each replay: designed to follow the eager
      chain (the same kernels on the same buffers); not yet measured on a GPU. The model must
      not synchronise with the host (no ``.item()``, no data-dependent Python branches after
      its first call). The ``StepInfo.score`` given to ``callback`` is then a buffer
      overwritten at every step.
    * ``autocast_dtype=torch.bfloat16`` (or ``torch.float16``) runs the model under
      :func:`torch.autocast` and casts its output back, while the chain state, the noise and the
      update stay in x's dtype: a reduced-precision score (bfloat16 keeps about 3 significant
      digits; measured 2e-2 relative on a RefineNet score, 1.2–1.35× faster on a CPU with AVX-512
      bfloat16), not a reduced-precision chain.

    A ``torch.channels_last`` chain with a ``channels_last`` network needs no option: the noise is
    drawn in logical order, so the samples equal the contiguous ones up to the network's round-off.

    Args:
        sigmas: ``[L]`` strictly decreasing positive levels.
        step_size: ε > 0 (paper: 2e-5; the official code's ``step_lr`` is ε/2).
        steps_per_level: T ≥ 1 (paper: 100).
        denoise: add the final denoising step.
        compile: call the model through :func:`torch.compile`.
        cuda_graph: replay each step from a CUDA graph (x must be on a CUDA device).
        autocast_dtype: ``None``, ``torch.bfloat16`` or ``torch.float16`` for the model call.

    Raises:
        ValueError: invalid levels, step size or steps; an ``autocast_dtype`` other than
            ``None``, ``torch.bfloat16`` or ``torch.float16``; at call time ``cuda_graph=True``
            with x off CUDA.
        TypeError: ``compile`` or ``cuda_graph`` not a bool.
        RuntimeError: at call time, ``compile=True`` where :func:`torch.compile` cannot work.

    Example:
        >>> sampler = ncsn.samplers.AnnealedLangevin(ncsn.geometric_sigmas(20.0, 1.0, 10), 0.1, 100)
        >>> exact = ncsn.toy.paper_mixture().score_model()
        >>> g = torch.Generator().manual_seed(0)
        >>> x = sampler(exact, ncsn.samplers.uniform_init((1280, 2), low=-8, high=8, generator=g), generator=g)
        >>> fast = ncsn.samplers.AnnealedLangevin(sampler.sigmas, 0.1, 100, compile=True)

    References:
        Song & Ermon (2019), Algorithm 1; Song & Ermon (2020) for ``denoise``.
    """

    sigmas: Tensor
    step_size: float
    steps_per_level: int
    denoise: bool = False
    compile: bool = False
    cuda_graph: bool = False
    autocast_dtype: torch.dtype | None = None
    _floats: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __init__(
        self,
        sigmas: Tensor | Sequence[float],
        step_size: float,
        steps_per_level: int,
        denoise: bool = False,
        *,
        compile: bool = False,
        cuda_graph: bool = False,
        autocast_dtype: torch.dtype | None = None,
    ) -> None:
        sigmas = as_sigmas(sigmas)
        object.__setattr__(self, "sigmas", sigmas)
        object.__setattr__(self, "step_size", positive_float(step_size, "step_size"))
        object.__setattr__(
            self, "steps_per_level", positive_int(steps_per_level, "steps_per_level")
        )
        object.__setattr__(self, "denoise", bool(denoise))
        _check_options(compile, cuda_graph, autocast_dtype)
        object.__setattr__(self, "compile", compile)
        object.__setattr__(self, "cuda_graph", cuda_graph)
        object.__setattr__(self, "autocast_dtype", autocast_dtype)
        object.__setattr__(self, "_floats", tuple(float(s) for s in sigmas.tolist()))

    def _key(self) -> tuple[object, ...]:
        # The levels by value: two samplers with the same σ values run the same chain whatever
        # the dtype or device of the tensors they were given.
        return (
            self._floats,
            self.step_size,
            self.steps_per_level,
            self.denoise,
            self.compile,
            self.cuda_graph,
            self.autocast_dtype,
        )

    def __eq__(self, other: object) -> bool:
        """Equal settings: the same σ values, step size, steps, ``denoise`` and options."""
        if not isinstance(other, AnnealedLangevin):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    @property
    def step_sizes(self) -> tuple[float, ...]:
        """α_i = ε·(σ_i/σ_L)² for each level (computed once)."""
        last = self._floats[-1]
        return tuple(self.step_size * (s / last) ** 2 for s in self._floats)

    @property
    def num_model_calls(self) -> int:
        """Model evaluations per call: L·T (+1 with ``denoise``)."""
        return len(self._floats) * self.steps_per_level + int(self.denoise)

    def __call__(
        self,
        model: ScoreModel,
        x: Tensor,
        *,
        generator: torch.Generator | None = None,
        callback: StepCallback | None = None,
    ) -> Tensor:
        call = self._call(model, x)
        _check_start(x, generator)
        with torch.no_grad():
            x = x.clone()
            self._anneal(call, x, generator, callback, None)
        _check_end(x, "AnnealedLangevin")
        return x

    def inpaint(
        self,
        model: ScoreModel,
        x: Tensor,
        mask: Tensor,
        *,
        init: Tensor | None = None,
        generator: torch.Generator | None = None,
        callback: StepCallback | None = None,
    ) -> Tensor:
        """Algorithm 2 of Song & Ermon (2019): sample the unknown entries given the known ones.

        See :func:`inpaint`.
        """
        call = self._call(model, x)
        mask_b, observed, start = _inpaint_start(x, mask, init, generator)
        with torch.no_grad():
            self._anneal(call, start, generator, callback, (mask_b, observed))
        _check_end(start, "AnnealedLangevin.inpaint")
        return start

    def _call(self, model: ScoreModel, x: Tensor) -> Callable[[Tensor, Tensor], Tensor]:
        return _model_call(
            model,
            x,
            compile=self.compile,
            cuda_graph=self.cuda_graph,
            autocast_dtype=self.autocast_dtype,
        )

    def _anneal(
        self,
        call: Callable[[Tensor, Tensor], Tensor],
        x: Tensor,
        generator: torch.Generator | None,
        callback: StepCallback | None,
        known: tuple[Tensor, Tensor] | None,
    ) -> None:
        """Run every level in place on ``x`` (optionally re-imposing known entries; Algorithm 2)."""
        sigmas = self.sigmas.to(device=x.device, dtype=x.dtype)
        z = _noise_buffer(x)
        batch = x.shape[0]
        for level, (value, alpha) in enumerate(zip(self._floats, self.step_sizes, strict=True)):
            sigma = sigmas[level].expand(batch)
            level_known = None
            if known is not None:
                mask, observed = known
                torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device, out=z)
                y = observed + value * z
                torch.where(mask, y, x, out=x)
                level_known = (mask, y)
            _run_level(
                call,
                x,
                sigma,
                value,
                alpha,
                self.steps_per_level,
                level=level,
                z=z,
                generator=generator,
                callback=callback,
                check=level == 0,
                known=level_known,
                graph=self.cuda_graph,
            )
        if self.denoise:
            sigma = sigmas[-1].expand(batch)
            score = call(x, sigma)
            x.add_(score * self._floats[-1] ** 2)
            if known is not None:
                torch.where(known[0], known[1], x, out=x)
            if callback is not None:
                callback(
                    StepInfo(
                        len(self._floats) - 1, self.steps_per_level, self._floats[-1], 0.0, x, score
                    )
                )


def _inpaint_start(
    x: Tensor, mask: Tensor, init: Tensor | None, generator: torch.Generator | None
) -> tuple[Tensor, Tensor, Tensor]:
    """Validate (x, mask, init) before the loop; return the boolean mask expanded to x, the
    observations with the unknown entries set to 0 (so that a NaN placeholder there never enters
    the chain), and the start point."""
    check_batch(x)
    check_generator(generator, x)
    mask = torch.as_tensor(mask)
    try:
        expanded = mask.to(x.device).expand(x.shape)
    except RuntimeError as err:
        raise ValueError(
            f"mask of shape {tuple(mask.shape)} cannot broadcast to x of shape {tuple(x.shape)}"
        ) from err
    if expanded.dtype != torch.bool:
        if not bool(((expanded == 0) | (expanded == 1)).all()):
            bad = expanded[(expanded != 0) & (expanded != 1)][:5].tolist()
            raise ValueError(f"mask must hold only 0 and 1 (1 = known); got values such as {bad}")
        expanded = expanded == 1
    if bool(expanded.all()):
        raise ValueError("mask marks every entry as known (1): there is nothing to inpaint")
    if not bool((torch.isfinite(x) | ~expanded).all()):
        raise ValueError(
            "x (the observations) contains NaN or infinite values at known entries (mask = 1); "
            "only the unknown entries (mask = 0) are ignored"
        )
    observed = torch.where(expanded, x, torch.zeros((), dtype=x.dtype, device=x.device))
    if init is None:
        start = uniform_init(tuple(x.shape), generator=generator, dtype=x.dtype, device=x.device)
    else:
        if not isinstance(init, Tensor):
            raise TypeError(f"init must be a torch.Tensor or None; got {type(init).__name__}")
        if init.shape != x.shape:
            raise ValueError(
                f"init must have the shape of x {tuple(x.shape)}; got {tuple(init.shape)}"
            )
        start = init.detach().to(x).clone()
        if not bool((torch.isfinite(start) | expanded).all()):
            raise ValueError(
                "init (the starting point) contains NaN or infinite values at unknown entries "
                "(mask = 0)"
            )
    return expanded, observed, start


def inpaint(
    sampler: Langevin | AnnealedLangevin,
    model: ScoreModel,
    x: Tensor,
    mask: Tensor,
    *,
    init: Tensor | None = None,
    generator: torch.Generator | None = None,
    callback: StepCallback | None = None,
) -> Tensor:
    """Inpainting with (annealed) Langevin dynamics (Algorithm 2 of Song & Ermon, 2019).

    At each level σ_i the known entries (``mask`` = 1) are set to y_i = x + σ_i·z̃_i with z̃_i
    drawn once per level, and re-imposed after every Langevin step; the unknown entries
    (``mask`` = 0) follow the sampler's dynamics. No retraining: any unconditional score model
    works. :class:`Langevin` has one level, σ.

    Args:
        sampler: a :class:`Langevin` or :class:`AnnealedLangevin` (anything with this ``inpaint``
            method).
        model: a :class:`~ncsn.ScoreModel`.
        x: ``[B, *event]`` observations. Only the known entries are read: the unknown ones are
            replaced by 0 before the chain starts, so they may hold placeholders such as NaN.
        mask: boolean or 0/1 tensor broadcastable to x (per-example masks allowed); 1 = known.
        init: ``[B, *event]`` starting point of the unknown entries (default: U[0, 1], as in the
            paper); its known entries are ignored, its unknown ones must be finite.
        generator: source of all randomness.
        callback: receives a :class:`StepInfo` after every step.

    Returns:
        ``[B, *event]`` completions. The known entries of the result are the last level's noisy
        observations y_L = x + σ_L·z̃_L (as in Alg. 2; for :class:`Langevin`, x + σ·z̃), except
        with ``AnnealedLangevin(..., denoise=True)``: its final denoising step updates every
        entry and then re-imposes the clean observations, so the known entries equal x exactly.
        ``torch.where(mask, x, result)`` gives the clean observations in both cases.

    Raises:
        ValueError: a mask that cannot broadcast to x, holds values other than 0/1, or has no
            unknown entry; NaN or infinite values in x at known entries, or in ``init`` at
            unknown entries; an ``init`` of another shape than x.
        TypeError: a sampler without an ``inpaint`` method; an ``init`` that is not a tensor.
        FloatingPointError: the chain produced non-finite values (step size too large).

    Example:
        >>> sampler = ncsn.samplers.AnnealedLangevin(ncsn.geometric_sigmas(1.0, 0.01, 10), 2e-5, 100)
        >>> mask = ncsn.samplers.inpainting_mask("right_half", images.shape)   # right half unknown
        >>> completions = ncsn.samplers.inpaint(sampler, net, images, mask, generator=g)  # doctest: +SKIP
    """
    method = getattr(sampler, "inpaint", None)
    if method is None:
        raise TypeError(f"sampler {sampler!r} has no inpaint method")
    result: Tensor = method(model, x, mask, init=init, generator=generator, callback=callback)
    return result


MASK_PRESETS = ("right_half", "left_half", "top_half", "bottom_half", "centre_box", "random")


def inpainting_mask(
    preset: str,
    shape: Sequence[int],
    *,
    fraction: float = 0.5,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """A boolean *known* mask (True = observed) for images: ``[H, W]``, ``[C, H, W]``,
    ``[B, C, H, W]`` or ``[B, C, *spatial]``.

    Presets name the *missing* region: ``"right_half"`` (the paper's Fig. 6 keeps the left half),
    ``"left_half"``, ``"top_half"``, ``"bottom_half"``, ``"centre_box"`` (a centred box covering
    ``fraction`` of the height and width is missing; these five act on the last two dims and are
    the same for every leading index) and ``"random"`` (each pixel missing independently with
    probability ``fraction``). For ``"random"`` the dims are read as ``[H, W]`` (2 dims), ``[C, H,
    W]`` (3 dims: one pixel mask shared across the C channels) or ``[B, C, *spatial]`` (4 or more
    dims: a mask per example b, shared across the C channels, over every position of
    ``*spatial``).

    Args:
        preset: one of ``"right_half"``, ``"left_half"``, ``"top_half"``, ``"bottom_half"``,
            ``"centre_box"``, ``"random"``.
        shape: the shape of the mask, at least two dims (the last two are H, W).
        fraction: in (0, 1); the box's relative size (``"centre_box"``) or the probability of a
            pixel being missing (``"random"``); unused by the halves.
        generator: source of the ``"random"`` mask.
        device: where to build the mask (default: the generator's device, else the CPU).

    Returns:
        A boolean tensor of ``shape``, True where the entry is known.

    Raises:
        ValueError: an unknown preset, a shape of fewer than two dims or with a dim < 1, or a
            ``fraction`` outside (0, 1).
        TypeError: a shape that is not a sequence of ints.

    Example:
        >>> m = ncsn.samplers.inpainting_mask("right_half", (1, 4, 4))
        >>> m[0].int()
        tensor([[1, 1, 0, 0],
                [1, 1, 0, 0],
                [1, 1, 0, 0],
                [1, 1, 0, 0]], dtype=torch.int32)
    """
    shape = _check_shape(shape, min_dims=2)
    if preset not in MASK_PRESETS:
        raise ValueError(f"preset must be one of {MASK_PRESETS}; got preset={preset!r}")
    fraction = finite_float(fraction, "fraction")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1); got fraction={fraction}")
    dev = (
        torch.device(device)
        if device is not None
        else (generator.device if generator is not None else torch.device("cpu"))
    )
    h, w = shape[-2:]
    known = torch.ones(shape, dtype=torch.bool, device=dev)
    if preset == "right_half":
        known[..., w // 2 :] = False
    elif preset == "left_half":
        known[..., : w // 2] = False
    elif preset == "top_half":
        known[..., : h // 2, :] = False
    elif preset == "bottom_half":
        known[..., h // 2 :, :] = False
    elif preset == "centre_box":
        bh, bw = max(1, round(h * fraction)), max(1, round(w * fraction))
        top, left = (h - bh) // 2, (w - bw) // 2
        known[..., top : top + bh, left : left + bw] = False
    else:
        pixel_shape: tuple[int, ...]
        if len(shape) == 2:
            pixel_shape = shape
        elif len(shape) == 3:
            pixel_shape = (1, h, w)
        else:
            pixel_shape = (shape[0], 1, *shape[2:])
        u = torch.rand(pixel_shape, generator=generator, device=dev)
        known = (u >= fraction).expand(shape).clone()
    return known


def _check_shape(shape: Sequence[int], *, min_dims: int) -> tuple[int, ...]:
    """A shape as a tuple of Python ints: at least ``min_dims`` dims, each a positive integer."""
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence):
        raise TypeError(f"shape must be a sequence of ints; got shape={shape!r}")
    given: tuple[object, ...] = tuple(shape)
    dims = [int(d) for d in given if not isinstance(d, bool) and isinstance(d, numbers.Integral)]
    if len(dims) != len(given) or len(dims) < min_dims or min(dims, default=1) < 1:
        what = (
            "a non-empty sequence of positive ints [B, *event]"
            if min_dims == 1
            else f"a sequence of at least {min_dims} positive ints ending with (H, W)"
        )
        raise ValueError(f"shape must be {what}; got shape={given}")
    return tuple(dims)


def uniform_init(
    shape: Sequence[int],
    low: float = 0.0,
    high: float = 1.0,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Initial points U[low, high]^shape (the paper's and official code's initialisation, U[0, 1]).

    Args:
        shape: ``[B, *event]``, positive ints.
        low: the lower bound (finite).
        high: the upper bound (finite, > low).
        generator: source of the draw.
        dtype: floating dtype of the result (default: torch's default dtype).
        device: where to draw (default: the generator's device, else the CPU).

    Returns:
        A ``[B, *event]`` tensor of independent U[low, high] entries.

    Raises:
        ValueError: an empty shape or one with a dim < 1; non-finite bounds or low ≥ high; a
            generator on another device than ``device``.
        TypeError: a shape that is not a sequence of ints.

    Example:
        >>> x0 = ncsn.samplers.uniform_init((64, 3, 32, 32), generator=torch.Generator().manual_seed(0))
        >>> x0.shape
        torch.Size([64, 3, 32, 32])
    """
    low, high = finite_float(low, "low"), finite_float(high, "high")
    if not low < high:
        raise ValueError(f"low must be smaller than high; got low={low}, high={high}")
    dev, dt = draw_device_dtype(generator, device, dtype)
    u = torch.rand(_check_shape(shape, min_dims=1), generator=generator, dtype=dt, device=dev)
    return u.mul_(high - low).add_(low)


def gaussian_init(
    shape: Sequence[int],
    sigma: float,
    *,
    mean: float = 0.0,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Initial points N(mean, σ²I) of the given shape (e.g. σ = σ₁, as in NCSNv2).

    Args:
        shape: ``[B, *event]``, positive ints.
        sigma: the standard deviation σ > 0.
        mean: the mean of every entry (finite).
        generator: source of the draw.
        dtype: floating dtype of the result (default: torch's default dtype).
        device: where to draw (default: the generator's device, else the CPU).

    Returns:
        A ``[B, *event]`` tensor of independent N(mean, σ²) entries.

    Raises:
        ValueError: an empty shape or one with a dim < 1; a non-positive or non-finite σ; a
            non-finite mean; a generator on another device than ``device``.
        TypeError: a shape that is not a sequence of ints.

    Example:
        >>> x0 = ncsn.samplers.gaussian_init((16, 2), sigma=20.0, generator=torch.Generator().manual_seed(0))
        >>> x0.shape
        torch.Size([16, 2])
    """
    sigma = positive_float(sigma, "sigma")
    mean = finite_float(mean, "mean")
    dev, dt = draw_device_dtype(generator, device, dtype)
    z = torch.randn(_check_shape(shape, min_dims=1), generator=generator, dtype=dt, device=dev)
    return z.mul_(sigma).add_(mean)
