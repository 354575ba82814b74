"""``ncsn sample --sampler`` and ``ncsn likelihood`` end to end on tiny runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import ncsn
from ncsn.cli import main
from ncsn.cli.sample import chunk_seed

TOY = ["--data", "mixture", "--steps", "3", "--batch-size", "16", "--quiet"]
SAMPLERS = {
    "annealed": ["--steps-per-level", "2"],
    "cas": ["--eta", "0.9"],
    "pc": ["--snr", "0.1", "--corrector-steps", "2"],
    "ode": ["--solver", "euler", "--no-denoise"],
}


def _outcome(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = main(list(args))
    except SystemExit as exit_info:
        code = int(exit_info.code or 0)
    captured = capsys.readouterr()
    return code, captured.out.strip(), captured.err.strip()


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("toy") / "run"
    assert main(["train", *TOY, "--output", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def image_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("images")
    images = np.random.default_rng(0).integers(0, 256, size=(40, 1, 8, 8), dtype=np.uint8)
    data = folder / "images.npz"
    np.savez(data, images=images)
    out = folder / "run"
    args = ["train", "--data", str(data), "--ngf", "4", "--steps", "2", "--batch-size", "4"]
    assert main([*args, "--quiet", "--output", str(out)]) == 0
    return out, data


def _expected(run: Path, name: str, n: int) -> torch.Tensor:
    """The same samples drawn in Python: the run's model, the named sampler, the same start."""
    checkpoint = ncsn.training.load_checkpoint(ncsn.training.latest_checkpoint(run))
    model = ncsn.nets.build_model(checkpoint["config"]["model"])
    model.load_state_dict(ncsn.training.model_weights(checkpoint, ema=True))
    model.eval()
    sigmas = model.sigmas
    g = torch.Generator().manual_seed(chunk_seed(0, 0))  # one chunk: n <= --batch-size
    sampler: ncsn.Sampler
    if name == "annealed":
        # The run's recipe (ncsnv2) recorded the denoising step and Technique 4's rule for ε:
        # a new T gets the ε for that T.
        step_size = ncsn.ncsnv2_step_size(sigmas, 2)
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
    return sampler(model, x0, generator=g)


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_sample_with_each_sampler_equals_the_python_call(
    name: str, toy_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / name
    args = ["sample", str(toy_run), "--sampler", name, *SAMPLERS[name], "--num-samples", "6"]
    assert main([*args, "--quiet", "--output", str(out)]) == 0
    got = torch.load(out / "samples.pt", weights_only=True)
    assert torch.equal(got, _expected(toy_run, name, 6))


@pytest.mark.parametrize("name", ["cas", "pc", "ode"])
def test_every_sampler_samples_and_inpaints_images(name: str, image_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run, data = image_run
    out = tmp_path / "s"
    args = ["--sampler", name, "--quiet"]
    assert main(["sample", str(run), *args, "--num-samples", "3", "--output", str(out)]) == 0
    assert torch.load(out / "samples.pt", weights_only=True).shape == (3, 1, 8, 8)
    inpaint = ["inpaint", str(run), "--data", str(data), "--num-images", "2", "--completions", "2"]
    assert main([*inpaint, *args, "--output", str(tmp_path / "i")]) == 0
    assert (tmp_path / "i" / "inpainting.png").exists()


def test_likelihood_prints_bits_per_dim_with_its_standard_error(
    image_run,
    capsys: pytest.CaptureFixture[str],  # type: ignore[no-untyped-def]
) -> None:
    run, data = image_run
    code, out, err = _outcome(
        capsys,
        "likelihood",
        str(run),
        "--data",
        str(data),
        "--num-examples",
        "6",
        "--batch-size",
        "4",
    )
    assert code == 0, err
    lines = out.splitlines()
    levels = len(ncsn.training.load_checkpoint(run)["config"]["model"]["sigmas"])
    assert lines[0].startswith(f"warning: the ODE runs on {levels} levels")
    value, _, rest = lines[-1].partition(" ± ")
    assert float(value) > 0 and math.isfinite(float(rest.split()[0]))
    assert "bits/dim on 6 examples" in lines[-1] and "256 grey levels" in lines[-1]


def test_likelihood_of_toy_data_is_in_nats_and_matches_the_python_call(
    toy_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _outcome(
        capsys,
        "likelihood",
        str(toy_run),
        "--data",
        "mixture",
        "--num-examples",
        "5",
        "--trace",
        "exact",
    )
    assert code == 0, err
    checkpoint = ncsn.training.load_checkpoint(ncsn.training.latest_checkpoint(toy_run))
    model = ncsn.nets.build_model(checkpoint["config"]["model"])
    model.load_state_dict(ncsn.training.model_weights(checkpoint, ema=True))
    x, _ = ncsn.data.load("mixture", num_samples=5, generator=torch.Generator().manual_seed(0))
    expected = ncsn.likelihood.log_prob(model.eval(), x, model.sigmas, trace="exact")
    assert f"log-likelihood {expected.double().mean().item():.4f} ± " in out
    assert "nats per example on 5 examples" in out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--sampler", "cas", "--eta", "0.1"], "eta must lie in ["),
        (["--sampler", "pc", "--corrector-steps", "-1"], "must be >= 0, got -1"),
        (["--sampler", "ode", "--solver", "rk4"], "invalid choice: 'rk4'"),
        (["--sampler", "heat"], "invalid choice: 'heat'"),
    ],
)
def test_bad_sampler_options_are_one_line_errors(
    extra: list[str],
    message: str,
    toy_run: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = _outcome(capsys, "sample", str(toy_run), *extra, "--output", str(tmp_path / "o"))
    assert code == 2 and message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_likelihood_errors_are_one_line(
    toy_run: Path,
    image_run,
    capsys: pytest.CaptureFixture[str],  # type: ignore[no-untyped-def]
) -> None:
    run, data = image_run
    cases = [
        (["likelihood", str(run), "--data", "mixture"], "do not fit the model's [1, 8, 8]"),
        (["likelihood", str(toy_run), "--data", str(data)], "do not fit the model's [2]"),
        (
            ["likelihood", str(run), "--data", str(data), "--ode-levels", "50"],
            "not one of this network's noise levels",
        ),
        (["likelihood", str(run / "nope"), "--data", str(data)], "no such checkpoint"),
        (
            ["likelihood", str(run), "--data", str(data), "--trace", "full"],
            "invalid choice: 'full'",
        ),
    ]
    for args, message in cases:
        code, _, err = _outcome(capsys, *args)
        assert code == 2 and message in err and len(err.splitlines()) == 1, (args, err)
        assert "Traceback" not in err


def test_an_interrupted_sampling_run_finishes_on_rerun_with_the_same_samples(
    image_run: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import ncsn.cli.sample as sample_command

    run, _ = image_run
    args = ["sample", str(run), "--num-samples", "5", "--batch-size", "2", "--steps-per-level", "1"]
    assert main([*args, "--quiet", "--output", str(tmp_path / "straight")]) == 0
    straight = torch.load(tmp_path / "straight" / "samples.pt", weights_only=True)

    real_start, calls = sample_command.start_for, []

    def interrupted_at_the_second_chunk(*a: object, **k: object) -> torch.Tensor:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_start(*a, **k)  # type: ignore[arg-type]

    out = tmp_path / "resumed"
    monkeypatch.setattr(sample_command, "start_for", interrupted_at_the_second_chunk)
    code, _, err = _outcome(capsys, *args, "--quiet", "--output", str(out))
    assert code == 130 and "1 of 3 chunks are finished" in err and "rerun" in err
    assert not (out / "samples.pt").exists()
    monkeypatch.setattr(sample_command, "start_for", real_start)
    code, printed, _ = _outcome(capsys, *args, "--quiet", "--output", str(out))
    assert code == 0 and "kept 1 finished chunk(s)" in printed
    assert torch.equal(torch.load(out / "samples.pt", weights_only=True), straight)

    # chunks of other settings are never mixed in
    monkeypatch.setattr(sample_command, "start_for", interrupted_at_the_second_chunk)
    calls.clear()
    assert _outcome(capsys, *args, "--quiet", "--output", str(out))[0] == 130
    code, _, err = _outcome(capsys, *args, "--seed", "3", "--quiet", "--output", str(out))
    assert code == 2 and "holds the chunks of a run with other settings (seed differ)" in err


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


# ------------------------------------------------------------------ ncsn evaluate


@pytest.fixture(scope="module")
def digit_samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stand-in samples: 150 training digits with a little noise."""
    folder = tmp_path_factory.mktemp("evaluate")
    x, _ = ncsn.data.load("digits", split="train")
    noisy = x[:150] + 0.05 * torch.randn(x[:150].shape, generator=torch.Generator().manual_seed(0))
    torch.save(noisy.clamp(0, 1), folder / "samples.pt")
    return folder


def test_evaluate_equals_the_library_metrics_computed_at_once(
    digit_samples: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _outcome(
        capsys, "evaluate", str(digit_samples), "--reference", "digits", "--batch-size", "40"
    )
    assert code == 0, err
    result = json.loads((digit_samples / "evaluation.json").read_text())
    evaluator = ncsn.metrics.digits_evaluator(seed=0)
    x = torch.load(digit_samples / "samples.pt", weights_only=True)
    reference, _ = ncsn.data.load("digits", split="test")
    fd = ncsn.metrics.frechet_distance(evaluator.features(x), evaluator.features(reference))
    score = ncsn.metrics.inception_score(evaluator.probabilities(x), splits=10)
    assert result["frechet_distance"] == pytest.approx(fd, rel=1e-6)
    assert result["classifier_score"] == pytest.approx(score.mean, rel=1e-6)
    assert (result["samples"], result["reference_examples"]) == (150, 297)
    assert out.startswith("Fréchet distance (digits features) ") and len(out.splitlines()) == 1


def test_evaluate_errors_are_one_line(
    digit_samples: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.save(torch.rand(4, 3, 8, 8), tmp_path / "rgb.pt")
    torch.save(torch.full((4, 1, 8, 8), float("nan")), tmp_path / "nan.pt")
    torch.save({"a": 1}, tmp_path / "dict.pt")
    (tmp_path / "torn.pt").write_bytes(b"not a tensor file")
    cases = [
        ([str(tmp_path / "missing")], "no such file"),
        ([str(tmp_path / "torn.pt")], "not a readable tensor file"),
        (
            [str(tmp_path / "dict.pt")],
            "expected a floating [N, *event] tensor of samples; got dict",
        ),
        ([str(tmp_path / "rgb.pt")], "do not match the samples' [3, 8, 8]"),
        ([str(tmp_path / "nan.pt")], "hold NaN or infinity"),
        ([str(digit_samples), "--features", "inception"], "needs --inception-weights FILE"),
    ]
    for args, needle in cases:
        code, _, err = _outcome(capsys, "evaluate", *args, "--reference", "digits")
        assert code == 2, (args, err)
        assert len(err.splitlines()) == 1 and "Traceback" not in err and needle in err, err


def test_a_scaled_network_is_sampled_and_scored_on_its_recorded_training_grid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """NCSNv2's unconditional network takes any σ: the CLI samples it on the grid its run
    trained on (recorded in the checkpoint), with every sampler and the likelihood."""
    run = tmp_path / "run"
    args = ["train", "--data", "digits", "--model", "scaled", "--ngf", "4", "--steps", "1"]
    assert main([*args, "--batch-size", "4", "--quiet", "--output", str(run)]) == 0
    config = ncsn.training.load_checkpoint(run)["config"]
    assert config["model"]["kind"] == "ScaledByInverseSigma"
    assert len(config["sampling"]["sigmas"]) == 22
    for sampler in ("annealed", "pc"):
        out = tmp_path / sampler
        code = main(
            [
                "sample",
                str(run),
                "--sampler",
                sampler,
                "--num-samples",
                "2",
                "--quiet",
                "--output",
                str(out),
            ]
        )
        assert code == 0
    code, out_text, err = _outcome(
        capsys, "likelihood", str(run), "--data", "digits", "--num-examples", "2"
    )
    assert code == 0 and "22 ODE levels" in out_text, err
