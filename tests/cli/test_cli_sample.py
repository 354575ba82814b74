"""`ncsn sample` (src/ncsn/cli/sample.py): every sampler, chunks that survive interruption and
are never mixed across runs, another σ grid, and one-line errors."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from cli_runner import Runner

import ncsn
from ncsn.cli import main
from ncsn.cli.sample import chunk_seed

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SAMPLERS = {
    "annealed": ["--steps-per-level", "2"],
    "cas": ["--eta", "0.9"],
    "pc": ["--snr", "0.1", "--corrector-steps", "2"],
    "ode": ["--solver", "euler", "--no-denoise"],
}


def _expected(run: Path, name: str, n: int) -> torch.Tensor:
    """The same samples drawn in Python: the run's model, the named sampler, the same start."""
    loaded = ncsn.load(run)
    sigmas = loaded.sigmas
    assert sigmas is not None
    g = torch.Generator().manual_seed(chunk_seed(0, 0))  # one chunk: n <= --batch-size
    sampler: ncsn.Sampler
    if name == "annealed":
        # The run's recipe recorded the denoising step and its rule for ε (twice Technique 4's):
        # a new T gets the ε for that T.
        step_size = 2 * ncsn.ncsnv2_step_size(sigmas, 2)
        sampler = ncsn.samplers.AnnealedLangevin(sigmas, step_size, 2, denoise=True)
        x0 = ncsn.samplers.uniform_init((n, 2), generator=g)
    else:
        if name == "cas":
            sampler = ncsn.samplers.ConsistentAnnealedSampling(sigmas, 0.9, denoise=True)
        elif name == "pc":
            sampler = ncsn.samplers.PredictorCorrector(sigmas, snr=0.1, corrector_steps=2)
        else:
            sampler = ncsn.samplers.ProbabilityFlowODE(sigmas, solver="euler")
        x0 = ncsn.samplers.gaussian_init((n, 2), float(sigmas[0]), generator=g)
    return sampler(loaded.model, x0, generator=g)


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_sample_with_each_sampler_equals_the_python_call(
    name: str, toy_run: Path, tmp_path: Path
) -> None:
    args = ["sample", str(toy_run), "--sampler", name, *SAMPLERS[name], "--num-samples", "6"]
    assert main([*args, "--quiet", "--output", str(tmp_path)]) == 0
    got = torch.load(tmp_path / "samples.pt", weights_only=True)
    assert torch.equal(got, _expected(toy_run, name, 6))


def test_sample_images_writes_the_tensor_and_a_grid(
    image_run: tuple[Path, Path], tmp_path: Path
) -> None:
    run, _ = image_run
    args = ["--num-samples", "4", "--steps-per-level", "1", "--quiet", "--denoise"]
    assert main(["sample", str(run), "--output", str(tmp_path), *args]) == 0
    assert (tmp_path / "samples.png").exists()
    assert torch.load(tmp_path / "samples.pt", weights_only=True).shape == (4, 1, 8, 8)
    assert not (tmp_path / "chunks").exists()  # removed once samples.pt is written


