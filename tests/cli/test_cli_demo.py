"""`ncsn demo` (src/ncsn/cli/demo.py) and the demo itself (src/ncsn/demo.py)."""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path

import pytest
import torch
from cli_runner import Runner

import ncsn
from ncsn.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--batch-size", "16", "--ngf", "4", "--steps-per-level", "2", "--quiet"]


def test_the_command_takes_the_demos_defaults() -> None:
    defaults = vars(build_parser().parse_args(["demo"]))
    parameters = inspect.signature(ncsn.demo.main).parameters
    for name, parameter in parameters.items():
        if name in defaults:
            assert defaults[name] == parameter.default, name
    assert set(parameters) - {"progress", "plots", "log"} <= set(defaults)  # each is an option
    # main takes settings()' arguments: None there means the dataset's default in DATASETS
    assert set(inspect.signature(ncsn.demo.settings).parameters) <= set(parameters)
    assert tuple(ncsn.demo.DATASETS) == ncsn.data.DATASETS


@pytest.mark.parametrize("data", ncsn.data.DATASETS)
def test_each_dataset_gets_its_defaults_and_the_help_names_them(
    data: str, tmp_path: Path, cli: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, object] = {}
    monkeypatch.setattr(ncsn.demo, "main", lambda output, **kw: seen.update(kw))
    assert cli("demo", "--data", data, "--output", str(tmp_path), "--quiet").code == 0
    names = inspect.signature(ncsn.demo.settings).parameters
    spec = ncsn.demo.settings(**{name: seen[name] for name in names})
    assert spec == ncsn.demo.DATASETS[data]
    usage = cli("demo", "--help").out
    for name in ("steps", "batch_size", "ngf", "num_samples"):
        assert f"{getattr(spec, name)} for {data}" in " ".join(usage.split()), name


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--data", "mnist", "--steps-per-level", "3"], "--steps-per-level 3"),
        (["--data", "fashion-mnist", "--step-size", "1e-5"], "--step-size 1e-05"),
        (["--download"], "--download applies to ['mnist', 'fashion-mnist']"),
        (["--num-samples", "1"], "--num-samples 1"),
    ],
)
def test_settings_that_do_not_apply_are_refused_before_any_work(
    args: list[str], needle: str, tmp_path: Path, cli: Runner
) -> None:
    cli("demo", "--output", str(tmp_path / "out"), *args).one_line(2, needle)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("data", ["mnist", "fashion-mnist"])
