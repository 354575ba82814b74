"""ncsn.presets.prepare and Settings: the one composition of a training run (presets/_run.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

import ncsn
from ncsn.presets import Settings, prepare


def test_from_data_builds_the_recipes_setup() -> None:
    x, _ = ncsn.data.load("digits")
    setup = ncsn.presets.from_data(x[:64], ngf=4, generator=torch.Generator().manual_seed(0))
    r = ncsn.presets.recipe(x[:64])
    assert isinstance(setup.model, ncsn.nets.RefineNet)
    torch.testing.assert_close(setup.model.sigmas, r.sigmas)
    assert isinstance(setup.sampler, ncsn.samplers.AnnealedLangevin)
    assert setup.sampler.denoise and setup.sampler.steps_per_level == 10
    assert setup.sampler.step_size == 2 * ncsn.ncsnv2_step_size(r.sigmas, 10)
    assert torch.isfinite(setup.loss(setup.model, x[:4], generator=torch.Generator()))
    vectors = ncsn.presets.from_data(torch.randn(50, 3), hidden=8)
    assert isinstance(vectors.model, ncsn.nets.ScoreMLP)
    with pytest.raises(ValueError, match=r"images \[N, C, H, W\] or vectors \[N, D\]"):
        ncsn.presets.from_data(torch.randn(5, 2, 3))


def test_prepare_builds_what_ncsn_train_builds_and_records_it() -> None:
    x, _ = ncsn.data.load("digits")
    run = prepare(x, Settings(data="digits", ngf=4, seed=3), steps=1000)
    r = ncsn.presets.recipe(x, steps=1000)
    assert isinstance(run.model, ncsn.nets.RefineNet) and run.model.ngf == 4
    torch.testing.assert_close(run.model.sigmas, r.sigmas)
    assert run.settings.ema == r.ema_rate and run.settings.model == "refinenet"
    assert run.settings.sigmas == tuple(r.sigmas.tolist()) and run.settings.power == 2.0
    assert run.transform == ncsn.data.ImageTransform(levels=17)
    assert isinstance(run.sampler, ncsn.samplers.AnnealedLangevin) and run.sampler.denoise
    config = run.config
    assert config["model"] == ncsn.nets.model_config(run.model)
    assert config["data"] == {"source": "digits", "shape": [1, 8, 8], "logit_transform": False, "sigma": float(r.sigmas[-1])}  # fmt: skip
    assert Settings.from_record(config["train"]) == run.settings
    # the tuned sampler of the digits quality table: T = 10, twice Technique 4's ε
    assert config["sampling"] | {"sigmas": None} == {
        "sigmas": None,
        "sampler": "annealed",
        "step_size": 2 * ncsn.ncsnv2_step_size(r.sigmas, 10),
        "step_size_rule": "ncsnv2",
        "step_scale": 2.0,
        "steps_per_level": 10,
        "denoise": True,
    }
    assert run.sampler.step_size == config["sampling"]["step_size"]
    # the initial weights come from the seed: the same settings build the same network
    again = prepare(x, Settings(data="digits", ngf=4, seed=3), steps=1000)
    for a, b in zip(run.model.parameters(), again.model.parameters(), strict=True):
        assert torch.equal(a, b)
    # a recorded grid is rebuilt as it is, not recomputed
    resumed = prepare(x, Settings.from_record(config["train"]))
    torch.testing.assert_close(resumed.model.sigmas, run.model.sigmas, rtol=0, atol=0)


@pytest.mark.parametrize(
    "settings, kind, levels",
    [
        (Settings(model="baseline", ngf=4), ncsn.nets.RefineNetBaseline, 1),
        (Settings(model="scaled", ngf=4), ncsn.nets.ScaledByInverseSigma, 21),
        (Settings(model="precond", ngf=4), ncsn.nets.Preconditioned, 21),
        (Settings(recipe="paper", ngf=4), ncsn.nets.RefineNet, 10),
    ],
)
def test_prepare_builds_each_model_kind(settings: Settings, kind: type, levels: int) -> None:
    x, _ = ncsn.data.load("digits")
    run = prepare(x[:64], settings)
    assert isinstance(run.model, kind)
    assert len(run.config["sampling"]["sigmas"]) == levels
    if settings.model == "baseline":
        assert isinstance(run.sampler, ncsn.samplers.Langevin) and run.settings.power == 0.0
    if settings.recipe == "paper":
        assert run.settings.ema is None and run.notes == ()
    vectors = prepare(torch.randn(50, 3), Settings(hidden=8, loss="ssm"))
    assert isinstance(vectors.model, ncsn.nets.ScoreMLP) and vectors.transform is None
    assert isinstance(vectors.loss, ncsn.losses.SlicedScoreMatching)


@pytest.mark.parametrize(
    "x, settings, error, match",
    [
        (torch.randn(8, 2), Settings(model="refinenet"), ValueError, r"model 'refinenet' needs images \[N, C, H, W\]; got examples of shape \[2\]"),
        (torch.rand(8, 1, 7, 8), Settings(), ValueError, "needs an even image height and width; got 7x8"),
        (torch.rand(8, 1, 8, 8), Settings(model="mlp"), ValueError, r"model 'mlp' needs vector data"),
        (torch.randn(8, 2) * 5, Settings(logit=True), ValueError, r"logit=True needs data in \[0, 1\]; x holds values in"),
        (torch.randn(8, 2), Settings(sigma_max=0.001), ValueError, "sigma_max=0.001 must be larger than sigma_min=0.01"),
        (torch.randn(8, 2, 2), Settings(), ValueError, r"images \[N, C, H, W\] or vectors \[N, D\]"),
        (torch.randn(8, 2), "ngf=4", TypeError, "settings must be a presets.Settings"),
    ],
)  # fmt: skip
def test_prepare_refuses_what_does_not_fit_naming_it(
    x: torch.Tensor, settings: object, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        prepare(x, settings)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"recipe": "fast"}, r"recipe must be one of \('ncsnv2', 'paper'\); got 'fast'"),
        ({"model": "unet"}, "model must be one of"),
        ({"ngf": 0}, "ngf"),
        ({"lr": -1.0}, "lr"),
        ({"ema": 1.0}, r"ema must lie in \(0, 1\); got ema=1.0"),
        ({"sigmas": (1.0, 2.0)}, "sigmas must be strictly decreasing"),
    ],
)
def test_settings_refuse_bad_values_naming_them(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Settings(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"record holds unknown settings \['width'\]"):
        Settings.from_record({"width": 3})


def test_a_record_from_before_the_recipe_reads_as_the_papers() -> None:
    """Checkpoints of `ncsn train` before --recipe existed trained with the paper's settings."""
    assert Settings.from_record({"data": "digits", "lr": 0.001}).recipe == "paper"
    assert Settings.from_record({"recipe": "ncsnv2"}).recipe == "ncsnv2"


