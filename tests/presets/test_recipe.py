"""ncsn.presets.recipe: NCSNv2's settings computed from the data (presets/_recipe.py)."""

from __future__ import annotations

import pytest
import torch

import ncsn
from ncsn.presets import Settings, prepare


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
    monkeypatch.setattr(ncsn.presets._recipe, "EXACT_DISTANCE_LIMIT", 100)
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
