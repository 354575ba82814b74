"""ncsn.load (src/ncsn/_loading.py): a trained model, its σ grid, its data and its sampler, from a
run folder, a checkpoint file or an official checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import ncsn
from ncsn.presets import Settings, prepare

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _save(folder: Path, run: ncsn.presets.Run, step: int = 0, **extra: object) -> Path:
    state = {"step": step, "model": run.model.state_dict(), "config": run.config, **extra}
    return ncsn.training.save_checkpoint(ncsn.training.checkpoint_path(folder, step), state)


@pytest.fixture(scope="module")
def digits_run() -> ncsn.presets.Run:
    x, _ = ncsn.data.load("digits")
    return prepare(x, Settings(data="digits", ngf=4))


def test_load_a_run_folder_its_newest_checkpoint_with_the_ema_weights(
    digits_run: ncsn.presets.Run, tmp_path: Path
) -> None:
    ema = {k: v + 1.0 if v.is_floating_point() else v for k, v in digits_run.model.state_dict().items()}  # fmt: skip
    _save(tmp_path, digits_run, step=1)
    newest = _save(tmp_path, digits_run, step=2, ema=ema)
    loaded = ncsn.load(tmp_path)
    assert loaded.file == newest and loaded.step == 2 and not loaded.model.training
    assert loaded.data == {"source": "digits", "shape": [1, 8, 8], "logit_transform": False, "sigma": pytest.approx(0.01)}  # fmt: skip
    torch.testing.assert_close(loaded.sigmas, digits_run.model.sigmas)
    for key, value in loaded.model.state_dict().items():
        assert torch.equal(value, ema[key]), key
    raw = ncsn.load(newest, ema=False)
    for key, value in raw.model.state_dict().items():
        assert torch.equal(value, digits_run.model.state_dict()[key]), key


def test_the_recorded_sampler_and_others(digits_run: ncsn.presets.Run, tmp_path: Path) -> None:
    _save(tmp_path, digits_run)
    loaded = ncsn.load(tmp_path)
    sampler = loaded.sampler()
    assert sampler == digits_run.sampler  # the recipe's, as prepare built it
    # a new T gets the recipe's ε for it: twice Technique 4's
    assert loaded.sampler(steps_per_level=3).step_size == 2 * ncsn.ncsnv2_step_size(
        loaded.sigmas, 3
    )  # type: ignore[attr-defined, arg-type]
    assert loaded.sampler(step_size=1e-5).step_size == 1e-5  # type: ignore[attr-defined]
    assert isinstance(loaded.sampler("ode"), ncsn.samplers.ProbabilityFlowODE)
    with pytest.raises(ValueError, match="RefineNet takes only the 22 levels it was trained on"):
        loaded.sampler(sigmas=ncsn.geometric_sigmas(1.0, 0.01, 5))


def test_a_network_that_takes_any_sigma_samples_on_its_training_grid_or_another(
    tmp_path: Path,
) -> None:
    x, _ = ncsn.data.load("digits")
    run = prepare(x[:64], Settings(data="digits", model="scaled", ngf=4))
    _save(tmp_path, run)
    loaded = ncsn.load(tmp_path)
    assert isinstance(loaded.model, ncsn.nets.ScaledByInverseSigma)
    assert loaded.sigmas is not None
    assert loaded.sigmas.tolist() == run.config["sampling"]["sigmas"]
    other = ncsn.geometric_sigmas(2.0, 0.05, 4)
    sampler = loaded.sampler(sigmas=other)
    assert torch.equal(torch.as_tensor(sampler.sigmas), other)  # type: ignore[attr-defined]
    # the recipe's ε follows Technique 4 (times its scale of 2): another grid gets its own
    assert sampler.step_size == 2 * ncsn.ncsnv2_step_size(other, 10)  # type: ignore[attr-defined]
    # a run recorded before the scale existed keeps Technique 4's ε itself
    del loaded.sampling["step_scale"]
    assert loaded.sampler(sigmas=other).step_size == ncsn.ncsnv2_step_size(other, 10)  # type: ignore[attr-defined]


def test_an_official_checkpoint_samples_with_the_released_codes_settings() -> None:
    loaded = ncsn.load(FIXTURES / "official_refinenet_c3_ngf8.pth", image_size=16)
    assert loaded.data["shape"] == [3, 16, 16] and loaded.step is None
    sampler = loaded.sampler()
    assert isinstance(sampler, ncsn.samplers.AnnealedLangevin)
    assert (sampler.step_size, sampler.steps_per_level, sampler.denoise) == (4e-5, 100, False)


def test_unusable_sources_are_errors_naming_the_file(
    digits_run: ncsn.presets.Run, tmp_path: Path
) -> None:
    with pytest.raises(FileNotFoundError, match="no such checkpoint file or folder"):
        ncsn.load(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ncsn.CheckpointError, match="folder holds no checkpoint"):
        ncsn.load(tmp_path / "empty")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    with pytest.raises(ncsn.CheckpointError, match=r"model[/\\]config.json: the key 'format' must be an integer; got None"):  # fmt: skip
        ncsn.load(tmp_path / "model")
    path = _save(tmp_path / "run", digits_run)
    with pytest.raises(ValueError, match="image_size applies to official checkpoints only"):
        ncsn.load(path, image_size=16)
    bad = {k: torch.full_like(v, float("inf")) if v.is_floating_point() else v for k, v in digits_run.model.state_dict().items()}  # fmt: skip
    infinite = ncsn.training.save_checkpoint(tmp_path / "inf.pt", {"step": 0, "model": bad, "config": digits_run.config})  # fmt: skip
    with pytest.raises(ncsn.CheckpointError, match=r"inf.pt: the weight \S+ holds NaN or infinity"):
        ncsn.load(infinite)
