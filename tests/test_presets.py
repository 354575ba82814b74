"""ncsn.presets: the paper's NCSN and its baseline, NCSNv2's recipe, the sampler builder, and
`prepare`, the one composition of a training run."""

from __future__ import annotations

import pytest
import torch

import ncsn
from ncsn.presets import Settings, prepare


def test_baseline_preset_is_the_papers_single_level_configuration() -> None:
    setup = ncsn.presets.baseline(channels=1, ngf=4, generator=torch.Generator().manual_seed(0))
    assert isinstance(setup.model, ncsn.nets.RefineNetBaseline)
    assert setup.schedule.sigmas.tolist() == pytest.approx([0.01])
    assert setup.loss.power == 0.0  # type: ignore[attr-defined]
    assert isinstance(setup.sampler, ncsn.samplers.Langevin)
    assert setup.sampler.num_steps == 1000 and setup.sampler.sigma == 0.01
    # our ε convention: twice the official code's step_lr = 2e-5
    assert setup.sampler.step_size == pytest.approx(2 * 2e-5) == ncsn.presets.OFFICIAL_STEP_SIZE
    x = torch.rand(2, 1, 8, 8)
    assert torch.isfinite(setup.loss(setup.model, x, generator=torch.Generator()))


def test_ncsn_preset_matches_the_paper() -> None:
    setup = ncsn.presets.ncsn_paper(channels=1, ngf=4)
    torch.testing.assert_close(setup.schedule.sigmas, ncsn.geometric_sigmas(1.0, 0.01, 10))
    assert isinstance(setup.sampler, ncsn.samplers.AnnealedLangevin)
    assert setup.sampler.steps_per_level == 100 and setup.sampler.step_size == pytest.approx(4e-5)
    assert setup.sampler.num_model_calls == 1000


# ------------------------------------------------------------------ NCSNv2's recipe from the data


def test_recipe_on_the_digits_follows_ncsnv2s_techniques() -> None:
    x, _ = ncsn.data.load("digits")
    r = ncsn.presets.recipe(x)
    sigma_1 = ncsn.max_pairwise_distance(x)
    assert float(r.sigmas[0]) == pytest.approx(sigma_1) and sigma_1 == pytest.approx(4.80, abs=5e-3)
    assert len(r.sigmas) == ncsn.ncsnv2_num_levels(64, sigma_1, 0.01) == 22
    torch.testing.assert_close(r.sigmas, ncsn.geometric_sigmas(sigma_1, 0.01, 22))
    assert r.step_size == ncsn.ncsnv2_step_size(r.sigmas, 5) and r.steps_per_level == 5
    assert r.ema_rate == 0.999 and r.denoise is True
    assert len(r.notes) == 4 and "Technique 1" in r.notes[0] and "Technique 2" in r.notes[1]


def test_recipe_keeps_what_is_given_and_computes_the_rest_around_it() -> None:
    x, _ = ncsn.data.load("digits")
    r = ncsn.presets.recipe(x, sigma_max=2.0, steps_per_level=20)
    assert float(r.sigmas[0]) == pytest.approx(2.0) and "(given)" in r.notes[0]
    assert len(r.sigmas) == ncsn.ncsnv2_num_levels(64, 2.0, 0.01)
    assert r.step_size == ncsn.ncsnv2_step_size(r.sigmas, 20)
    assert len(ncsn.presets.recipe(x, num_levels=7).sigmas) == 7


def test_recipe_in_two_dimensions_keeps_the_papers_number_of_levels() -> None:
    x = ncsn.toy.paper_mixture().sample(500, generator=torch.Generator().manual_seed(0))
    r = ncsn.presets.recipe(x)
    assert len(r.sigmas) == ncsn.presets.PAPER_NUM_LEVELS == 10
    assert float(r.sigmas[0]) == pytest.approx(ncsn.max_pairwise_distance(x))
    assert "D = 2 <= 4" in r.notes[1]


