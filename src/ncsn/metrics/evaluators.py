"""Built-in evaluators: a small classifier trained by the project, and a memorisation check.

:func:`digits_evaluator` trains a small CNN on the embedded 8×8 digits (deterministically from a
seed); it gives features and class probabilities for :func:`~ncsn.metrics.frechet_distance`
and :func:`~ncsn.metrics.inception_score`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ncsn._checks import check_batch, positive_float, positive_int
from ncsn.data import load_digits

__all__ = ["DigitsEvaluator", "digits_evaluator"]


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
    random −1, 0 or +1 pixel per axis) and scored on the 297 held-out test digits.
    All randomness (initialisation, shuffling) comes from a private ``torch.Generator`` seeded
    with ``seed``; the global RNG is not touched. The same seed gives bit-identical weights on
    the same machine and thread count.

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
