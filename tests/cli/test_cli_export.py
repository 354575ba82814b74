"""`ncsn export`: a run's model as a model folder that the other commands and ncsn.load read."""

from __future__ import annotations

from pathlib import Path

import torch
from cli_runner import Runner

import ncsn


def test_export_writes_the_runs_ema_model_and_sample_reads_it(
    cli: Runner, image_run: tuple[Path, Path], tmp_path: Path
) -> None:
    run, _ = image_run
    folder = tmp_path / "model"
    result = cli("export", str(run), str(folder), "--threads", "1")
    assert result.code == 0, result
    assert str(folder) in result.out and "model.safetensors" in result.out
    exported, original = ncsn.load(folder), ncsn.load(run)
    for key, value in original.model.state_dict().items():
        assert torch.equal(exported.model.state_dict()[key], value), key
    assert exported.step == original.step and exported.data == original.data
    assert exported.sampler() == original.sampler()
    assert exported.sampler(steps_per_level=3) == original.sampler(
        steps_per_level=3
    )  # Technique 4's ε
    raw = cli("export", str(run), str(tmp_path / "raw"), "--no-ema")
    assert raw.code == 0, raw
    assert not torch.equal(
        ncsn.load(tmp_path / "raw").model.state_dict()["end_conv.weight"],
        exported.model.state_dict()["end_conv.weight"],
    )
    out = tmp_path / "samples"
    sampled = cli("sample", str(folder), "--num-samples", "2", "--steps-per-level", "1", "--quiet", "--output", str(out))  # fmt: skip
    assert sampled.code == 0, sampled
    assert torch.load(out / "samples.pt", weights_only=True).shape == (2, 1, 8, 8)


def test_export_refuses_an_existing_model_unless_told(
    cli: Runner, image_run: tuple[Path, Path], tmp_path: Path
) -> None:
    run, _ = image_run
    assert cli("export", str(run), str(tmp_path / "model")).code == 0
    cli("export", str(run), str(tmp_path / "model")).one_line(2, "already holds a model")
    assert cli("export", str(run), str(tmp_path / "model"), "--overwrite").code == 0


def test_export_of_a_missing_run_is_one_line(cli: Runner, tmp_path: Path) -> None:
    cli("export", str(tmp_path / "nothing"), str(tmp_path / "model")).one_line(2, "nothing")
    assert not (tmp_path / "model").exists()
