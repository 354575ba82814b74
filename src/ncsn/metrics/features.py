"""Feature-based image metrics over any network: Fréchet distance and Inception-style score.

A :class:`FeatureExtractor` / :class:`Classifier` is anything with ``features(x)`` /
``probabilities(x)``; :func:`extract_features` and :func:`extract_probabilities` run one over a
large tensor in batches. :func:`frechet_distance` (FID when the features come from
Inception-v3's pool layer) and :func:`inception_score` (IS from its class probabilities) take
the results; :class:`RunningStatistics` keeps the Fréchet distance's statistics in bounded
memory, also across processes.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Protocol, runtime_checkable

import torch
from torch import Tensor

from ncsn._checks import check_batch, check_float_tensor, check_nonempty, positive_int
from ncsn.metrics.distances import flatten64, unit_scale

__all__ = [
    "Classifier",
    "FeatureExtractor",
    "FeatureStatistics",
    "InceptionScore",
    "RunningStatistics",
    "extract_features",
    "extract_probabilities",
    "feature_statistics",
    "frechet_distance",
    "frechet_distance_from_statistics",
    "inception_score",
]


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


def _feature_rows(features: Tensor, name: str, min_rows: int) -> Tensor:
    check_batch(features, name)
    if features.ndim != 2:
        raise ValueError(f"{name} must be 2-D [N, F]; got shape {tuple(features.shape)}")
    return flatten64(features, name, min_rows=min_rows)


def _statistics(f: Tensor) -> FeatureStatistics:
    mean = f.mean(dim=0)
    centred = f - mean
    return FeatureStatistics(mean, centred.T @ centred / (f.shape[0] - 1))


def _overflow(what: str, scale: float) -> ValueError:
    return ValueError(
        f"{what} overflows float64 (features of magnitude up to {scale:.3g}); rescale the features"
    )


def feature_statistics(features: Tensor) -> FeatureStatistics:
    """Mean and unbiased covariance (divisor N − 1) of ``[N, F]`` features, in float64.

    Computed on the features divided by a power of two (exact), so squares of features of any
    finite scale do not overflow on the way.

    Args:
        features: ``[N, F]`` with N >= 2.

    Returns:
        :class:`FeatureStatistics` ``(mean [F], cov [F, F])``.

    Raises:
        TypeError: on non-floating features.
        ValueError: if ``features`` is not 2-D, has fewer than 2 rows or is not finite, or if the
            covariance itself exceeds float64's range.

    Example:
        >>> stats = ncsn.metrics.feature_statistics(torch.randn(100, 8))
        >>> stats.cov.shape
        torch.Size([8, 8])
    """
    f = _feature_rows(features, "features", 2)
    scale = unit_scale(f)
    mean, cov = _statistics(f / scale)
    cov = cov * scale * scale
    if not bool(torch.isfinite(cov).all()):
        raise _overflow("the covariance of features", scale)
    return FeatureStatistics(mean * scale, cov)


class RunningStatistics:
    """:func:`feature_statistics` of features seen in chunks, in bounded memory.

    Keeps the count and, around a shift ``c`` (``[F]``), the sums ``Σ(x − c)`` and
    ``Σ(x − c)(x − c)ᵀ`` in float64 (``F + F²`` numbers, whatever the number of rows), so a
    Fréchet distance on 50,000 samples never holds more than one chunk of features. The shift
    keeps the covariance free of cancellation when the features share a large offset; by
    default it is the mean of the first chunk.

    :attr:`sums` is one flat tensor: summing it across processes
    (``torch.distributed.all_reduce``) and loading it back with :meth:`load_sums` gives the
    statistics of every process's rows exactly, provided every process used the same ``shift``
    (for example the features of one row every process reads); :meth:`load_sums` refuses sums
    around other shifts.

    Args:
        shift: ``[F]`` the value subtracted from every row before it is summed; ``None``: the
            mean of the first chunk.

    Raises:
        TypeError, ValueError: if ``shift`` is not a finite floating ``[F]`` tensor, F >= 1.

    Example:
        >>> running = ncsn.metrics.RunningStatistics()
        >>> x = torch.randn(100, 8)
        >>> for chunk in x.split(30):
        ...     running.update(chunk)
        >>> torch.allclose(running.statistics().cov, ncsn.metrics.feature_statistics(x).cov)
        True
    """

    def __init__(self, shift: Tensor | None = None) -> None:
        self.count = 0
        self._shift: Tensor | None = None
        if shift is not None:
            check_float_tensor(shift, "shift")
            if shift.ndim != 1 or shift.numel() == 0:
                raise ValueError(f"shift must be [F] with F >= 1; got shape {tuple(shift.shape)}")
            self._shift = flatten64(shift[None], "shift")[0].cpu()
        self._sum: Tensor | None = None
        self._outer: Tensor | None = None

    @property
    def shift(self) -> Tensor | None:
        """``[F]`` float64: the shift the sums are taken around (``None`` before the first chunk)."""
        return self._shift

    def update(self, features: Tensor) -> None:
        """Add ``[N, F]`` features (N >= 1, finite; the same F every time)."""
        f = _feature_rows(features, "features", 1).cpu()
        if self._shift is None:
            self._shift = f.mean(dim=0)
        if f.shape[1] != self._shift.shape[0]:
            raise ValueError(
                f"features must have {self._shift.shape[0]} columns like the shift and the "
                f"earlier chunks; got shape {tuple(features.shape)}"
            )
        if self._sum is None or self._outer is None:
            self._sum = torch.zeros(f.shape[1], dtype=torch.float64)
            self._outer = torch.zeros(f.shape[1], f.shape[1], dtype=torch.float64)
        centred = f - self._shift
        self.count += f.shape[0]
        self._sum += centred.sum(dim=0)
        self._outer += centred.T @ centred

    @property
    def sums(self) -> Tensor:
        """``[(F + 1)²]`` float64: the count, count·shift, Σ(x − shift) and Σ(x − shift)(x − shift)ᵀ."""
        if self._shift is None or self._sum is None or self._outer is None:
            raise ValueError("no features were added (call update first)")
        count = torch.tensor([float(self.count)], dtype=torch.float64)
        return torch.cat([count, self.count * self._shift, self._sum, self._outer.flatten()])

    def load_sums(self, sums: Tensor) -> None:
        """Replace the state with ``sums`` (as :attr:`sums` returns, e.g. summed over processes).

        The shift of the summed state is ``Σ count·shift / Σ count``; an instance that has a
        shift already (given, or set by a chunk) must find its own there.

        Raises:
            TypeError: if ``sums`` is not a tensor.
            ValueError: if ``sums`` is not ``[(F + 1)²]`` with F >= 1, not finite, has a count
                that is not a whole number >= 0, or was summed around another shift.
        """
        if not isinstance(sums, Tensor):
            raise TypeError(f"sums must be a torch.Tensor; got {type(sums).__name__}")
        n = math.isqrt(sums.numel()) - 1  # (F + 1)² numbers
        if sums.ndim != 1 or n < 1 or (n + 1) ** 2 != sums.numel():
            raise ValueError(f"sums must be [(F + 1)²] with F >= 1; got shape {tuple(sums.shape)}")
        sums = sums.detach().to(dtype=torch.float64, device="cpu")
        count = float(sums[0])
        if not bool(torch.isfinite(sums).all()) or count < 0 or count != round(count):
            raise ValueError(
                f"sums must be finite with a whole, non-negative count first; got count={count!r}"
            )
        shift = sums[1 : 1 + n] / count if count else self._shift
        if self._shift is not None and shift is not None:
            if self._shift.shape != shift.shape:
                raise ValueError(
                    f"sums hold {n} features; this instance's shift has {self._shift.shape[0]}"
                )
            # Equal shifts come back within a few roundings of count·shift; different ones
            # (each process's own first chunk) differ by about the features' spread.
            if float((shift - self._shift).abs().max()) > 1e-12 * float(self._shift.abs().max()):
                raise ValueError(
                    "sums were taken around another shift than this instance's: give every "
                    "process the same RunningStatistics(shift=...) before summing their sums"
                )
            shift = self._shift
        self.count = round(count)
        self._shift = None if shift is None else shift.clone()
        self._sum = sums[1 + n : 1 + 2 * n].clone()
        self._outer = sums[1 + 2 * n :].reshape(n, n).clone()

    def statistics(self) -> FeatureStatistics:
        """Mean ``[F]`` and unbiased covariance ``[F, F]`` of every row added (needs N >= 2).

        Raises:
            ValueError: with fewer than 2 rows, or if the covariance exceeds float64's range.
        """
        if self._shift is None or self._sum is None or self._outer is None or self.count < 2:
            raise ValueError(f"statistics need at least 2 rows of features; got {self.count}")
        centred_mean = self._sum / self.count
        cov = (self._outer - self.count * torch.outer(centred_mean, centred_mean)) / (
            self.count - 1
        )
        if not bool(torch.isfinite(cov).all()):
            raise _overflow("the covariance of features", float(self._shift.abs().max()))
        return FeatureStatistics(self._shift + centred_mean, 0.5 * (cov + cov.T))


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
    a = _feature_rows(features_a, "features_a", 2)
    b = _feature_rows(features_b, "features_b", 2)
    # One power-of-two scale for both: d² is computed on features that cannot overflow when
    # squared, and multiplied back.
    scale = unit_scale(a, b)
    d2 = frechet_distance_from_statistics(_statistics(a / scale), _statistics(b / scale))
    d2 *= scale * scale  # a float, as a Python ** would raise OverflowError
    if not math.isfinite(d2):
        raise _overflow("the Fréchet distance", scale)
    return d2


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
