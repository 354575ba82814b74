"""Exact metrics for distributions with known structure (:mod:`ncsn.toy`).

:func:`mode_weights` (the share of samples per mixture component, Fig. 3 of the paper) and
:func:`score_error` (a score model against the exact perturbed score, per noise level).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from ncsn._checks import (
    as_sigmas,
    check_batch,
    check_bool,
    check_callable,
    check_generator,
    check_nonempty,
    check_output,
    finite_float,
    randn_like,
    sigma_vector,
    sum_event,
)
from ncsn._types import ScoreModel

__all__ = ["Mixture", "mode_weights", "score_error"]


@runtime_checkable
class Mixture(Protocol):
    """Anything with component posteriors ``[B, K]`` (e.g. :class:`ncsn.toy.GaussianMixture`)."""

    def component_posterior(self, x: Tensor, sigma: Tensor | float = 0.0) -> Tensor: ...


def mode_weights(x: Tensor, mixture: Mixture, *, sigma: float = 0.0) -> Tensor:
    """The fraction of samples assigned to each mixture component (Fig. 3 of the paper).

    Each sample goes to the component with the largest posterior ``p(k | x)`` under ``mixture``
    (perturbed by N(0, σ²I) when ``sigma > 0``); the result is the share of samples per component.
    For the paper's mixture 0.2·N((−5,−5), I) + 0.8·N((5,5), I), exact samples give ≈ [0.2, 0.8]
    while plain Langevin dynamics gives a wrong ratio.

    Args:
        x: ``[B, D]`` samples.
        mixture: any object with ``component_posterior(x, sigma) -> [B, K]``.
        sigma: noise level at which posteriors are evaluated (0: the data distribution).

    Returns:
        ``[K]`` weights summing to 1, float64, on ``x``'s device.

    Raises:
        TypeError: if ``mixture`` has no ``component_posterior`` (or it returns no tensor),
            ``x`` is not floating or ``sigma`` is not a number.
        ValueError: if ``x`` is empty or not finite (a NaN sample has no component), a negative
            ``sigma``, or posteriors that are not finite ``[B, K]``.

    Example:
        >>> gmm = ncsn.toy.paper_mixture()
        >>> x = gmm.sample(10_000, generator=torch.Generator().manual_seed(0))
        >>> ncsn.metrics.mode_weights(x, gmm)
        tensor([0.1951, 0.8049], dtype=torch.float64)
    """
    check_batch(x)
    check_nonempty(x)
    if not isinstance(mixture, Mixture):
        raise TypeError(
            f"mixture must have a component_posterior(x, sigma) method; got {type(mixture).__name__}"
        )
    sigma = finite_float(sigma, "sigma")
    if sigma < 0:
        raise ValueError(f"sigma must be finite and >= 0; got sigma={sigma!r}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(
            f"x must be finite; it holds {int((~torch.isfinite(x)).sum())} NaN or infinite "
            f"values (shape {tuple(x.shape)}); a non-finite sample belongs to no component"
        )
    post = mixture.component_posterior(x.detach(), sigma)
    if not isinstance(post, Tensor):
        raise TypeError(
            f"component_posterior must return a torch.Tensor; got {type(post).__name__}"
        )
    if post.ndim != 2 or post.shape[0] != x.shape[0]:
        raise ValueError(
            f"component_posterior must return [B, K] with B={x.shape[0]}; got {tuple(post.shape)}"
        )
    if not bool(torch.isfinite(post).all()):
        raise ValueError(
            "component_posterior returned non-finite values; no component is the largest"
        )
    counts = torch.bincount(post.argmax(dim=1), minlength=post.shape[1])
    return counts.to(torch.float64) / x.shape[0]


def score_error(
    model: ScoreModel,
    exact_score: ScoreModel,
    x: Tensor,
    sigmas: Tensor | Sequence[float],
    *,
    perturb: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Mean squared error of a score model against the exact perturbed score, per noise level.

    For each level σ_l: ``E_b ‖s_θ(x̃_b, σ_l) − ∇ log p_{σ_l}(x̃_b)‖²`` (squared norm summed over the
    event dims, mean over the batch), with ``x̃ = x + σ_l·z`` when ``perturb`` (so x̃ ~ p_{σ_l} when
    x is data; fresh noise per level) or ``x̃ = x`` otherwise. σ_l²·error is scale-free and
    comparable across levels (it is the DSM weighting of the paper).

    Args:
        model: the :class:`~ncsn.ScoreModel` to evaluate.
        exact_score: the exact perturbed score as a :class:`~ncsn.ScoreModel`, e.g.
            ``ncsn.toy.paper_mixture().score_model()``.
        x: ``[B, *event]`` points (data samples, or evaluation points when ``perturb=False``).
        sigmas: ``[L]`` noise levels.
        perturb: add N(0, σ_l²I) noise to ``x`` at each level.
        generator: draws the perturbation noise (on ``x``'s device).

    Returns:
        ``[L]`` errors (detached), in ``x``'s dtype and device.

    Raises:
        TypeError: on a non-floating ``x``, a model or ``exact_score`` that is not callable or
            does not return a tensor, a non-bool ``perturb`` or a non-generator ``generator``.
        ValueError: on an empty or non-finite ``x``, invalid ``sigmas`` or a model output of
            the wrong shape.

    Example:
        >>> gmm = ncsn.toy.paper_mixture()
        >>> x = gmm.sample(256, generator=torch.Generator().manual_seed(0))
        >>> net = ncsn.nets.ScoreMLP(2, sigmas=ncsn.geometric_sigmas(20.0, 1.0, 10))  # train it first
        >>> err = ncsn.metrics.score_error(net, gmm.score_model(), x, net.sigmas)
        >>> err.shape                                                   # one error per level
        torch.Size([10])
        >>> ncsn.metrics.score_error(gmm.score_model(), gmm.score_model(), x, net.sigmas).max()
        tensor(0.)
    """
    check_callable(model, "model")
    check_callable(exact_score, "exact_score")
    check_batch(x)
    check_nonempty(x)
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x must be finite; it holds NaN or infinite values")
    sigmas = as_sigmas(sigmas)
    perturb = check_bool(perturb, "perturb")
    check_generator(generator, x)
    errors = []
    for sigma in sigmas.tolist():
        sigma_b = sigma_vector(sigma, x)
        x_tilde = x + sigma * randn_like(x, generator) if perturb else x
        estimate = model(x_tilde, sigma_b)
        check_output(estimate, x_tilde)
        truth = exact_score(x_tilde, sigma_b)
        check_output(truth, x_tilde, "exact_score")
        errors.append(sum_event((estimate - truth).detach().square()).mean())
    return torch.stack(errors)
