"""ncsn.presets: the paper's NCSN and its single-noise-level baseline (presets/_paper.py)."""

from __future__ import annotations

import pytest
import torch

import ncsn


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