def test_precond_takes_the_spread_of_the_data_and_reloads_it(tmp_path: Path) -> None:
    x = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 0.5
    run = prepare(x, Settings(model="precond", ngf=4), steps=10)
    assert isinstance(run.model, ncsn.nets.Preconditioned)
    assert run.model.sigma_data == pytest.approx(float(x.std()), rel=1e-6)
    assert run.config["model"]["sigma_data"] == run.model.sigma_data
    state = {"step": 0, "model": run.model.state_dict(), "config": run.config}
    ncsn.training.save_checkpoint(ncsn.training.checkpoint_path(tmp_path, 0), state)
    loaded = ncsn.load(tmp_path)
    assert isinstance(loaded.model, ncsn.nets.Preconditioned)
    assert loaded.model.sigma_data == run.model.sigma_data
    # a network that takes any σ samples on another grid
    sampler = loaded.sampler("cas", sigmas=ncsn.geometric_sigmas(2.0, 0.05, 4))
    assert sampler.num_model_calls == 5
    with pytest.raises(ValueError, match=r"model 'precond' scales by the spread of the data"):
        prepare(x, Settings(model="precond", ngf=4, logit=True))
    with pytest.raises(ValueError, match=r"conditional=True needs model 'refinenet' or 'mlp'"):
        prepare(
            x, Settings(model="precond", ngf=4, conditional=True), labels=torch.zeros(32).long()
        )


