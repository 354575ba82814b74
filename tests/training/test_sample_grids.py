"""Sample grids while a run trains (``Output(samples=Samples(...))``): the files, their seed, and
that drawing them changes nothing in training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import Tensor

import ncsn
from ncsn.training import Output, Samples, Trainer

SCHEDULE = ncsn.GeometricSchedule(1.0, 0.01, 4)
SIGMAS = SCHEDULE.sigmas


def _cas() -> ncsn.samplers.ConsistentAnnealedSampling:
    return ncsn.samplers.ConsistentAnnealedSampling(SIGMAS, 0.9)


def _trainer(folder: Path, samples: Samples | None) -> Trainer:
    torch.manual_seed(0)  # the network's initial weights (tests may use the global RNG)
    net = ncsn.nets.RefineNet(channels=1, ngf=4, sigmas=SIGMAS)
    x, _ = ncsn.data.load_digits("train")
    output = Output(folder, progress=False, samples=samples, tensorboard=False)
    return Trainer(
        net, ncsn.losses.DenoisingScoreMatching(SCHEDULE), x[:64], batch_size=8, ema_rate=0.9,
        output=output, seed=0,
    )  # fmt: skip


def test_a_grid_is_written_every_n_steps_from_the_same_noise(tmp_path: Path) -> None:
    samples = Samples(_cas(), (1, 8, 8), every=2, count=6, seed=3)
    trainer = _trainer(tmp_path / "run", samples)
    trainer.fit(5)
    files = sorted(p.name for p in (tmp_path / "run" / "samples").iterdir())
    assert files == ["samples-00000002.png", "samples-00000004.png"]
    with Image.open(tmp_path / "run" / "samples" / files[0]) as picture:
        assert picture.size == (3 * 9 + 1, 2 * 9 + 1)  # 6 images of 8 px, 3 per row, 1-px borders
    model = trainer.model
    assert model.training
    first, again = samples.draw(model), samples.draw(model)
    assert model.training  # the draw samples in eval mode and puts the mode back
    assert first.shape == (6, 1, 8, 8) and torch.equal(first, again)
    assert float(first.min()) >= 0.0 and float(first.max()) <= 1.0


def test_drawing_grids_changes_nothing_in_training(tmp_path: Path) -> None:
    with_grids = _trainer(tmp_path / "a", Samples(_cas(), (1, 8, 8), every=1, count=4))
    without = _trainer(tmp_path / "b", None)
    with_grids.fit(4)
    without.fit(4)
    for (name, a), (_, b) in zip(
        with_grids.model.state_dict().items(), without.model.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    assert not (tmp_path / "b" / "samples").exists()


def test_a_diverging_grid_is_a_warning_and_training_goes_on(tmp_path: Path) -> None:
    def diverging(model: torch.nn.Module, x: Tensor, *, generator: torch.Generator) -> Tensor:
        raise FloatingPointError("the chain became non-finite at level 1 of 4")

    trainer = _trainer(tmp_path / "run", Samples(diverging, (1, 8, 8), every=1, count=2))  # type: ignore[arg-type]
    with pytest.warns(RuntimeWarning, match=r"no sample grid at step \d: the chain became") as seen:
        trainer.fit(2)
    assert [str(w.message).split(":")[0] for w in seen] == [
        "no sample grid at step 1",
        "no sample grid at step 2",
    ]
    assert trainer.step == 2 and not (tmp_path / "run" / "samples").exists()


def test_a_scored_grid_logs_its_figures(tmp_path: Path) -> None:
    seen: list[Tensor] = []

    def score(images: Tensor) -> dict[str, float]:
        seen.append(images)
        return {"mean": float(images.mean()), "count": len(images)}

    samples = Samples(_cas(), (1, 8, 8), every=2, count=4, score=score)
    trainer = _trainer(tmp_path / "run", samples)
    trainer.fit(4)
    lines = (tmp_path / "run" / "samples" / "scores.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["step"] for r in records] == [2, 4] and all(r["count"] == 4.0 for r in records)
    # the figures are those of the very images written as the grid
    assert records[-1]["mean"] == float(seen[-1].mean())
    assert torch.equal(seen[-1], samples.draw(trainer.ema_model()))


@pytest.mark.parametrize(
    ("figures", "error", "match"),
    [
        ([1.0], TypeError, "score must return a mapping of names to numbers; got list"),
        ({"fd": "low"}, TypeError, "score's figure 'fd' is not a number: 'low'"),
        ({"fd": float("nan")}, ValueError, "score's figure 'fd' is not finite: nan"),
    ],
)
def test_a_bad_score_is_named(figures: object, error: type, match: str) -> None:
    samples = Samples(_cas(), (1, 8, 8), count=2, score=lambda images: figures)  # type: ignore[arg-type, return-value]
    with pytest.raises(error, match=match):
        samples.figures(torch.zeros(2, 1, 8, 8))


def test_the_digits_evaluator_gives_a_grids_figures() -> None:
    evaluator = ncsn.metrics.digits_evaluator(seed=0)
    real, _ = ncsn.data.load_digits("test")
    noise = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    good, bad = evaluator.figures(real[:64]), evaluator.figures(noise)
    assert good["classifier_score"] > 8 and good["confident"] > 0.9
    assert bad["classifier_score"] < good["classifier_score"] / 2


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"shape": (8, 8)}, ValueError, r"shape must be an image shape \[C, H, W\].*\(8, 8\)"),
        ({"shape": (2, 8, 8)}, ValueError, r"C = 1 or 3; got \(2, 8, 8\)"),
        ({"every": 0}, ValueError, "every"),
        ({"count": -1}, ValueError, "count"),
        ({"sampler": "cas"}, TypeError, "sampler must be a callable Sampler; got 'cas'"),
        ({"score": "fid"}, TypeError, "score must be a callable of the images or None; got 'fid'"),
    ],
)
def test_bad_samples_settings_are_named(kwargs: dict[str, object], error: type, match: str) -> None:
    settings: dict[str, object] = {"sampler": _cas(), "shape": (1, 8, 8)} | kwargs
    with pytest.raises(error, match=match):
        Samples(**settings)  # type: ignore[arg-type]


def test_grids_need_a_folder_and_a_samples_value() -> None:
    with pytest.raises(ValueError, match="samples needs a folder"):
        Output(samples=Samples(_cas(), (1, 8, 8)))
    with pytest.raises(TypeError, match="samples must be a Samples or None; got 'grid'"):
        Output("runs/x", samples="grid")  # type: ignore[arg-type]
