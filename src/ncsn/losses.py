"""Score-matching objectives: denoising (DSM) and sliced (SSM, SSM-VR) score matching.

Two levels, as everywhere in ``ncsn``:

* per-example kernels (:func:`dsm`, :func:`ssm`, :func:`annealed_ssm`) take every parameter
  explicitly and return one value per example ``[B]``;
* configured losses (:class:`DenoisingScoreMatching`, :class:`SlicedScoreMatching`) satisfy
  :class:`~ncsn.ScoreLoss`: they draw a noise level per example from a schedule and return the mean
  over the batch of the per-example values (the official reduction: ½ · sum over event dims, mean
  over the batch).

Class-conditional training: every loss takes the batch's labels as ``y=`` (``[B]`` integers) and
then calls the model as ``model(x̃, σ, y)`` (a :class:`~ncsn.ConditionalScoreModel`). The
configured losses drop each label to the null label ``num_classes`` at the rate
``label_dropout`` (:func:`ncsn.guidance.drop_labels`), so that one network learns the
conditional scores and the unconditional one that classifier-free guidance needs. Without ``y``
nothing changes: the same draws, the same values.

Non-finite inputs follow one rule, the same on every device, chosen so that the training loop
never waits for an accelerator:

* the kernels check their arguments' values (they read σ already): NaN or inf in ``x``,
  ``noise`` or ``directions`` is a ``ValueError`` naming the argument and the first bad entry;
* the configured losses, called once per training step, read no values at all (metadata checks
  only): NaN or inf in ``x`` (or a NaN score from the model) gives a NaN or inf loss, which
  :class:`~ncsn.training.Trainer` turns into :class:`~ncsn.training.NonFiniteLossError` when it
  reads the losses back (:func:`~ncsn.training.train_step` returns the loss tensor for its
  caller to check).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import Tensor, nn

from ncsn._checks import (
    as_sigma_tensor,
    as_sigmas,
    call_model,
    check_batch,
    check_bool,
    check_callable,
    check_finite,
    check_float_tensor,
    check_generator,
    check_nonempty,
    check_output,
    check_sigma_values,
    finite_float,
    pad_event,
    positive_int,
    randn_like,
    sigma_vector,
    sum_event,
    to_device_of,
)
from ncsn._types import NoiseSchedule, ScoreModel
from ncsn.guidance import drop_labels

__all__ = [
    "DenoisingScoreMatching",
    "Projection",
    "SlicedScoreMatching",
    "annealed_ssm",
    "dsm",
    "projections_like",
    "ssm",
]

Projection = Literal["gaussian", "rademacher", "sphere"]
_PROJECTIONS: tuple[str, ...] = get_args(Projection)
JacobianMode = Literal["backward", "forward"]
_JACOBIAN_MODES: tuple[str, ...] = get_args(JacobianMode)


def _check_x(x: Tensor, generator: torch.Generator | None) -> None:
    """The data of every loss: a non-empty floating ``[B, *event]`` batch, a matching generator
    (metadata only: the kernels check the values too, the configured losses do not)."""
    check_batch(x)
    check_nonempty(x)
    check_generator(generator, x)


def _check_schedule(schedule: object) -> None:
    if not isinstance(schedule, NoiseSchedule):
        shown = f"{type(schedule).__name__} {schedule!r}"
        if isinstance(schedule, Tensor):
            shown = f"Tensor of shape {tuple(schedule.shape)}"
        raise TypeError(
            "schedule must be a NoiseSchedule (an object with .sigmas and "
            f".sample(batch, generator=)); got {shown}; wrap levels in ncsn.Schedule(...) "
            "or use ncsn.GeometricSchedule(...)"
        )
    as_sigmas(schedule.sigmas, "schedule.sigmas")


def _noise(x: Tensor, noise: Tensor | None, generator: torch.Generator | None) -> Tensor:
    if noise is None:
        return randn_like(x, generator)
    check_float_tensor(noise, "noise")
    if noise.shape != x.shape:
        raise ValueError(
            f"noise must have the shape of x {tuple(x.shape)}; got {tuple(noise.shape)}"
        )
    check_finite(noise, "noise")
    return to_device_of(noise, x, "noise").to(x.dtype)


def _perturb(
    x: Tensor,
    sigma: Tensor | float,
    noise: Tensor | None,
    power: float,
    generator: torch.Generator | None,
) -> tuple[Tensor, Tensor]:
    """Check the arguments shared by the annealed losses; return ``(σ [B], z)``.

    Checking σ's values synchronises with the device, so the configured losses, whose σ come from
    a schedule validated once, skip this and call the ``_*_core`` functions directly.
    """
    _check_x(x, generator)
    check_finite(x, "x")
    finite_float(power, "power")
    sigma = as_sigma_tensor(sigma, x)
    check_sigma_values(sigma, allow_zero=False)
    return sigma_vector(sigma, x), _noise(x, noise, generator)


def _check_y(y: object, x: Tensor) -> Tensor | None:
    """Labels of the batch: ``None``, or an integer ``[B]`` tensor moved to x's device (metadata
    only: the network checks the range where reading it is free)."""
    if y is None:
        return None
    if not isinstance(y, Tensor) or y.dtype.is_floating_point or y.dtype == torch.bool:
        raise TypeError(f"y must be None or an integer tensor [B] of labels; got {y!r}")
    if y.shape != (x.shape[0],):
        raise ValueError(
            f"y must hold one label per example, shape [B]={[x.shape[0]]}; got "
            f"y.shape={tuple(y.shape)} for x.shape={tuple(x.shape)}"
        )
    return to_device_of(y, x, "y").long()


def _call(model: ScoreModel, x: Tensor, sig: Tensor, y: Tensor | None) -> Tensor:
    """The model at ``(x, σ)``, or the conditional model at ``(x, σ, y)`` when labels are given."""
    if y is None:
        return call_model(model, x, sig)
    out: Tensor = model(x, sig, y)  # type: ignore[call-arg]  # a ConditionalScoreModel
    check_output(out, x)
    return out


def _dsm_core(
    model: ScoreModel, x: Tensor, sig: Tensor, z: Tensor, power: float, y: Tensor | None = None
) -> Tensor:
    s = pad_event(sig, x)
    score = _call(model, x + s * z, sig, y)
    return 0.5 * sum_event((score + z / s).square()) * sig.pow(power)


def dsm(
    model: ScoreModel,
    x: Tensor,
    sigma: Tensor | float,
    *,
    noise: Tensor | None = None,
    power: float = 2.0,
    y: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Denoising score matching at noise level σ, one value per example.

    ℓ(x, σ) = ½ ‖σ^{p/2} (s_θ(x + σz, σ) + z/σ)‖²  summed over event dims, with z ~ N(0, I).

    This is Eq. (5)–(6) of Song & Ermon (2019) with weighting λ(σ) = σ^p (the paper: p = 2). The
    single-noise-level DSM of the paper's baseline (App. C.1) is this kernel at σ = 0.01 with p = 0.

    Args:
        model: a :class:`~ncsn.ScoreModel`.
        x: clean data ``[B, *event]``.
        sigma: a scalar or ``[B]`` noise levels (positive).
        noise: optional ``z`` of x's shape (drawn from ``generator`` otherwise).
        power: p in λ(σ) = σ^p.
        y: optional ``[B]`` labels: the model is then a :class:`~ncsn.ConditionalScoreModel`,
            called ``model(x + σz, σ, y)``.
        generator: source of ``z``.

    Returns:
        ``[B]`` per-example losses.

    Raises:
        TypeError: a non-floating ``x`` or ``noise``, a σ that is not a number or tensor, ``y``
            not an integer tensor, or a ``generator`` that is not a ``torch.Generator``.
        ValueError: an empty batch, a non-positive or non-finite σ, a noise of the wrong shape,
            NaN or inf in ``x`` or ``noise``, a ``noise`` that cannot be moved to x's device, or
            a model output whose shape or device differs from its input.

    Example:
        >>> gmm = ncsn.toy.paper_mixture()
        >>> x = gmm.sample(8, generator=torch.Generator().manual_seed(0))
        >>> ncsn.losses.dsm(gmm.score_model(), x, 1.0, generator=torch.Generator().manual_seed(1)).shape
        torch.Size([8])
    """
    check_callable(model, "model")
    sig, z = _perturb(x, sigma, noise, power, generator)
    return _dsm_core(model, x, sig, z, power, _check_y(y, x))


