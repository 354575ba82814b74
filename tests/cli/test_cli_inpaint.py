"""`ncsn inpaint` (src/ncsn/cli/inpaint.py): masks, every sampler, errors, interruption."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_runner import Runner

import ncsn
from ncsn.cli import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FEW = ["--num-images", "2", "--completions", "3", "--steps-per-level", "1", "--quiet"]


def test_inpaint_keeps_the_known_pixels(image_run: tuple[Path, Path], tmp_path: Path) -> None:
    run, data = image_run
    assert main(["inpaint", str(run), "--data", str(data), *FEW, "--output", str(tmp_path)]) == 0
    completions = torch.load(tmp_path / "inpainting.pt", weights_only=True)
    assert completions.shape == (6, 1, 8, 8) and (tmp_path / "inpainting.png").exists()
    images, _ = ncsn.data.load(str(data))
    known = ncsn.samplers.inpainting_mask("right_half", (6, 1, 8, 8))
    torch.testing.assert_close(completions[known], images[:2].repeat_interleave(3, 0)[known])


@pytest.mark.parametrize("name", ["cas", "pc", "ode"])
def test_every_sampler_inpaints(name: str, image_run: tuple[Path, Path], tmp_path: Path) -> None:
    run, data = image_run
    args = ["inpaint", str(run), "--data", str(data), "--num-images", "2", "--completions", "2"]
    assert main([*args, "--sampler", name, "--quiet", "--output", str(tmp_path)]) == 0
    assert (tmp_path / "inpainting.png").exists()


def _masks_seen(monkeypatch: pytest.MonkeyPatch) -> list[torch.Tensor]:
    seen: list[torch.Tensor] = []
    real = ncsn.samplers.inpaint

    def spy(sampler: object, model: object, x: torch.Tensor, mask: torch.Tensor, **kw: object) -> torch.Tensor:  # fmt: skip
        seen.append(mask.detach().cpu().expand(x.shape).clone())
        return real(sampler, model, x, mask, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(ncsn.samplers, "inpaint", spy)
    return seen


def test_random_masks_are_shared_by_the_completions_of_an_image(
    image_run: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, data = image_run
    seen = _masks_seen(monkeypatch)
    args = ["--num-images", "3", "--completions", "4", "--steps-per-level", "1", "--quiet"]
    assert main(["inpaint", str(run), "--data", str(data), "--mask", "random", *args, "--output", str(tmp_path)]) == 0  # fmt: skip
    (mask,) = seen
    per_image = mask.reshape(3, 4, 1, 8, 8)
    for i in range(3):
        for j in range(4):
            assert torch.equal(per_image[i, j], per_image[i, 0]), (i, j)
    assert not torch.equal(per_image[0, 0], per_image[1, 0])  # each image draws its own


def test_a_mask_image_gives_the_known_pixels(
    image_run: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Runner
) -> None:
    from PIL import Image

    run, data = image_run
    pattern = np.zeros((8, 8), dtype=np.uint8)
    pattern[:, :3] = 255  # white = known: the three left columns
    pattern[0, 5] = 200
    Image.fromarray(pattern).save(tmp_path / "mask.png")
    seen = _masks_seen(monkeypatch)
    common = ["inpaint", str(run), "--data", str(data), *FEW, "--output", str(tmp_path / "i")]
    assert main([*common, "--mask", str(tmp_path / "mask.png")]) == 0
    (mask,) = seen
    assert torch.equal(mask, torch.from_numpy(pattern > 127).expand(6, 1, 8, 8))

    Image.fromarray(np.full((8, 8), 255, dtype=np.uint8)).save(tmp_path / "white.png")
    cli(*common, "--mask", str(tmp_path / "white.png")).one_line(2, "marks every pixel as known; nothing to inpaint")  # fmt: skip
    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(tmp_path / "small.png")
    cli(*common, "--mask", str(tmp_path / "small.png")).one_line(2, "size 4x4 differs from the images' 8x8")  # fmt: skip
    (tmp_path / "broken.png").write_text("not a picture")
    cli(*common, "--mask", str(tmp_path / "broken.png")).one_line(2, "not a readable image")


def test_inpaint_errors(image_run: tuple[Path, Path], tmp_path: Path, cli: Runner) -> None:
    official = FIXTURES / "official_refinenet_c3_ngf8.pth"
    out = ["--output", str(tmp_path), "--quiet"]
    cli("inpaint", str(official), "--data", "digits", *out).one_line(2, "do not fit the model's")
    run, data = image_run
    cli("inpaint", str(run), "--data", str(data), "--mask", "diagonal", *out).one_line(2, "--mask: preset must be one of")  # fmt: skip
    cli("inpaint", str(run), "--data", "mixture", *out).one_line(2, "do not fit the model's [1, 8, 8]")  # fmt: skip


def test_output_is_checked_before_loading(
    tmp_path: Path, cli: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded before the output folder was checked")

    monkeypatch.setattr(ncsn.cli._common, "load", refuse)
    cli("inpaint", str(tmp_path), "--data", "digits", "--output", "/proc/x").one_line(
        2, "--output /proc/x: cannot write there"
    )


@pytest.mark.parametrize("signum, code, what", [(signal.SIGTERM, 143, "terminated (SIGTERM)"), (signal.SIGINT, 130, "interrupted")])  # fmt: skip
def test_a_signal_is_one_line_with_its_exit_status(
    signum: int, code: int, what: str, image_run: tuple[Path, Path], tmp_path: Path, cli: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:  # fmt: skip
    run, data = image_run

    def stopped(*args: object, **kwargs: object) -> None:
        os.kill(os.getpid(), signum)  # as `kill` or Ctrl-C would, while sampling
        raise AssertionError("the signal did not stop the command")

    monkeypatch.setattr(ncsn.samplers, "inpaint", stopped)
    outcome = cli("inpaint", str(run), "--data", str(data), *FEW, "--output", str(tmp_path))
    assert outcome.code == code and outcome.err == f"ncsn inpaint: {what}; nothing was written"
    assert not (tmp_path / "inpainting.pt").exists()
