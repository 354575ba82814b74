"""The `ncsn` command end to end on tiny settings: train, resume, sample, inpaint, demo, errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import ncsn
from ncsn.cli import main

DATA = Path(__file__).parent / "data"


def _run(*args: str) -> int:
    return main(list(args))


def test_every_subcommand_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("train", "sample", "inpaint", "demo"):
        with pytest.raises(SystemExit) as exit_info:
            _run(command, "--help")
        assert exit_info.value.code == 0
        assert "usage: ncsn " + command in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["train", "--data", "digits", "--output", "x", "--steps", "0"],
            "expected a positive integer, got '0'",
        ),
        (
            ["train", "--data", "digits", "--output", "x"],
            "the following arguments are required: --steps",
        ),
        (
            ["train", "--data", "digits", "--output", "x", "--steps", "5", "--loss", "nce"],
            "invalid choice: 'nce'",
        ),
        (["sample", "ckpt", "--step-size", "-1"], "expected a positive number, got '-1'"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_arguments_print_one_line_and_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _run(*args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["sample", "/no/such/checkpoint.pt"], "/no/such/checkpoint.pt: no such checkpoint"),
        (
            ["train", "--data", "/no/such/data.npz", "--output", "o", "--steps", "1"],
            "/no/such/data.npz",
        ),
        (
            ["train", "--data", "mixture", "--model", "refinenet", "--output", "o", "--steps", "1"],
            "needs images",
        ),
    ],
)
def test_missing_files_and_misfits_exit_2(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    os.chdir(tmp_path)
    assert _run(*args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_a_file_that_is_not_a_checkpoint_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_text("not a checkpoint")
    assert _run("sample", str(bad), "--quiet") == 2
    assert "not a readable checkpoint" in capsys.readouterr().err


def test_train_resume_and_sample_on_vector_data(tmp_path: Path) -> None:
    out = tmp_path / "run"
    common = [
        "train",
        "--data",
        "mixture",
        "--output",
        str(out),
        "--sigma-max",
        "20",
        "--sigma-min",
        "1",
        "--checkpoint-every",
        "10",
        "--batch-size",
        "32",
        "--quiet",
        "--hidden",
        "16",
    ]
    assert _run(*common, "--steps", "20") == 0
    assert _run(*common, "--steps", "30", "--resume") == 0
    straight = tmp_path / "straight"
    common[common.index(str(out))] = str(straight)
    assert _run(*common, "--steps", "30") == 0
    a = ncsn.training.load_checkpoint(out)
    b = ncsn.training.load_checkpoint(straight)
    assert a["step"] == b["step"] == 30
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert (
        _run(
            "sample",
            str(out),
            "--output",
            str(tmp_path / "s"),
            "--num-samples",
            "7",
            "--step-size",
            "0.1",
            "--steps-per-level",
            "2",
            "--quiet",
        )
        == 0
    )
    samples = torch.load(tmp_path / "s" / "samples.pt", weights_only=True)
    assert samples.shape == (7, 2) and torch.isfinite(samples).all()


def _image_file(tmp_path: Path) -> Path:
    images = np.random.default_rng(0).integers(0, 256, size=(40, 1, 8, 8), dtype=np.uint8)
    path = tmp_path / "images.npz"
    np.savez(path, images=images)
    return path


def test_train_sample_and_inpaint_images(tmp_path: Path) -> None:
    data = _image_file(tmp_path)
    out = tmp_path / "run"
    assert (
        _run(
            "train",
            "--data",
            str(data),
            "--output",
            str(out),
            "--ngf",
            "4",
            "--steps",
            "3",
            "--batch-size",
            "8",
            "--quiet",
            "--ema",
            "0.9",
            "--eval-every",
            "2",
        )
        == 0
    )
    assert (
        _run(
            "sample",
            str(out),
            "--output",
            str(tmp_path / "s"),
            "--num-samples",
            "4",
            "--steps-per-level",
            "1",
            "--quiet",
            "--denoise",
        )
        == 0
    )
    assert (tmp_path / "s" / "samples.png").exists()
    assert torch.load(tmp_path / "s" / "samples.pt", weights_only=True).shape == (4, 1, 8, 8)
    assert (
        _run(
            "inpaint",
            str(out),
            "--data",
            str(data),
            "--output",
            str(tmp_path / "i"),
            "--num-images",
            "2",
            "--completions",
            "3",
            "--steps-per-level",
            "1",
            "--quiet",
        )
        == 0
    )
    completions = torch.load(tmp_path / "i" / "inpainting.pt", weights_only=True)
    assert completions.shape == (6, 1, 8, 8)
    images, _ = ncsn.data.load(str(data))
    known = ncsn.samplers.inpainting_mask("right_half", (6, 1, 8, 8))
    torch.testing.assert_close(completions[known], images[:2].repeat_interleave(3, 0)[known])
    # the baseline: one level, plain Langevin
    base = tmp_path / "base"
    assert (
        _run(
            "train",
            "--data",
            str(data),
            "--model",
            "baseline",
            "--output",
            str(base),
            "--ngf",
            "4",
            "--steps",
            "2",
            "--batch-size",
            "8",
            "--quiet",
        )
        == 0
    )
    assert (
        _run(
            "sample",
            str(base),
            "--output",
            str(tmp_path / "bs"),
            "--num-samples",
            "2",
            "--num-steps",
            "3",
            "--quiet",
        )
        == 0
    )


def test_sample_from_an_official_checkpoint(tmp_path: Path) -> None:
    official = DATA / "official_refinenet_c3_ngf8.pth"
    assert (
        _run(
            "sample",
            str(official),
            "--output",
            str(tmp_path),
            "--num-samples",
            "2",
            "--steps-per-level",
            "1",
            "--image-size",
            "16",
            "--quiet",
        )
        == 0
    )
    assert torch.load(tmp_path / "samples.pt", weights_only=True).shape == (2, 3, 16, 16)


def test_inpaint_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    official = DATA / "official_refinenet_c3_ngf8.pth"
    assert (
        _run("inpaint", str(official), "--data", "digits", "--output", str(tmp_path), "--quiet")
        == 2
    )
    assert "do not fit the model's" in capsys.readouterr().err
    data = _image_file(tmp_path)
    out = tmp_path / "run"
    assert (
        _run(
            "train",
            "--data",
            str(data),
            "--output",
            str(out),
            "--ngf",
            "4",
            "--steps",
            "1",
            "--batch-size",
            "4",
            "--quiet",
        )
        == 0
    )
    assert _run("inpaint", str(out), "--data", str(data), "--mask", "diagonal", "--quiet") == 2
    assert "--mask: preset must be one of" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_runs_end_to_end_on_tiny_settings(tmp_path: Path) -> None:
    assert (
        _run(
            "demo",
            "--output",
            str(tmp_path),
            "--steps",
            "4",
            "--batch-size",
            "16",
            "--ngf",
            "4",
            "--steps-per-level",
            "2",
            "--quiet",
        )
        == 0
    )
    for name in ("toy_fig3.png", "samples.png", "inpainting.png", "loss_curve.png", "summary.txt"):
        assert (tmp_path / name).exists(), name
    summary = (tmp_path / "summary.txt").read_text()
    assert "annealed Langevin" in summary and "Frechet distance" in summary


@pytest.mark.slow
def test_ctrl_c_leaves_a_loadable_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ncsn",
            "train",
            "--data",
            "mixture",
            "--output",
            str(out),
            "--steps",
            "1000000",
            "--checkpoint-every",
            "50",
            "--quiet",
            "--hidden",
            "16",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while (
            not (out.exists() and ncsn.training.latest_checkpoint(out))
            and time.monotonic() < deadline
        ):
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == 130, err
    assert "interrupted at step" in err
    checkpoint = ncsn.training.load_checkpoint(out)
    assert checkpoint["step"] > 0


# ------------------------------------------------------------------------------- plots

_MATPLOTLIB_MODULES = ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg")


def test_missing_matplotlib_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in _MATPLOTLIB_MODULES:
        monkeypatch.setitem(sys.modules, name, None)  # `import` of these now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'ncsn\[examples\]'"):
        ncsn.viz.require_matplotlib()
    with pytest.raises(ImportError, match=r"plots need matplotlib; install it with"):
        ncsn.viz.plot_toy_samples([("data", torch.zeros(3, 2))], tmp_path / "toy.png")
    assert not (tmp_path / "toy.png").exists()
    from ncsn.cli import _plots_available

    assert _plots_available() is False
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'ncsn[examples]'" in err


def test_plots_leave_the_matplotlib_backend_alone(tmp_path: Path) -> None:
    import matplotlib  # in the test extra

    before = matplotlib.get_backend()
    matplotlib.use("svg")  # a user's choice, not Agg: plotting must not switch it
    try:
        toy = ncsn.viz.plot_toy_samples(
            [("a", torch.randn(50, 2)), ("b", torch.randn(50, 2))], tmp_path / "toy.png"
        )
        fields = ncsn.viz.plot_score_fields(
            [("score", lambda x: -x)],
            tmp_path / "fields.png",
            log_density=lambda x: -0.5 * (x**2).sum(-1),
            points=5,
        )
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(before)
    for path in (toy, fields):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
