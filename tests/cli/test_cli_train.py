"""`ncsn train` (src/ncsn/cli/train.py): runs from the settings, the recipe, resuming, errors."""

from __future__ import annotations

import errno
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from cli_runner import Runner

import ncsn
from ncsn.cli import main
from ncsn.training import load_checkpoint

TOY_RUN = [
    *("--data", "mixture", "--sigma-max", "20", "--sigma-min", "1", "--num-levels", "5"),
    *("--hidden", "8", "--batch-size", "16", "--lr", "0.01", "--ema", "0.9", "--grad-clip", "5"),
    *("--checkpoint-every", "2", "--quiet"),
]


@pytest.fixture
def toy_run(tmp_path: Path) -> Path:
    out = tmp_path / "run"
    assert main(["train", *TOY_RUN, "--output", str(out), "--steps", "4"]) == 0
    return out


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_train_resume_and_sample_on_vector_data(tmp_path: Path) -> None:
    out, straight = tmp_path / "run", tmp_path / "straight"
    common = ["train", "--data", "mixture", "--sigma-max", "20", "--sigma-min", "1"]
    common += ["--checkpoint-every", "10", "--batch-size", "32", "--quiet", "--hidden", "16"]
    assert main([*common, "--output", str(out), "--steps", "20"]) == 0
    assert main([*common, "--output", str(out), "--steps", "30", "--resume"]) == 0
    assert main([*common, "--output", str(straight), "--steps", "30"]) == 0
    a, b = load_checkpoint(out), load_checkpoint(straight)
    assert a["step"] == b["step"] == 30
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    args = ["--num-samples", "7", "--step-size", "0.1", "--steps-per-level", "2", "--quiet"]
    assert main(["sample", str(out), "--output", str(tmp_path / "s"), *args]) == 0
    samples = torch.load(tmp_path / "s" / "samples.pt", weights_only=True)
    assert samples.shape == (7, 2) and torch.isfinite(samples).all()


def test_resume_rebuilds_the_run_from_its_recorded_settings(toy_run: Path, tmp_path: Path) -> None:
    # no --data, --ema, --lr, ...: all of them come from the checkpoint
    assert main(["train", "--output", str(toy_run), "--steps", "8", "--resume", "--quiet"]) == 0
    resumed = load_checkpoint(toy_run)
    assert resumed["step"] == 8 and resumed["ema"] is not None and resumed["ema_rate"] == 0.9
    assert resumed["batch_size"] == 16
    settings = resumed["config"]["train"]
    assert (settings["lr"], settings["sigma_max"], settings["loss"]) == (0.01, 20.0, "dsm")
    assert main(["train", *TOY_RUN, "--output", str(tmp_path / "straight"), "--steps", "8"]) == 0
    straight = load_checkpoint(tmp_path / "straight")
    for part in ("model", "ema"):
        for key, value in straight[part].items():
            assert torch.equal(value, resumed[part][key]), (part, key)


def test_resume_rebuilds_the_recorded_grid_itself_not_a_rounded_sigma_1(tmp_path: Path) -> None:
    """σ₁ from the data is recorded as a float32 value; a grid recomputed from it can differ from
    the trained one by ~1e-7: --resume takes the grid itself, and equals the straight run."""
    args = ["--data", "moons", "--hidden", "8", "--batch-size", "16", "--quiet"]
    args += ["--checkpoint-every", "2", "--ema", "0.9"]
    out, straight = tmp_path / "run", tmp_path / "straight"
    assert main(["train", *args, "--steps", "2", "--output", str(out)]) == 0
    trained = load_checkpoint(out)["config"]
    assert trained["train"]["sigmas"] == trained["sampling"]["sigmas"] == trained["model"]["sigmas"]
    assert main(["train", "--output", str(out), "--steps", "4", "--resume", "--quiet"]) == 0
    assert main(["train", *args, "--steps", "4", "--output", str(straight)]) == 0
    a, b = load_checkpoint(out), load_checkpoint(straight)
    assert (
        a["config"]["model"]["sigmas"]
        == b["config"]["model"]["sigmas"]
        == trained["model"]["sigmas"]
    )
    for part in ("model", "ema"):
        for key, value in a[part].items():
            assert torch.equal(value, b[part][key]), (part, key)


