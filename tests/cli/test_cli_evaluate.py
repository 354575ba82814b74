"""`ncsn evaluate` (src/ncsn/cli/evaluate.py): the Fréchet distance beside the real-data floor,
what it clamps, where it writes, and one-line errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_runner import Runner

import ncsn


@pytest.fixture(scope="module")
def digit_samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stand-in samples: 150 training digits with a little noise."""
    folder = tmp_path_factory.mktemp("evaluate")
    x, _ = ncsn.data.load("digits", split="train")
    noisy = x[:150] + 0.05 * torch.randn(x[:150].shape, generator=torch.Generator().manual_seed(0))
    torch.save(noisy.clamp(0, 1), folder / "samples.pt")
    return folder


def test_evaluate_equals_the_library_metrics_and_prints_the_floor(
    digit_samples: Path, cli: Runner
) -> None:
    outcome = cli("evaluate", str(digit_samples), "--reference", "digits", "--batch-size", "40")
    assert outcome.code == 0, outcome
    result = json.loads((digit_samples / "evaluation.json").read_text())
    evaluator = ncsn.metrics.digits_evaluator(seed=0)
    x = torch.load(digit_samples / "samples.pt", weights_only=True)
    reference, _ = ncsn.data.load("digits", split="test")
    train, _ = ncsn.data.load("digits", split="train")
    real = evaluator.features(reference)
    fd = ncsn.metrics.frechet_distance(evaluator.features(x), real)
    pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:150]
    floor = ncsn.metrics.frechet_distance(evaluator.features(train[pick]), real)
    score = ncsn.metrics.inception_score(evaluator.probabilities(x), splits=10)
    assert result["frechet_distance"] == pytest.approx(fd, rel=1e-6)
    assert result["real_floor"] == pytest.approx(floor, rel=1e-6)
    assert result["classifier_score"] == pytest.approx(score.mean, rel=1e-6)
    assert (result["samples"], result["reference_examples"], result["split"]) == (150, 297, "test")
    assert result["clamped_fraction"] == 0.0
    (line,) = outcome.out.splitlines()
    assert line.startswith("Fréchet distance (digits features) ")
    assert f"real-data floor {floor:.2f} (150 examples of its train split)" in line


def test_a_reference_folder_without_splits_works_and_says_it_has_no_floor(
    tmp_path: Path, cli: Runner
) -> None:
    """The README's `ncsn evaluate big/ --reference path/to/images` (no --split to give)."""
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    pixels = np.random.default_rng(0).integers(0, 256, size=(12, 8, 8), dtype=np.uint8)
    for i, image in enumerate(pixels):
        Image.fromarray(image, mode="L").save(folder / f"{i}.png")
    x, _ = ncsn.data.load(str(folder))
    torch.save(x[:6].clone(), tmp_path / "samples.pt")
    outcome = cli("evaluate", str(tmp_path), "--reference", str(folder), "--features", "digits")
    assert outcome.code == 0, outcome
    assert "no real-data floor" in outcome.out
    assert json.loads((tmp_path / "evaluation.json").read_text())["real_floor"] is None


def test_samples_outside_the_pixel_range_are_clamped_and_it_says_so(
    tmp_path: Path, cli: Runner
) -> None:
    x, _ = ncsn.data.load("digits", split="train")
    samples = x[:20].clone()
    samples[:, :, :4] = 3.0  # a quarter of the pixels far above 1
    torch.save(samples, tmp_path / "samples.pt")
    outcome = cli("evaluate", str(tmp_path), "--reference", "digits", "--no-floor")
    assert outcome.code == 0, outcome
    note, _ = outcome.out.splitlines()
    assert note.startswith("note: 50.00% of the sample values lie outside [0, 1]")
    assert "clamped" in note
    clamped = ncsn.metrics.digits_evaluator(seed=0).features(samples.clamp(0, 1))
    real = ncsn.metrics.digits_evaluator(seed=0).features(ncsn.data.load("digits", split="test")[0])
    recorded = json.loads((tmp_path / "evaluation.json").read_text())
    assert recorded["frechet_distance"] == pytest.approx(ncsn.metrics.frechet_distance(clamped, real), rel=1e-6)  # fmt: skip
    assert recorded["clamped_fraction"] == pytest.approx(0.5)


