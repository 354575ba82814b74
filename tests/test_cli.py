"""The `ncsn` command end to end on tiny settings: train, resume, sample, inpaint, demo, errors."""

from __future__ import annotations

import json
import os
import re
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
from ncsn.cli.sample import chunk_seed
from ncsn.training import load_checkpoint

DATA = Path(__file__).parent / "fixtures"


def _run(*args: str) -> int:
    return main(list(args))


def test_every_subcommand_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("train", "sample", "inpaint", "likelihood", "demo"):
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
    args = ["demo", "--output", str(tmp_path), "--batch-size", "16", "--ngf", "4"]
    args += ["--steps-per-level", "2", "--quiet"]
    assert _run(*args, "--steps", "4") == 0
    for name in ("toy_fig3.png", "samples.png", "inpainting.png", "loss_curve.png", "summary.txt"):
        assert (tmp_path / name).exists(), name
    summary = (tmp_path / "summary.txt").read_text()
    assert "annealed Langevin" in summary and "Frechet distance" in summary
    # 4 steps: the EMA rate is fitted to the run (at most 1 − 10/steps, here its floor 0.5)
    assert "NCSNv2's recipe: sigma 4.80 -> 0.01, L=22, EMA 0.5" in summary
    recorded = ncsn.training.load_checkpoint(tmp_path / "run")["config"]["sampling"]
    assert recorded["steps_per_level"] == 2 and recorded["denoise"] is True
    # a rerun into the same folder starts over instead of mixing with the first run
    assert _run(*args, "--steps", "2") == 0
    assert [p.name for p in ncsn.training.list_checkpoints(tmp_path / "run")] == [
        "checkpoint-00000001.pt",
        "checkpoint-00000002.pt",
    ]
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2]


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
    found = re.search(r"interrupted at step (\d+); checkpoint (\S+) \(resume with", err)
    assert found is not None, err
    step, saved = int(found.group(1)), Path(found.group(2))
    # the checkpoint written on Ctrl-C is the newest, and it holds the interrupted step
    assert saved == out / f"checkpoint-{step:08d}.pt" == ncsn.training.latest_checkpoint(out)
    checkpoint = ncsn.training.load_checkpoint(saved)
    assert checkpoint["step"] == step > 0
    assert float(checkpoint["optimizer"]["state"][0]["step"]) == step  # Adam's count agrees
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert max(r["step"] for r in records) <= step


# ------------------------------------------------------------------------------- resume