def test_lr_decay_cosine_is_recorded_and_resumes_along_the_same_curve(
    tmp_path: Path, cli: Runner
) -> None:
    out, straight = tmp_path / "run", tmp_path / "straight"
    decayed = [*TOY_RUN, "--lr-decay", "cosine", "--steps", "8"]
    assert main(["train", *decayed, "--output", str(straight)]) == 0
    ended = load_checkpoint(straight)
    assert ended["config"]["train"]["lr_decay_steps"] == 8
    assert ended["scheduler"]["class"] == "LambdaLR"
    assert ended["optimizer"]["param_groups"][0]["lr"] == 0.0  # 0.01 down to 0 at step 8
    # a run stopped at step 4 (its later checkpoints gone) resumes, with no options, along the
    # same curve: the straight run, bit for bit
    assert main(["train", *decayed, "--output", str(out)]) == 0
    for path in ncsn.training.list_checkpoints(out):
        if load_checkpoint(path)["step"] > 4:
            path.unlink()
    assert main(["train", "--output", str(out), "--steps", "8", "--resume", "--quiet"]) == 0
    resumed = load_checkpoint(out)
    assert resumed["scheduler"] == ended["scheduler"]
    for part in ("model", "ema"):
        for key, value in ended[part].items():
            assert torch.equal(value, resumed[part][key]), (part, key)
    before = _snapshot(out)
    cli("train", "--output", str(out), "--steps", "12", "--resume").one_line(
        2, "--steps 12 goes past step 8, where the run's --lr-decay cosine brings the learning"
    )
    cli(
        "train", "--output", str(out), "--steps", "8", "--resume", "--lr-decay", "constant"
    ).one_line(2, "--lr-decay constant (the run's: cosine)", "--resume continues")
    assert _snapshot(out) == before


def test_level_draw_lognormal_is_recorded_trains_on_its_weights_and_resumes(
    tmp_path: Path, cli: Runner
) -> None:
    out = tmp_path / "run"
    assert (
        main(["train", *TOY_RUN, "--level-draw", "lognormal", "--steps", "4", "--output", str(out)])
        == 0
    )
    trained = load_checkpoint(out)
    assert trained["config"]["train"]["level_draw"] == "lognormal"
    settings = ncsn.presets.Settings.from_record(trained["config"]["train"])
    run = ncsn.presets.prepare(torch.zeros(8, 2), settings)
    sigmas = torch.tensor(trained["config"]["train"]["sigmas"])
    torch.testing.assert_close(
        run.loss.schedule.weights,
        ncsn.schedules.lognormal_weights(sigmas, *ncsn.presets.LOGNORMAL_DRAW),
    )
    assert main(["train", "--output", str(out), "--steps", "6", "--resume", "--quiet"]) == 0
    assert load_checkpoint(out)["config"]["train"]["level_draw"] == "lognormal"
    cli(
        "train", "--output", str(out), "--steps", "8", "--resume", "--level-draw", "uniform"
    ).one_line(2, "--level-draw uniform (the run's: lognormal)", "--resume continues")
    # a run without the option records the paper's uniform draw, and so do older records
    plain = tmp_path / "plain"
    assert main(["train", *TOY_RUN, "--steps", "2", "--output", str(plain)]) == 0
    record = load_checkpoint(plain)["config"]["train"]
    assert record["level_draw"] == "uniform"
    del record["level_draw"]
    assert ncsn.presets.Settings.from_record(record).level_draw == "uniform"


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
    toy_run: Path, option: list[str], message: str, cli: Runner
) -> None:
    before = _snapshot(toy_run)
    outcome = cli("train", "--output", str(toy_run), "--steps", "8", "--resume", *option)
    outcome.one_line(2, message, "--resume continues")
    assert _snapshot(toy_run) == before