def test_a_dataset_found_nowhere_is_one_line_with_where_it_looked_and_the_remedies(
    data: str, tmp_path: Path, cli: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty"
    monkeypatch.setenv("NCSN_DATA", str(empty / "data"))
    monkeypatch.setenv("HOME", str(empty / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(empty / "cache"))
    monkeypatch.setattr(ncsn.data._mnist, "_SYSTEM_FOLDER", empty / "system")
    outcome = cli("demo", "--data", data, "--output", str(tmp_path / "out"), "--quiet")
    folders = [empty / "data" / data, empty / "cache" / "ncsn" / data, empty / "system" / data]
    outcome.one_line(2, f"ncsn demo: error: {data}: ", *map(str, folders), "--download")
    assert f"in FOLDER/{data} with NCSN_DATA=FOLDER" in outcome.err
    assert "--data FOLDER" not in outcome.err  # the demo takes no folder
    assert not (tmp_path / "out" / "summary.txt").exists()


def test_the_demo_is_a_packaged_module_shown_in_the_docs() -> None:
    assert Path(ncsn.demo.__file__).resolve() == ROOT / "src" / "ncsn" / "demo.py"
    assert "force-include" not in (ROOT / "pyproject.toml").read_text()
    assert '--8<-- "src/ncsn/demo.py"' in (ROOT / "docs" / "reference" / "cli.md").read_text()
    script = (ROOT / "examples" / "demo.py").read_text()
    assert 'main(["demo", *sys.argv[1:]])' in script  # the thin script runs the command


@pytest.mark.slow
def test_demo_runs_end_to_end_on_tiny_settings_and_scores_as_evaluate(
    tmp_path: Path, cli: Runner
) -> None:
    outcome = cli("demo", "--output", str(tmp_path), *TINY, "--steps", "4")
    assert outcome.code == 0, outcome
    for name in ("toy_fig3.png", "samples.png", "samples.pt", "inpainting.png", "loss_curve.png", "summary.txt"):  # fmt: skip
        assert (tmp_path / name).exists(), name
    for phase in ("[1/4]", "[2/4]", "[3/4] sampling 500 digits", "[4/4] inpainting"):
        assert phase in outcome.out, phase
    summary = (tmp_path / "summary.txt").read_text()
    assert "annealed Langevin" in summary and "Frechet distance" in summary
    # 4 steps: the EMA rate is fitted to the run (at most 1 − 10/steps, here its floor 0.5)
    assert "NCSNv2's recipe: sigma 4.80 -> 0.01, L=22, EMA 0.5" in summary
    recorded = ncsn.training.load_checkpoint(tmp_path / "run")["config"]["sampling"]
    assert recorded["steps_per_level"] == 2 and recorded["denoise"] is True
    # one definition of the Fréchet distance and its floor: `ncsn evaluate` gives the same
    fd, floor = (float(v) for v in _numbers(summary))
    assert cli("evaluate", str(tmp_path), "--reference", "digits").code == 0
    result = json.loads((tmp_path / "evaluation.json").read_text())
    assert result["frechet_distance"] == pytest.approx(fd, abs=0.06)
    assert result["real_floor"] == pytest.approx(floor, abs=0.06)
    # a rerun into the same folder starts over instead of mixing with the first run
    assert main(["demo", "--output", str(tmp_path), *TINY, "--steps", "2"]) == 0
    assert [p.name for p in ncsn.training.list_checkpoints(tmp_path / "run")] == [
        "checkpoint-00000001.pt",
        "checkpoint-00000002.pt",
    ]
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2]


def _numbers(summary: str) -> tuple[str, str]:
    import re

    found = re.search(
        r"samples ([\d.]+)\s+500 real training digits ([\d.]+) \(the floor\)", summary
    )
    assert found is not None, summary
    return found.group(1), found.group(2)


@pytest.mark.slow
def test_an_interrupted_demo_keeps_what_it_finished(
    tmp_path: Path, cli: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(ncsn.samplers, "inpaint", interrupted)
    outcome = cli("demo", "--output", str(tmp_path), *TINY, "--steps", "2")
    assert outcome.code == 130
    assert outcome.err.endswith(
        "ncsn demo: interrupted; what was finished is in --output (summary.txt)"
    )
    assert (tmp_path / "samples.pt").exists() and ncsn.training.latest_checkpoint(tmp_path / "run")
    assert "interrupted before the end" in (tmp_path / "summary.txt").read_text()


_MATPLOTLIB_MODULES = ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg")


def test_missing_matplotlib_skips_the_plots_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cli: Runner
) -> None:
    for name in _MATPLOTLIB_MODULES:
        monkeypatch.setitem(sys.modules, name, None)  # `import` of these now raises ImportError
    seen: dict[str, object] = {}
    monkeypatch.setattr(ncsn.demo, "main", lambda output, **kw: seen.update(kw))
    outcome = cli("demo", "--output", str(tmp_path), "--quiet")
    assert outcome.code == 0 and seen["plots"] is False
    assert (
        outcome.err == "matplotlib is missing: the plots are skipped (pip install 'ncsn[examples]')"
    )


def test_the_demo_saves_its_samples_as_soon_as_they_are_drawn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Interrupted while scoring: samples.pt and the grid are there, summary.txt says so."""

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(ncsn.metrics, "digits_evaluator", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ncsn.demo.main(tmp_path, steps=1, batch_size=8, ngf=4, steps_per_level=1, progress=False, plots=False, log=lambda line: None)  # fmt: skip
    assert torch.load(tmp_path / "samples.pt", weights_only=True).shape == (500, 1, 8, 8)
    assert (tmp_path / "samples.png").exists()
    assert "interrupted before the end" in (tmp_path / "summary.txt").read_text()


def _mnist_or_skip() -> None:
    try:
        ncsn.data.mnist(split="test")
    except ncsn.data.DatasetNotFoundError:
        pytest.skip("the MNIST files are absent (set NCSN_DATA to a folder holding mnist/)")


@pytest.mark.slow
def test_demo_on_mnist_runs_end_to_end_on_tiny_settings(
    tmp_path: Path, cli: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    _mnist_or_skip()
    calls: list[dict[str, object]] = []
    real = ncsn.metrics.classifier_evaluator

    def quick(x: torch.Tensor, labels: torch.Tensor, **options: object) -> object:
        """The demo's call, recorded, then trained on 2,000 images for one epoch: the demo's
        3 epochs on 60,000 take 2 to 3 minutes on one thread."""
        calls.append({"x": x, **options})
        return real(x[:2000], labels[:2000], **(options | {"epochs": 1}))

    monkeypatch.setattr(ncsn.metrics, "classifier_evaluator", quick)
    tiny = ["--steps", "2", "--ngf", "4", "--batch-size", "8", "--num-samples", "16", "--quiet"]
    outcome = cli("demo", "--data", "mnist", "--output", str(tmp_path), *tiny)
    assert outcome.code == 0, outcome
    for name in ("toy_fig3.png", "samples.png", "samples.pt", "inpainting.png", "summary.txt"):
        assert (tmp_path / name).exists(), name
    for phase in (
        "[2/4] training a preconditioned RefineNet (ngf 4) on the 28x28 MNIST digits for 2 steps",
        "[3/4] sampling 16 MNIST digits with consistent annealed sampling (97 model calls)",
        "[4/4] inpainting the right half of 8 held-out MNIST digits",
    ):
        assert phase in outcome.out, phase
    summary = (tmp_path / "summary.txt").read_text()
    assert "trained on MNIST digits (28x28, the short version" in summary
    assert "L=96" in summary and "consistent annealed sampling: eta=" in summary
    assert "Frechet distance of 16 images to 16 held-out MNIST digits" in summary
    assert "16 real training MNIST digits" in summary
    assert torch.load(tmp_path / "samples.pt", weights_only=True).shape == (16, 1, 28, 28)
    # the evaluator of benchmarks/quality.py: the training split, tested on the test split
    (call,) = calls
    assert call["seed"] == 0 and call["epochs"] == 3
    assert call["x"].shape == (60_000, 1, 28, 28) and call["x_test"].shape == (10_000, 1, 28, 28)
    # `ncsn sample RUN` samples with the demo's sampler
    assert ncsn.load(tmp_path / "run").sampler().num_model_calls == 97
