"""Evaluation without TensorFlow: exact toy metrics, MMD, Fréchet distance, Inception-style scores.

One module per group; every public name is re-exported here.

- ``toy``: exact metrics for distributions with known structure, :func:`mode_weights` and
  :func:`score_error`.
- ``distances``: two point sets compared by distances, :func:`mmd_rbf`,
  :func:`sliced_wasserstein`, :func:`nearest_neighbour_distances` (memorisation) and
  :func:`precision_recall` (of feature manifolds).
- ``features``: statistics of features from any network, :func:`frechet_distance`,
  :class:`RunningStatistics`, :func:`inception_score`, :func:`extract_features`.
- ``inception``: the standard FID network, :func:`inception_v3`.
- ``evaluators``: classifiers trained by the project on any labelled images,
  :func:`classifier_evaluator`, and its preset for the embedded digits, :func:`digits_evaluator`.

Scalar metrics are returned as Python floats computed in float64.
"""

from ncsn.metrics.distances import (
    NearestNeighbours,
    PrecisionRecall,
    mmd_rbf,
    nearest_neighbour_distances,
    precision_recall,
    sliced_wasserstein,
)
from ncsn.metrics.evaluators import (
    ClassifierEvaluator,
    DigitsEvaluator,
    classifier_evaluator,
    digits_evaluator,
)
from ncsn.metrics.features import (
    Classifier,
    FeatureExtractor,
    FeatureStatistics,
    InceptionScore,
    RunningStatistics,
    extract_features,
    extract_probabilities,
    feature_statistics,
    frechet_distance,
    frechet_distance_from_statistics,
    inception_score,
)
from ncsn.metrics.inception import InceptionV3Features, inception_v3
from ncsn.metrics.toy import Mixture, mode_weights, score_error

__all__ = [
    "Classifier",
    "ClassifierEvaluator",
    "DigitsEvaluator",
    "FeatureExtractor",
    "FeatureStatistics",
    "InceptionScore",
    "InceptionV3Features",
    "Mixture",
    "NearestNeighbours",
    "PrecisionRecall",
    "RunningStatistics",
    "classifier_evaluator",
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