def test_resume_errors(toy_run: Path, tmp_path: Path, cli: Runner) -> None:
    cli("train", "--output", str(toy_run), "--steps", "2", "--resume").one_line(
        2, "--steps 2 is below the step 4 of"
    )
    cli("train", "--output", str(tmp_path / "none"), "--steps", "2", "--resume").one_line(
        2, "holds no checkpoint to resume from"
    )
    # a checkpoint written from Python records no command-line settings
    python_run = tmp_path / "python"
    net = ncsn.nets.ScoreMLP(2, hidden=4)
    output = ncsn.training.Output(python_run, progress=False)
    loss = ncsn.losses.DenoisingScoreMatching(ncsn.GeometricSchedule(1.0, 0.1, 3))
    ncsn.training.Trainer(net, loss, torch.randn(8, 2), batch_size=4, output=output, seed=0).fit(1)
    cli("train", "--output", str(python_run), "--steps", "2", "--resume").one_line(
        2, "records no `ncsn train` settings"
    )


def test_resume_refuses_changed_data_naming_it_unless_allowed(tmp_path: Path, cli: Runner) -> None:
    data = tmp_path / "points.npy"
    import numpy as np

    np.save(data, np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32))
    out = tmp_path / "run"
    args = ["--hidden", "8", "--batch-size", "16", "--quiet", "--checkpoint-every", "2"]
    assert main(["train", "--data", str(data), *args, "--steps", "2", "--output", str(out)]) == 0
    np.save(data, np.random.default_rng(1).normal(size=(64, 3)).astype(np.float32))
    outcome = cli("train", "--output", str(out), "--steps", "4", "--resume", "--quiet")
    outcome.one_line(2, f"--data {data}", "the data changed", "--allow-data-change")
    assert "restore(" not in outcome.err
    assert load_checkpoint(out)["step"] == 2
    outcome = cli("train", "--output", str(out), "--steps", "4", "--resume", "--allow-data-change", "--quiet")  # fmt: skip
    assert outcome.code == 0, outcome
    assert load_checkpoint(out)["step"] == 4
    # another channel count: the data are named, not a weight tensor
    np.save(data, np.random.default_rng(1).normal(size=(64, 5)).astype(np.float32))
    outcome = cli("train", "--output", str(out), "--steps", "6", "--resume", "--allow-data-change")
    outcome.one_line(2, f"the data {data} now holds examples of shape [5]", "trained on [3]")


def test_a_new_run_refuses_an_output_that_holds_checkpoints(toy_run: Path, cli: Runner) -> None:
    before = _snapshot(toy_run)
    outcome = cli("train", *TOY_RUN, "--output", str(toy_run), "--steps", "2", "--seed", "5")
    outcome.one_line(2, "already holds checkpoint-00000004.pt of an earlier run; add --resume")
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
    images: Path, tmp_path: Path, built: list[ncsn.training.Trainer]
) -> None:
    args = ["--data", str(images), "--ngf", "4", "--batch-size", "8", "--steps", "1", "--quiet"]
    assert main(["train", *args, "--logit", "--output", str(tmp_path / "run")]) == 0
    (trainer,) = built
    x, _ = ncsn.data.load(str(images))
    assert trainer.data.tensor is not None
    torch.testing.assert_close(trainer.data.tensor, x)  # pixels in [0, 1], not logits
    assert trainer.transform is not None
    batch = trainer.transform(x[:8], generator=torch.Generator().manual_seed(3))
    dequantised = ncsn.data.dequantize(x[:8], generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(batch, ncsn.data.logit_transform(dequantised))


def test_digits_are_dequantised_over_their_17_grey_levels(
    tmp_path: Path, built: list[ncsn.training.Trainer]
) -> None:
    args = ["--data", "digits", "--ngf", "4", "--batch-size", "8", "--steps", "1", "--quiet"]
    assert main(["train", *args, "--output", str(tmp_path / "run")]) == 0
    (trainer,) = built
    x = ncsn.data.load_digits("train")[0][:64]
    assert trainer.transform == ncsn.data.ImageTransform(levels=17)
    batch = trainer.transform(x, generator=torch.Generator().manual_seed(3))
    assert torch.equal((batch * 17).floor(), (x * 16).round())


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--sigma-max", "0.01", "--sigma-min", "1"], 2, "--sigma-max 0.01 must be larger than --sigma-min 1"),
        (["--ema", "1.5"], 2, "argument --ema: expected a number in (0, 1), got '1.5'"),
        (["--lr", "1e30", "--log-every", "1", "--checkpoint-every", "1", "--steps", "30"], 1, "the training loss became non-finite"),
        (["--logit"], 2, "--logit needs data in [0, 1]; 'mixture' holds values in"),
        (["--model", "refinenet"], 2, "model 'refinenet' needs images [N, C, H, W]; got examples of shape [2]"),
        (["--channels", "1"], 2, "--channels"),
    ],
)  # fmt: skip
def test_train_errors_are_one_line(
    args: list[str], code: int, message: str, tmp_path: Path, cli: Runner
) -> None:
    out = tmp_path / "run"
    base = ["train", "--data", "mixture", "--output", str(out), "--hidden", "8", "--quiet"]
    if "--steps" not in args:
        base += ["--steps", "2"]
    outcome = cli(*base, *args)
    outcome.one_line(code, message)
    if code == 1:  # the NaN run: the step is named and only good checkpoints were written
        bad = int(re.search(r"at step (\d+)", outcome.err).group(1))  # type: ignore[union-attr]
        good = load_checkpoint(out)
        assert 0 < good["step"] < bad
        assert all(bool(torch.isfinite(v).all()) for v in good["model"].values())