def test_precond_trains_with_karras_level_weighting_by_default() -> None:
    x = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    run = prepare(x, Settings(model="precond", ngf=4))
    assert run.settings.level_draw == "edm"
    sigmas = torch.tensor(run.config["sampling"]["sigmas"])
    torch.testing.assert_close(
        run.loss.schedule.weights, ncsn.schedules.edm_weights(sigmas, float(x.std()))
    )
    assert any(note.startswith("levels drawn by Karras et al.'s weighting") for note in run.notes)
    # the other networks keep the paper's uniform draw unless asked
    assert prepare(x, Settings(model="scaled", ngf=4)).settings.level_draw == "uniform"
    uniform = prepare(x, Settings(model="precond", ngf=4, level_draw="uniform"))
    assert uniform.loss.schedule.weights is None
    assert (
        prepare(x, Settings(model="refinenet", ngf=4, level_draw="edm")).settings.level_draw
        == "edm"
    )
    with pytest.raises(ValueError, match=r"level_draw='edm' needs two or more noise levels"):
        prepare(x, Settings(model="baseline", ngf=4, level_draw="edm"))


def test_images_larger_than_8x8_get_the_preconditioned_network_by_default() -> None:
    """The 28×28 tables' best network (preconditioned) is the default above 8×8, the 1/σ-scaled
    one where logit is asked (the preconditioning scales by the spread in [0, 1]); the digits keep
    the σ-conditioned one (their table's best), and so do conditional runs."""
    x = torch.rand(16, 1, 28, 28)
    run = prepare(x, Settings(ngf=4))
    assert isinstance(run.model, ncsn.nets.Preconditioned) and run.settings.model == "precond"
    assert run.settings.level_draw == "edm"
    assert run.config["model"] == ncsn.nets.model_config(run.model)
    assert run.config["model"]["sigma_data"] == pytest.approx(float(x.std()))
    assert Settings.from_record(run.config["train"]).model == "precond"
    logit = prepare(x, Settings(ngf=4, logit=True))
    assert isinstance(logit.model, ncsn.nets.ScaledByInverseSigma)
    assert logit.settings.model == "scaled" and logit.settings.level_draw == "uniform"
    # runs recorded before this default rebuild the network they recorded
    for recorded, network in (("scaled", ncsn.nets.ScaledByInverseSigma), ("refinenet", ncsn.nets.RefineNet)):  # fmt: skip
        old = dataclasses.replace(run.settings, model=recorded, sigmas=None, level_draw=None)
        assert isinstance(prepare(x, old).model, network)
    labels = torch.arange(16) % 2
    conditional = prepare(x, Settings(ngf=4, conditional=True), labels=labels)
    assert isinstance(conditional.model, ncsn.nets.ConditionalRefineNet)
    assert ncsn.presets.default_model((3, 9, 8)) == "precond"
    assert ncsn.presets.default_model((3, 9, 8), logit=True) == "scaled"
    assert ncsn.presets.default_model((1, 8, 8), logit=True) == "refinenet"
    assert ncsn.presets.default_model((1, 8, 8)) == "refinenet"
    # constant images (σ₁ given, so the recipe does not refuse them first) have no σ_d
    flat = torch.full((4, 1, 28, 28), 0.5)
    with pytest.raises(ValueError, match=r"x has none \(std 0\); train another network \(model='scaled'"):  # fmt: skip
        prepare(flat, Settings(ngf=4, sigma_max=1.0))
    assert prepare(flat, Settings(ngf=4, sigma_max=1.0, model="scaled")).settings.model == "scaled"
    with pytest.raises(
        ValueError, match=r"shape must be \[D\] or an image shape \[C, H, W\]; got \[2, 3\]"
    ):
        ncsn.presets.default_model((2, 3))


