"""Class-conditional runs of the command (issue 24): `ncsn train --conditional` records the
classes, `ncsn sample --class C [--guidance W]` draws what ncsn.guidance draws in Python, and
`--class all` a grid of one row per class (src/ncsn/cli/train.py, src/ncsn/cli/sample.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from cli_runner import Runner
from PIL import Image

import ncsn
from ncsn.cli import main
from ncsn.cli.sample import chunk_seed
from ncsn.training import trainer

TINY = ["--ngf", "4", "--steps", "2", "--batch-size", "8", "--quiet"]
FAST = ["--steps-per-level", "1", "--quiet"]


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A conditional run of 2 steps on the digits."""
    out = tmp_path_factory.mktemp("conditional") / "run"
    assert main(["train", "--data", "digits", "--conditional", *TINY, "--output", str(out)]) == 0
    return out


def _python(run: Path, model: ncsn.ScoreModel, n: int) -> torch.Tensor:
    """The samples `ncsn sample` draws in one chunk, drawn in Python from ``model``."""
    loaded = ncsn.load(run)
    sampler = loaded.sampler(steps_per_level=1)
    g = torch.Generator().manual_seed(chunk_seed(0, 0))
    x0 = ncsn.samplers.uniform_init((n, 1, 8, 8), generator=g)
    return sampler(model, x0, generator=g)


def test_train_conditional_records_the_classes_and_resumes(
    conditional_run: Path, cli: Runner
) -> None:
    checkpoint = ncsn.training.load_checkpoint(ncsn.training.latest_checkpoint(conditional_run))
    config = checkpoint["config"]
    assert config["data"]["classes"] == [str(c) for c in range(10)]
    assert config["model"]["kind"] == "ConditionalRefineNet"
    assert config["train"]["conditional"] and config["train"]["label_dropout"] == 0.1
    loaded = ncsn.load(conditional_run)
    assert isinstance(loaded.model, ncsn.nets.ConditionalRefineNet)
    result = cli("train", "--resume", "--label-dropout", "0.3", "--steps", "3", "--output", str(conditional_run))  # fmt: skip
    result.one_line(2, "--label-dropout 0.3 (the run's: 0.1)")


def test_sample_a_class_with_guidance_equals_the_python_call(
    conditional_run: Path, tmp_path: Path
) -> None:
    args = ["sample", str(conditional_run), "--class", "7", "--guidance", "2", "--num-samples", "4"]
    assert main([*args, *FAST, "--output", str(tmp_path)]) == 0
    model = ncsn.load(conditional_run).model
    guided = ncsn.guidance.ClassifierFreeGuidance(model, 7, weight=2.0)  # type: ignore[arg-type]
    assert torch.equal(torch.load(tmp_path / "samples.pt"), _python(conditional_run, guided, 4))
    assert torch.load(tmp_path / "labels.pt").tolist() == [7] * 4


def test_without_class_a_conditional_run_samples_its_null_label(
    conditional_run: Path, tmp_path: Path
) -> None:
    assert main(["sample", str(conditional_run), "--num-samples", "3", *FAST, "--output", str(tmp_path)]) == 0  # fmt: skip
    null = ncsn.guidance.condition(ncsn.load(conditional_run).model, None)  # type: ignore[arg-type]
    assert torch.equal(torch.load(tmp_path / "samples.pt"), _python(conditional_run, null, 3))
    assert not (tmp_path / "labels.pt").exists()


def test_class_all_draws_equal_blocks_and_a_grid_of_one_row_per_class(
    conditional_run: Path, tmp_path: Path
) -> None:
    args = ["sample", str(conditional_run), "--class", "all", "--num-samples", "30"]
    assert main([*args, "--batch-size", "16", *FAST, "--output", str(tmp_path)]) == 0
    labels = torch.load(tmp_path / "labels.pt")
    assert labels.tolist() == [c for c in range(10) for _ in range(3)]
    with Image.open(tmp_path / "samples.png") as picture:
        width, height = picture.size
    cell = (8 + 1) * 8  # 8x8 digits with 1-pixel borders, drawn 8 times larger
    assert (width, height) == (3 * cell + 8, 10 * cell + 8)  # 10 rows of 3


@pytest.mark.parametrize(
    "options, message",
    [
        (["--class", "12"], "--class 12: the model's classes are 0 … 9"),
        (["--guidance", "1"], "--guidance guides toward a class: add --class"),
        (["--class", "all", "--num-samples", "4"], "--num-samples must be at least the 10 classes"),
    ],
)
def test_sample_refuses_a_class_the_run_does_not_have(
    options: list[str], message: str, conditional_run: Path, tmp_path: Path, cli: Runner
) -> None:
    cli("sample", str(conditional_run), *options, "--output", str(tmp_path)).one_line(2, message)


def test_class_of_an_unconditional_run_is_refused(
    toy_run: Path, tmp_path: Path, cli: Runner
) -> None:
    result = cli("sample", str(toy_run), "--class", "1", "--output", str(tmp_path))
    result.one_line(2, "is not class-conditional (train one with ncsn train --conditional)")


def test_conditional_training_needs_labelled_data(
    images: Path, tmp_path: Path, cli: Runner, no_training: None
) -> None:
    result = cli("train", "--data", str(images), "--conditional", *TINY, "--output", str(tmp_path / "r"))  # fmt: skip
    result.one_line(2, "--conditional trains on the labels of the data", "has none")
    result = cli("train", "--data", "digits", "--conditional", "--model", "scaled", *TINY, "--output", str(tmp_path / "s"))  # fmt: skip
    result.one_line(2, "needs model 'refinenet' or 'mlp'")


def test_compile_samples_a_conditional_run_through_the_compiled_network(
    conditional_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--compile with --class and --guidance: guidance runs on ncsn.nets.compiled(model), which
    passes the labels through; compiled here by dynamo alone (backend "eager": no C++ build),
    so the samples equal the eager ones to round-off."""
    wrapped: list[object] = []
    real = ncsn.nets.compiled

    def eager_backend(model: ncsn.ScoreModel, **options: object) -> ncsn.ScoreModel:
        wrapped.append(model)
        return real(model, backend="eager")

    monkeypatch.setattr(ncsn.nets, "compiled", eager_backend)
    args = ["sample", str(conditional_run), "--class", "7", "--guidance", "2", "--num-samples", "4"]
    assert main([*args, *FAST, "--compile", "--output", str(tmp_path)]) == 0
    assert len(wrapped) == 1
    model = ncsn.load(conditional_run).model
    guided = ncsn.guidance.ClassifierFreeGuidance(model, 7, weight=2.0)  # type: ignore[arg-type]
    got = torch.load(tmp_path / "samples.pt")
    torch.testing.assert_close(got, _python(conditional_run, guided, 4), rtol=1e-5, atol=1e-5)


def test_train_conditional_with_compile_passes_the_labels_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--conditional --compile: the Trainer's compiled network takes (x, σ, y) (dynamo with the
    "eager" backend here, so no C++ build), and the run trains like an eager one."""
    real = ncsn.nets.compiled
    monkeypatch.setattr(trainer, "compiled", lambda model, **o: real(model, backend="eager"))
    out = tmp_path / "run"
    assert main(["train", "--data", "digits", "--conditional", *TINY, "--compile", "--output", str(out)]) == 0  # fmt: skip
    assert ncsn.training.latest_checkpoint(out).name == "checkpoint-00000002.pt"
