"""Evaluation without TensorFlow: exact toy metrics, MMD, Fréchet distance, Inception-style scores.

Three groups:

- **Exact toy metrics** for distributions with known structure (:mod:`ncsn.toy`):
  :func:`mode_weights`, :func:`mmd_rbf`, :func:`sliced_wasserstein` and :func:`score_error` (a
  score model against the exact perturbed score, per noise level).
- **Feature-based image metrics** over any network: :func:`frechet_distance` (FID when the
  features come from Inception-v3's pool layer) and :func:`inception_score` (IS from its class
  probabilities). A :class:`FeatureExtractor` / :class:`Classifier` is anything with
  ``features(x)`` / ``probabilities(x)``; :func:`extract_features` and
  :func:`extract_probabilities` run one over a large tensor in batches.
- **The standard FID network**: :func:`inception_v3` builds the FID Inception-v3 (TensorFlow's
  graph, in plain PyTorch) from a weights file you download once; :func:`precision_recall`
  (Kynkäänniemi et al., 2019) over its features or any others.
- **A built-in digits evaluator**: :func:`digits_evaluator` trains a small CNN on the embedded
  8×8 digits (deterministically from a seed) and gives features and class probabilities for the
  two metrics above; :func:`nearest_neighbour_distances` checks samples for memorisation.

Scalar metrics are returned as Python floats computed in float64.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from ncsn._checks import (
    as_sigmas,
    check_batch,
    check_bool,
    check_callable,
    check_generator,
    check_nonempty,
    check_output,
    finite_float,
    per_example,
    positive_float,
    positive_int,
    randn_like,
    sum_event,
)
from ncsn._inception import InceptionV3Features, inception_v3
from ncsn._types import ScoreModel
from ncsn.data import load_digits

__all__ = [
    "Classifier",
    "DigitsEvaluator",
    "FeatureExtractor",
    "FeatureStatistics",
    "InceptionScore",
    "InceptionV3Features",
    "Mixture",
    "NearestNeighbours",
    "PrecisionRecall",
    "RunningStatistics",
    "digits_evaluator",
    "extract_features",
    "extract_probabilities",
    "feature_statistics",
    "frechet_distance",
    "frechet_distance_from_statistics",
    "inception_score",
    "inception_v3",
    "mmd_rbf",
    "mode_weights",
    "nearest_neighbour_distances",
    "precision_recall",
    "score_error",
    "sliced_wasserstein",
]


# --------------------------------------------------------------------------------------------
# Private helpers
# --------------------------------------------------------------------------------------------


def _flat64(x: Tensor, name: str, *, min_rows: int = 1) -> Tensor:
    check_batch(x, name)
    if x.shape[0] < min_rows:
        raise ValueError(f"{name} must hold at least {min_rows} points; got shape {tuple(x.shape)}")
    flat = x.detach().reshape(x.shape[0], -1).to(torch.float64)
    if not bool(torch.isfinite(flat).all()):
        raise ValueError(f"{name} must be finite; it holds NaN or infinite values")
    return flat


def _same_event(x: Tensor, y: Tensor, names: tuple[str, str] = ("x", "y")) -> None:
    if x.shape[1:] != y.shape[1:]:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same event shape; got "
            f"{tuple(x.shape)} and {tuple(y.shape)}"
        )


def _sq_dists(a: Tensor, b: Tensor) -> Tensor:
    """Squared Euclidean distances ``[n, m]`` between rows."""
    return (a.pow(2).sum(1, keepdim=True) + b.pow(2).sum(1) - 2.0 * (a @ b.T)).clamp_min_(0.0)


# --------------------------------------------------------------------------------------------
# Exact toy metrics
# --------------------------------------------------------------------------------------------


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


def mmd_rbf(x: Tensor, y: Tensor, *, bandwidth: float | None = None) -> float:
    """Squared maximum mean discrepancy with a Gaussian (RBF) kernel, unbiased U-statistic.

    ``k(a, b) = exp(−‖a − b‖²/(2h²))`` and

        MMD²ᵤ = 1/(m(m−1)) Σ_{i≠j} k(x_i, x_j) + 1/(n(n−1)) Σ_{i≠j} k(y_i, y_j) − 2/(mn) Σ_{i,j} k(x_i, y_j).

    The U-statistic is unbiased, so it can be slightly negative when the two distributions are
    equal. Memory is O((m + n)²); subsample large sets.

    Args:
        x: ``[m, *event]`` samples, m >= 2.
        y: ``[n, *event]`` samples, n >= 2, same event shape.
        bandwidth: h > 0. Default: the median heuristic, the median Euclidean distance between
            distinct points of the pooled sample (Gretton et al., 2012).

    Returns:
        MMD²ᵤ as a Python float.

    Raises:
        TypeError: on non-floating inputs.
        ValueError: on fewer than 2 points per set, mismatched event shapes, non-finite values,
            a non-positive ``bandwidth``, or a median distance of 0 (pass ``bandwidth``).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> a, b = torch.randn(500, 2, generator=g), torch.randn(500, 2, generator=g) + 1.0
        >>> ncsn.metrics.mmd_rbf(a, b) > 0.1
        True

    References:
        Gretton et al. (2012), "A Kernel Two-Sample Test", JMLR 13, Lemma 6.
    """
    xf = _flat64(x, "x", min_rows=2)
    yf = _flat64(y, "y", min_rows=2).to(
        xf.device
    )  # on x's device, as nearest_neighbour_distances does
    _same_event(x, y)
    m, n = xf.shape[0], yf.shape[0]
    pooled = torch.cat([xf, yf])
    d2 = _sq_dists(pooled, pooled)
    if bandwidth is None:
        off = ~torch.eye(m + n, dtype=torch.bool, device=d2.device)
        h2 = float(d2[off].median())
        if h2 <= 0.0:
            raise ValueError(
                "the median pairwise distance is 0 (more than half the pairs coincide); "
                "pass bandwidth explicitly"
            )
    else:
        h2 = positive_float(bandwidth, "bandwidth") ** 2
    k = torch.exp(-d2 / (2.0 * h2))
    kxx, kyy, kxy = k[:m, :m], k[m:, m:], k[:m, m:]
    # The diagonal of k is exactly 1 (d2 of a row with itself is clamped to >= 0, and is 0 up to
    # rounding); subtract the trace rather than assuming it.
    xx = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    yy = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    return float(xx + yy - 2.0 * kxy.mean())


def sliced_wasserstein(
    x: Tensor,
    y: Tensor,
    *,
    num_projections: int = 128,
    p: float = 2.0,
    generator: torch.Generator | None = None,
) -> float:
    """The sliced p-Wasserstein distance between two empirical distributions.

    ``SW_p = (E_θ W_p^p(θᵀx, θᵀy))^{1/p}`` with θ uniform on the unit sphere, estimated with
    ``num_projections`` random directions. Each 1-D distance is exact between the two empirical
    distributions (of any sizes m and n), from their quantile functions on the merged grid of
    breakpoints ``{i/m} ∪ {j/n}``.

    Args:
        x: ``[m, *event]`` samples.
        y: ``[n, *event]`` samples, same event shape.
        num_projections: the number of random directions.
        p: the order, p >= 1.
        generator: draws the directions (on ``x``'s device).

    Returns:
        SW_p as a Python float (same units as the data).

    Raises:
        TypeError: on non-floating inputs or a wrongly typed argument.
        ValueError: on empty sets, mismatched event shapes, non-finite values, ``p < 1`` or
            ``num_projections < 1``.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> a = torch.randn(1000, 2, generator=g)
        >>> # Each projection moves by 3·(θ₁ + θ₂), whose mean square is 9: SW₂ ≈ 3.
        >>> round(ncsn.metrics.sliced_wasserstein(a, a + 3.0, generator=g), 1)
        3.1

    References:
        Bonneel et al. (2015), "Sliced and Radon Wasserstein Barycenters of Measures".
    """
    xf = _flat64(x, "x")
    yf = _flat64(y, "y").to(xf.device)  # the directions are drawn on x's device
    _same_event(x, y)
    num_projections = positive_int(num_projections, "num_projections")
    p = positive_float(p, "p")
    if p < 1.0:
        raise ValueError(f"p must be >= 1; got p={p!r}")
    check_generator(generator, x)
    theta = torch.randn(
        (xf.shape[1], num_projections), generator=generator, dtype=x.dtype, device=x.device
    ).to(torch.float64)
    theta = theta / theta.norm(dim=0, keepdim=True)
    px = (xf @ theta).sort(dim=0).values  # [m, P]
    py = (yf @ theta).sort(dim=0).values  # [n, P]
    m, n = px.shape[0], py.shape[0]
    # The merged breakpoints of both quantile functions; between consecutive ones each quantile
    # function is constant, so evaluate both at the midpoints and weight by the interval length.
    grid = torch.cat(
        [
            torch.arange(1, m + 1, dtype=torch.float64, device=xf.device) / m,
            torch.arange(1, n + 1, dtype=torch.float64, device=xf.device) / n,
        ]
    )
    grid = torch.unique(torch.cat([grid, grid.new_zeros(1)]))  # sorted
    widths = grid[1:] - grid[:-1]
    mids = 0.5 * (grid[1:] + grid[:-1])
    ix = (mids * m).floor().long().clamp_(max=m - 1)
    iy = (mids * n).floor().long().clamp_(max=n - 1)
    cost = ((px[ix] - py[iy]).abs() ** p * widths[:, None]).sum(0)  # [P]
    return float(cost.mean() ** (1.0 / p))


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
        sigma_b = per_example(sigma, x)
        x_tilde = x + sigma * randn_like(x, generator) if perturb else x
        estimate = model(x_tilde, sigma_b)
        check_output(estimate, x_tilde)
        truth = exact_score(x_tilde, sigma_b)
        check_output(truth, x_tilde, "exact_score")
        errors.append(sum_event((estimate - truth).detach().square()).mean())
    return torch.stack(errors)


# --------------------------------------------------------------------------------------------
# Feature-based metrics
# --------------------------------------------------------------------------------------------


@runtime_checkable
class FeatureExtractor(Protocol):
    """A network that maps images to feature vectors: ``features(x [B, *event]) -> [B, F]``.

    Any object with this method plugs into :func:`extract_features`, :func:`frechet_distance`
    and :func:`precision_recall`. For FID on CIFAR-10-style data, :func:`inception_v3` gives the
    standard network (weights downloaded once by you, not shipped with ``ncsn``)::

        inception = ncsn.metrics.inception_v3("weights-inception-2015-12-05-6726825d.pth")
        real = ncsn.metrics.extract_features(inception, train_images)    # [50000, 2048]
        fake = ncsn.metrics.extract_features(inception, samples)         # [50000, 2048]
        fid = ncsn.metrics.frechet_distance(real, fake)

    Numbers are comparable with published FIDs only with the same Inception weights, resizing
    and sample counts as the reference implementation (TTUR's TensorFlow graph for the paper).
    """

    def features(self, x: Tensor, /) -> Tensor: ...


@runtime_checkable
class Classifier(Protocol):
    """A network that gives class probabilities: ``probabilities(x [B, *event]) -> [B, K]``.

    Plugs into :func:`extract_probabilities` and :func:`inception_score`; for the Inception
    Score, the softmax of Inception-v3's 1008 (or 1000) logits.
    """

    def probabilities(self, x: Tensor, /) -> Tensor: ...


def _batched(fn_name: str, obj: object, x: Tensor, batch_size: int) -> Tensor:
    check_batch(x)
    check_nonempty(x)
    batch_size = positive_int(batch_size, "batch_size")
    fn = getattr(obj, fn_name)
    outs = []
    with torch.no_grad():
        for start in range(0, x.shape[0], batch_size):
            chunk = x[start : start + batch_size]
            out = fn(chunk)
            if not isinstance(out, Tensor) or out.ndim != 2 or out.shape[0] != chunk.shape[0]:
                shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
                raise ValueError(
                    f"{fn_name}() must return [B, *] with B={chunk.shape[0]}; got {shape}"
                )
            outs.append(out.detach())
    return torch.cat(outs)


def extract_features(extractor: FeatureExtractor, x: Tensor, *, batch_size: int = 500) -> Tensor:
    """Run ``extractor.features`` over ``x`` in batches without gradients.

    Args:
        extractor: any :class:`FeatureExtractor`.
        x: ``[N, *event]`` inputs.
        batch_size: inputs per call.

    Returns:
        ``[N, F]`` features.

    Raises:
        TypeError: if ``extractor`` has no ``features`` method or ``x`` is not floating.
        ValueError: if ``x`` is empty or ``features`` does not return ``[B, F]``.

    Example:
        >>> evaluator = ncsn.metrics.digits_evaluator(epochs=1)   # a quick one (default: 30)
        >>> samples = torch.rand(16, 1, 8, 8)
        >>> ncsn.metrics.extract_features(evaluator, samples, batch_size=8).shape
        torch.Size([16, 64])
    """
    if not isinstance(extractor, FeatureExtractor):
        raise TypeError(f"extractor must have a features(x) method; got {type(extractor).__name__}")
    return _batched("features", extractor, x, batch_size)


def extract_probabilities(classifier: Classifier, x: Tensor, *, batch_size: int = 500) -> Tensor:
    """Run ``classifier.probabilities`` over ``x`` in batches without gradients.

    Args:
        classifier: any :class:`Classifier`.
        x: ``[N, *event]`` inputs.
        batch_size: inputs per call.

    Returns:
        ``[N, K]`` class probabilities.

    Raises:
        TypeError: if ``classifier`` has no ``probabilities`` method or ``x`` is not floating.
        ValueError: if ``x`` is empty or ``probabilities`` does not return ``[B, K]``.

    Example:
        >>> evaluator = ncsn.metrics.digits_evaluator(epochs=1)   # a quick one (default: 30)
        >>> samples = torch.rand(16, 1, 8, 8)
        >>> probs = ncsn.metrics.extract_probabilities(evaluator, samples, batch_size=8)
        >>> probs.shape, torch.allclose(probs.sum(dim=1), torch.ones(16))
        (torch.Size([16, 10]), True)
    """
    if not isinstance(classifier, Classifier):
        raise TypeError(
            f"classifier must have a probabilities(x) method; got {type(classifier).__name__}"
        )
    return _batched("probabilities", classifier, x, batch_size)


class FeatureStatistics(NamedTuple):
    """Mean ``[F]`` and covariance ``[F, F]`` (float64) of a feature set."""

    mean: Tensor
    cov: Tensor


def feature_statistics(features: Tensor) -> FeatureStatistics:
    """Mean and unbiased covariance (divisor N − 1) of ``[N, F]`` features, in float64.

    Args:
        features: ``[N, F]`` with N >= 2.

    Returns:
        :class:`FeatureStatistics` ``(mean [F], cov [F, F])``.

    Raises:
        TypeError: on non-floating features.
        ValueError: if ``features`` is not 2-D, has fewer than 2 rows, or is not finite.

    Example:
        >>> stats = ncsn.metrics.feature_statistics(torch.randn(100, 8))
        >>> stats.cov.shape
        torch.Size([8, 8])
    """
    check_batch(features, "features")
    if features.ndim != 2:
        raise ValueError(f"features must be 2-D [N, F]; got shape {tuple(features.shape)}")
    f = _flat64(features, "features", min_rows=2)
    mean = f.mean(dim=0)
    centred = f - mean
    cov = centred.T @ centred / (f.shape[0] - 1)
    return FeatureStatistics(mean, cov)


class RunningStatistics:
    """:func:`feature_statistics` of features seen in chunks, in bounded memory.

    Keeps the count, the sum and the sum of outer products in float64 (``F + F²`` numbers,
    whatever the number of rows), so a Fréchet distance on 50,000 samples never holds more than
    one chunk of features. :attr:`sums` is one flat tensor: summing it across processes
    (``torch.distributed.all_reduce``) and loading it back with :meth:`load_sums` gives the
    statistics of every process's rows.

    Example:
        >>> running = ncsn.metrics.RunningStatistics()
        >>> x = torch.randn(100, 8)
        >>> for chunk in x.split(30):
        ...     running.update(chunk)
        >>> torch.allclose(running.statistics().cov, ncsn.metrics.feature_statistics(x).cov)
        True
    """

    def __init__(self) -> None:
        self.count = 0
        self._sum: Tensor | None = None
        self._outer: Tensor | None = None

    def update(self, features: Tensor) -> None:
        """Add ``[N, F]`` features (N >= 1, finite; the same F every time)."""
        check_batch(features, "features")
        if features.ndim != 2:
            raise ValueError(f"features must be 2-D [N, F]; got shape {tuple(features.shape)}")
        f = _flat64(features, "features").cpu()
        if self._sum is None or self._outer is None:
            self._sum = torch.zeros(f.shape[1], dtype=torch.float64)
            self._outer = torch.zeros(f.shape[1], f.shape[1], dtype=torch.float64)
        elif f.shape[1] != self._sum.shape[0]:
            raise ValueError(
                f"features must have {self._sum.shape[0]} columns like the earlier chunks; got "
                f"shape {tuple(features.shape)}"
            )
        self.count += f.shape[0]
        self._sum += f.sum(dim=0)
        self._outer += f.T @ f

    @property
    def sums(self) -> Tensor:
        """``[1 + F + F²]`` float64: the count, the sum and the outer-product sum, flattened."""
        if self._sum is None or self._outer is None:
            raise ValueError("no features were added (call update first)")
        count = torch.tensor([float(self.count)], dtype=torch.float64)
        return torch.cat([count, self._sum, self._outer.flatten()])

    def load_sums(self, sums: Tensor) -> None:
        """Replace the state with ``sums`` (as :attr:`sums` returns, e.g. summed over processes)."""
        if not isinstance(sums, Tensor):
            raise TypeError(f"sums must be a torch.Tensor; got {type(sums).__name__}")
        n = round(math.sqrt(max(sums.numel() - 0.75, 0.0)) - 0.5)  # 1 + F + F² = numel
        if sums.ndim != 1 or n < 1 or 1 + n + n * n != sums.numel():
            raise ValueError(
                f"sums must be [1 + F + F²] with F >= 1; got shape {tuple(sums.shape)}"
            )
        sums = sums.to(dtype=torch.float64, device="cpu")
        count = float(sums[0])
        if not bool(torch.isfinite(sums).all()) or count < 0 or count != round(count):
            raise ValueError(
                f"sums must be finite with a whole, non-negative count first; got count={count!r}"
            )
        self.count = round(count)
        self._sum = sums[1 : 1 + n].clone()
        self._outer = sums[1 + n :].reshape(n, n).clone()

    def statistics(self) -> FeatureStatistics:
        """Mean ``[F]`` and unbiased covariance ``[F, F]`` of every row added (needs N >= 2)."""
        if self._sum is None or self._outer is None or self.count < 2:
            raise ValueError(f"statistics need at least 2 rows of features; got {self.count}")
        mean = self._sum / self.count
        cov = (self._outer - self.count * torch.outer(mean, mean)) / (self.count - 1)
        return FeatureStatistics(mean, 0.5 * (cov + cov.T))


def _psd_sqrt(matrix: Tensor) -> Tensor:
    """Symmetric PSD square root via eigendecomposition, clamping rounding-negative eigenvalues."""
    values, vectors = torch.linalg.eigh(matrix)
    return (vectors * values.clamp_min(0.0).sqrt()) @ vectors.T


def _check_statistics(
    stats: FeatureStatistics | tuple[Tensor, Tensor], name: str
) -> tuple[Tensor, Tensor]:
    if not isinstance(stats, tuple) or len(stats) != 2:
        raise TypeError(f"{name} must be a (mean, cov) pair; got {type(stats).__name__}")
    mean, cov = (torch.as_tensor(t, dtype=torch.float64) for t in stats)
    if mean.ndim != 1 or cov.shape != (mean.shape[0], mean.shape[0]):
        raise ValueError(
            f"{name} must be (mean [F], cov [F, F]); got shapes {tuple(mean.shape)} and "
            f"{tuple(cov.shape)}"
        )
    if not bool(torch.isfinite(mean).all() and torch.isfinite(cov).all()):
        raise ValueError(f"{name} must be finite")
    scale = float(cov.abs().max()) if cov.numel() else 0.0
    if float((cov - cov.T).abs().max()) > 1e-5 * max(scale, 1e-300):
        raise ValueError(f"{name} covariance must be symmetric")
    cov = 0.5 * (cov + cov.T)
    # Rounding leaves eigenvalues of a sample covariance at most ~1e-7 of its scale below 0;
    # anything far below is not a covariance (the square roots would clamp it to 0 silently).
    lowest = float(torch.linalg.eigvalsh(cov)[0]) if cov.numel() else 0.0
    if lowest < -1e-4 * scale:
        raise ValueError(
            f"{name} covariance must be positive semi-definite; got an eigenvalue {lowest:.6g} "
            f"(largest |entry| {scale:.6g})"
        )
    return mean, cov


def frechet_distance_from_statistics(
    a: FeatureStatistics | tuple[Tensor, Tensor], b: FeatureStatistics | tuple[Tensor, Tensor]
) -> float:
    """The Fréchet distance between N(μ_a, C_a) and N(μ_b, C_b), in float64.

        d² = ‖μ_a − μ_b‖² + tr C_a + tr C_b − 2·tr (C_a^{1/2} C_b C_a^{1/2})^{1/2}

    Both square roots are of symmetric positive semi-definite matrices and are taken by
    eigendecomposition with tiny negative eigenvalues (rounding) clamped to 0, so singular and
    near-singular covariances (fewer samples than features) are handled without the complex
    parts a general ``sqrtm`` of C_a·C_b produces.

    Args:
        a: ``(mean [F], cov [F, F])``, e.g. from :func:`feature_statistics`.
        b: ``(mean [F], cov [F, F])``.

    Returns:
        d² >= 0 as a Python float (this is what "FID" reports).

    Raises:
        TypeError: if an argument is not a pair.
        ValueError: on mismatched or malformed shapes, non-finite, asymmetric or not positive
            semi-definite covariances.

    Example:
        >>> s = ncsn.metrics.FeatureStatistics(torch.zeros(2), torch.eye(2))
        >>> ncsn.metrics.frechet_distance_from_statistics(s, s)
        0.0
    """
    mu_a, cov_a = _check_statistics(a, "a")
    mu_b, cov_b = _check_statistics(b, "b")
    if mu_a.shape != mu_b.shape:
        raise ValueError(
            f"a and b must have the same feature dimension; got {mu_a.shape[0]} and {mu_b.shape[0]}"
        )
    cov_b = cov_b.to(cov_a.device)
    root_a = _psd_sqrt(cov_a)
    inner = root_a @ cov_b @ root_a
    inner = 0.5 * (inner + inner.T)
    trace_sqrt = torch.linalg.eigvalsh(inner).clamp_min(0.0).sqrt().sum()
    diff = mu_a - mu_b.to(mu_a.device)
    d2 = diff @ diff + cov_a.trace() + cov_b.trace() - 2.0 * trace_sqrt
    return max(float(d2), 0.0)


def frechet_distance(features_a: Tensor, features_b: Tensor) -> float:
    """The Fréchet distance between Gaussians fitted to two feature sets (FID with Inception).

    Args:
        features_a: ``[N_a, F]`` features, N_a >= 2.
        features_b: ``[N_b, F]`` features, N_b >= 2.

    Returns:
        d² as a Python float (see :func:`frechet_distance_from_statistics`).

    Raises:
        TypeError, ValueError: as :func:`feature_statistics`, or on different F.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> a, b = torch.randn(2000, 4, generator=g), torch.randn(2000, 4, generator=g) + 1.0
        >>> round(ncsn.metrics.frechet_distance(a, b))    # ‖μ_a − μ_b‖² = 4
        4

    References:
        Heusel et al. (2017), "GANs Trained by a Two Time-Scale Update Rule Converge to a Local
        Nash Equilibrium" (FID); Dowson & Landau (1982) for the closed form.
    """
    return frechet_distance_from_statistics(
        feature_statistics(features_a), feature_statistics(features_b)
    )


class InceptionScore(NamedTuple):
    """Mean and standard deviation of the Inception-style score over splits."""

    mean: float
    std: float


def inception_score(probs: Tensor, *, splits: int = 10) -> InceptionScore:
    """The Inception Score ``exp(E_x KL(p(y|x) ‖ p(y)))`` from class probabilities.

    As in Salimans et al. (2016): the N rows are cut into ``splits`` contiguous parts (sizes
    differing by at most one), the score is computed on each with p(y) the part's mean, and the
    mean and population standard deviation over parts are returned. It ranges from 1 (every
    prediction equal) to K (confident predictions spread evenly over K classes).

    Args:
        probs: ``[N, K]`` class probabilities (non-negative, rows summing to 1 within 1e-3), e.g.
            from :func:`extract_probabilities`.
        splits: number of parts, 1 <= splits <= N.

    Returns:
        :class:`InceptionScore` ``(mean, std)`` as Python floats.

    Raises:
        TypeError: on non-floating ``probs`` or a non-int ``splits``.
        ValueError: if ``probs`` is not ``[N, K]`` probabilities or ``splits`` is out of range.

    Example:
        >>> round(ncsn.metrics.inception_score(torch.eye(10).repeat(5, 1), splits=5).mean, 6)
        10.0

    References:
        Salimans et al. (2016), "Improved Techniques for Training GANs".
    """
    check_batch(probs, "probs")
    if probs.ndim != 2:
        raise ValueError(f"probs must be 2-D [N, K]; got shape {tuple(probs.shape)}")
    check_nonempty(probs, "probs")
    splits = positive_int(splits, "splits")
    if splits > probs.shape[0]:
        raise ValueError(f"splits must be <= N={probs.shape[0]}; got splits={splits}")
    p = probs.detach().to(torch.float64)
    if not bool(torch.isfinite(p).all()) or bool((p < 0).any()):
        raise ValueError("probs must be finite and non-negative")
    row_sums = p.sum(dim=1)
    if not bool(((row_sums - 1.0).abs() <= 1e-3).all()):
        raise ValueError(
            f"probs rows must sum to 1; got sums between {float(row_sums.min())} and "
            f"{float(row_sums.max())}"
        )
    scores = []
    for part in torch.tensor_split(p, splits):
        marginal = part.mean(dim=0, keepdim=True)
        kl = (torch.xlogy(part, part) - torch.xlogy(part, marginal)).sum(dim=1)
        scores.append(kl.mean().exp())
    values = torch.stack(scores)
    return InceptionScore(float(values.mean()), float(values.std(unbiased=False)))


# --------------------------------------------------------------------------------------------
# Memorisation and the built-in digits evaluator
# --------------------------------------------------------------------------------------------


class NearestNeighbours(NamedTuple):
    """For each sample, the distance ``[B]`` to its nearest training point and that point's index."""

    distances: Tensor
    indices: Tensor


def nearest_neighbour_distances(
    samples: Tensor, train: Tensor, *, chunk_size: int = 1024
) -> NearestNeighbours:
    """Euclidean distance from each sample to its nearest training point (a memorisation check).

    Distances between flattened events, in float64; samples are processed ``chunk_size`` at a
    time (memory ``chunk_size × N_train``). The neighbour is found with the ‖a‖² + ‖b‖² − 2a·b
    expansion and its distance then recomputed directly, so an exact copy of a training point
    reports exactly 0. Compare the distribution with the same quantity for held-out real data:
    a model that memorises has many samples much closer to the training set than test data are.

    Args:
        samples: ``[B, *event]``.
        train: ``[N, *event]``, same event shape.
        chunk_size: samples per block.

    Returns:
        :class:`NearestNeighbours` ``(distances [B] float64, indices [B] int64)`` on
        ``samples``' device.

    Raises:
        TypeError: on non-floating inputs.
        ValueError: on empty inputs, mismatched event shapes, non-finite values or
            ``chunk_size < 1``.

    Example:
        >>> train, _ = ncsn.data.load_digits("train")
        >>> test, _ = ncsn.data.load_digits("test")
        >>> nearest = ncsn.metrics.nearest_neighbour_distances(test, train)
        >>> round(nearest.distances.median().item(), 2)
        1.15
        >>> nearest.indices.shape
        torch.Size([297])
    """
    s = _flat64(samples, "samples")
    t = _flat64(train, "train").to(s.device)
    _same_event(samples, train, ("samples", "train"))
    chunk_size = positive_int(chunk_size, "chunk_size")
    indices = torch.cat(
        [
            _sq_dists(s[i : i + chunk_size], t).argmin(dim=1)
            for i in range(0, s.shape[0], chunk_size)
        ]
    )
    distances = (s - t[indices]).norm(dim=1)
    return NearestNeighbours(distances, indices)


class _DigitsNet(nn.Module):
    """Conv(1→32) → ReLU → Conv(32→64) → ReLU → MaxPool → Linear(1024→features) → ReLU → Linear(→10)."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        # Built on the meta device so construction draws nothing from the global RNG; the
        # weights are then allocated uninitialised and filled by reset_parameters(generator).
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1, device="meta")
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1, device="meta")
        self.fc1 = nn.Linear(64 * 4 * 4, num_features, device="meta")
        self.fc2 = nn.Linear(num_features, 10, device="meta")
        self.to_empty(device="cpu")

    def reset_parameters(self, generator: torch.Generator) -> None:
        with torch.no_grad():
            # He initialisation for the ReLU layers, zero biases.
            for name, param in self.named_parameters():
                if name.endswith("bias"):
                    param.zero_()
                else:
                    fan_in = param[0].numel()
                    noise = torch.randn(param.shape, generator=generator)
                    param.copy_(noise * math.sqrt(2.0 / fan_in))

    def embed(self, x: Tensor) -> Tensor:
        h = torch.relu(self.conv1(x))
        h = torch.max_pool2d(torch.relu(self.conv2(h)), 2)
        return torch.relu(self.fc1(h.flatten(1)))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.embed(x))


def _random_shift(x: Tensor, generator: torch.Generator) -> Tensor:
    """Translate each ``[1, 8, 8]`` digit by −1, 0 or +1 pixels per axis, zero-filling the border."""
    b = x.shape[0]
    padded = nn.functional.pad(x[:, 0], (1, 1, 1, 1))  # [b, 10, 10]
    offset = torch.randint(0, 3, (2, b), generator=generator)
    span = torch.arange(8)
    rows = offset[0][:, None, None] + span[None, :, None]
    cols = offset[1][:, None, None] + span[None, None, :]
    return padded[torch.arange(b)[:, None, None], rows, cols][:, None]


def _as_digits(x: Tensor) -> Tensor:
    check_batch(x)
    if math.prod(x.shape[1:]) != 64:
        raise ValueError(
            f"x must hold 8×8 digits [B, 1, 8, 8] (or any [B, *event] of 64 values); got "
            f"{tuple(x.shape)}"
        )
    return x.reshape(x.shape[0], 1, 8, 8)


@dataclass(frozen=True, eq=False)
class DigitsEvaluator:
    """A small CNN trained on the embedded 8×8 digits: features, class probabilities, accuracy.

    Built by :func:`digits_evaluator`. It is both a :class:`FeatureExtractor` (the penultimate
    layer, ``[B, num_features]``) and a :class:`Classifier` (softmax over the 10 digits), so
    :func:`frechet_distance` and :func:`inception_score` work on digit samples the way FID and IS
    work on CIFAR-10 with Inception-v3. Inputs are ``[B, 1, 8, 8]`` (or any ``[B, *event]`` of 64
    values) in [0, 1], on the CPU; outputs are float32.

    Attributes:
        network: the trained ``nn.Module`` (in eval mode).
        test_accuracy: accuracy on the held-out test split (297 digits).
        seed: the seed it was trained from.
    """

    network: _DigitsNet
    test_accuracy: float
    seed: int

    def _run(self, x: Tensor, head: bool) -> Tensor:
        digits = _as_digits(x).to(torch.float32)
        with torch.no_grad():
            return self.network(digits) if head else self.network.embed(digits)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate-layer features ``[B, num_features]`` for the Fréchet distance."""
        return self._run(x, head=False)

    def logits(self, x: Tensor) -> Tensor:
        """Class logits ``[B, 10]``."""
        return self._run(x, head=True)

    def probabilities(self, x: Tensor) -> Tensor:
        """Class probabilities ``[B, 10]`` for the Inception-style score."""
        return torch.softmax(self.logits(x), dim=1)

    def predict(self, x: Tensor) -> Tensor:
        """Predicted digit ``[B]`` (int64)."""
        return self.logits(x).argmax(dim=1)

    def accuracy(self, x: Tensor, labels: Tensor) -> float:
        """Fraction of ``x`` ``[B, 1, 8, 8]`` classified as ``labels`` ``[B]``."""
        if not isinstance(labels, Tensor):
            raise TypeError(f"labels must be a torch.Tensor; got {type(labels).__name__}")
        if labels.shape != (x.shape[0],):
            raise ValueError(
                f"labels must have shape [B]=[{x.shape[0]}]; got {tuple(labels.shape)}"
            )
        return float((self.predict(x) == labels.to(torch.int64)).to(torch.float64).mean())


def digits_evaluator(
    *,
    seed: int = 0,
    epochs: int = 30,
    batch_size: int = 64,
    learning_rate: float = 2e-3,
    num_features: int = 64,
) -> DigitsEvaluator:
    """Train the built-in digits classifier on the embedded training split, deterministically.

    A two-layer CNN with a ``num_features``-wide penultimate layer, trained with Adam on the 1,500
    training digits of :func:`ncsn.data.load_digits` (each step sees every digit shifted by a
    random −1, 0 or +1 pixel per axis) and scored on the 297 held-out test digits (about 0.97–0.99
    accuracy depending on the seed; 0.980 with the default).
    All randomness (initialisation, shuffling) comes from a private ``torch.Generator`` seeded
    with ``seed``; the global RNG is not touched. The same seed gives bit-identical weights on
    the same machine and thread count. Training takes a few seconds on one CPU core.

    Args:
        seed: seed of the private generator.
        epochs: passes over the training split.
        batch_size: examples per step.
        learning_rate: Adam step size.
        num_features: width of the feature layer.

    Returns:
        A :class:`DigitsEvaluator` with its ``test_accuracy``.

    Raises:
        TypeError, ValueError: on a wrongly typed or out-of-range argument.

    Example:
        >>> evaluator = ncsn.metrics.digits_evaluator(seed=0, epochs=5)   # default 30: ≈ 0.98
        >>> evaluator.test_accuracy > 0.9
        True
        >>> real, _ = ncsn.data.load_digits("test")
        >>> samples = torch.rand(297, 1, 8, 8, generator=torch.Generator().manual_seed(0))
        >>> fid = ncsn.metrics.frechet_distance(evaluator.features(real), evaluator.features(samples))
        >>> score = ncsn.metrics.inception_score(evaluator.probabilities(samples))
        >>> fid > 10.0, score.mean < 2.0                      # uniform noise looks nothing like digits
        (True, True)
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int; got {seed!r}")
    if not -(2**63) <= seed < 2**64:
        raise ValueError(
            f"seed must be in [-2**63, 2**64), the range of torch.Generator.manual_seed; got "
            f"seed={seed}"
        )
    epochs = positive_int(epochs, "epochs")
    batch_size = positive_int(batch_size, "batch_size")
    learning_rate = positive_float(learning_rate, "learning_rate")
    num_features = positive_int(num_features, "num_features")

    generator = torch.Generator().manual_seed(seed)
    net = _DigitsNet(num_features)
    net.reset_parameters(generator)
    x_train, y_train = load_digits("train")
    x_test, y_test = load_digits("test")
    optimizer = torch.optim.Adam(net.parameters(), lr=learning_rate)
    n = x_train.shape[0]
    net.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            index = order[start : start + batch_size]
            inputs = _random_shift(x_train[index], generator)
            loss = nn.functional.cross_entropy(net(inputs), y_train[index])
            optimizer.zero_grad(set_to_none=True)
            torch.autograd.backward(loss)
            optimizer.step()
    net.eval()
    evaluator = DigitsEvaluator(net, 0.0, seed)
    accuracy = evaluator.accuracy(x_test, y_test)
    return DigitsEvaluator(net, accuracy, seed)


# --------------------------------------------------------------------------------------------
# Precision and recall of feature manifolds (Kynkäänniemi et al., 2019)
# --------------------------------------------------------------------------------------------


class PrecisionRecall(NamedTuple):
    """Precision (fake points on the real manifold) and recall (real points on the fake one)."""

    precision: float
    recall: float


def _check_manifold_points(x: Tensor, name: str, k: int) -> Tensor:
    check_batch(x, name)
    if x.shape[0] < k + 1:
        raise ValueError(
            f"{name} must hold at least k + 1 = {k + 1} points for k={k} (each point's k-th "
            f"nearest neighbour is another point of the set); got shape {tuple(x.shape)}"
        )
    return _flat64(x, name)


def _kth_neighbour_sq_radii(points: Tensor, k: int, chunk_size: int) -> Tensor:
    """Squared distance ``[N]`` from each row to its k-th nearest other row of ``points``."""
    radii = []
    for start in range(0, points.shape[0], chunk_size):
        d2 = _sq_dists(points[start : start + chunk_size], points)
        rows = torch.arange(d2.shape[0], device=d2.device)
        d2[rows, rows + start] = math.inf  # a point is not its own neighbour
        radii.append(d2.topk(k, dim=1, largest=False).values[:, -1])
    return torch.cat(radii)


def _coverage(queries: Tensor, points: Tensor, sq_radii: Tensor, chunk_size: int) -> float:
    """The fraction of ``queries`` inside at least one ball ``B(points_j, radius_j)``."""
    inside = 0
    for start in range(0, queries.shape[0], chunk_size):
        d2 = _sq_dists(queries[start : start + chunk_size], points)
        inside += int((d2 <= sq_radii).any(dim=1).sum())
    return inside / queries.shape[0]


def precision_recall(
    real_features: Tensor, fake_features: Tensor, *, k: int = 3, chunk_size: int = 512
) -> PrecisionRecall:
    """Improved precision and recall of a generative model (Kynkäänniemi et al., 2019).

    Each set's manifold is the union of balls around its points, each ball's radius the distance
    from the point to its k-th nearest neighbour among the *other* points of its set:

        Φ(S) = ∪_{s ∈ S} B(s, ‖s − NN_k(s)‖₂)
        precision = |{φ ∈ fake : φ ∈ Φ(real)}| / |fake|
        recall    = |{φ ∈ real : φ ∈ Φ(fake)}| / |real|

    (a point exactly on a ball's boundary is inside). Precision is the share of samples that look
    real; recall the share of the real distribution the samples cover. Swapping the arguments
    swaps the two numbers. Features are compared in float64 as flattened rows, ``chunk_size``
    rows at a time (memory ``chunk_size × max(N_real, N_fake)`` float64 values); the result does
    not depend on ``chunk_size``. The paper uses k = 3 and 50,000 VGG-16 or Inception features
    per set; with few points the manifolds shrink and both numbers fall.

    Args:
        real_features: ``[N_real, F]`` features of real data (or any ``[N, *event]``, flattened),
            N_real >= k + 1.
        fake_features: ``[N_fake, F]`` features of samples, same event shape, N_fake >= k + 1.
        k: which neighbour sets the radius, k >= 1.
        chunk_size: rows per block of distances.

    Returns:
        :class:`PrecisionRecall` ``(precision, recall)``, Python floats in [0, 1].

    Raises:
        TypeError: on non-floating inputs or a non-int ``k`` or ``chunk_size``.
        ValueError: on fewer than k + 1 points in a set, mismatched event shapes, non-finite
            values, or ``k`` or ``chunk_size`` < 1.

    Example:
        >>> real = torch.tensor([[0.0], [1.0], [2.0]])          # every radius is 1 with k=1
        >>> fake = torch.tensor([[0.5], [1.5], [9.0], [10.0]])  # every radius is 1 too
        >>> ncsn.metrics.precision_recall(real, fake, k=1)     # 9 and 10 are off the data
        PrecisionRecall(precision=0.5, recall=1.0)

    References:
        Kynkäänniemi et al. (2019), "Improved Precision and Recall Metric for Assessing
        Generative Models", NeurIPS, Section 2.
    """
    k = positive_int(k, "k")
    chunk_size = positive_int(chunk_size, "chunk_size")
    real = _check_manifold_points(real_features, "real_features", k)
    fake = _check_manifold_points(fake_features, "fake_features", k).to(real.device)
    _same_event(real_features, fake_features, ("real_features", "fake_features"))
    real_radii = _kth_neighbour_sq_radii(real, k, chunk_size)
    fake_radii = _kth_neighbour_sq_radii(fake, k, chunk_size)
    return PrecisionRecall(
        precision=_coverage(fake, real, real_radii, chunk_size),
        recall=_coverage(real, fake, fake_radii, chunk_size),
    )
