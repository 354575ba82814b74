"""`ncsn likelihood` (src/ncsn/cli/likelihood.py): bits/dim and nats, and one-line errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from cli_runner import Runner

import ncsn
from ncsn.cli import main


def test_likelihood_prints_bits_per_dim_with_its_standard_error(
    image_run: tuple[Path, Path], cli: Runner
) -> None:
    run, data = image_run
    outcome = cli("likelihood", str(run), "--data", str(data), "--num-examples", "6", "--batch-size", "4")  # fmt: skip
    assert outcome.code == 0, outcome
    lines = outcome.out.splitlines()
    levels = len(ncsn.training.load_checkpoint(run)["config"]["model"]["sigmas"])
    assert lines[0].startswith(f"warning: the ODE runs on {levels} levels")
    value, _, rest = lines[-1].partition(" ± ")
    assert float(value) > 0 and math.isfinite(float(rest.split()[0]))
    assert "bits/dim on 6 examples" in lines[-1] and "256 grey levels" in lines[-1]


def test_likelihood_of_toy_data_is_in_nats_and_matches_the_python_call(
    toy_run: Path, cli: Runner
) -> None:
    outcome = cli("likelihood", str(toy_run), "--data", "mixture", "--num-examples", "5", "--trace", "exact")  # fmt: skip
    assert outcome.code == 0, outcome
    loaded = ncsn.load(toy_run)
    x, _ = ncsn.data.load("mixture", num_samples=5, generator=torch.Generator().manual_seed(0))
    assert loaded.sigmas is not None
    expected = ncsn.likelihood.log_prob(loaded.model, x, loaded.sigmas, trace="exact")
    assert f"log-likelihood {expected.double().mean().item():.4f} ± " in outcome.out
    assert "nats per example on 5 examples" in outcome.out


def test_likelihood_errors_are_one_line(
    toy_run: Path, image_run: tuple[Path, Path], cli: Runner
) -> None:
    run, data = image_run
    cases = [
        (["likelihood", str(run), "--data", "mixture"], "do not fit the model's [1, 8, 8]"),
        (["likelihood", str(toy_run), "--data", str(data)], "do not fit the model's [2]"),
        (["likelihood", str(run), "--data", str(data), "--ode-levels", "50"], "not one of this network's noise levels"),
        (["likelihood", str(run / "nope"), "--data", str(data)], "no such checkpoint"),
        (["likelihood", str(run), "--data", str(data), "--trace", "full"], "invalid choice: 'full'"),
        (["likelihood", str(toy_run), "--data", "mixture", "--levels", "4"], "--levels applies to images"),
        (["likelihood", str(toy_run), "--data", "mixture", "--split", "test"], "--split 'test'"),
    ]  # fmt: skip
    for args, message in cases:
        cli(*args).one_line(2, message)


def test_a_scaled_network_is_scored_on_its_recorded_grid(tmp_path: Path, cli: Runner) -> None:
    run = tmp_path / "run"
    args = ["train", "--data", "digits", "--model", "scaled", "--ngf", "4", "--steps", "1"]
    assert main([*args, "--batch-size", "4", "--quiet", "--output", str(run)]) == 0
    outcome = cli("likelihood", str(run), "--data", "digits", "--num-examples", "2")
    assert outcome.code == 0 and "22 ODE levels" in outcome.out, outcome
    assert "17 grey levels" in outcome.out


@pytest.mark.parametrize("signal_error", [KeyboardInterrupt])
def test_ctrl_c_is_one_line(
    signal_error: type[BaseException], toy_run: Path, cli: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise signal_error

    monkeypatch.setattr(ncsn.likelihood, "log_prob", interrupted)
    outcome = cli("likelihood", str(toy_run), "--data", "mixture", "--num-examples", "2")
    assert (
        outcome.code == 130 and outcome.err == "ncsn likelihood: interrupted; nothing was written"
    )
