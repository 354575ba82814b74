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


@pytest.mark.slow
def test_quality_table_writes_every_row_and_its_columns(tmp_path: Path) -> None:
    quality = _load("quality")
    result = quality.main(
        budgets=(2, 3),
        recipes=("ncsnv2",),
        samplers=("annealed", "annealed+denoise", "pc"),
        ngf=4,
        batch_size=8,
        num_samples=8,
        baseline=False,
        output=tmp_path,
    )
    names = [row["row"] for row in result["rows"]]
    assert names == [
        "real vs real (floor)",
        "uniform noise",
        *(
            f"ncsnv2 / {s} / {b} steps"
            for b in (2, 3)
            for s in ("annealed", "annealed+denoise", "pc")
        ),
    ]
    floor = result["rows"][0]
    assert floor["fd_ratio"] == 1.0 and floor["nn_ratio"] is None
    for row in result["rows"][1:]:
        assert 0.0 <= row["precision"] <= 1.0 and 0.0 <= row["recall"] <= 1.0
        assert row["nn_ratio"] > 0 and row["frechet_distance"] > 0
    by_name = {row["row"]: row for row in result["rows"]}
    plain, denoised = (
        by_name["ncsnv2 / annealed / 2 steps"],
        by_name["ncsnv2 / annealed+denoise / 2 steps"],
    )
    assert denoised["model_calls"] == plain["model_calls"] + 1
    assert json.loads((tmp_path / "quality.json").read_text()) == result
    assert "| ncsnv2 / pc / 3 steps |" in (tmp_path / "quality.md").read_text()
    assert (tmp_path / "quality_ncsnv2_annealed_denoise_3.png").stat().st_size > 0
