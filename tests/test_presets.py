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
