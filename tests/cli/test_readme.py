"""The README's Python example runs as written and prints the same numbers on every run (its
network is initialised from a seeded generator, not the global RNG)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

README = Path(__file__).resolve().parents[2] / "README.md"


def _run_block(index: int) -> dict[str, object]:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 2, "the README has the pretrained example and the quickstart"
    namespace: dict[str, object] = {}
    exec(compile(blocks[index], str(README), "exec"), namespace)
    return namespace


def _run_quickstart() -> dict[str, object]:
    return _run_block(1)


def test_readme_first_example_samples_the_pretrained_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    namespace = _run_block(0)
    x = namespace["x"]
    assert isinstance(x, torch.Tensor) and x.shape == (64, 1, 8, 8) and bool(x.isfinite().all())
    assert (tmp_path / "digits.png").exists()
    ncsn = namespace["ncsn"]
    evaluator = ncsn.metrics.digits_evaluator(seed=0)  # type: ignore[attr-defined]
    assert evaluator.figures(x.clamp(0, 1))["confident"] >= 0.75  # digits, not noise


@pytest.mark.slow
def test_readme_quickstart_runs_and_gives_the_same_result_every_time() -> None:
    namespace = _run_quickstart()
    ncsn = namespace["ncsn"]
    weights = ncsn.metrics.mode_weights(namespace["exact"], namespace["gmm"])  # type: ignore[attr-defined]
    assert abs(float(weights[1]) - 0.8) < 0.05
    x = namespace["x"]
    assert isinstance(x, torch.Tensor) and x.shape == (1280, 2) and bool(x.isfinite().all())
    learned = ncsn.metrics.mode_weights(x, namespace["gmm"])  # type: ignore[attr-defined]
    assert abs(float(learned[1]) - 0.8) < 0.1
    with torch.random.fork_rng():
        torch.manual_seed(12345)  # another state of the global RNG changes nothing
        again = _run_quickstart()["x"]
    assert isinstance(again, torch.Tensor) and torch.equal(again, x)