def test_recipe_estimates_sigma_1_on_large_data_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ncsn.presets, "EXACT_DISTANCE_LIMIT", 100)
    x, _ = ncsn.data.load("digits")
    r = ncsn.presets.recipe(x, generator=torch.Generator().manual_seed(0))
    assert "estimate" in r.notes[0]
    assert float(r.sigmas[0]) <= ncsn.max_pairwise_distance(x) + 1e-6  # a lower bound


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"x": torch.rand(1, 4)}, ValueError, r"N >= 2 examples; got \(1, 4\)"),
        ({"x": [[0.0, 1.0]]}, ValueError, r"got list"),
        ({"x": torch.rand(5, 6), "sigma_min": 0.0}, ValueError, r"sigma_min"),
        ({"x": torch.rand(5, 6), "sigma_max": 0.001}, ValueError, r"sigma_max must be larger"),
        ({"x": torch.rand(5, 6), "steps_per_level": 0}, ValueError, r"steps_per_level"),
    ],
)
def test_recipe_refuses_bad_input_naming_the_argument(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    x = kwargs.pop("x")
    with pytest.raises(error, match=match):
        ncsn.presets.recipe(x, **kwargs)  # type: ignore[arg-type]


def test_from_data_builds_the_recipes_setup() -> None:
    x, _ = ncsn.data.load("digits")
    setup = ncsn.presets.from_data(x[:64], ngf=4, generator=torch.Generator().manual_seed(0))
    r = ncsn.presets.recipe(x[:64])
    assert isinstance(setup.model, ncsn.nets.RefineNet)
    torch.testing.assert_close(setup.model.sigmas, r.sigmas)
    assert isinstance(setup.sampler, ncsn.samplers.AnnealedLangevin)
    assert setup.sampler.denoise and setup.sampler.step_size == r.step_size
    assert torch.isfinite(setup.loss(setup.model, x[:4], generator=torch.Generator()))
    vectors = ncsn.presets.from_data(torch.randn(50, 3), hidden=8)
    assert isinstance(vectors.model, ncsn.nets.ScoreMLP)
    with pytest.raises(ValueError, match=r"images \[N, C, H, W\] or vectors \[N, D\]"):
        ncsn.presets.from_data(torch.randn(5, 2, 3))


def test_recipe_fits_the_ema_rate_to_short_runs() -> None:
    """An average over more steps than were trained keeps the initial weights (e⁻¹ of them
    after 1,000 steps at 0.999): the window is at most a tenth of the run."""
    x, _ = ncsn.data.load("digits")
    assert ncsn.presets.recipe(x).ema_rate == 0.999
    assert ncsn.presets.recipe(x, steps=20_000).ema_rate == 0.999
    short = ncsn.presets.recipe(x, steps=1000)
    assert short.ema_rate == pytest.approx(0.99) and "a tenth of the 1000" in short.notes[-1]
    assert ncsn.presets.recipe(x, steps=4).ema_rate == 0.5
    with pytest.raises(ValueError, match="steps"):
        ncsn.presets.recipe(x, steps=0)


def test_data_with_no_spread_names_the_data_not_sigma_max() -> None:
    flat = torch.ones(10, 3)
    with pytest.raises(
        ValueError, match=r"x has no spread to take σ₁ from: .* 10 examples is 0"
    ) as info:
        ncsn.presets.recipe(flat)
    assert "sigma_max=" not in str(info.value)
    with pytest.raises(ValueError, match="x has no spread"):
        ncsn.presets.from_data(flat)
    with pytest.raises(ValueError, match=r"data 'flat.npy' has no spread to take σ₁ from"):
        prepare(flat, Settings(data="flat.npy"))


# ------------------------------------------------------------------ build_sampler
@pytest.mark.parametrize(
    "name, options, kind, calls",
    [
        ("annealed", {"steps_per_level": 3}, ncsn.samplers.AnnealedLangevin, 30),
        ("cas", {}, ncsn.samplers.ConsistentAnnealedSampling, 10),
        ("pc", {"corrector_steps": 2}, ncsn.samplers.PredictorCorrector, None),
        ("ode", {"solver": "euler"}, ncsn.samplers.ProbabilityFlowODE, None),
    ],
)
def test_build_sampler_builds_each_sampler_by_name(
    name: str, options: dict[str, object], kind: type, calls: int | None
) -> None:
    sigmas = ncsn.geometric_sigmas(1.0, 0.01, 10)
    sampler = ncsn.presets.build_sampler(name, sigmas, **options)  # type: ignore[arg-type]
    assert isinstance(sampler, kind)
    assert calls is None or sampler.num_model_calls == calls  # type: ignore[attr-defined]
    assert sampler.denoise is (name in ("pc", "ode"))  # type: ignore[attr-defined]
    if name == "annealed":  # Technique 4's ε for T when none is given
        assert sampler.step_size == ncsn.ncsnv2_step_size(sigmas, 3)  # type: ignore[attr-defined]


def test_build_sampler_on_one_level_is_plain_langevin_and_refuses_the_others() -> None:
    sampler = ncsn.presets.build_sampler("annealed", [0.01], num_steps=7)
    assert isinstance(sampler, ncsn.samplers.Langevin) and sampler.num_steps == 7
    assert sampler.step_size == ncsn.presets.OFFICIAL_STEP_SIZE
    with pytest.raises(ValueError, match="sampler='cas' needs two or more noise levels"):
        ncsn.presets.build_sampler("cas", [0.01])
    with pytest.raises(ValueError, match=r"name must be one of \('annealed'"):
        ncsn.presets.build_sampler("heat", [1.0, 0.1])


# ------------------------------------------------------------------ prepare: a whole run
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
    assert (
        config["sampling"]["step_size"] == r.step_size
        and config["sampling"]["steps_per_level"] == 5
    )
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
