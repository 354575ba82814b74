"""What every sampler shares: the σ-grid field, the run bookkeeping around a loop over a kernel
(checks at the start, the step hook and callback, the non-finite diagnosis at the end), the
argument checks of the kernels, and the final denoising step."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal, TypeAlias

import torch
from torch import Tensor

from ncsn._checks import (
    call_model,
    check_batch,
    check_callable,
    check_generator,
    check_nonempty,
    check_optional_callable,
    has_values,
    pad_event,
    same_device,
    sigma_vector,
)
from ncsn._types import ScoreModel, StepCallback, StepHook, StepInfo
from ncsn.schedules import SigmaGrid, SigmaGridLike

__all__ = ["NonFiniteError", "denoise_step"]

Source: TypeAlias = Literal["model", "chain", "prior"]


class NonFiniteError(FloatingPointError):
    """A sampler, :meth:`~ncsn.samplers.ProbabilityFlowODE.encode` or
    :func:`~ncsn.likelihood.log_prob` produced NaN or infinite values.

    The message and the attributes say where it began, so that the advice fits the cause.

    Attributes:
        where: what ran, e.g. ``"AnnealedLangevin"`` or ``"log_prob"``.
        source: ``"model"``: the model returned NaN or inf for a finite input (a broken model,
            or a σ it cannot take), so no sampler setting helps; ``"chain"``: every model output
            was finite where its input was, and the iterate itself diverged (a step size, snr,
            η or σ grid too aggressive for the model); ``"prior"`` (:func:`log_prob` only): the
            prior's log-density was non-finite.
        level: index of the noise level at which it began (0 = largest σ; for ``encode`` and
            ``log_prob``, which run the grid upward, the index of the step), or None.
        sigma: σ of that level, or None.
    """

    def __init__(
        self, message: str, *, where: str, source: Source, level: int | None, sigma: float | None
    ) -> None:
        super().__init__(message)
        self.where = where
        self.source: Source = source
        self.level = level
        self.sigma = sigma


def grid_check(trailing_zero: str) -> Callable[[SigmaGridLike, str], SigmaGrid]:
    """The check of a sampler's ``sigmas``: a :class:`~ncsn.schedules.SigmaGrid`. A grid ending
    in 0 (k-diffusion's convention for a last step to σ = 0) is refused with ``trailing_zero``,
    what that step is called in this sampler."""

    def check(sigmas: SigmaGridLike, name: str) -> SigmaGrid:
        try:
            return SigmaGrid(sigmas, name)
        except ValueError as err:
            if _ends_in_zero(sigmas):
                raise ValueError(
                    f"{err}; a trailing 0 (k-diffusion's convention for a last step to σ = 0) "
                    f"is not a noise level here: {trailing_zero}"
                ) from None
            raise

    return check


def _ends_in_zero(sigmas: SigmaGridLike) -> bool:
    """Whether ``sigmas`` is a valid grid followed by a single 0."""
    if isinstance(sigmas, SigmaGrid):
        return False
    try:
        last = float(sigmas[-1])
        SigmaGrid(sigmas[:-1])
    except (TypeError, ValueError, RuntimeError, IndexError):
        return False
    return last == 0.0


# The model's output going non-finite counts as the chain's fault when the input it was given had
# grown beyond this many times the scale of the run (its start, σ): a diverging chain grows
# geometrically long before a model's arithmetic overflows.
_GROWN = 1e3


class Watch:
    """Where a chain went non-finite, found without reading the device during the chain.

    :meth:`record` keeps, for every model call, the extremes of its input and outputs as device
    scalars (one ``aminmax`` each, no host synchronisation); :meth:`error`, called only once the
    end result is known to be non-finite, reads them all at once and names the first call whose
    input or output was not finite: an output that went non-finite on a finite input of the
    run's scale is the model's fault, an input that did (or that had grown far beyond that
    scale first) the chain's.
    """

    def __init__(self, where: str, start: Tensor) -> None:
        self.where = where
        self.level = 0
        self._start = torch.aminmax(start) if has_values(start) else None
        self._calls: list[tuple[int, float, list[Tensor]]] = []

    def record(self, sigma: float, x: Tensor, *outputs: Tensor) -> None:
        """Note one model call at the current :attr:`level` with ``sigma``: its input and
        outputs."""
        # (detached: a call under autograd, as DPS makes, must not keep its graph alive)
        ends = [*torch.aminmax(x.detach())]
        for out in outputs:
            ends.extend(torch.aminmax(out.detach()))
        self._calls.append((self.level, sigma, ends))

    def error(self, advice: str) -> NonFiniteError:
        """The :class:`NonFiniteError` that says where the run went non-finite, and why."""
        source, call, size = self._first_non_finite()
        level, sigma = (call[0], call[1]) if call is not None else (self.level, None)
        at = f"at level {level}" + ("" if sigma is None else f" (σ = {sigma:g})")
        if source == "model":
            message = (
                f"{self.where}: the model returned NaN or infinite values for a finite input "
                f"(largest |x| {size:.3g}) {at}; no sampler setting fixes that: check the model "
                "(its weights, or whether it accepts this σ)"
            )
        elif math.isfinite(size):
            message = (
                f"{self.where} produced non-finite values {at} (its iterate had grown to "
                f"|x| = {size:.3g} before the model's output overflowed): {advice}"
            )
        else:
            message = (
                f"{self.where} produced non-finite values {at} while the model's outputs were "
                f"finite: {advice}"
            )
        return NonFiniteError(message, where=self.where, source=source, level=level, sigma=sigma)

    def _first_non_finite(self) -> tuple[Source, tuple[int, float] | None, float]:
        """``(source, (level, σ) of the call to blame, largest |x| there)`` (one sync)."""
        if not self._calls:
            return "chain", None, math.inf
        width = len(self._calls[0][2])
        ends = [t.to(torch.float64) for _, _, call in self._calls for t in call]
        rows = torch.stack(ends).cpu().reshape(-1, width).tolist()
        start = [float(v) for v in self._start] if self._start is not None else []
        scale = max(1.0, *map(abs, start), *(abs(sigma) for _, sigma, _ in self._calls))
        for k, row in enumerate(rows):
            size = max(abs(row[0]), abs(row[1]))
            if not math.isfinite(size):  # the step before this call made x non-finite
                return "chain", self._calls[max(k - 1, 0)][:2], math.inf
            if not all(math.isfinite(v) for v in row[2:]):
                source: Source = "model" if size <= _GROWN * scale else "chain"
                return source, self._calls[k][:2], size
        return "chain", self._calls[-1][:2], math.inf  # the last update overflowed


class Run:
    """One call of a configured sampler: the bookkeeping around its loop over a kernel.

    It checks the arguments before any step; :meth:`model` calls the model, keeps its last output
    (the ``score`` of :class:`StepInfo`) and records the call in a :class:`Watch`; :meth:`hook`
    and :meth:`stepped` apply the step hook and the callback and refuse one that changed the
    iterate's shape, dtype or device; :meth:`finish` checks the last iterate (the one host
    synchronisation of a chain) and raises the watch's :class:`NonFiniteError` if it is not
    finite.
    """

    def __init__(
        self,
        where: str,
        model: ScoreModel,
        x: Tensor,
        *,
        generator: torch.Generator | None,
        callback: StepCallback | None,
        hook: StepHook | None,
        advice: str,
    ) -> None:
        check_start(x, generator, model=model, callback=callback, hook=hook)
        self.where, self.advice = where, advice
        self.callback, self.step_hook = callback, hook
        self.shape, self.dtype, self.device = x.shape, x.dtype, x.device
        self.level, self.sigma = 0, 0.0
        self.last: Tensor | None = None
        self._model = model
        self._watch = Watch(where, x)

    def model(self, x: Tensor, sigma: Tensor) -> Tensor:
        """The model, watched: its output is kept and the call recorded."""
        out = self._model(x, sigma)
        if (
            isinstance(out, Tensor)
            and torch.is_floating_point(out)
            and out.shape == x.shape
            and out.device == x.device
        ):  # (another output is refused by the kernel's check, naming what is wrong)
            self._watch.record(self.sigma, x, out)
        self.last = out
        return out

    def at(self, level: int, sigma: float) -> None:
        """The level the next model calls belong to (for :class:`StepInfo` and diagnosis)."""
        self.level, self.sigma = level, sigma
        self._watch.level = level

    def hook(self, x: Tensor, sigma: float) -> None:
        """Apply the step hook (if any) with the noise level x now stands for."""
        if self.step_hook is not None:
            result = self.step_hook(x, sigma)
            if result is not None:
                raise TypeError(
                    f"hook must change x in place and return None; hook={self.step_hook!r} "
                    f"returned {type(result).__name__}"
                )
            self._check_kept(x, f"hook={self.step_hook!r}")

    def stepped(self, x: Tensor, step: int, step_size: float, reached: float) -> None:
        """After a step: the hook (at the level ``reached``), then the callback's StepInfo."""
        self.hook(x, reached)
        if self.callback is not None:
            if self.last is None:
                raise RuntimeError("a sampler step must call the model before its callback")
            self.callback(StepInfo(self.level, step, self.sigma, step_size, x, self.last))
            self._check_kept(x, f"callback={self.callback!r}")

    def _check_kept(self, x: Tensor, who: str) -> None:
        if x.shape != self.shape or x.dtype != self.dtype or x.device != self.device:
            raise ValueError(
                f"{who} changed the iterate of {self.where} from shape {tuple(self.shape)}, "
                f"{self.dtype}, {self.device} to shape {tuple(x.shape)}, {x.dtype}, {x.device}; "
                "a hook or callback may change the values of x in place, never its shape, "
                "dtype or device"
            )

    def finish(self, x: Tensor) -> Tensor:
        """Return x if it is finite; otherwise raise :class:`NonFiniteError` saying why."""
        if not has_values(x) or bool(torch.isfinite(x).all()):
            return x
        raise self._watch.error(self.advice)