def test_a_logit_run_writes_samples_in_pixel_units(images: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ["--data", str(images), "--ngf", "4", "--steps", "1", "--batch-size", "4", "--quiet"]
    assert main(["train", *args, "--logit", "--output", str(run)]) == 0
    assert main(["sample", str(run), "--num-samples", "3", "--steps-per-level", "1", "--quiet", "--output", str(tmp_path / "s")]) == 0  # fmt: skip
    x = torch.load(tmp_path / "s" / "samples.pt", weights_only=True)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0


def test_the_baseline_samples_with_plain_langevin(
    images: Path, tmp_path: Path, cli: Runner
) -> None:
    base = tmp_path / "base"
    args = ["--data", str(images), "--model", "baseline", "--ngf", "4", "--steps", "2"]
    assert main(["train", *args, "--batch-size", "8", "--quiet", "--output", str(base)]) == 0
    out = str(tmp_path / "s")
    assert main(["sample", str(base), "--num-samples", "2", "--num-steps", "3", "--quiet", "--output", out]) == 0  # fmt: skip
    cli("sample", str(base), "--sampler", "cas", "--output", out).one_line(2, "needs two or more noise levels")  # fmt: skip
    cli("sample", str(base), "--steps-per-level", "3", "--output", out).one_line(
        2, "--steps-per-level: not an option of plain Langevin (a one-level model)", "--num-steps"
    )


def test_sample_from_an_official_checkpoint(tmp_path: Path) -> None:
    official = FIXTURES / "official_refinenet_c3_ngf8.pth"
    args = ["--num-samples", "2", "--steps-per-level", "1", "--image-size", "16", "--quiet"]
    assert main(["sample", str(official), "--output", str(tmp_path), *args]) == 0
    assert torch.load(tmp_path / "samples.pt", weights_only=True).shape == (2, 3, 16, 16)


# ------------------------------------------------------------------------------- chunks
def _interrupt_at(monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    """Ctrl-C when chunk ``chunk`` (counting from 1 in this process) starts."""
    import ncsn.cli._common as common

    real, calls = common.start_for, []

    def interrupted(*a: object, **k: object) -> torch.Tensor:
        calls.append(1)
        if len(calls) == chunk:
            raise KeyboardInterrupt
        return real(*a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(common, "start_for", interrupted)


SMALL = ["--num-samples", "5", "--batch-size", "2", "--steps-per-level", "1", "--quiet"]


def test_an_interrupted_run_finishes_on_rerun_with_the_same_samples(
    image_run: tuple[Path, Path], tmp_path: Path, cli: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, _ = image_run
    assert main(["sample", str(run), *SMALL, "--output", str(tmp_path / "straight")]) == 0
    straight = torch.load(tmp_path / "straight" / "samples.pt", weights_only=True)
    out = tmp_path / "resumed"
    _interrupt_at(monkeypatch, 2)
    outcome = cli("sample", str(run), *SMALL, "--output", str(out))
    assert outcome.code == 130 and "interrupted: 1 of 3 chunks are finished" in outcome.err
    assert not (out / "samples.pt").exists()
    monkeypatch.undo()
    outcome = cli("sample", str(run), *SMALL, "--output", str(out))
    assert outcome.code == 0 and "kept 1 finished chunk(s)" in outcome.out
    assert torch.equal(torch.load(out / "samples.pt", weights_only=True), straight)


def _one_finished_chunk(
    run: Path, out: Path, cli: Runner, monkeypatch: pytest.MonkeyPatch, *extra: str
) -> Path:
    with monkeypatch.context() as patch:
        _interrupt_at(patch, 2)
        assert cli("sample", str(run), *SMALL, *extra, "--output", str(out)).code == 130
    return out / "chunks"


def test_chunks_of_other_settings_are_refused(
    image_run: tuple[Path, Path], tmp_path: Path, cli: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, _ = image_run
    _one_finished_chunk(run, tmp_path, cli, monkeypatch)
    cli("sample", str(run), *SMALL, "--seed", "3", "--output", str(tmp_path)).one_line(
        2, "holds the chunks of a run with other settings (seed differ)"
    )


def test_chunks_of_an_older_checkpoint_are_refused_naming_both(
    images: Path, tmp_path: Path, cli: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ncsn train --resume` wrote a newer checkpoint between two calls of `ncsn sample RUN`."""
    run, out = tmp_path / "run", tmp_path / "s"
    args = ["--data", str(images), "--ngf", "4", "--batch-size", "4", "--quiet"]
    assert main(["train", *args, "--steps", "1", "--output", str(run)]) == 0
    _one_finished_chunk(run, out, cli, monkeypatch)
    assert main(["train", "--output", str(run), "--steps", "2", "--resume", "--quiet"]) == 0
    cli("sample", str(run), *SMALL, "--output", str(out)).one_line(
        2, "checkpoint-00000001.pt (step 1), not from", "checkpoint-00000002.pt (step 2)"
    )


def test_a_renamed_or_copied_chunk_is_refused_and_a_torn_one_drawn_again(
    image_run: tuple[Path, Path], tmp_path: Path, cli: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, _ = image_run
    chunks = _one_finished_chunk(run, tmp_path, cli, monkeypatch)
    first = chunks / "chunk-000000.pt"
    shutil.copy(first, chunks / "chunk-000001.pt")  # a copy under another chunk's name
    cli("sample", str(run), *SMALL, "--output", str(tmp_path)).one_line(
        2, "chunk-000001.pt: holds chunk 0", "not chunk 1 of this run", "remove it"
    )
    assert not (tmp_path / "samples.pt").exists()
    (chunks / "chunk-000001.pt").unlink()
    first.write_bytes(first.read_bytes()[:100])  # torn (a failing disk, an interrupted copy)
    outcome = cli("sample", str(run), *SMALL, "--output", str(tmp_path))
    assert outcome.code == 0 and "chunk-000000.pt is unreadable" in outcome.out
    assert main(["sample", str(run), *SMALL, "--output", str(tmp_path / "straight")]) == 0
    straight = torch.load(tmp_path / "straight" / "samples.pt", weights_only=True)
    assert torch.equal(torch.load(tmp_path / "samples.pt", weights_only=True), straight)


def test_the_samples_do_not_depend_on_how_many_fit_in_one_chunk_only_by_seed(
    image_run: tuple[Path, Path], tmp_path: Path
) -> None:
    """Chunk k draws from chunk_seed(seed, k): the first chunk of a run equals a run of that size."""
    run, _ = image_run
    args = ["sample", str(run), "--batch-size", "2", "--steps-per-level", "1", "--quiet"]
    assert main([*args, "--num-samples", "4", "--output", str(tmp_path / "four")]) == 0
    assert main([*args, "--num-samples", "2", "--output", str(tmp_path / "two")]) == 0
    four = torch.load(tmp_path / "four" / "samples.pt", weights_only=True)
    two = torch.load(tmp_path / "two" / "samples.pt", weights_only=True)
    assert torch.equal(four[:2], two) and not torch.equal(four[2:], two)


@pytest.mark.slow
def test_sigterm_keeps_the_finished_chunks(image_run: tuple[Path, Path], tmp_path: Path) -> None:
    run, _ = image_run
    args = ["--num-samples", "400", "--batch-size", "1", "--steps-per-level", "20", "--quiet"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "ncsn", "sample", str(run), *args, "--output", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob("chunks/chunk-*.pt")) and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == 143, err
    assert "terminated (SIGTERM):" in err and "chunks are finished" in err, err
    assert "Traceback" not in err
    kept = sorted(tmp_path.glob("chunks/chunk-*.pt"))
    assert kept and all(
        torch.load(p, weights_only=True)["samples"].shape == (1, 1, 8, 8) for p in kept
    )
    assert not list(tmp_path.glob("chunks/.*tmp*"))


@pytest.mark.slow
def test_under_torchrun_the_kept_chunks_of_every_process_are_counted(
    image_run: tuple[Path, Path], tmp_path: Path, cli: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks 0 and 1 are finished; on 2 processes rank 0 keeps chunk 0 and rank 1 chunk 1."""
    from torchrun import torchrun

    run, _ = image_run
    args = ["--num-samples", "7", "--batch-size", "2", "--steps-per-level", "1", "--quiet"]
    with monkeypatch.context() as patch:
        _interrupt_at(patch, 3)
        assert cli("sample", str(run), *args, "--output", str(tmp_path)).code == 130
    assert len(list(tmp_path.glob("chunks/chunk-*.pt"))) == 2
    result = torchrun("-m", "ncsn", "sample", str(run), *args, "--output", str(tmp_path), nproc=2)
    assert result.returncode == 0, result.stderr[-4000:]
    assert f"kept 2 finished chunk(s) in {tmp_path / 'chunks'}" in result.stdout, result.stdout
    assert main(["sample", str(run), *args, "--output", str(tmp_path / "one")]) == 0
    one = torch.load(tmp_path / "one" / "samples.pt", weights_only=True)
    assert torch.equal(torch.load(tmp_path / "samples.pt", weights_only=True), one)


# ------------------------------------------------------------------------------- σ grids
def _digits_run(folder: Path, model: str, steps: int) -> dict[str, Any]:
    """Train a width-4 ``--model`` run on the digits into ``folder``; its recorded config."""
    args = ["train", "--data", "digits", "--model", model, "--ngf", "4", "--steps", str(steps)]
    assert main([*args, "--batch-size", "4", "--quiet", "--output", str(folder)]) == 0
    config: dict[str, Any] = ncsn.training.load_checkpoint(folder)["config"]
    return config


def test_a_scaled_network_is_sampled_on_its_recorded_grid_or_another(
    tmp_path: Path, cli: Runner
) -> None:
    """NCSNv2's unconditional network takes any σ: the run's grid by default, or another."""
    run = tmp_path / "run"
    config = _digits_run(run, "scaled", 1)
    assert config["model"]["kind"] == "ScaledByInverseSigma"
    assert len(config["sampling"]["sigmas"]) == 22
    for sampler in ("annealed", "pc"):
        assert main(["sample", str(run), "--sampler", sampler, "--num-samples", "2", "--quiet", "--output", str(tmp_path / sampler)]) == 0  # fmt: skip
    seen: list[int] = []
    real = ncsn.LoadedModel.sampler

    def spy(self: ncsn.LoadedModel, *a: object, **k: object) -> ncsn.Sampler:
        sampler = real(self, *a, **k)  # type: ignore[arg-type]
        seen.append(len(sampler.sigmas))  # type: ignore[attr-defined]
        return sampler

    pytest.MonkeyPatch().setattr(ncsn.LoadedModel, "sampler", spy)
    try:
        outcome = cli("sample", str(run), "--num-levels", "5", "--sigma-max", "2", "--steps-per-level", "1", "--quiet", "--output", str(tmp_path / "grid"))  # fmt: skip
    finally:
        ncsn.LoadedModel.sampler = real  # type: ignore[method-assign]
    assert outcome.code == 0, outcome
    assert seen == [5]


def test_a_preconditioned_run_records_its_spread_and_samples_on_another_grid(
    tmp_path: Path,
) -> None:
    """`--model precond`: σ_d of the data in the record, Karras et al.'s draw, any σ."""
    run = tmp_path / "run"
    config = _digits_run(run, "precond", 2)
    assert config["model"]["kind"] == "Preconditioned"
    x, _ = ncsn.data.load("digits")
    assert config["model"]["sigma_data"] == pytest.approx(float(x.std()), rel=1e-6)
    assert config["train"]["level_draw"] == "edm"
    out = tmp_path / "grid"
    assert main(["sample", str(run), "--num-levels", "4", "--num-samples", "2", "--quiet", "--output", str(out)]) == 0  # fmt: skip
    samples = torch.load(out / "samples.pt", weights_only=True)
    assert samples.shape == (2, 1, 8, 8) and bool(torch.isfinite(samples).all())


def test_the_default_network_refuses_another_grid_naming_the_scaled_model(
    image_run: tuple[Path, Path], tmp_path: Path, cli: Runner
) -> None:
    run, _ = image_run
    cli("sample", str(run), "--num-levels", "50", "--output", str(tmp_path)).one_line(
        2, "--num-levels: RefineNet takes only the", "--model scaled"
    )


# ------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "extra, message",
    [
        (["--sampler", "cas", "--eta", "0.1"], "eta must lie in ["),
        (["--sampler", "pc", "--corrector-steps", "-1"], "expected an integer >= 0, got '-1'"),
        (["--sampler", "ode", "--solver", "rk4"], "invalid choice: 'rk4'"),
        (["--sampler", "heat"], "invalid choice: 'heat'"),
        (["--eta", "0.5"], "--eta: not an option of --sampler annealed"),
        (["--sampler", "ode", "--snr", "0.2"], "--snr: not an option of --sampler ode"),
        (["--sampler", "cas", "--step-size", "1e-4"], "--step-size: not an option of --sampler cas"),
        (["--image-size", "16"], "image_size applies to official checkpoints only"),
    ],
)  # fmt: skip
def test_bad_sampler_options_are_one_line_errors(
    extra: list[str], message: str, toy_run: Path, tmp_path: Path, cli: Runner
) -> None:
    cli("sample", str(toy_run), *extra, "--output", str(tmp_path)).one_line(2, message)
    assert not (tmp_path / "samples.pt").exists()


def test_output_is_checked_before_loading(
    tmp_path: Path, cli: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded before the output folder was checked")

    monkeypatch.setattr(ncsn.cli._common, "load", refuse)
    cli("sample", str(tmp_path), "--output", "/proc/x").one_line(2, "--output /proc/x: cannot write there")  # fmt: skip


@pytest.mark.parametrize(
    "extra, remedy",
    [
        (["--step-size", "1e38", "--steps-per-level", "3"], "try a smaller --step-size"),
        (["--sampler", "pc", "--snr", "1e19"], "try a smaller --snr"),
    ],
)
def test_a_diverging_sampler_is_one_line_naming_an_option_of_that_sampler(
    extra: list[str], remedy: str, image_run: tuple[Path, Path], tmp_path: Path, cli: Runner
) -> None:
    run, _ = image_run
    outcome = cli("sample", str(run), *extra, "--num-samples", "2", "--quiet", "--output", str(tmp_path))  # fmt: skip
    outcome.one_line(1, "non-finite", remedy)


def test_absurd_finite_samples_give_one_warning_line(
    image_run: tuple[Path, Path], tmp_path: Path, cli: Runner
) -> None:
    run, _ = image_run
    args = ["--step-size", "1e3", "--steps-per-level", "1", "--num-samples", "2", "--quiet"]
    outcome = cli("sample", str(run), *args, "--output", str(tmp_path))
    outcome.one_line(0, "warning: the samples lie in", "far outside the data range [0, 1]")


def test_unusable_checkpoints_are_one_line_errors(tmp_path: Path, cli: Runner) -> None:
    out = ["--output", str(tmp_path / "s"), "--quiet"]
    (tmp_path / "bad.pt").write_text("not a checkpoint")
    cli("sample", str(tmp_path / "bad.pt"), *out).one_line(2, "not a readable checkpoint")

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, ("echo pwned",))

    torch.save({"config": {"model": {}}, "x": Evil()}, tmp_path / "evil.pt")
    outcome = cli("sample", str(tmp_path / "evil.pt"), *out)
    outcome.one_line(2)
    assert "refused to unpickle posix.system" in outcome.err or "refused to unpickle os.system" in outcome.err  # fmt: skip
    assert "\x1b" not in outcome.err and "weights_only=False" not in outcome.err

    for content, shown in [([1, 2, 3], "holds a list of int"), ([], "holds a list of nothing"), (7, "holds a int")]:  # fmt: skip
        torch.save(content, tmp_path / "thing.pt")
        cli("sample", str(tmp_path / "thing.pt"), *out).one_line(2, shown, "not a checkpoint")
    cli("sample", "/no/such/checkpoint.pt", *out).one_line(2, "/no/such/checkpoint.pt: no such checkpoint")  # fmt: skip


def test_checkpoints_that_do_not_rebuild_are_one_line_errors(tmp_path: Path, cli: Runner) -> None:
    out = ["--output", str(tmp_path / "s"), "--quiet"]
    schedule = ncsn.GeometricSchedule(1.0, 0.1, 3)
    net = ncsn.nets.ScoreMLP(2, hidden=4, sigmas=schedule.sigmas)
    good = {"step": 0, "model": net.state_dict(), "ema": None}
    unknown = {**good, "config": {"model": {"kind": "UNet"}, "data": {"shape": [2]}}}
    ncsn.training.save_checkpoint(tmp_path / "unknown.pt", unknown)
    cli("sample", str(tmp_path / "unknown.pt"), *out).one_line(2, "cannot rebuild its model (config kind must be one of")  # fmt: skip
    weights = dict(net.state_dict())
    weights["extra.weight"] = weights.pop("fc1.weight")
    config = {"model": ncsn.nets.model_config(net), "data": {"shape": [2]}}
    ncsn.training.save_checkpoint(tmp_path / "misfit.pt", {**good, "model": weights, "config": config})  # fmt: skip
    cli("sample", str(tmp_path / "misfit.pt"), *out).one_line(
        2, "do not fit its recorded ScoreMLP: missing keys fc1.weight; unexpected keys extra.weight"
    )
    nan = dict(net.state_dict())
    nan["fc1.weight"] = torch.full_like(nan["fc1.weight"], float("nan"))
    ncsn.training.save_checkpoint(tmp_path / "nan.pt", {**good, "model": nan, "config": config})
    cli("sample", str(tmp_path / "nan.pt"), *out).one_line(2, "the weight fc1.weight holds NaN or infinity")  # fmt: skip
    # a Trainer's checkpoint without config= records no model
    python = {**good, "config": {}}
    ncsn.training.save_checkpoint(tmp_path / "python.pt", python)
    cli("sample", str(tmp_path / "python.pt"), *out).one_line(
        2, "records no model configuration", "ncsn.training.model_weights"
    )


def test_a_full_disk_is_one_line_and_keeps_the_finished_chunks(
    image_run: tuple[Path, Path], small_disk: Path, cli: Runner
) -> None:
    """A real full filesystem (tmpfs of 256 KiB): torch.save raises RuntimeError there."""
    run, _ = image_run
    args = ["--num-samples", "2000", "--batch-size", "100", "--steps-per-level", "1", "--quiet"]
    outcome = cli("sample", str(run), *args, "--output", str(small_disk))
    outcome.one_line(1, "No space left on device")
    kept = sorted(small_disk.glob("chunks/chunk-*.pt"))
    assert kept and all(torch.load(p, weights_only=True)["samples"].shape == (100, 1, 8, 8) for p in kept)  # fmt: skip
    assert not [p for p in small_disk.rglob("*") if ".tmp" in p.name]


def test_compile_samples_through_a_compiled_network(toy_run: Path, tmp_path: Path) -> None:
    """--compile calls the network through torch.compile: the samples equal the eager ones up to
    the compiled kernels' round-off (float32, a few ulps over the chain)."""
    args = ["sample", str(toy_run), "--sampler", "cas", "--eta", "0.9", "--num-samples", "6"]
    assert main([*args, "--compile", "--quiet", "--output", str(tmp_path)]) == 0
    got = torch.load(tmp_path / "samples.pt", weights_only=True)
    torch.testing.assert_close(got, _expected(toy_run, "cas", 6), rtol=1e-5, atol=1e-5)


def test_compile_wraps_the_network_for_sample_and_inpaint(
    image_run: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both commands hand the sampler ncsn.nets.compiled(model) (recorded here, not compiled)."""
    run, data = image_run
    wrapped: list[object] = []

    def record(model: ncsn.ScoreModel, **options: object) -> ncsn.ScoreModel:
        wrapped.append(model)
        return model

    monkeypatch.setattr(ncsn.nets, "compiled", record)
    few = ["--steps-per-level", "1", "--quiet", "--compile"]
    assert main(["sample", str(run), "--num-samples", "2", *few, "--output", str(tmp_path / "s")]) == 0  # fmt: skip
    assert main(["inpaint", str(run), "--data", str(data), "--num-images", "1", "--completions", "1", *few, "--output", str(tmp_path / "i")]) == 0  # fmt: skip
    loaded = ncsn.load(run).model
    assert len(wrapped) == 2 and all(type(m) is type(loaded) for m in wrapped)