def test_the_preconditioned_network_records_predictor_corrector(tmp_path: Path) -> None:
    """Its samplers at the MNIST hour: predictor-corrector is the best (FD 12.2 against CAS's
    16.4), so its runs (the default above 8×8) record it, and ``ncsn.load`` builds it with the
    recorded snr; another sampler stays a choice, with the annealed settings recorded."""
    x = torch.rand(16, 1, 28, 28)
    run = prepare(x, Settings(ngf=4), steps=100)
    sampling = run.config["sampling"]
    assert run.settings.model == "precond"
    assert (sampling["sampler"], sampling["snr"], sampling["corrector_steps"]) == ("pc", 0.16, 1)
    assert isinstance(run.sampler, ncsn.samplers.PredictorCorrector)
    assert run.sampler.denoise and run.sampler.num_model_calls == 2 * len(run.schedule.sigmas)
    assert any(note.startswith("sampling: predictor-corrector (") for note in run.notes)
    state = {"step": 0, "model": run.model.state_dict(), "config": run.config}
    ncsn.training.save_checkpoint(ncsn.training.checkpoint_path(tmp_path, 0), state)
    loaded = ncsn.load(tmp_path)
    sampler = loaded.sampler()
    assert isinstance(sampler, ncsn.samplers.PredictorCorrector)
    assert (sampler.snr, sampler.corrector_steps, sampler.denoise) == (0.16, 1, True)
    assert loaded.sampler(snr=0.1).snr == 0.1
    assert isinstance(loaded.sampler("cas"), ncsn.samplers.ConsistentAnnealedSampling)
    assert loaded.sampler("annealed").steps_per_level == 10
    # on the digits the preconditioned network keeps the digits' sampler
    digits, _ = ncsn.data.load("digits")
    small = prepare(digits[:64], Settings(ngf=4, model="precond"))
    assert small.config["sampling"]["sampler"] == "annealed"


def test_images_larger_than_8x8_record_consistent_annealed_sampling(tmp_path: Path) -> None:
    """MNIST's samplers table: at 28×28 CAS is the best sampler of the scaled network or ties (the
    σ-conditioned one) at a tenth of the calls, so their runs record it and `ncsn sample RUN`
    uses it; the annealed settings stay recorded for --sampler annealed. The digits keep
    annealed."""
    x = torch.rand(16, 1, 28, 28)
    for model in ("scaled", "refinenet"):
        run = prepare(x, Settings(ngf=4, model=model), steps=100)
        assert run.config["sampling"]["sampler"] == "cas"
        assert isinstance(run.sampler, ncsn.samplers.ConsistentAnnealedSampling)
        assert run.sampler.denoise and run.sampler.num_model_calls == len(run.schedule.sigmas) + 1
        assert any(note.startswith("sampling: consistent annealed") for note in run.notes)
    state = {"step": 0, "model": run.model.state_dict(), "config": run.config}
    ncsn.training.save_checkpoint(ncsn.training.checkpoint_path(tmp_path, 0), state)
    loaded = ncsn.load(tmp_path)
    assert isinstance(loaded.sampler(), ncsn.samplers.ConsistentAnnealedSampling)
    annealed = loaded.sampler("annealed")
    assert isinstance(annealed, ncsn.samplers.AnnealedLangevin)
    assert annealed.steps_per_level == 10 and annealed.denoise
    assert annealed.step_size == 2 * ncsn.ncsnv2_step_size(run.schedule.sigmas, 10)
    digits, _ = ncsn.data.load("digits")
    assert prepare(digits[:64], Settings(ngf=4)).config["sampling"]["sampler"] == "annealed"
    assert (
        prepare(torch.randn(50, 3), Settings(hidden=8)).config["sampling"]["sampler"] == "annealed"
    )