def test_evaluate_errors_are_one_line(digit_samples: Path, tmp_path: Path, cli: Runner) -> None:
    torch.save(torch.rand(4, 3, 8, 8), tmp_path / "rgb.pt")
    torch.save(torch.full((4, 1, 8, 8), float("nan")), tmp_path / "nan.pt")
    torch.save({"a": 1}, tmp_path / "dict.pt")
    (tmp_path / "torn.pt").write_bytes(b"not a tensor file")
    cases = [
        ([str(tmp_path / "missing")], "no such file"),
        ([str(tmp_path / "torn.pt")], "not a readable tensor file"),
        ([str(tmp_path / "dict.pt")], "expected a floating [N, *event] tensor of samples; got dict"),
        ([str(tmp_path / "rgb.pt")], "do not match the samples' [3, 8, 8]"),
        ([str(tmp_path / "nan.pt")], "hold NaN or infinity"),
        ([str(digit_samples), "--features", "inception"], "needs --inception-weights FILE"),
        ([str(digit_samples), "--split", "validation"], "--split"),
    ]  # fmt: skip
    for args, needle in cases:
        cli("evaluate", *args, "--reference", "digits").one_line(2, needle)


def test_the_result_folder_is_checked_before_the_scan(
    small_disk: Path, cli: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.save(torch.rand(8, 1, 8, 8), small_disk / "samples.pt")
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the scan started before the result folder was checked")

    monkeypatch.setattr(ncsn.metrics, "digits_evaluator", refuse)
    cli("evaluate", str(small_disk), "--reference", "digits").one_line(2, "cannot write there")


def test_a_full_disk_prints_the_result_then_one_line(small_disk: Path, cli: Runner) -> None:
    x, _ = ncsn.data.load("digits", split="train")
    torch.save(x[:30].clone(), small_disk / "samples.pt")
    filler = small_disk / "filler"
    try:
        with open(filler, "wb", buffering=0) as f:  # fill the filesystem to the last block
            while True:
                f.write(b"\0" * 4096)
    except OSError:
        pass  # No space left on device: full
    outcome = cli("evaluate", str(small_disk), "--reference", "digits", "--no-floor")
    outcome.one_line(1, "No space left on device")
    assert outcome.out.startswith("Fréchet distance (digits features) ")
    assert not (small_disk / "evaluation.json").exists()
    assert not [p for p in small_disk.iterdir() if ".tmp" in p.name]


@pytest.mark.parametrize("signum, code, what", [(signal.SIGTERM, 143, "terminated (SIGTERM)"), (signal.SIGINT, 130, "interrupted")])  # fmt: skip
def test_a_signal_during_the_scan_is_one_line(
    signum: int, code: int, what: str, digit_samples: Path, cli: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:  # fmt: skip
    real = ncsn.metrics.digits_evaluator

    class Stopped:
        def __init__(self) -> None:
            self.evaluator = real(seed=0)

        def features(self, x: torch.Tensor) -> torch.Tensor:
            os.kill(os.getpid(), signum)  # as `kill` or Ctrl-C would, mid-scan
            return self.evaluator.features(x)

        def probabilities(self, x: torch.Tensor) -> torch.Tensor:
            return self.evaluator.probabilities(x)

    monkeypatch.setattr(ncsn.metrics, "digits_evaluator", lambda seed: Stopped())
    (digit_samples / "evaluation.json").unlink(missing_ok=True)
    outcome = cli("evaluate", str(digit_samples), "--reference", "digits")
    assert outcome.code == code and outcome.err == f"ncsn evaluate: {what}; nothing was written"
    assert not (digit_samples / "evaluation.json").exists()