def projections_like(
    x: Tensor, distribution: Projection = "gaussian", *, generator: torch.Generator | None = None
) -> Tensor:
    """Random projection directions ``v`` of x's shape with E[v vᵀ] = I over the event dims.

    ``"gaussian"``: v ~ N(0, I). ``"rademacher"``: entries ±1 with probability ½ each.
    ``"sphere"``: uniform on the sphere of radius √D (D the number of event entries), so that
    E[v vᵀ] = I as well. Each example ``v[b]`` is drawn independently.

    Args:
        x: ``[B, *event]``; only its shape, dtype and device are used.
        distribution: ``"gaussian"``, ``"rademacher"`` or ``"sphere"``.
        generator: source of the directions (on x's device).

    Returns:
        ``[B, *event]`` directions in x's dtype and on x's device.

    Raises:
        ValueError: an empty batch, an unknown ``distribution``, or a generator on another
            device than x.
        TypeError: x not a floating-point tensor, or a ``generator`` that is not a
            ``torch.Generator``.

    Example:
        >>> v = ncsn.losses.projections_like(torch.zeros(4, 3, 8, 8), "sphere")
        >>> torch.allclose(v.flatten(1).norm(dim=1), torch.full((4,), 192**0.5))
        True
    """
    _check_x(x, generator)
    _check_distribution(distribution)
    v = randn_like(x, generator)
    if distribution == "rademacher":
        return v.sign().masked_fill_(v == 0, 1.0)
    if distribution == "sphere":
        dim = v[0].numel()
        return v * pad_event(math.sqrt(dim) / v.reshape(v.shape[0], -1).norm(dim=1), v)
    return v


