"""Presets (the paper's NCSN and its baseline) and model configurations."""

from __future__ import annotations

import pytest
import torch

import ncsn
from ncsn.nets.config import build_model, model_config


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


@pytest.mark.parametrize(
    "make, shape, sigma",
    [
        (
            lambda: ncsn.nets.RefineNet(1, 4, ncsn.geometric_sigmas(1.0, 0.01, 5), norm="paper"),
            (2, 1, 8, 8),
            [1.0, 0.01],
        ),
        (
            lambda: ncsn.nets.RefineNetBaseline(3, 4, logit_transform=True),
            (2, 3, 8, 8),
            [0.01, 0.01],
        ),
        (lambda: ncsn.nets.ScoreMLP(2, hidden=16, sigmas=[2.0, 1.0]), (2, 2), [2.0, 1.0]),
        (lambda: ncsn.nets.ScoreMLP(3, hidden=8), (2, 3), [1.0, 1.0]),
        (
            lambda: ncsn.nets.ScaledByInverseSigma(ncsn.nets.RefineNetBaseline(1, 4)),
            (2, 1, 8, 8),
            [1.0, 0.5],
        ),
    ],
)
def test_model_config_round_trip_loads_the_same_weights(
    make, shape: tuple[int, ...], sigma: list[float]
) -> None:
    net = make()
    config = model_config(net)
    rebuilt = build_model(config)
    rebuilt.load_state_dict(net.state_dict())
    assert model_config(rebuilt) == config
    x, s = torch.rand(shape), torch.tensor(sigma)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x, s), net(x, s))


def test_config_errors() -> None:
    with pytest.raises(TypeError, match="model_config supports"):
        model_config(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="config kind must be one of"):
        build_model({"kind": "UNet"})
    with pytest.raises(ValueError, match="missing the field 'ngf'"):
        build_model({"kind": "RefineNetBaseline", "channels": 1})
    with pytest.raises(ValueError, match="config must be a dict"):
        build_model([1, 2])  # type: ignore[arg-type]


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