def check_start(
    x: Tensor,
    generator: torch.Generator | None,
    *,
    model: object,
    callback: object = None,
    hook: object = None,
) -> None:
    """The starting point: a floating ``[B, *event]`` tensor, finite, with a matching generator;
    a callable model, callback and hook (or None), checked before any step."""
    check_callable(model, "model")
    check_optional_callable(callback, "callback")
    check_optional_callable(hook, "hook")
    check_batch(x)
    check_generator(generator, x)
    check_nonempty(x)
    if has_values(x) and not bool(torch.isfinite(x).all()):
        raise ValueError("x (the initial points) contains NaN or infinite values")


def check_kernel(model: object, x: Tensor) -> None:
    """What every step kernel checks (metadata only: kernels run once per step)."""
    check_callable(model, "model")
    check_batch(x)
    check_nonempty(x)


def check_noise(noise: Tensor | None, x: Tensor, name: str = "noise") -> None:
    """An optional given noise tensor must have x's shape (checked before any model call)."""
    if noise is None:
        return
    if not isinstance(noise, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or None; got {type(noise).__name__}")
    if not torch.is_floating_point(noise):
        raise TypeError(f"{name} must be a floating-point tensor; got dtype {noise.dtype}")
    if noise.shape != x.shape:
        raise ValueError(
            f"{name} must have the shape of x {tuple(x.shape)}; got {tuple(noise.shape)}"
        )
    if not same_device(noise.device, x.device) and not (has_values(noise) and has_values(x)):
        raise ValueError(
            f"{name} is on device {noise.device} but x is on device {x.device}; move {name} "
            f"to {x.device}"
        )


def check_out(out: Tensor | None, x: Tensor) -> None:
    """An optional ``out=`` buffer must match x in shape, dtype and device."""
    if out is None:
        return
    if not isinstance(out, Tensor):
        raise TypeError(f"out must be a torch.Tensor or None; got {type(out).__name__}")
    if out.shape != x.shape or out.dtype != x.dtype or out.device != x.device:
        raise ValueError(
            f"out must match x (shape {tuple(x.shape)}, {x.dtype}, {x.device}); got shape "
            f"{tuple(out.shape)}, {out.dtype}, {out.device}"
        )


def denoise_step(
    model: ScoreModel, x: Tensor, sigma: Tensor | float, *, out: Tensor | None = None
) -> Tensor:
    """Tweedie's denoising step x + σ²·s_θ(x, σ): the posterior mean E[x₀ | x] of the clean data
    given x perturbed by N(0, σ²I), exact for the true score (Robbins 1956; Efron 2011).

    NCSNv2 (Song & Ermon, 2020) ends annealed Langevin with it at σ_L; every sampler here offers
    it as ``denoise=``.

    Args:
        model: a :class:`~ncsn.ScoreModel`.
        x: ``[B, *event]`` iterate at noise level σ.
        sigma: scalar or ``[B]`` σ > 0.
        out: optional buffer of x's shape, dtype and device for the result (may be x itself).

    Returns:
        The denoised ``[B, *event]`` tensor (``out`` when given).

    Raises:
        ValueError: a σ that is not positive and finite or of the wrong shape, an ``out`` that
            does not match x, or a model output of another shape than x.

    Example:
        >>> gauss = ncsn.toy.Gaussian(torch.zeros(2), torch.eye(2))
        >>> x = torch.ones(3, 2, dtype=torch.float64)
        >>> ncsn.samplers.denoise_step(gauss.score_model(), x, 1.0)   # E[x0 | x] = x / 2
        tensor([[0.5000, 0.5000],
                [0.5000, 0.5000],
                [0.5000, 0.5000]], dtype=torch.float64)
    """
    check_kernel(model, x)
    check_out(out, x)
    sig = sigma_vector(sigma, x, allow_zero=False)
    with torch.no_grad():
        score = call_model(model, x, sig)
        # A Python σ scales in double precision, as every kernel's Python step sizes do.
        scale = pad_event(sig * sig, x) if isinstance(sigma, Tensor) else float(sigma) ** 2
        return torch.add(x, score * scale, out=out)
