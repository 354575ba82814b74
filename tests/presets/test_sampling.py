"""ncsn.presets.build_sampler: any sampler by name on a σ grid (presets/_sampling.py)."""

from __future__ import annotations

import pytest

import ncsn


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