def _check_distribution(distribution: str) -> None:
    if distribution not in _PROJECTIONS:
        raise ValueError(
            f"distribution must be one of {_PROJECTIONS}; got distribution={distribution!r}"
        )


def _check_slicing(
    projections: int, distribution: str, jacobian: str, variance_reduction: bool
) -> int:
    """Checks of the slicing options shared by :func:`ssm` and :func:`annealed_ssm`."""
    projections = positive_int(projections, "projections")
    check_bool(variance_reduction, "variance_reduction")
    _check_distribution(distribution)
    if jacobian not in _JACOBIAN_MODES:
        raise ValueError(f"jacobian must be one of {_JACOBIAN_MODES}; got jacobian={jacobian!r}")
    return projections


def ssm(
    model: ScoreModel,
    x: Tensor,
    sigma: Tensor | float,
    *,
    projections: int = 1,
    distribution: Projection = "gaussian",
    variance_reduction: bool = True,
    directions: Tensor | None = None,
    jacobian: JacobianMode = "backward",
    y: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Sliced score matching at the points ``x``, one value per example.

    ℓ(x) = E_v[ vᵀ ∇ₓ(vᵀ s_θ(x, σ)) + ½ (vᵀ s_θ(x, σ))² ], or with ``variance_reduction`` (SSM-VR)
    the second term replaced by ½ ‖s_θ(x, σ)‖². Its expectation equals the score-matching objective
    tr(∇ₓ s_θ) + ½‖s_θ‖² (Hyvärinen, 2005), since E[v vᵀ] = I. The Jacobian term vᵀJv is computed
    either as a vector-Jacobian product by double backpropagation (``jacobian="backward"``, as in
    the official code) or as a Jacobian-vector product in forward mode (``jacobian="forward"``,
    :func:`torch.func.jvp`); both give the same loss and gradients. The average over
    ``projections`` particles is taken per example.

    ``sigma`` is only passed on to the model (x is *not* perturbed here; see :func:`annealed_ssm`).

    Args:
        model: a :class:`~ncsn.ScoreModel`, differentiable in x.
        x: ``[B, *event]`` points.
        sigma: scalar or ``[B]`` σ values given to the model (finite, ≥ 0; 0 for a model
            without noise conditioning).
        projections: number of projection vectors per example.
        distribution: ``"gaussian"``, ``"rademacher"`` or ``"sphere"`` (see :func:`projections_like`).
        variance_reduction: use ½‖s‖² in place of ½(vᵀs)² (SSM-VR).
        directions: optional explicit projection vectors ``[projections, B, *event]`` (used
            instead of drawing them; ``distribution`` is then ignored).
        jacobian: ``"backward"`` (double backprop; the default because it measured faster:
            forward mode took 1.2–1.3× the time and 1.4–1.6× the peak memory of a RefineNet
            training step on the CPU, ``benchmarks/training.py``) or ``"forward"``
            (forward-mode JVP).
        y: optional ``[B]`` labels for a :class:`~ncsn.ConditionalScoreModel`
            (``model(x, σ, y)``).
        generator: source of the projections.

    Returns:
        ``[B]`` per-example losses (may be negative: this is score matching up to a constant).

    Raises:
        TypeError: a non-floating ``x`` or ``directions``, a σ that is not a number or tensor, a
            non-bool ``variance_reduction``, or a ``generator`` that is not a ``torch.Generator``.
        ValueError: an empty batch, a negative or non-finite σ, ``projections`` < 1, an unknown
            ``distribution`` or ``jacobian``, ``directions`` of the wrong shape, NaN or inf in
            ``x`` or ``directions``, a model output whose shape or device differs from its input, or one
            that does not depend differentiably on x (``jacobian="backward"``).

    Example:
        >>> net = ncsn.nets.ScoreMLP(2)
        >>> ncsn.losses.ssm(net, torch.randn(16, 2), 1.0, generator=torch.Generator()).shape
        torch.Size([16])

    References:
        Song, Garg, Shi & Ermon (2019), "Sliced Score Matching".
    """
    check_callable(model, "model")
    _check_x(x, generator)
    check_finite(x, "x")
    projections = _check_slicing(projections, distribution, jacobian, variance_reduction)
    sigma = as_sigma_tensor(sigma, x)
    check_sigma_values(sigma, allow_zero=True)
    return _ssm_core(
        model,
        x,
        sigma_vector(sigma, x),
        projections=projections,
        distribution=distribution,
        variance_reduction=variance_reduction,
        directions=directions,
        jacobian=jacobian,
        y=_check_y(y, x),
        generator=generator,
    )


_DETACHED_OUTPUT = (
    "model output does not depend differentiably on x (its output has no grad_fn: a model run "
    "under torch.no_grad() or one that detaches its output); sliced score matching "
    "differentiates the model's output in x"
)


def _has_trainable_parameters(model: object) -> bool:
    return isinstance(model, nn.Module) and any(p.requires_grad for p in model.parameters())


def _ssm_core(
    model: ScoreModel,
    x: Tensor,
    sig: Tensor,
    *,
    projections: int,
    distribution: Projection,
    variance_reduction: bool,
    directions: Tensor | None,
    jacobian: JacobianMode,
    y: Tensor | None = None,
    generator: torch.Generator | None,
) -> Tensor:
    """:func:`ssm` with checked options and σ ``[B]`` (no check of σ's values: no device sync)."""
    batch = x.shape[0]
    if projections > 1:
        x = x.unsqueeze(0).expand(projections, *x.shape).reshape(projections * batch, *x.shape[1:])
        sig = sig.repeat(projections)
        y = None if y is None else y.repeat(projections)
    if directions is None:
        v = projections_like(x, distribution, generator=generator)
    else:
        check_float_tensor(directions, "directions")
        expected = (projections, batch, *x.shape[1:])
        if tuple(directions.shape) != expected:
            raise ValueError(
                f"directions must have shape [projections, B, *event]={list(expected)}; "
                f"got {tuple(directions.shape)}"
            )
        check_finite(directions, "directions")
        v = to_device_of(directions, x, "directions").reshape(x.shape).to(x.dtype)
    with torch.enable_grad():
        if jacobian == "backward":
            xg = x.detach().requires_grad_(True)
            score = _call(model, xg, sig, y)
            if not score.requires_grad:
                raise ValueError(_DETACHED_OUTPUT)
            (jv,) = torch.autograd.grad((score * v).sum(), xg, create_graph=True)
        else:
            primal_and_tangent = torch.func.jvp(
                lambda inp: _call(model, inp, sig, y), (x.detach(),), (v,)
            )
            score, jv = primal_and_tangent[0], primal_and_tangent[1]
            # Forward mode cannot tell a detached output from a constant one (both have a zero
            # tangent); a module with trainable parameters whose output has no grad_fn is the
            # detached case.
            if not score.requires_grad and _has_trainable_parameters(model):
                raise ValueError(_DETACHED_OUTPUT)
    jacobian_term = sum_event(v * jv)
    if variance_reduction:
        norm_term = 0.5 * sum_event(score.square())
    else:
        norm_term = 0.5 * sum_event(score * v).square()
    return (jacobian_term + norm_term).reshape(projections, batch).mean(0)


def annealed_ssm(
    model: ScoreModel,
    x: Tensor,
    sigma: Tensor | float,
    *,
    power: float = 2.0,
    noise: Tensor | None = None,
    projections: int = 1,
    distribution: Projection = "gaussian",
    variance_reduction: bool = True,
    directions: Tensor | None = None,
    jacobian: JacobianMode = "backward",
    y: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Annealed sliced score matching, as in the official NCSN code (``algo: ssm``).

    ℓ(x, σ) = σ^p · ssm(model, x̃, σ) with x̃ = x + σz: sliced score matching of the perturbed data
    q_σ, weighted like :func:`dsm`. (The official code hard-codes p = 2.)

    Args:
        model: a :class:`~ncsn.ScoreModel`, differentiable in x.
        x: clean data ``[B, *event]``.
        sigma: a scalar or ``[B]`` noise levels (positive).
        power: p in λ(σ) = σ^p.
        noise: optional ``z`` of x's shape (drawn from ``generator`` otherwise).
        projections: number of projection vectors per example.
        distribution: ``"gaussian"``, ``"rademacher"`` or ``"sphere"``.
        variance_reduction: use ½‖s‖² in place of ½(vᵀs)² (SSM-VR).
        directions: optional explicit projections ``[projections, B, *event]``.
        jacobian: ``"backward"`` (double backprop) or ``"forward"`` (forward-mode JVP).
        y: optional ``[B]`` labels for a :class:`~ncsn.ConditionalScoreModel`.
        generator: source of ``z`` and of the projections.

    Returns:
        ``[B]`` per-example losses.

    Raises:
        TypeError: a non-floating ``noise``, and the errors of :func:`ssm`.
        ValueError: a non-positive or non-finite σ, a non-finite ``power``, and the errors of
            :func:`ssm`.

    Example:
        >>> net = ncsn.nets.ScoreMLP(2, sigmas=[1.0, 0.1])
        >>> x = torch.randn(4, 2)
        >>> ncsn.losses.annealed_ssm(net, x, torch.tensor([1.0, 0.1, 1.0, 0.1])).shape
        torch.Size([4])
    """
    check_callable(model, "model")
    projections = _check_slicing(projections, distribution, jacobian, variance_reduction)
    sig, z = _perturb(x, sigma, noise, power, generator)
    return _annealed_ssm_core(
        model,
        x,
        sig,
        z,
        power,
        projections=projections,
        distribution=distribution,
        variance_reduction=variance_reduction,
        directions=directions,
        jacobian=jacobian,
        y=_check_y(y, x),
        generator=generator,
    )


def _annealed_ssm_core(
    model: ScoreModel,
    x: Tensor,
    sig: Tensor,
    z: Tensor,
    power: float,
    *,
    projections: int,
    distribution: Projection,
    variance_reduction: bool,
    directions: Tensor | None,
    jacobian: JacobianMode,
    y: Tensor | None = None,
    generator: torch.Generator | None,
) -> Tensor:
    per = _ssm_core(
        model,
        x + pad_event(sig, x) * z,
        sig,
        projections=projections,
        distribution=distribution,
        variance_reduction=variance_reduction,
        directions=directions,
        jacobian=jacobian,
        y=y,
        generator=generator,
    )
    return per * sig.pow(power)


def _levels(
    schedule: NoiseSchedule, model: ScoreModel, x: Tensor, generator: torch.Generator | None
) -> Tensor:
    check_callable(model, "model")
    _check_x(x, generator)
    sigma = schedule.sample(x.shape[0], generator=generator)
    # A user schedule's draw is checked on its metadata only (no device sync per step).
    if not isinstance(sigma, Tensor) or sigma.shape != (x.shape[0],):
        got = tuple(sigma.shape) if isinstance(sigma, Tensor) else type(sigma).__name__
        raise ValueError(
            f"schedule.sample(batch) must return a [batch] tensor of σ values; got {got} "
            f"for batch={x.shape[0]}"
        )
    return to_device_of(sigma, x, "schedule.sample(batch)").to(dtype=x.dtype)


def _check_dropout(label_dropout: float, num_classes: int | None) -> tuple[float, int | None]:
    rate = finite_float(label_dropout, "label_dropout")
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"label_dropout must lie in [0, 1]; got label_dropout={label_dropout!r}")
    if num_classes is not None:
        num_classes = positive_int(num_classes, "num_classes")
    elif rate > 0:
        raise ValueError(
            f"label_dropout={rate!r} drops labels to the null label num_classes: give num_classes"
        )
    return rate, num_classes


def _batch_labels(
    y: object,
    x: Tensor,
    rate: float,
    num_classes: int | None,
    generator: torch.Generator | None,
) -> Tensor | None:
    labels = _check_y(y, x)
    if labels is None or rate == 0.0 or num_classes is None:
        return labels
    return drop_labels(labels, rate, num_classes, generator=generator)


@dataclass(frozen=True)
class DenoisingScoreMatching:
    """The NCSN training objective (Eq. 6 of Song & Ermon, 2019), a :class:`~ncsn.ScoreLoss`.

    𝓛 = mean over the batch of ½ σ_b^p ‖s_θ(x_b + σ_b z_b, σ_b) + z_b/σ_b‖², with one level σ_b per
    example drawn uniformly from the schedule: an unbiased estimate of (1/L) Σ_i λ(σ_i) ℓ(θ; σ_i).

    Called with the batch's labels, ``loss(model, x, y=labels, generator=g)``, it trains a
    :class:`~ncsn.ConditionalScoreModel` on ``model(x̃, σ, y)``, each label first dropped to the
    null label ``num_classes`` with probability ``label_dropout`` (drawn after σ and z, so the σ
    and z of a seed are those of an unlabelled call).

    Args:
        schedule: the noise levels, a :class:`~ncsn.NoiseSchedule` (a bare tensor or list of
            levels is a ``TypeError``: wrap it in :class:`ncsn.Schedule`).
        power: p in λ(σ) = σ^p (paper: 2; the single-σ baseline: 0).
        label_dropout: the rate at which labels become the null label (0.1–0.2 is usual for
            classifier-free guidance; 0 trains the conditional scores only).
        num_classes: K, the null label's index; needed for ``label_dropout > 0``.

    Calling it with an empty batch is a ``ValueError``, as everywhere in ``ncsn``. Its checks
    read no values (no device synchronisation per step): NaN or inf in ``x`` gives a NaN or inf
    loss, which the Trainer raises as :class:`~ncsn.training.NonFiniteLossError` (see the
    module docstring).

    Example:
        >>> loss = ncsn.losses.DenoisingScoreMatching(ncsn.GeometricSchedule(1.0, 0.01, 10))
        >>> net = ncsn.nets.ScoreMLP(2, sigmas=loss.schedule.sigmas)
        >>> loss(net, torch.rand(32, 2), generator=torch.Generator().manual_seed(0)).ndim
        0
    """

    schedule: NoiseSchedule
    power: float = 2.0
    label_dropout: float = 0.0
    num_classes: int | None = None

    def __post_init__(self) -> None:
        _check_schedule(self.schedule)
        object.__setattr__(self, "power", finite_float(self.power, "power"))
        rate, classes = _check_dropout(self.label_dropout, self.num_classes)
        object.__setattr__(self, "label_dropout", rate)
        object.__setattr__(self, "num_classes", classes)

    def __call__(
        self,
        model: ScoreModel,
        x: Tensor,
        *,
        y: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        sigma = _levels(self.schedule, model, x, generator)
        z = randn_like(x, generator)
        labels = _batch_labels(y, x, self.label_dropout, self.num_classes, generator)
        return _dsm_core(model, x, sigma, z, self.power, labels).mean()


@dataclass(frozen=True)
class SlicedScoreMatching:
    """Annealed sliced score matching (the official code's ``algo: ssm``), a :class:`~ncsn.ScoreLoss`.

    𝓛 = mean over the batch of σ_b^p · E_v[vᵀ∇(vᵀs_θ(x̃_b, σ_b)) + ½‖s_θ(x̃_b, σ_b)‖²], x̃_b = x_b + σ_b z_b
    (with ``variance_reduction=False``, ½(vᵀs)² replaces ½‖s‖²).

    Args:
        schedule: the noise levels, a :class:`~ncsn.NoiseSchedule` (wrap a bare tensor in
            :class:`ncsn.Schedule`).
        variance_reduction: SSM-VR (default, as in the official code).
        projections: projection vectors per example.
        distribution: ``"gaussian"``, ``"rademacher"`` or ``"sphere"``.
        power: p in λ(σ) = σ^p.
        jacobian: how vᵀJv is computed, ``"backward"`` (default; the faster, as measured in
            ``benchmarks/training.py``) or ``"forward"`` (see :func:`ssm`).
        label_dropout: the rate at which the labels of ``loss(model, x, y=labels)`` become the
            null label (see :class:`DenoisingScoreMatching`).
        num_classes: K, the null label's index; needed for ``label_dropout > 0``.

    Like :class:`DenoisingScoreMatching` it reads no values when called: NaN or inf in ``x``
    gives a non-finite loss (see the module docstring).

    Example:
        >>> loss = ncsn.losses.SlicedScoreMatching(ncsn.GeometricSchedule(1.0, 0.01, 10))
        >>> net = ncsn.nets.ScoreMLP(2, sigmas=loss.schedule.sigmas)
        >>> loss(net, torch.rand(32, 2), generator=torch.Generator().manual_seed(0)).ndim
        0
    """

    schedule: NoiseSchedule
    variance_reduction: bool = True
    projections: int = 1
    distribution: Projection = "gaussian"
    power: float = 2.0
    jacobian: JacobianMode = "backward"
    label_dropout: float = 0.0
    num_classes: int | None = None

    def __post_init__(self) -> None:
        _check_schedule(self.schedule)
        projections = _check_slicing(
            self.projections, self.distribution, self.jacobian, self.variance_reduction
        )
        object.__setattr__(self, "projections", projections)
        object.__setattr__(self, "power", finite_float(self.power, "power"))
        rate, classes = _check_dropout(self.label_dropout, self.num_classes)
        object.__setattr__(self, "label_dropout", rate)
        object.__setattr__(self, "num_classes", classes)

    def __call__(
        self,
        model: ScoreModel,
        x: Tensor,
        *,
        y: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        sigma = _levels(self.schedule, model, x, generator)
        z = randn_like(x, generator)
        labels = _batch_labels(y, x, self.label_dropout, self.num_classes, generator)
        per = _annealed_ssm_core(
            model,
            x,
            sigma,
            z,
            self.power,
            projections=self.projections,
            distribution=self.distribution,
            variance_reduction=self.variance_reduction,
            directions=None,
            jacobian=self.jacobian,
            y=labels,
            generator=generator,
        )
        return per.mean()
