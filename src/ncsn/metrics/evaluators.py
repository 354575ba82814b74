"""Evaluators trained by the project: small classifiers whose features and probabilities score samples.

:func:`classifier_evaluator` trains a small CNN on any labelled image set ``[N, C, H, W]``
(deterministically from a seed); :func:`digits_evaluator` is its preset for the embedded 8×8
digits. The result gives features for :func:`~ncsn.metrics.frechet_distance` and class
probabilities for :func:`~ncsn.metrics.inception_score`, as Inception-v3 does for CIFAR-10.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ncsn._checks import check_batch, check_nonempty, positive_float, positive_int
from ncsn.data import load_digits
from ncsn.metrics.features import inception_score

__all__ = ["ClassifierEvaluator", "DigitsEvaluator", "classifier_evaluator", "digits_evaluator"]

_POOLED = 4  # the feature layer sees a 4×4 map of 64 channels, whatever the image size
_MIN_SIZE = 8
# Rows per forward pass when scoring: bounds the first layer's activations to 2**26 values.
_ACTIVATIONS = 2**26


class _ClassifierNet(nn.Module):
    """Conv(C→32) → ReLU → Conv(32→64) → ReLU → max pool to 4×4 → Linear(1024→F) → ReLU → Linear(→K).

    A convolution whose input is at least 16 pixels on its shorter side has stride 2, so the
    cost of a 28×28 image stays close to that of an 8×8 one; 8×8 digits pass both at stride 1.
    """

    def __init__(
        self, image_shape: tuple[int, int, int], num_classes: int, num_features: int
    ) -> None:
        super().__init__()
        channels, height, width = image_shape
        self.image_shape = image_shape
        stride1 = 2 if min(height, width) >= 16 else 1
        side = math.ceil(min(height, width) / stride1)
        stride2 = 2 if side >= 16 else 1
        # Built on the meta device so construction draws nothing from the global RNG; the
        # weights are then allocated uninitialised and filled by reset_parameters(generator).
        self.conv1 = nn.Conv2d(channels, 32, 3, stride1, padding=1, device="meta")
        self.conv2 = nn.Conv2d(32, 64, 3, stride2, padding=1, device="meta")
        self.fc1 = nn.Linear(64 * _POOLED * _POOLED, num_features, device="meta")
        self.fc2 = nn.Linear(num_features, num_classes, device="meta")
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
        h = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        # An 8×8 map gives exactly max_pool2d(h, 2), the digits network's pooling.
        h = F.adaptive_max_pool2d(h, _POOLED)
        return torch.relu(self.fc1(h.flatten(1)))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.embed(x))


def _random_shift(x: Tensor, max_shift: int, generator: torch.Generator) -> Tensor:
    """Translate each ``[C, H, W]`` image by −max_shift … +max_shift pixels per axis, zero-filling."""
    if max_shift == 0:
        return x
    b, c, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4)
    offset = torch.randint(0, 2 * max_shift + 1, (2, b), generator=generator)
    rows = offset[0][:, None] + torch.arange(h)  # [b, h]
    cols = offset[1][:, None] + torch.arange(w)  # [b, w]
    return padded[
        torch.arange(b)[:, None, None, None],
        torch.arange(c)[None, :, None, None],
        rows[:, None, :, None],
        cols[:, None, None, :],
    ]


@dataclass(frozen=True, eq=False)
class ClassifierEvaluator:
    """A small CNN trained by the project on labelled images: features, probabilities, accuracy.

    Built by :func:`classifier_evaluator` (and :func:`digits_evaluator`). It is both a
    :class:`~ncsn.metrics.FeatureExtractor` (the penultimate layer, ``[B, num_features]``) and a
    :class:`~ncsn.metrics.Classifier` (softmax over the classes), so
    :func:`~ncsn.metrics.frechet_distance` and :func:`~ncsn.metrics.inception_score` work on
    samples the way FID and IS work on CIFAR-10 with Inception-v3. Inputs are images of the
    shape it was trained on, ``[B, C, H, W]`` (or any ``[B, *event]`` of ``C·H·W`` values), in
    [0, 1]; they are moved to the CPU, and outputs are float32.

    Attributes:
        network: the trained ``nn.Module`` (in eval mode).
        test_accuracy: accuracy on the held-out images it was given (``None`` without them).
        seed: the seed it was trained from.
    """

    network: _ClassifierNet
    test_accuracy: float | None
    seed: int

    def _images(self, x: Tensor) -> Tensor:
        check_batch(x)
        shape = self.network.image_shape
        if x.shape[1:] != shape and math.prod(x.shape[1:]) != math.prod(shape):
            c, h, w = shape
            raise ValueError(
                f"x must hold {c}×{h}×{w} images [B, {c}, {h}, {w}] like the evaluator's "
                f"training images (or any [B, *event] of {c * h * w} values); got {tuple(x.shape)}"
            )
        return x.detach().reshape(x.shape[0], *shape).to("cpu", torch.float32)

    def _run(self, x: Tensor, head: bool) -> Tensor:
        images = self._images(x)
        rows = max(1, _ACTIVATIONS // (32 * math.prod(images.shape[2:])))
        with torch.no_grad():
            return torch.cat(
                [
                    self.network(chunk) if head else self.network.embed(chunk)
                    for chunk in torch.split(images, rows)
                ]
            )

    def features(self, x: Tensor) -> Tensor:
        """Penultimate-layer features ``[B, num_features]`` for the Fréchet distance."""
        return self._run(x, head=False)

    def logits(self, x: Tensor) -> Tensor:
        """Class logits ``[B, K]``."""
        return self._run(x, head=True)

    def probabilities(self, x: Tensor) -> Tensor:
        """Class probabilities ``[B, K]`` for the Inception-style score."""
        return torch.softmax(self.logits(x), dim=1)

    def predict(self, x: Tensor) -> Tensor:
        """Predicted class ``[B]`` (int64)."""
        return self.logits(x).argmax(dim=1)

    def figures(self, x: Tensor) -> dict[str, float]:
        """Two quality figures of samples ``x`` ``[B, C, H, W]`` in [0, 1], to follow a run as it
        trains (:class:`ncsn.training.Samples`'s ``score``): the classifier score (the
        Inception-style score in one split; from 1 for noise to the number of classes) and the
        fraction of samples classified with probability above 0.9 (``confident``).

        Example:
            >>> evaluator = ncsn.metrics.digits_evaluator(seed=0)
            >>> x, _ = ncsn.data.load_digits("test")
            >>> figures = evaluator.figures(x[:64])    # real digits: near 10 classes, sure
            >>> figures["classifier_score"] > 9.0, figures["confident"] > 0.85
            (True, True)
        """
        p = self.probabilities(x)
        score = inception_score(p, splits=1).mean
        confident = float((p.max(dim=1).values > 0.9).to(torch.float64).mean())
        return {"classifier_score": float(score), "confident": confident}

    def accuracy(self, x: Tensor, labels: Tensor) -> float:
        """Fraction of the images ``x`` ``[B, C, H, W]`` classified as ``labels`` ``[B]``."""
        if not isinstance(labels, Tensor):
            raise TypeError(f"labels must be a torch.Tensor; got {type(labels).__name__}")
        if labels.shape != (x.shape[0],):
            raise ValueError(
                f"labels must have shape [B]=[{x.shape[0]}]; got {tuple(labels.shape)}"
            )
        return float((self.predict(x) == labels.to("cpu", torch.int64)).to(torch.float64).mean())


DigitsEvaluator = ClassifierEvaluator
"""The type :func:`digits_evaluator` returns: a :class:`ClassifierEvaluator` (the earlier name)."""


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int; got {seed!r}")
    if not -(2**63) <= seed < 2**64:
        raise ValueError(
            f"seed must be in [-2**63, 2**64), the range of torch.Generator.manual_seed; got "
            f"seed={seed}"
        )
    return seed


def _check_images(x: Tensor, name: str) -> Tensor:
    check_batch(x, name)
    if x.ndim != 4 or min(x.shape[2:]) < _MIN_SIZE or x.shape[1] < 1:
        raise ValueError(
            f"{name} must be images [N, C, H, W] with H, W >= {_MIN_SIZE}; got shape "
            f"{tuple(x.shape)}"
        )
    check_nonempty(x, name)
    x = x.detach().to("cpu", torch.float32)
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} must be finite; it holds NaN or infinite values")
    low, high = float(x.min()), float(x.max())
    if low < 0.0 or high > 1.0:
        raise ValueError(f"{name} must lie in [0, 1]; got values in [{low:.4g}, {high:.4g}]")
    return x


def _check_labels(labels: Tensor, name: str, n: int) -> Tensor:
    if not isinstance(labels, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(labels).__name__}")
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer class indices; got dtype {labels.dtype}")
    if labels.shape != (n,):
        raise ValueError(
            f"{name} must have shape [N]=[{n}], one per image; got {tuple(labels.shape)}"
        )
    labels = labels.to("cpu", torch.int64)
    if int(labels.min()) < 0:
        raise ValueError(f"{name} must be class indices >= 0; got {int(labels.min())}")
    return labels


def classifier_evaluator(
    x: Tensor,
    labels: Tensor,
    *,
    x_test: Tensor | None = None,
    labels_test: Tensor | None = None,
    num_classes: int | None = None,
    seed: int = 0,
    epochs: int = 3,
    batch_size: int = 128,
    learning_rate: float = 2e-3,
    num_features: int = 128,
    max_shift: int = 1,
) -> ClassifierEvaluator:
    """Train a small classifier on labelled images, deterministically, to score samples with.

    A two-convolution CNN (convolutions of stride 2 while the image is at least 16 pixels on its
    shorter side, then a max pool to 4×4 and a ``num_features``-wide feature layer) trained with
    Adam and cross-entropy on ``x``, each step seeing its images shifted by a random −max_shift
    … +max_shift pixels per axis (zero fill). Any image size from 8×8, any channel count, any
    number of classes. All randomness (initialisation, shuffling, shifts) comes from a private
    ``torch.Generator`` seeded with ``seed``; the global RNG is not touched. The same seed gives
    bit-identical weights on the same machine and thread count. Training runs on the CPU.

    Args:
        x: ``[N, C, H, W]`` training images in [0, 1], H, W >= 8.
        labels: ``[N]`` integer class indices.
        x_test: ``[M, C, H, W]`` held-out images for :attr:`ClassifierEvaluator.test_accuracy`.
        labels_test: ``[M]`` their labels (given with ``x_test`` or not at all).
        num_classes: K, the number of classes. Default: the largest label + 1.
        seed: seed of the private generator.
        epochs: passes over the training images.
        batch_size: images per step.
        learning_rate: Adam step size.
        num_features: width of the feature layer (the Fréchet distance's feature dimension).
        max_shift: the largest shift of the augmentation in pixels, 0 for none.

    Returns:
        A :class:`ClassifierEvaluator` with its ``test_accuracy``.

    Raises:
        TypeError: on a non-floating ``x``, labels that are not integer tensors, or a wrongly
            typed argument.
        ValueError: on images that are not ``[N, C, H, W]`` with H, W >= 8, finite and in
            [0, 1]; labels of the wrong length, negative or not below ``num_classes``; fewer
            than 2 classes; test images of another shape; only one of ``x_test`` and
            ``labels_test``; or an out-of-range argument.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.rand(64, 3, 12, 12, generator=g) * 0.25   # two classes: dark and bright
        >>> labels = torch.arange(64) % 2
        >>> x[labels == 1] += 0.75
        >>> evaluator = ncsn.metrics.classifier_evaluator(
        ...     x, labels, x_test=x, labels_test=labels, batch_size=16
        ... )
        >>> evaluator.test_accuracy
        1.0
        >>> evaluator.features(x).shape, evaluator.probabilities(x).shape
        (torch.Size([64, 128]), torch.Size([64, 2]))
    """
    x = _check_images(x, "x")
    labels = _check_labels(labels, "labels", x.shape[0])
    if (x_test is None) != (labels_test is None):
        raise ValueError(
            "x_test and labels_test go together: give both (held-out images and their labels) "
            "or neither"
        )
    seed = _check_seed(seed)
    epochs = positive_int(epochs, "epochs")
    batch_size = positive_int(batch_size, "batch_size")
    learning_rate = positive_float(learning_rate, "learning_rate")
    num_features = positive_int(num_features, "num_features")
    if isinstance(max_shift, bool) or not isinstance(max_shift, int):
        raise TypeError(f"max_shift must be an int; got max_shift={max_shift!r}")
    if not 0 <= max_shift < min(x.shape[2:]):
        raise ValueError(
            f"max_shift must be in [0, {min(x.shape[2:])}) for {x.shape[2]}×{x.shape[3]} "
            f"images; got max_shift={max_shift}"
        )
    largest = int(labels.max())
    if num_classes is None:
        num_classes = largest + 1
    num_classes = positive_int(num_classes, "num_classes")
    if num_classes < 2:
        raise ValueError(f"a classifier needs at least 2 classes; got num_classes={num_classes}")
    if largest >= num_classes:
        raise ValueError(f"labels must be < num_classes={num_classes}; got {largest}")
    test: tuple[Tensor, Tensor] | None = None
    if x_test is not None and labels_test is not None:
        images = _check_images(x_test, "x_test")
        if images.shape[1:] != x.shape[1:]:
            raise ValueError(
                f"x_test must hold images of the training images' shape {tuple(x.shape[1:])}; "
                f"got {tuple(images.shape[1:])}"
            )
        test_labels = _check_labels(labels_test, "labels_test", images.shape[0])
        if int(test_labels.max()) >= num_classes:
            raise ValueError(
                f"labels_test must be < num_classes={num_classes}; got {int(test_labels.max())}"
            )
        test = images, test_labels

    generator = torch.Generator().manual_seed(seed)
    c, h, w = x.shape[1:]
    net = _ClassifierNet((c, h, w), num_classes, num_features)
    net.reset_parameters(generator)
    optimizer = torch.optim.Adam(net.parameters(), lr=learning_rate)
    n = x.shape[0]
    net.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            index = order[start : start + batch_size]
            inputs = _random_shift(x[index], max_shift, generator)
            loss = F.cross_entropy(net(inputs), labels[index])
            optimizer.zero_grad(set_to_none=True)
            torch.autograd.backward(loss)
            optimizer.step()
    net.eval()
    evaluator = ClassifierEvaluator(net, None, seed)
    if test is None:
        return evaluator
    return ClassifierEvaluator(net, evaluator.accuracy(*test), seed)


def digits_evaluator(
    *,
    seed: int = 0,
    epochs: int = 30,
    batch_size: int = 64,
    learning_rate: float = 2e-3,
    num_features: int = 64,
) -> DigitsEvaluator:
    """The built-in digits classifier: :func:`classifier_evaluator` on the embedded 8×8 digits.

    Trained on the 1,500 training digits of :func:`ncsn.data.load_digits` (shifts of at most one
    pixel) and scored on the 297 held-out test digits, deterministically from ``seed``.

    Args:
        seed: seed of the private generator.
        epochs: passes over the training split.
        batch_size: examples per step.
        learning_rate: Adam step size.
        num_features: width of the feature layer.

    Returns:
        A :class:`ClassifierEvaluator` with its ``test_accuracy``, for ``[B, 1, 8, 8]`` inputs.

    Raises:
        TypeError, ValueError: on a wrongly typed or out-of-range argument.

    Example:
        >>> evaluator = ncsn.metrics.digits_evaluator(seed=0, epochs=5)   # a quick one (default: 30)
        >>> evaluator.test_accuracy > 0.9
        True
        >>> real, _ = ncsn.data.load_digits("test")
        >>> samples = torch.rand(297, 1, 8, 8, generator=torch.Generator().manual_seed(0))
        >>> fid = ncsn.metrics.frechet_distance(evaluator.features(real), evaluator.features(samples))
        >>> score = ncsn.metrics.inception_score(evaluator.probabilities(samples))
        >>> fid > 10.0, score.mean < 2.0                      # uniform noise looks nothing like digits
        (True, True)
    """
    x, labels = load_digits("train")
    x_test, labels_test = load_digits("test")
    return classifier_evaluator(
        x,
        labels,
        x_test=x_test,
        labels_test=labels_test,
        num_classes=10,
        seed=seed,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        num_features=num_features,
        max_shift=1,
    )
