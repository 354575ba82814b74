"""The digits ablation script end to end at tiny settings (its numbers are read, not asserted)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_digits_ablation_writes_every_row_into_its_output_folder(tmp_path: Path) -> None:
    ablation = _load("digits_ablation")
    results = ablation.main(steps=2, ngf=4, num_samples=8, steps_per_level=1, output=tmp_path)
    rows = [name for name in results if name != "settings"]
    assert rows == [
        "real (train split)",
        "real (held-out split)",
        "uniform noise",
        "NCSN (annealed Langevin)",
        "NCSN + final denoising step",
        "baseline (single σ = 0.01)",
    ]
    # the training split's distance to itself is no memorisation reference: left out
    assert results["real (train split)"]["median_nn_distance"] is None
    assert results["real (held-out split)"]["frechet_distance"] is None
    assert results["real (held-out split)"]["median_nn_distance"] > 0
    assert json.loads((tmp_path / "digits_ablation.json").read_text()) == results
    table = (tmp_path / "digits_ablation.md").read_text()
    assert "| real (held-out split) | — |" in table
    for grid in ("ncsn", "baseline", "real"):
        assert (tmp_path / f"digits_ablation_{grid}.png").stat().st_size > 0
    # a rerun into the same folder starts its training runs over
    again = ablation.main(steps=2, ngf=4, num_samples=8, steps_per_level=1, output=tmp_path)
    assert again["NCSN (annealed Langevin)"]["steps"] == 2
