"""The `ncsn` command under bad input and faults: one line on stderr, a non-zero exit, no traceback.

Each case asserts the exit status, that stderr is exactly one line naming the problem, and that
no Python traceback was printed; cases that must be refused before any work also check that no
training or sampling started.

Second CLI audit (issue 12): 76 bad or edge-case invocations of the five commands (bad numbers,
files that are not what they claim, options of another sampler, data that does not fit the
model, folders in the way). None ended in a traceback or an untyped error; four were silently
ignored options, all refused now with one line: a sampler option the chosen sampler does not
take (``--eta`` with annealed Langevin, ``--snr`` with the ODE, ``--step-size`` with CAS, ...),
``--image-size`` for a checkpoint of ours (which records its shape), and ``--levels`` for vector
data in ``ncsn likelihood``.
"""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest
import torch

import ncsn
from ncsn.cli import main

TINY_IMAGES = ["--ngf", "4", "--steps", "2", "--batch-size", "4", "--quiet"]


def _outcome(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = main(list(args))
    except SystemExit as exit_info:
        code = int(exit_info.code or 0)
    captured = capsys.readouterr()
    return code, captured.out.strip(), captured.err.strip()


def _one_line(err: str, *needles: str) -> None:
    assert "Traceback" not in err, err
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err


def _images(tmp_path: Path) -> Path:
    images = np.random.default_rng(0).integers(0, 256, size=(40, 1, 8, 8), dtype=np.uint8)
    path = tmp_path / "images.npz"
    np.savez(path, images=images)
    return path


@pytest.fixture
def image_run(tmp_path: Path) -> Path:
    out = tmp_path / "run"
    assert (
        main(["train", "--data", str(_images(tmp_path)), *TINY_IMAGES, "--output", str(out)]) == 0
    )
    return out


@pytest.fixture
def no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if a Trainer is built (errors must come before any work)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a Trainer was built before the error")

    monkeypatch.setattr(ncsn.training, "Trainer", refuse)


# ------------------------------------------------------------------------- output folders
def test_output_under_a_file_is_refused_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_training: None
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = _outcome(
        capsys, "train", "--data", "mixture", "--output", str(blocker / "run"), "--steps", "1"
    )
    assert code == 2
    _one_line(err, "--output", "cannot write there")


def test_output_that_cannot_be_created_is_refused_before_training(
    capsys: pytest.CaptureFixture[str], no_training: None
) -> None:
    # /proc refuses new folders even to root (a chmod'ed folder would not stop root)
    code, _, err = _outcome(
        capsys, "train", "--data", "mixture", "--output", "/proc/ncsn-run", "--steps", "1"
    )
    assert code == 2
    _one_line(err, "--output /proc/ncsn-run: cannot write there")


@pytest.mark.parametrize("command", ["sample", "inpaint"])
def test_sampling_output_is_checked_before_loading_or_sampling(
    command: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded before the output folder was checked")

    monkeypatch.setattr(ncsn.cli._common.training, "latest_checkpoint", refuse)
    extra = ["--data", "digits"] if command == "inpaint" else []
    code, _, err = _outcome(capsys, command, str(tmp_path), *extra, "--output", "/proc/x")
    assert code == 2
    _one_line(err, "--output /proc/x: cannot write there")


def test_a_full_disk_during_a_save_is_one_line_and_keeps_older_checkpoints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
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
    code, _, err = _outcome(
        capsys,
        "train",
        "--output",
        str(out),
        "--steps",
        "4",
        "--resume",
        "--checkpoint-every",
        "2",
        "--quiet",
    )
    assert code == 1
    _one_line(err, "No space left on device")
    monkeypatch.undo()
    after = {p.name: p.read_bytes() for p in out.glob("checkpoint-*.pt")}
    assert after == before  # the older checkpoint is intact
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp")]  # no temp file left
    assert ncsn.training.load_checkpoint(out)["step"] == 2


# ------------------------------------------------------------------------- arguments
@pytest.mark.parametrize("seed", [str(2**64), "-1", "1.5"])
def test_a_seed_outside_64_bits_is_refused(seed: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _outcome(
        capsys, "train", "--data", "mixture", "--output", "o", "--steps", "1", "--seed", seed
    )
    assert code == 2
    _one_line(err, "--seed")


def test_the_largest_64_bit_seed_is_accepted(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["--data", "mixture", "--hidden", "8", "--batch-size", "8", "--steps", "1", "--quiet"]
    assert main(["train", *args, "--seed", str(2**64 - 1), "--output", str(out)]) == 0


# ------------------------------------------------------------------------- sampling
def test_a_diverging_sampler_is_one_line_suggesting_a_smaller_step(
    image_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _outcome(
        capsys,
        "sample",
        str(image_run),
        "--step-size",
        "1e38",
        "--steps-per-level",
        "3",
        "--num-samples",
        "2",
        "--quiet",
        "--output",
        str(tmp_path / "s"),
    )
    assert code == 1
    _one_line(err, "non-finite", "smaller --step-size")


def test_absurd_finite_samples_give_one_warning_line(
    image_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _outcome(
        capsys,
        "sample",
        str(image_run),
        "--step-size",
        "1e3",
        "--steps-per-level",
        "1",
        "--num-samples",
        "2",
        "--quiet",
        "--output",
        str(tmp_path / "s"),
    )
    assert code == 0
    _one_line(err, "warning: the samples lie in", "far outside the data range [0, 1]")


# ------------------------------------------------------------------------- checkpoints
def test_a_python_trainer_checkpoint_says_what_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sigmas = ncsn.geometric_sigmas(1.0, 0.1, 3)
    net = ncsn.nets.ScoreMLP(2, hidden=8, sigmas=sigmas)
    loss = ncsn.losses.DenoisingScoreMatching(ncsn.Schedule(sigmas))
    trainer = ncsn.training.Trainer(
        net, loss, torch.randn(32, 2), batch_size=8, out_dir=tmp_path / "py", progress=False
    )
    trainer.fit(1)
    path = trainer.save()
    trainer.close()
    code, _, err = _outcome(capsys, "sample", str(path), "--output", str(tmp_path / "s"))
    assert code == 2
    _one_line(err, "records no model configuration", "ncsn.training.model_weights")


@pytest.mark.parametrize(
    "content, shown",
    [([1, 2, 3], "holds a list of int"), ([], "holds a list of nothing"), (7, "holds a int")],
)
def test_a_file_holding_something_else_says_what_it_holds(
    content: object, shown: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "thing.pt"
    torch.save(content, path)
    code, _, err = _outcome(capsys, "sample", str(path), "--output", str(tmp_path / "s"))
    assert code == 2
    _one_line(err, shown, "not a checkpoint")


def test_an_option_the_chosen_sampler_does_not_take_is_refused(
    image_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "s")
    for args, needles in [
        (["--eta", "0.5"], ["--eta: not an option of --sampler annealed", "--steps-per-level"]),
        (["--sampler", "ode", "--snr", "0.2"], ["--snr: not an option of --sampler ode"]),
        (
            ["--sampler", "cas", "--step-size", "1e-4"],
            ["--step-size: not an option of --sampler cas"],
        ),
    ]:
        code, _, err = _outcome(capsys, "sample", str(image_run), *args, "--output", out)
        assert code == 2
        _one_line(err, *needles)
    assert not (tmp_path / "s" / "samples.pt").exists()


def test_image_size_is_refused_for_a_run_that_records_its_shape(
    image_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _outcome(
        capsys, "sample", str(image_run), "--image-size", "16", "--output", str(tmp_path / "s")
    )
    assert code == 2
    _one_line(err, "--image-size applies to official checkpoints only", "[1, 8, 8]")


def test_grey_levels_are_refused_for_vector_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "toy"
    args = ["--steps", "1", "--hidden", "8", "--batch-size", "8", "--quiet"]
    assert main(["train", "--data", "mixture", *args, "--output", str(run)]) == 0
    code, _, err = _outcome(capsys, "likelihood", str(run), "--data", "mixture", "--levels", "4")
    assert code == 2
    _one_line(err, "--levels applies to images", "[2]")