def test_data_with_no_spread_names_the_data(tmp_path: Path, cli: Runner) -> None:
    import numpy as np

    flat = tmp_path / "flat.npy"
    np.save(flat, np.ones((10, 3), dtype=np.float32))
    outcome = cli("train", "--data", str(flat), "--output", str(tmp_path / "r"), "--steps", "1")
    outcome.one_line(2, f"data '{flat}' has no spread", "largest distance between two of its 10")
    assert "--sigma-max" not in outcome.err and "sigma_max" not in outcome.err


def test_output_under_a_file_is_refused_before_training(
    tmp_path: Path, cli: Runner, no_training: None
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    outcome = cli("train", "--data", "mixture", "--output", str(blocker / "run"), "--steps", "1")
    outcome.one_line(2, "--output", "cannot write there")


def test_output_that_cannot_be_created_is_refused_before_training(
    cli: Runner, no_training: None
) -> None:
    # /proc refuses new folders even to root (a chmod'ed folder would not stop root)
    outcome = cli("train", "--data", "mixture", "--output", "/proc/ncsn-run", "--steps", "1")
    outcome.one_line(2, "--output /proc/ncsn-run: cannot write there")


def test_a_full_disk_during_a_save_is_one_line_and_keeps_older_checkpoints(
    tmp_path: Path, cli: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    args = ["--data", "mixture", "--hidden", "8", "--batch-size", "8", "--quiet"]
    assert (
        main(["train", *args, "--steps", "2", "--checkpoint-every", "2", "--output", str(out)]) == 0
    )
    before = {p.name: p.read_bytes() for p in out.glob("checkpoint-*.pt")}
    real_save = torch.save

    def full(obj: object, f: object, *a: object, **k: object) -> None:
        real_save(obj, f, *a, **k)  # type: ignore[arg-type]  # write part of it, then fail
        raise OSError(errno.ENOSPC, "No space left on device", str(f))

    monkeypatch.setattr(torch, "save", full)
    outcome = cli("train", "--output", str(out), "--steps", "4", "--resume", "--checkpoint-every", "2", "--quiet")  # fmt: skip
    outcome.one_line(1, "No space left on device")
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in out.glob("checkpoint-*.pt")} == before
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp")]  # no temp file left
    assert load_checkpoint(out)["step"] == 2


def test_a_real_full_disk_is_one_line_and_keeps_the_earlier_checkpoints(
    small_disk: Path, cli: Runner
) -> None:
    """A filesystem of 256 KiB fills up while checkpoints are written: torch.save raises a
    RuntimeError there, not an OSError."""
    args = ["--data", "mixture", "--hidden", "64", "--batch-size", "8", "--quiet"]
    outcome = cli("train", *args, "--steps", "200", "--checkpoint-every", "1", "--keep", "50", "--output", str(small_disk))  # fmt: skip
    outcome.one_line(1, "space left on", "checkpoint-")
    kept = ncsn.training.list_checkpoints(small_disk)
    assert kept and all(load_checkpoint(p)["step"] == int(p.stem.split("-")[1]) for p in kept)
    assert not [p for p in small_disk.iterdir() if ".tmp" in p.name]


def test_the_largest_64_bit_seed_is_accepted(tmp_path: Path) -> None:
    args = ["--data", "mixture", "--hidden", "8", "--batch-size", "8", "--steps", "1", "--quiet"]
    assert main(["train", *args, "--seed", str(2**64 - 1), "--output", str(tmp_path / "r")]) == 0


# ------------------------------------------------------------------------------- the recipe
def test_train_computes_the_recipe_from_the_data_prints_and_records_it(
    tmp_path: Path, cli: Runner
) -> None:
    out = tmp_path / "run"
    args = ["train", "--data", "digits", "--ngf", "4", "--steps", "2", "--batch-size", "4"]
    outcome = cli(*args, "--quiet", "--output", str(out))  # --quiet hides the bar, not the recipe
    printed = outcome.out.splitlines()
    assert printed[0].startswith("recipe ncsnv2, computed from the data")
    assert any("σ₁ = 4.8" in line and "Technique 1" in line for line in printed[1:5])
    config = load_checkpoint(out)["config"]
    x, _ = ncsn.data.load("digits")
    expected = ncsn.presets.recipe(x)
    torch.testing.assert_close(torch.tensor(config["model"]["sigmas"]), expected.sigmas)
    assert config["train"]["recipe"] == "ncsnv2" and config["train"]["num_levels"] == 22
    assert config["train"]["ema"] == ncsn.presets.recipe(x, steps=2).ema_rate == 0.5
    assert config.pop("sampling") | {"sigmas": None} == {
        "sigmas": None,
        "sampler": "annealed",
        "step_size": 2 * ncsn.ncsnv2_step_size(expected.sigmas, 10),
        "step_size_rule": "ncsnv2",
        "step_scale": 2.0,
        "steps_per_level": 10,
        "denoise": True,
    }
    # `ncsn sample RUN` with no options samples with the recorded settings
    model = ncsn.nets.build_model(config["model"])
    model.load_state_dict(ncsn.training.model_weights(load_checkpoint(out), ema=True))
    from ncsn.cli.sample import chunk_seed

    g = torch.Generator().manual_seed(chunk_seed(0, 0))
    x0 = ncsn.samplers.uniform_init((3, 1, 8, 8), generator=g)
    step_size = 2 * ncsn.ncsnv2_step_size(model.sigmas, 10)
    sampler = ncsn.samplers.AnnealedLangevin(model.sigmas, step_size, 10, denoise=True)
    want = sampler(model.eval(), x0, generator=g)
    assert main(["sample", str(out), "--num-samples", "3", "--quiet", "--output", str(tmp_path / "s")]) == 0  # fmt: skip
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
    assert main(["train", "--output", str(out), "--steps", "4", "--resume", "--recipe", "ncsnv2"]) == 2  # fmt: skip


def test_explicit_levels_replace_the_recipes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["train", "--data", "digits", "--ngf", "4", "--steps", "1", "--batch-size", "4"]
    args += ["--sigma-max", "3", "--num-levels", "6", "--ema", "0.9", "--quiet"]
    assert main([*args, "--output", str(out)]) == 0
    config = load_checkpoint(out)["config"]
    torch.testing.assert_close(
        torch.tensor(config["model"]["sigmas"]), ncsn.geometric_sigmas(3.0, 0.01, 6)
    )
    assert config["train"]["ema"] == 0.9
    assert config["sampling"]["step_size"] == 2 * ncsn.ncsnv2_step_size(
        ncsn.geometric_sigmas(3.0, 0.01, 6), 10
    )


# ------------------------------------------------------------------------------- signals
def _start(out: Path, *extra: str) -> subprocess.Popen[str]:
    args = ["--data", "mixture", "--output", str(out), "--quiet", "--hidden", "16", *extra]
    return subprocess.Popen(
        [sys.executable, "-m", "ncsn", "train", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_ctrl_c_leaves_a_loadable_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = _start(out, "--steps", "1000000", "--checkpoint-every", "50")
    try:
        deadline = time.monotonic() + 120
        while not (out.exists() and ncsn.training.latest_checkpoint(out)) and time.monotonic() < deadline:  # fmt: skip
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
    checkpoint = load_checkpoint(saved)
    assert checkpoint["step"] == step > 0
    assert float(checkpoint["optimizer"]["state"][0]["step"]) == step  # Adam's count agrees
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert max(r["step"] for r in records) <= step


def _wait_for_handler(pid: int, signum: int, timeout: float = 120.0) -> None:
    """Wait until the process catches ``signum`` (its bit in /proc/PID/status's SigCgt): a fixed
    sleep raced the import of torch on a slow machine, and the default action killed it."""
    status = Path(f"/proc/{pid}/status")
    if not status.exists():
        pytest.skip("needs /proc/PID/status (Linux) to see when the command catches signals")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        caught = re.search(r"^SigCgt:\s*([0-9a-f]+)$", status.read_text(), re.MULTILINE)
        if caught and int(caught.group(1), 16) >> (signum - 1) & 1:
            return
        time.sleep(0.01)
    raise AssertionError(f"the command never caught signal {signum} within {timeout} s")


@pytest.mark.slow
def test_sigterm_during_set_up_says_nothing_was_trained(tmp_path: Path) -> None:
    """SIGTERM while the recipe computes σ₁ over 10,000 toy points × 2 runs of the exact
    distance (before the first step): one line, exit 143, no checkpoint."""
    out = tmp_path / "run"
    big = tmp_path / "big.npy"
    import numpy as np

    np.save(big, np.random.default_rng(0).normal(size=(20000, 64)).astype(np.float32))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ncsn",
            "train",
            "--data",
            str(big),
            "--output",
            str(out),
            "--steps",
            "5",
            "--threads",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_handler(proc.pid, signal.SIGTERM)  # torch imported, the set-up has begun
        proc.send_signal(signal.SIGTERM)
        out_text, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == 143, (out_text, err)
    assert (
        err.strip().splitlines()[-1] == "ncsn train: terminated (SIGTERM); nothing was trained yet"
    )
    assert "Traceback" not in err
    assert not (out.exists() and ncsn.training.latest_checkpoint(out))


def test_sample_every_draws_grids_beside_the_checkpoints(tmp_path: Path, cli: Runner) -> None:
    out = tmp_path / "run"
    args = ["train", "--data", "digits", "--ngf", "4", "--num-levels", "4", "--batch-size", "8"]
    result = cli(*args, "--output", str(out), "--steps", "4", "--sample-every", "2", "--quiet")
    assert result.code == 0, result.err
    assert f"a grid of 64 samples every 2 steps: {out / 'samples'}" in result.out
    assert "with the digits evaluator's figures in scores.jsonl" in result.out
    assert sorted(p.name for p in (out / "samples").iterdir()) == [
        "samples-00000002.png",
        "samples-00000004.png",
        "scores.jsonl",
    ]
    scores = [json.loads(line) for line in (out / "samples" / "scores.jsonl").read_text().splitlines()]  # fmt: skip
    assert [sorted(s) for s in scores] == [["classifier_score", "confident", "step"]] * 2


def test_sample_every_refuses_vectors_and_conditional_runs(tmp_path: Path, cli: Runner) -> None:
    vectors = cli("train", *TOY_RUN, "--output", str(tmp_path / "a"), "--steps", "2", "--sample-every", "1")  # fmt: skip
    assert vectors.code == 2
    assert "--sample-every draws image grids; the data are not images" in vectors.err
    conditional = cli(
        *("train", "--data", "digits", "--conditional", "--ngf", "4", "--num-levels", "4"),
        *("--output", str(tmp_path / "b"), "--steps", "2", "--sample-every", "1"),
    )
    assert conditional.code == 2
    assert "a class-conditional run draws no grids while it trains" in conditional.err
