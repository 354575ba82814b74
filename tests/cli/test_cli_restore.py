"""`ncsn restore` (src/ncsn/cli/restore.py): every task and sampler, the library's draws, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from cli_runner import Runner

import ncsn
from ncsn import inverse
from ncsn.cli import main

FEW = ["--num-images", "2", "--samples", "3", "--quiet"]


def _restored(out: Path) -> torch.Tensor:
    return torch.load(out / "restored.pt", weights_only=True)


@pytest.mark.parametrize(
    "task", ["super-resolution", "deblur", "inpaint", "denoise", "compressed-sensing"]
)
def test_every_task_writes_samples_and_a_grid(
    task: str, image_run: tuple[Path, Path], tmp_path: Path, cli: Runner
) -> None:
    run, _ = image_run
    outcome = cli("restore", str(run), "--task", task, *FEW, "--output", str(tmp_path))
    assert outcome.code == 0, outcome
    restored = _restored(tmp_path)
    assert restored.shape == (6, 1, 8, 8) and (tmp_path / "restored.png").exists()
    assert float(restored.min()) >= 0.0 and float(restored.max()) <= 1.0
    for name in ("PSNR", "SSIM", "‖A·x − y‖", "the noise alone"):
        assert name in outcome.out, outcome.out


@pytest.mark.parametrize("sampler", ["posterior-langevin", "snips", "ddrm", "dps"])
def test_the_command_draws_what_the_library_draws(
    sampler: str, image_run: tuple[Path, Path], tmp_path: Path
) -> None:
    """The measurement, the start and the chains from --seed, as the guide's Python does."""
    run, data = image_run
    steps = ["--steps-per-level", "2"] if sampler in ("posterior-langevin", "snips") else []
    args = ["restore", str(run), "--task", "super-resolution", "--sampler", sampler, *steps]
    assert main([*args, *FEW, "--seed", "3", "--output", str(tmp_path)]) == 0

    loaded = ncsn.load(run)
    assert loaded.sigmas is not None
    images = ncsn.data.load(str(data))[0][:2]
    g = torch.Generator().manual_seed(3)
    operator = inverse.Downsample((1, 8, 8), 2)
    y = inverse.measure(operator, images, 0.05, generator=g).y
    m = inverse.Measurement(operator, y.repeat_interleave(3, 0), 0.05)
    expected_sampler = _library_sampler(sampler, loaded.sigmas, m)
    expected = expected_sampler(loaded.model, expected_sampler.start(generator=g), generator=g)
    torch.testing.assert_close(_restored(tmp_path), expected.detach().clamp(0, 1))


