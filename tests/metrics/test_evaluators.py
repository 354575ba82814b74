"""The built-in evaluators (ncsn.metrics.evaluators)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from ncsn.data import load_digits
from ncsn.metrics import (
    Classifier,
    DigitsEvaluator,
    FeatureExtractor,
    digits_evaluator,
    frechet_distance,
    inception_score,
    nearest_neighbour_distances,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- digits evaluator


def test_digits_evaluator_is_deterministic_and_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    a = digits_evaluator(seed=3, epochs=1)
    b = digits_evaluator(seed=3, epochs=1)
    c = digits_evaluator(seed=4, epochs=1)
    assert torch.equal(torch.random.get_rng_state(), state)
    for (name, pa), pb, pc in zip(
        a.network.named_parameters(), b.network.parameters(), c.network.parameters(), strict=True
    ):
        assert torch.equal(pa, pb), name
        assert not torch.equal(pa, pc) or name.endswith("bias")
    assert a.test_accuracy == b.test_accuracy


def test_digits_evaluator_short_training_learns():
    evaluator = digits_evaluator(epochs=8)
    assert isinstance(evaluator, DigitsEvaluator) and evaluator.seed == 0
    assert evaluator.test_accuracy > 0.9
    x, y = load_digits("test")
    assert evaluator.accuracy(x, y) == evaluator.test_accuracy
    assert isinstance(evaluator, FeatureExtractor) and isinstance(evaluator, Classifier)
    feats = evaluator.features(x.reshape(297, 64))  # any [B, *event] of 64 values
    assert feats.shape == (297, 64)
    probs = evaluator.probabilities(x)
    assert probs.shape == (297, 10)
    torch.testing.assert_close(probs.sum(1), torch.ones(297))


@pytest.mark.slow
def test_digits_evaluator_default_accuracy_and_metric_sanity():
    evaluator = digits_evaluator()
    assert evaluator.test_accuracy > 0.95
    train, _ = load_digits("train")
    test, _ = load_digits("test")
    noise = torch.rand(297, 1, 8, 8, generator=gen(0))
    f_train = evaluator.features(train)
    real = frechet_distance(f_train, evaluator.features(test))
    fake = frechet_distance(f_train, evaluator.features(noise))
    assert fake > 5 * real
    assert inception_score(evaluator.probabilities(test), splits=1).mean > 8.0
    assert inception_score(evaluator.probabilities(noise), splits=1).mean < 4.0
    near_test = nearest_neighbour_distances(test, train).distances.median()
    near_noise = nearest_neighbour_distances(noise, train).distances.median()
    assert near_noise > 2 * near_test


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"seed": 1.5}, TypeError, "seed"),
        ({"epochs": 0}, ValueError, "epochs"),
        ({"learning_rate": -1.0}, ValueError, "learning_rate"),
        ({"num_features": 0}, ValueError, "num_features"),
    ],
)
def test_digits_evaluator_rejects(kwargs, error, match):
    with pytest.raises(error, match=match):
        digits_evaluator(**kwargs)


def test_digits_evaluator_rejects_wrong_inputs():
    evaluator = digits_evaluator(epochs=1)
    with pytest.raises(ValueError, match="8×8 digits"):
        evaluator.features(torch.zeros(2, 1, 7, 7))
    with pytest.raises(ValueError, match="labels must have shape"):
        evaluator.accuracy(torch.zeros(2, 1, 8, 8), torch.zeros(3, dtype=torch.long))


# ---------------------------------------------------------------- bad inputs

BAD_INPUTS: list[Any] = [
    pytest.param(
        lambda: DigitsEvaluator(None, 0.0, 0).accuracy(  # type: ignore[arg-type]
            torch.zeros(1, 1, 8, 8),
            [1],  # type: ignore[arg-type]
        ),
        TypeError,
        r"labels must be a torch\.Tensor; got list",
        id="DigitsEvaluator.accuracy/labels as a list",
    ),
    # Found by the third audit: an error that named no argument.
    pytest.param(
        lambda: digits_evaluator(seed=2**70),
        ValueError,
        r"seed must be in \[-2\*\*63, 2\*\*64\).*got seed=1180591620717411303424",
        id="digits_evaluator/seed beyond 64 bits",
    ),
]


@pytest.mark.parametrize(("call", "error", "match"), BAD_INPUTS)
def test_evaluators_refuse_bad_input_naming_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()
