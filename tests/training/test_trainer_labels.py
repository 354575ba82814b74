"""Class-conditional training through the Trainer: labels from a tensor pair or a dataset reach the
loss as ``y=`` (training/_sources.py, step.py, trainer.py)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor

import ncsn
from ncsn.training import Evaluation, Output, Trainer

SCHEDULE = ncsn.GeometricSchedule(3.0, 0.3, 4)


def _data(n: int = 40) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n) % 3
    return torch.randn(n, 2, generator=g) + 2.0 * y[:, None], y


def _net(seed: int = 0) -> ncsn.nets.ConditionalScoreMLP:
    g = torch.Generator().manual_seed(seed)
    return ncsn.nets.ConditionalScoreMLP(2, 3, 16, sigmas=SCHEDULE.sigmas, generator=g)


class _Recording:
    """DSM that records the labels it was given."""

    def __init__(self) -> None:
        self.seen: list[Tensor | None] = []
        self.loss = ncsn.losses.DenoisingScoreMatching(SCHEDULE, label_dropout=0.2, num_classes=3)

    def __call__(
        self, model: Any, x: Tensor, *, y: Tensor | None = None, generator: Any = None
    ) -> Tensor:
        self.seen.append(y)
        return self.loss(model, x, y=y, generator=generator)


def _trainer(data: Any, loss: Any = None, **options: Any) -> Trainer:
    options = {"batch_size": 8, "seed": 0, "output": Output(progress=False)} | options
    loss = loss or ncsn.losses.DenoisingScoreMatching(SCHEDULE, label_dropout=0.2, num_classes=3)
    return Trainer(_net(options.pop("net_seed", 0)), loss, data, **options)


def test_a_tensor_pair_passes_each_batch_its_labels() -> None:
    x, y = _data()
    loss = _Recording()
    t = _trainer((x, y), loss, shards=2)
    t.fit(3)
    assert len(loss.seen) == 6 and all(s is not None and s.shape == (4,) for s in loss.seen)
    # the labels are those of the examples drawn: rebuild the first batch from the permutation
    parts, _ = _trainer((x, y)).data.parts(1, seed=0, batch_size=8, shards=1, local=range(1))
    (part,) = parts
    assert part.y is not None
    rows = [int(torch.nonzero((x == row).all(1))[0]) for row in part.x]
    assert part.y.tolist() == y[rows].tolist()


def test_a_dataset_with_labels_trains_as_the_tensor_pair_and_without_drops_them() -> None:
    x, y = _data()
    pair = _trainer((x, y))
    pair.fit(4)
    dataset = _trainer(torch.utils.data.TensorDataset(x, y), labels=True)
    dataset.fit(4)
    for a, b in zip(pair.model.parameters(), dataset.model.parameters(), strict=True):
        assert torch.equal(a, b)
    loss = _Recording()
    plain = Trainer(ncsn.nets.ScoreMLP(2, 16, sigmas=SCHEDULE.sigmas), loss, torch.utils.data.TensorDataset(x, y), batch_size=8, seed=0, output=Output(progress=False))  # fmt: skip
    plain.fit(2)
    assert loss.seen == [None, None]


def test_labelled_evaluation_and_the_loss_falls() -> None:
    x, y = _data(400)
    held_out = _data(200)
    t = _trainer((x, y), batch_size=32, evaluation=Evaluation(held_out))
    before = t.evaluate()
    t.fit(150)
    assert t.evaluate() < before


def test_resume_with_labels_is_bit_identical(tmp_path: Path) -> None:
    data = _data()
    straight = _trainer(data, batch_size=12)
    straight.fit(8)
    first = _trainer(data, batch_size=12, output=Output(tmp_path, progress=False))
    first.fit(4)
    resumed = _trainer(data, batch_size=12, net_seed=5, output=Output(tmp_path, progress=False))
    resumed.restore(tmp_path)
    resumed.fit(8)
    for a, b in zip(straight.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_train_step_takes_the_labels_of_a_tensor_batch() -> None:
    x, y = _data(16)
    net = _net()
    loss = _Recording()
    optimizer = torch.optim.Adam(net.parameters())
    g = torch.Generator().manual_seed(0)
    ncsn.training.train_step(net, loss, optimizer, x, y=y, generator=g)
    assert loss.seen[0] is y
    parts = [ncsn.training.MicroBatch(x[:8], g, y[:8]), ncsn.training.MicroBatch(x[8:], g, y[8:])]
    ncsn.training.train_step(net, loss, optimizer, parts)
    assert [s.tolist() for s in loss.seen[1:]] == [y[:8].tolist(), y[8:].tolist()]  # type: ignore[union-attr]
    with pytest.raises(TypeError, match="y= goes with a tensor x"):
        ncsn.training.train_step(net, loss, optimizer, parts, y=y)


@pytest.mark.parametrize(
    "data, options, error, match",
    [
        (
            (torch.randn(6, 2), torch.zeros(6)),
            {},
            TypeError,
            r"the labels of data \(x, y\) must be an integer tensor",
        ),
        (
            (torch.randn(6, 2), torch.zeros(5, dtype=torch.long)),
            {},
            ValueError,
            r"must have shape \[N\]=\[6\]; got \(5,\)",
        ),
        (
            torch.randn(6, 2),
            {"labels": True},
            TypeError,
            "labels=True reads the labels of a dataset",
        ),
        ([(torch.randn(2), 0.5)] * 4, {"labels": True}, TypeError, "an integer label"),
        (
            _data(),
            {"evaluation": Evaluation(torch.randn(8, 2))},
            ValueError,
            "must both carry labels",
        ),
    ],
)
def test_bad_labelled_data(
    data: Any, options: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        _trainer(data, **options).fit(1)


@pytest.mark.slow
def test_a_conditional_network_trained_by_the_trainer_approaches_the_exact_score() -> None:
    """Two overlapping classes, N((∓1.5, 0), I), 20% of the labels dropped to the null label: the
    trained ConditionalScoreMLP's DSM loss is within 0.01 of the exact conditional score's on
    fresh data with the same noise (the gap E[½σ²‖s_θ − s‖²] ≥ 0; measured 0.003), where an exact
    *unconditional* score is 0.078 above it: the labels are learnt. The null label is within 0.025
    of the exact mixture score (measured 0.011)."""
    gmm = ncsn.toy.GaussianMixture([0.4, 0.6], [[-1.5, 0.0], [1.5, 0.0]], 1.0)
    schedule = ncsn.GeometricSchedule(3.0, 0.3, 6)
    g = torch.Generator().manual_seed(0)
    k = torch.multinomial(gmm.weights, 50_000, replacement=True, generator=g)
    x = (gmm.means[k] + torch.randn(50_000, 2, generator=g, dtype=torch.float64)).float()
    net = ncsn.nets.ConditionalScoreMLP(2, 2, 64, sigmas=schedule.sigmas, generator=g)
    loss = ncsn.losses.DenoisingScoreMatching(schedule, label_dropout=0.2, num_classes=2)
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    trainer = Trainer(net, loss, (x, k), optimizer=optimizer, seed=0, output=Output(progress=False))
    trainer.fit(1500)

    n = 20000
    gt = torch.Generator().manual_seed(1)
    yt = torch.multinomial(gmm.weights, n, replacement=True, generator=gt)
    xt = gmm.means[yt] + torch.randn(n, 2, generator=gt, dtype=torch.float64)
    sigma = schedule.sample(n, generator=gt).double()
    z = torch.randn(n, 2, generator=gt, dtype=torch.float64)
    exact, trained = gmm.conditional_score_model(), net.double().eval()

    def gap(labels: Tensor) -> tuple[float, float]:
        with torch.no_grad():
            d = ncsn.losses.dsm(trained, xt, sigma, noise=z, y=labels) - ncsn.losses.dsm(
                exact, xt, sigma, noise=z, y=labels
            )
        return d.mean().item(), d.std().item() / math.sqrt(n)

    unconditional = ncsn.losses.dsm(gmm.score_model(), xt, sigma, noise=z) - ncsn.losses.dsm(
        exact, xt, sigma, noise=z, y=yt
    )
    assert unconditional.mean().item() > 0.05
    mean, se = gap(yt)
    assert mean + 4 * se < 0.01, (mean, se)
    mean, se = gap(torch.full_like(yt, 2))
    assert mean + 4 * se < 0.025, (mean, se)