@pytest.mark.parametrize("sampler", ["ddrm", "dps"])
def test_compile_restores_through_the_compiled_network(
    sampler: str, image_run: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--compile hands the posterior sampler ncsn.nets.compiled(model) (compiled by dynamo with
    the "eager" backend here: no C++ build); DPS differentiates through it. The restorations
    equal the eager command's to round-off."""
    run, _ = image_run
    wrapped: list[object] = []
    real = ncsn.nets.compiled

    def eager_backend(model: ncsn.ScoreModel, **options: object) -> ncsn.ScoreModel:
        wrapped.append(model)
        return real(model, backend="eager")

    args = ["restore", str(run), "--task", "deblur", "--sampler", sampler, *FEW]
    assert main([*args, "--output", str(tmp_path / "eager")]) == 0
    monkeypatch.setattr(ncsn.nets, "compiled", eager_backend)
    assert main([*args, "--compile", "--output", str(tmp_path / "compiled")]) == 0
    assert len(wrapped) == 1
    torch.testing.assert_close(
        _restored(tmp_path / "compiled"), _restored(tmp_path / "eager"), rtol=1e-5, atol=1e-5
    )


def _library_sampler(
    name: str, sigmas: torch.Tensor, m: inverse.Measurement
) -> inverse.PosteriorLangevin | inverse.SNIPS | inverse.DDRM | inverse.DPS:
    eps = ncsn.ncsnv2_step_size(sigmas, 2)
    if name == "posterior-langevin":
        return inverse.PosteriorLangevin(sigmas, eps, 2, measurement=m, denoise=True)
    if name == "snips":
        return inverse.SNIPS(sigmas, eps, 2, measurement=m)
    if name == "ddrm":
        return inverse.DDRM(sigmas, measurement=m)
    return inverse.DPS(sigmas, measurement=m)


def test_inpainting_keeps_the_measured_pixels_near_y(
    image_run: tuple[Path, Path], tmp_path: Path
) -> None:
    run, data = image_run
    args = ["restore", str(run), "--task", "inpaint", "--noise-std", "0.01", *FEW]
    assert main([*args, "--sampler", "ddrm", "--output", str(tmp_path)]) == 0
    images = ncsn.data.load(str(data))[0][:2].repeat_interleave(3, 0)
    known = ncsn.samplers.inpainting_mask("right_half", (6, 1, 8, 8))
    # DDRM sets the measured coordinates to y (σ_y = 0.01) at its last step: within a few σ_y.
    assert float((_restored(tmp_path) - images)[known].abs().max()) < 0.06


def test_restore_errors(image_run: tuple[Path, Path], tmp_path: Path, cli: Runner) -> None:
    run, _ = image_run
    out = ["--output", str(tmp_path), "--quiet"]
    base = ["restore", str(run), *out]
    cli(*base, "--task", "inpaint", "--factor", "4").one_line(2, "--factor: not an option of --task inpaint")  # fmt: skip
    cli(*base, "--task", "denoise", "--sampler", "ddrm", "--zeta", "2").one_line(2, "--zeta: not an option of --sampler ddrm, which takes --eta")  # fmt: skip
    cli(*base, "--task", "super-resolution", "--factor", "3").one_line(2, "--factor 3 must divide")
    cli(*base, "--task", "deblur", "--kernel-size", "4").one_line(2, "--kernel-size: ", "odd")
    cli(*base, "--task", "deblur", "--sampler", "ddrm", "--eta", "2").one_line(2, "--eta 2")
    cli(*base, "--task", "colourize").one_line(2, "grey (1 channel)")
    cli(*base, "--task", "inpaint", "--mask", "diagonal").one_line(2, "--mask: preset must be one of")  # fmt: skip
    cli(*base, "--task", "denoise", "--data", "mixture").one_line(2, "do not fit the model's [1, 8, 8]")  # fmt: skip
    cli(*base, "--task", "denoise", "--noise-std", "0").one_line(2, "--noise-std")
    cli(*base, "--task", "blur").one_line(2, "--task")


def test_output_is_checked_before_loading(
    tmp_path: Path, cli: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded before the output folder was checked")

    monkeypatch.setattr(ncsn.cli._common, "load", refuse)
    cli("restore", str(tmp_path), "--task", "denoise", "--output", "/proc/x").one_line(
        2, "--output /proc/x: cannot write there"
    )


@pytest.mark.parametrize("command", ["restore", "sample", "inpaint", "likelihood"])
def test_every_command_that_takes_a_model_says_what_it_takes(command: str, cli: Runner) -> None:
    outcome = cli(command, "--help")
    assert outcome.code == 0
    said = " ".join(outcome.out.split())
    assert "a model folder (ncsn export), pretrained:digits or hf:OWNER/NAME" in said, said


def test_restore_takes_the_pretrained_model(tmp_path: Path, cli: Runner) -> None:
    args = ["--task", "super-resolution", "--data", "digits", "--split", "test", *FEW]
    outcome = cli("restore", "pretrained:digits", *args, "--output", str(tmp_path))
    assert outcome.code == 0, outcome
    assert _restored(tmp_path).shape == (6, 1, 8, 8)