def _outcome(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """The exit status of ``ncsn args`` (returned or raised by argparse) and its stderr."""
    capsys.readouterr()
    try:
        code = _run(*args)
    except SystemExit as exit_info:
        code = int(exit_info.code or 0)
    return code, capsys.readouterr().err.strip()


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


TOY_RUN = [
    "--data",
    "mixture",
    "--sigma-max",
    "20",
    "--sigma-min",
    "1",
    "--num-levels",
    "5",
    "--hidden",
    "8",
    "--batch-size",
    "16",
    "--lr",
    "0.01",
    "--ema",
    "0.9",
    "--grad-clip",
    "5",
    "--checkpoint-every",
    "2",
    "--quiet",
]


@pytest.fixture
def toy_run(tmp_path: Path) -> Path:
    out = tmp_path / "run"
    assert _run("train", *TOY_RUN, "--output", str(out), "--steps", "4") == 0
    return out


def test_resume_rebuilds_the_run_from_its_recorded_settings(toy_run: Path, tmp_path: Path) -> None:
    # no --data, --ema, --lr, ...: all of them come from the checkpoint
    assert _run("train", "--output", str(toy_run), "--steps", "8", "--resume", "--quiet") == 0
    resumed = ncsn.training.load_checkpoint(toy_run)
    assert resumed["step"] == 8 and resumed["ema"] is not None and resumed["ema_rate"] == 0.9
    assert resumed["batch_size"] == 16
    settings = resumed["config"]["train"]
    assert (settings["lr"], settings["sigma_max"], settings["loss"]) == (0.01, 20.0, "dsm")
    assert _run("train", *TOY_RUN, "--output", str(tmp_path / "straight"), "--steps", "8") == 0
    straight = ncsn.training.load_checkpoint(tmp_path / "straight")
    for part in ("model", "ema"):
        for key, value in straight[part].items():
            assert torch.equal(value, resumed[part][key]), (part, key)


@pytest.mark.parametrize(
    "option, message",
    [
        (["--sigma-max", "5"], "--sigma-max 5.0 (the run's: 20.0)"),
        (["--loss", "ssm"], "--loss ssm (the run's: dsm)"),
        (["--lr", "0.5"], "--lr 0.5 (the run's: 0.01)"),
        (["--batch-size", "64"], "--batch-size 64 (the run's: 16)"),
        (["--ema", "0.999"], "--ema 0.999 (the run's: 0.9)"),
        (["--seed", "5"], "--seed 5 (the run's: 0)"),
        (["--data", "rings"], "--data rings (the run's: mixture)"),
        (["--flip"], "--flip (the run was trained without it)"),
    ],
)
def test_resume_refuses_an_option_that_differs_from_the_recorded_one(
    toy_run: Path, option: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _snapshot(toy_run)
    code, err = _outcome(
        capsys, "train", "--output", str(toy_run), "--steps", "8", "--resume", *option
    )
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert "--resume continues" in err
    assert _snapshot(toy_run) == before


def test_resume_errors(toy_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _outcome(capsys, "train", "--output", str(toy_run), "--steps", "2", "--resume")
    assert code == 2 and len(err.splitlines()) == 1
    assert "--steps 2 is below the step 4 of" in err
    code, err = _outcome(
        capsys, "train", "--output", str(tmp_path / "none"), "--steps", "2", "--resume"
    )
    assert code == 2 and "holds no checkpoint to resume from" in err
    # a checkpoint written from Python records no command-line settings
    python_run = tmp_path / "python"
    net = ncsn.nets.ScoreMLP(2, hidden=4)
    trainer = ncsn.training.Trainer(
        net,
        ncsn.losses.DenoisingScoreMatching(ncsn.GeometricSchedule(1.0, 0.1, 3)),
        torch.randn(8, 2),
        batch_size=4,
        out_dir=python_run,
        seed=0,
        progress=False,
    )
    trainer.fit(1)
    code, err = _outcome(capsys, "train", "--output", str(python_run), "--steps", "2", "--resume")
    assert code == 2 and len(err.splitlines()) == 1 and "records no `ncsn train` settings" in err


def test_a_new_run_refuses_an_output_that_holds_checkpoints(
    toy_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _snapshot(toy_run)
    code, err = _outcome(
        capsys, "train", *TOY_RUN, "--output", str(toy_run), "--steps", "2", "--seed", "5"
    )
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "already holds checkpoint-00000004.pt of an earlier run; add --resume" in err
    assert _snapshot(toy_run) == before  # nothing overwritten, no duplicate metrics


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[ncsn.training.Trainer]:
    """The Trainers the command builds, in order."""
    trainers: list[ncsn.training.Trainer] = []

    class Spy(ncsn.training.Trainer):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            trainers.append(self)

    monkeypatch.setattr(ncsn.training, "Trainer", Spy)
    return trainers


def test_logit_dequantises_the_pixels_before_the_logit(
    tmp_path: Path, built: list[ncsn.training.Trainer]
) -> None:
    data = _image_file(tmp_path)
    args = ["--data", str(data), "--ngf", "4", "--batch-size", "8", "--steps", "1", "--quiet"]
    assert _run("train", *args, "--logit", "--output", str(tmp_path / "run")) == 0
    (trainer,) = built
    images, _ = ncsn.data.load(str(data))
    assert trainer.data.tensor is not None
    torch.testing.assert_close(trainer.data.tensor, images)  # pixels in [0, 1], not logits
    assert trainer.transform is not None
    x = images[:8]
    batch = trainer.transform(x, generator=torch.Generator().manual_seed(3))
    dequantised = ncsn.data.dequantize(x, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(batch, ncsn.data.logit_transform(dequantised))
    wrong_order = ncsn.data.dequantize(
        ncsn.data.logit_transform(x), generator=torch.Generator().manual_seed(3)
    )
    assert not torch.allclose(batch, wrong_order)


def test_digits_are_dequantised_over_their_17_grey_levels(
    tmp_path: Path, built: list[ncsn.training.Trainer]
) -> None:
    args = ["--data", "digits", "--ngf", "4", "--batch-size", "8", "--steps", "1", "--quiet"]
    assert _run("train", *args, "--output", str(tmp_path / "run")) == 0
    (trainer,) = built
    assert trainer.transform is not None
    x = ncsn.data.load_digits("train")[0][:64]
    batch = trainer.transform(x, generator=torch.Generator().manual_seed(3))
    expected = ncsn.data.dequantize(x, levels=17, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(batch, expected)
    # each of the 17 values k/16 spreads over [k/17, (k+1)/17)
    assert torch.equal((batch * 17).floor(), (x * 16).round())


# ------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "args, code, message",
    [
        (
            ["--sigma-max", "0.01", "--sigma-min", "1"],
            2,
            "--sigma-max 0.01 must be larger than --sigma-min 1",
        ),
        (["--ema", "1.5"], 2, "argument --ema: expected a number in (0, 1), got '1.5'"),
        (["--ema", "0"], 2, "argument --ema: expected a number in (0, 1), got '0'"),
        (["--device", "foo"], 2, "--device 'foo' is not a device"),
        (["--device", "cuda"], 2, "--device cuda: CUDA is not available"),
        (
            ["--lr", "1e30", "--log-every", "1", "--checkpoint-every", "1", "--steps", "30"],
            1,
            "the training loss became non-finite",
        ),
        (["--logit"], 2, "--logit needs data in [0, 1]; mixture holds values in"),
    ],
)
def test_train_errors_are_one_line(
    args: list[str],
    code: int,
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a CPU-only build
    out = tmp_path / "run"
    base = ["train", "--data", "mixture", "--output", str(out), "--hidden", "8", "--quiet"]
    if "--steps" not in args:
        base += ["--steps", "2"]
    got, err = _outcome(capsys, *base, *args)
    assert got == code and len(err.splitlines()) == 1 and message in err, err
    if code == 1:  # the NaN run: the step is named and only good checkpoints were written
        bad = int(re.search(r"at step (\d+)", err).group(1))  # type: ignore[union-attr]
        good = ncsn.training.load_checkpoint(out)
        assert 0 < good["step"] < bad
        assert all(bool(torch.isfinite(v).all()) for v in good["model"].values())


def test_a_cuda_index_beyond_the_devices_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    code, err = _outcome(capsys, "sample", "ckpt.pt", "--device", "cuda:3")
    assert code == 2 and len(err.splitlines()) == 1 and "has 1 CUDA device(s)" in err


def test_unusable_checkpoints_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, ("echo pwned",))

    torch.save({"config": {"model": {}}, "x": Evil()}, tmp_path / "evil.pt")
    code, err = _outcome(capsys, "sample", str(tmp_path / "evil.pt"), "--quiet")
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "refused to unpickle posix.system" in err or "refused to unpickle os.system" in err
    assert "\x1b" not in err and "weights_only=False" not in err and "False" not in err

    schedule = ncsn.GeometricSchedule(1.0, 0.1, 3)
    net = ncsn.nets.ScoreMLP(2, hidden=4, sigmas=schedule.sigmas)
    good = {"step": 0, "model": net.state_dict(), "ema": None}
    unknown = {**good, "config": {"model": {"kind": "UNet"}, "data": {"shape": [2]}}}
    ncsn.training.save_checkpoint(tmp_path / "unknown.pt", unknown)
    code, err = _outcome(capsys, "sample", str(tmp_path / "unknown.pt"), "--quiet")
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "cannot rebuild its model (config kind must be one of" in err

    weights = dict(net.state_dict())
    weights["extra.weight"] = weights.pop("fc1.weight")
    config = {"model": ncsn.nets.model_config(net), "data": {"shape": [2]}}
    ncsn.training.save_checkpoint(
        tmp_path / "misfit.pt", {**good, "model": weights, "config": config}
    )
    code, err = _outcome(capsys, "sample", str(tmp_path / "misfit.pt"), "--quiet")
    assert code == 2 and len(err.splitlines()) == 1, err
    assert (
        "do not fit its recorded ScoreMLP: missing keys fc1.weight; unexpected keys extra.weight"
        in err
    )


# ------------------------------------------------------------------------------- inpaint masks


@pytest.fixture
def image_run(tmp_path: Path) -> tuple[Path, Path]:
    data = _image_file(tmp_path)
    out = tmp_path / "run"
    args = ["--data", str(data), "--ngf", "4", "--steps", "1", "--batch-size", "4", "--quiet"]
    assert _run("train", *args, "--output", str(out)) == 0
    return out, data


def _masks_seen(monkeypatch: pytest.MonkeyPatch) -> list[torch.Tensor]:
    seen: list[torch.Tensor] = []
    real = ncsn.samplers.inpaint

    def spy(
        sampler: object, model: object, x: torch.Tensor, mask: torch.Tensor, **kw: object
    ) -> torch.Tensor:
        seen.append(mask.detach().cpu().expand(x.shape).clone())
        return real(sampler, model, x, mask, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(ncsn.samplers, "inpaint", spy)
    return seen


def test_random_masks_are_shared_by_the_completions_of_an_image(
    image_run: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, data = image_run
    seen = _masks_seen(monkeypatch)
    args = ["--num-images", "3", "--completions", "4", "--steps-per-level", "1", "--quiet"]
    assert (
        _run(
            "inpaint",
            str(out),
            "--data",
            str(data),
            "--mask",
            "random",
            *args,
            "--output",
            str(tmp_path / "i"),
        )
        == 0
    )
    (mask,) = seen
    assert mask.shape == (12, 1, 8, 8)
    per_image = mask.reshape(3, 4, 1, 8, 8)
    for i in range(3):
        for j in range(4):
            assert torch.equal(per_image[i, j], per_image[i, 0]), (i, j)
    assert not torch.equal(per_image[0, 0], per_image[1, 0])  # each image draws its own


def test_a_mask_image_gives_the_known_pixels(
    image_run: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from PIL import Image

    out, data = image_run
    pattern = np.zeros((8, 8), dtype=np.uint8)
    pattern[:, :3] = 255  # white = known: the three left columns
    pattern[0, 5] = 200
    Image.fromarray(pattern).save(tmp_path / "mask.png")
    seen = _masks_seen(monkeypatch)
    args = ["--num-images", "2", "--completions", "2", "--steps-per-level", "1", "--quiet"]
    common = ["inpaint", str(out), "--data", str(data), *args, "--output", str(tmp_path / "i")]
    assert _run(*common, "--mask", str(tmp_path / "mask.png")) == 0
    (mask,) = seen
    expected = torch.from_numpy(pattern > 127).expand(4, 1, 8, 8)
    assert torch.equal(mask, expected)

    Image.fromarray(np.full((8, 8), 255, dtype=np.uint8)).save(tmp_path / "white.png")
    code, err = _outcome(capsys, *common, "--mask", str(tmp_path / "white.png"))
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "marks every pixel as known; nothing to inpaint" in err
    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(tmp_path / "small.png")
    code, err = _outcome(capsys, *common, "--mask", str(tmp_path / "small.png"))
    assert code == 2 and "size 4x4 differs from the images' 8x8" in err
    (tmp_path / "broken.png").write_text("not a picture")
    code, err = _outcome(capsys, *common, "--mask", str(tmp_path / "broken.png"))
    assert code == 2 and len(err.splitlines()) == 1 and "not a readable image" in err


# ------------------------------------------------------------------------------- plots

_MATPLOTLIB_MODULES = ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg")


def test_ncsn_demo_runs_the_example_and_a_wheel_carries_it() -> None:
    """The command is thin: it runs examples/demo.py, which an editable install reads from the
    clone and a wheel carries as ncsn/_demo_example.py."""
    from ncsn.cli.demo import demo_example

    root = Path(__file__).resolve().parents[1]
    example = demo_example()
    assert Path(example.__file__).resolve() == root / "examples" / "demo.py"
    # the command's defaults are the example's
    import inspect

    from ncsn.cli import build_parser

    defaults = vars(build_parser().parse_args(["demo"]))
    for name, parameter in inspect.signature(example.main).parameters.items():
        if name in defaults:
            assert defaults[name] == parameter.default, name
    assert {"output", "steps", "batch_size", "ngf", "seed"} <= set(defaults)
    pyproject = (root / "pyproject.toml").read_text()
    section = pyproject.split("[tool.hatch.build.targets.wheel.force-include]")[1]
    assert section.strip().splitlines()[0] == '"examples/demo.py" = "ncsn/_demo_example.py"'


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
    from ncsn.cli.demo import plots_available as _plots_available

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


# ------------------------------------------------------------------ --recipe


def test_train_computes_the_recipe_from_the_data_prints_and_records_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    args = ["train", "--data", "digits", "--ngf", "4", "--steps", "2", "--batch-size", "4"]
    capsys.readouterr()
    assert main([*args, "--output", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("recipe ncsnv2, computed from the data")
    assert any("σ₁ = 4.8" in line and "Technique 1" in line for line in printed[1:5])
    config = load_checkpoint(out)["config"]
    x, _ = ncsn.data.load("digits")
    expected = ncsn.presets.recipe(x)
    torch.testing.assert_close(
        torch.tensor(config["model"]["sigmas"]), expected.sigmas.to(torch.float32)
    )
    assert config["train"]["recipe"] == "ncsnv2"
    assert config["train"]["ema"] == ncsn.presets.recipe(x, steps=2).ema_rate == 0.5
    assert config["train"]["num_levels"] == 22
    assert config.pop("sampling") | {"sigmas": None} == {
        "sigmas": None,
        "sampler": "annealed",
        "step_size": expected.step_size,
        "step_size_rule": "ncsnv2",
        "steps_per_level": 5,
        "denoise": True,
    }
    # `ncsn sample RUN` with no options samples with the recorded settings
    model = ncsn.nets.build_model(config["model"])
    model.load_state_dict(ncsn.training.model_weights(load_checkpoint(out), ema=True))
    g = torch.Generator().manual_seed(chunk_seed(0, 0))
    x0 = ncsn.samplers.uniform_init((3, 1, 8, 8), generator=g)
    sampler = ncsn.samplers.AnnealedLangevin(model.sigmas, expected.step_size, 5, denoise=True)
    want = sampler(model.eval(), x0, generator=g)
    assert (
        main(["sample", str(out), "--num-samples", "3", "--quiet", "--output", str(tmp_path / "s")])
        == 0
    )
    assert torch.equal(torch.load(tmp_path / "s" / "samples.pt", weights_only=True), want)


def test_recipe_paper_keeps_the_seeds_settings(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["train", "--data", "digits", "--ngf", "4", "--steps", "2", "--batch-size", "4"]
    assert main([*args, "--recipe", "paper", "--quiet", "--output", str(out)]) == 0
    config = load_checkpoint(out)["config"]
    torch.testing.assert_close(
        torch.tensor(config["model"]["sigmas"]), ncsn.geometric_sigmas(1.0, 0.01, 10)
    )
    assert config["train"]["ema"] is None
    assert config["sampling"].pop("sigmas") == pytest.approx(config["model"]["sigmas"])
    assert config["sampling"] == {
        "sampler": "annealed",
        "step_size": ncsn.presets.OFFICIAL_STEP_SIZE,
        "steps_per_level": 100,
        "denoise": False,
    }
    # resumed with its recorded recipe, and refused with another one
    assert main(["train", "--output", str(out), "--steps", "3", "--resume", "--quiet"]) == 0
    assert (
        main(["train", "--output", str(out), "--steps", "4", "--resume", "--recipe", "ncsnv2"]) == 2
    )


def test_explicit_levels_replace_the_recipes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["train", "--data", "digits", "--ngf", "4", "--steps", "1", "--batch-size", "4"]
    assert (
        main(
            [
                *args,
                "--sigma-max",
                "3",
                "--num-levels",
                "6",
                "--ema",
                "0.9",
                "--quiet",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    config = load_checkpoint(out)["config"]
    torch.testing.assert_close(
        torch.tensor(config["model"]["sigmas"]), ncsn.geometric_sigmas(3.0, 0.01, 6)
    )
    assert config["train"]["ema"] == 0.9
    assert config["sampling"]["step_size"] == ncsn.ncsnv2_step_size(
        ncsn.geometric_sigmas(3.0, 0.01, 6), 5
    )
