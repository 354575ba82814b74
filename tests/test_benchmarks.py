"""The sample-quality table end to end at tiny settings (its numbers are read, not asserted)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

import ncsn

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses read string annotations through sys.modules
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


@pytest.mark.slow
def test_quality_table_writes_every_row_and_its_columns(tmp_path: Path) -> None:
    quality = _load("quality")
    result = quality.main(
        budgets=(2, 3),
        recipes=("ncsnv2",),
        samplers=("annealed", "annealed+denoise", "pc"),
        ngf=4,
        batch_size=8,
        lr=2e-3,
        lr_decay="cosine",
        bf16=True,
        lognormal=(0.15, 1.2),
        num_samples=8,
        baseline=False,
        output=tmp_path,
    )
    # --lr, --lr-decay and --bf16 reach the trainer and the table's settings: Adam's step from
    # 2e-3 to 0 at the last budget
    checkpoint = ncsn.training.latest_checkpoint(tmp_path / "quality_runs" / "ncsnv2" / "trainer")
    assert checkpoint is not None
    saved = torch.load(checkpoint, weights_only=True)
    assert saved["scheduler"]["state"]["base_lrs"] == [result["settings"]["lr"]] == [2e-3]
    assert saved["step"] == 3 and saved["optimizer"]["param_groups"][0]["lr"] == 0.0
    assert result["settings"]["lr_decay"] == "cosine"
    assert saved["autocast_dtype"] == "torch.bfloat16" and result["settings"]["bf16"] is True
    assert result["settings"]["lognormal"] == [0.15, 1.2]
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


def _mnist_files() -> bool:
    import ncsn

    try:
        ncsn.data.mnist(split="test")
    except FileNotFoundError:
        return False
    return True


def test_quality_sampler_names_give_their_settings() -> None:
    quality = _load("quality")
    sigmas = ncsn.geometric_sigmas(10.0, 0.01, 8)
    recorded = {"steps_per_level": 5, "step_size": 1e-5}
    assert quality._sampler("pc", sigmas, recorded).snr == 0.16
    pc = quality._sampler("pc@0.1", sigmas, recorded)
    assert isinstance(pc, ncsn.samplers.PredictorCorrector) and pc.snr == 0.1
    assert pc.corrector_steps == 1
    pc = quality._sampler("pc@0.2x3", sigmas, recorded)
    assert (pc.snr, pc.corrector_steps, pc.num_model_calls) == (0.2, 3, 8 * 3 + 7 + 1)
    assert quality._sampler("cas@0.9", sigmas, recorded).eta == 0.9
    fine = quality._sampler("cas~3", sigmas, recorded).sigmas
    assert len(fine) == 3 * 7 + 1
    torch.testing.assert_close(fine[::3], sigmas)  # every level of the model's grid, in between
    torch.testing.assert_close(fine[1:] / fine[:-1], torch.full((21,), (0.001) ** (1 / 21)))
    assert (
        quality.Row("ncsnv2:precond:16", "pc@0.16x2~2", 100).key
        == "ncsnv2_precond_16_pc-0.16x2-fine2_100"
    )
    with pytest.raises(ValueError, match=r"unknown sampler 'ode@2'; expected .*pc\[@snr\[xM\]\]"):
        quality._sampler("ode@2", sigmas, recorded)
    with pytest.raises(ValueError, match=r"'cas~0': ~K takes an integer K >= 1"):
        quality._sampler("cas~0", sigmas, recorded)


def test_quality_lognormal_draws_the_training_levels_by_lognormal_weights() -> None:
    quality = _load("quality")
    x = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    plain, _ = quality._setup("ncsnv2:scaled:4", 4, x, 0)
    drawn, _ = quality._setup("ncsnv2:scaled:4", 4, x, 0, lognormal=(0.15, 1.2))
    sigmas = plain.schedule.sigmas
    assert plain.loss.schedule.weights is None
    torch.testing.assert_close(
        drawn.loss.schedule.weights, ncsn.schedules.lognormal_weights(sigmas, 0.15, 1.2)
    )


@pytest.mark.slow
def test_quality_table_on_mnist_resumes_and_scores_inpainting(tmp_path: Path) -> None:
    if not _mnist_files():
        pytest.skip("MNIST IDX files not found (set NCSN_DATA or see docs/how-to/datasets.md)")
    quality = _load("quality")
    settings = {
        "dataset": "mnist",
        "budgets": (2, 3),
        "recipes": ("ncsnv2",),
        "samplers": ("cas",),
        "final_samplers": ("pc",),
        "ngf": 4,
        "batch_size": 8,
        "num_samples": 12,
        "baseline": False,
        "inpaint_count": 4,
        "quick": True,
        "output": tmp_path,
    }
    quality.main(**settings, phase="train")
    weights = tmp_path / "runs" / "ncsnv2"
    assert sorted(p.name for p in weights.glob("weights-*.pt")) == ["weights-2.pt", "weights-3.pt"]
    # a second training call finds the weights and trains nothing; sampling keeps finished rows
    quality.main(**settings, phase="train")
    quality.main(**settings, phase="sample")
    first = (tmp_path / "samples" / "ncsnv2_cas_2.pt").stat().st_mtime_ns
    result = quality.main(**settings, phase="score")
    assert (tmp_path / "samples" / "ncsnv2_cas_2.pt").stat().st_mtime_ns == first
    names = [row["row"] for row in result["rows"]]
    assert names == [
        "real vs real (floor)",
        "uniform noise",
        "ncsnv2 / cas / 2 steps",
        "ncsnv2 / cas / 3 steps",
        "ncsnv2 / pc / 3 steps",
    ]
    for row in result["rows"][1:]:
        assert row["fd_spread"] > 0 and row["frechet_distance"] > 0
    masks = {row["mask"] for row in result["inpainting"]}
    assert masks == {"right_half", "centre_box"}
    for row in result["inpainting"]:
        assert 0.0 <= row["label_accuracy"] <= 1.0
    assert json.loads((tmp_path / "quality.json").read_text()) == result
    # more rows appended later keep the table's rows and its inpainting table; a row scored again
    # replaces its line instead of adding a second one
    more = {**settings, "final_samplers": ("ode",), "inpaint": False, "append": True}
    quality.main(**more, phase="sample")
    appended = quality.main(**more, phase="score")
    assert [row["row"] for row in appended["rows"]] == [*names, "ncsnv2 / ode / 3 steps"]
    assert appended["inpainting"] == result["inpainting"]
    # the sampling-time sweep reads the same run: the row's EMA and the raw iterate, scored
    # against a training-split reference with its own floor
    sweep = _load("sampler_sweep28").main(
        weights,
        3,
        [("ema", "default", 1), ("raw", "0.9", 1)],
        dataset="mnist",
        ngf=4,
        num_samples=4,
        quick=True,
        output=tmp_path / "sweep",
    )
    assert [(r["weights"][:3], round(r["eta"], 3)) for r in sweep["rows"]][1] == ("raw", 0.9)
    assert sweep["floor"] > 0 and all(r["frechet_distance"] > 0 for r in sweep["rows"])
    assert (
        sweep["rows"][0]["model_calls"] == len(torch.load(weights / "weights-3.pt")["sigmas"]) + 1
    )
    assert (tmp_path / "sweep" / "sweep.md").read_text().count("\n| ") == 3