def test_a_record_from_before_the_tuned_sampler_keeps_ncsnv2s() -> None:
    """Runs before `step_scale` existed sampled with T = 5 and Technique 4's ε itself: resuming one
    must not change its sampler; new runs get the digits table's best (T = 10, ε × 2)."""
    old = Settings.from_record({"recipe": "ncsnv2"})
    assert (old.steps_per_level, old.step_scale) == (5, 1.0)
    assert (Settings().steps_per_level, Settings().step_scale) == (10, 2.0)
    assert Settings.from_record(Settings().record()) == Settings()
    x, _ = ncsn.data.load("digits")
    run = prepare(x[:64], dataclasses.replace(old, data="digits", ngf=4))
    assert run.config["sampling"]["step_size"] == ncsn.ncsnv2_step_size(run.schedule.sigmas, 5)
    with pytest.raises(ValueError, match="step_scale"):
        Settings(step_scale=-1.0)


def test_a_conditional_run_builds_the_conditional_network_and_records_the_classes() -> None:
    x, y = ncsn.data.load("digits")
    run = prepare(x, Settings(data="digits", ngf=4, conditional=True, label_dropout=0.2), labels=y)
    assert isinstance(run.model, ncsn.nets.ConditionalRefineNet) and run.model.num_classes == 10
    assert run.config["data"]["classes"] == [str(c) for c in range(10)]
    assert run.config["model"]["kind"] == "ConditionalRefineNet"
    assert (run.loss.label_dropout, run.loss.num_classes) == (0.2, 10)  # type: ignore[attr-defined]
    assert Settings.from_record(run.config["train"]) == run.settings
    # unconditional runs record no classes; vectors get the conditional MLP
    assert "classes" not in prepare(x, Settings(data="digits", ngf=4)).config["data"]
    vectors = prepare(torch.randn(30, 2), Settings(conditional=True), labels=torch.arange(30) % 3)
    assert isinstance(vectors.model, ncsn.nets.ConditionalScoreMLP)
    assert vectors.config["data"]["classes"] == ["0", "1", "2"]


def test_fashion_mnist_classes_are_named() -> None:
    x = torch.rand(20, 1, 8, 8)
    run = prepare(x, Settings(data="fashion-mnist", ngf=4, conditional=True), labels=torch.arange(20) % 10)  # fmt: skip
    assert run.config["data"]["classes"][9] == "Ankle boot"


@pytest.mark.parametrize(
    "settings, labels, error, match",
    [
        (Settings(conditional=True), None, ValueError, "conditional=True needs labels: data x has none"),
        (Settings(), torch.zeros(8, dtype=torch.long), ValueError, "labels are for a conditional run"),
        (Settings(conditional=True, model="baseline"), torch.zeros(8, dtype=torch.long), ValueError, "needs model 'refinenet' or 'mlp'"),
        (Settings(conditional=True), torch.zeros(8), TypeError, "labels must be an integer tensor"),
        (Settings(conditional=True), torch.zeros(7, dtype=torch.long), ValueError, r"shape \[N\]=\[8\]; got shape \(7,\)"),
        (Settings(conditional=True), -torch.ones(8, dtype=torch.long), ValueError, "smallest label -1"),
    ],
)  # fmt: skip
def test_a_conditional_run_refuses_bad_labels_naming_them(
    settings: Settings, labels: object, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        prepare(torch.rand(8, 1, 8, 8), settings, labels=labels)  # type: ignore[arg-type]


def test_label_dropout_must_be_a_rate() -> None:
    with pytest.raises(
        ValueError, match=r"label_dropout must lie in \[0, 1\); got label_dropout=1.0"
    ):
        Settings(label_dropout=1.0)
