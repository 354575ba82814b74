"""Every implementation of each protocol gets every check of that protocol's contract (the
samplers' in tests/samplers/test_sampler_contracts.py)."""

from __future__ import annotations

import pytest
import torch

import ncsn
from contracts import ALL_LOSSES, ALL_SCHEDULES, ALL_SCORE_MODELS, ModelCase

MODEL_IDS = [c.name for c in ALL_SCORE_MODELS]


def _x(case: ModelCase, batch: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand((batch, *case.event_shape), generator=g, dtype=torch.float64)


# ---------------------------------------------------------------- ScoreModel
@pytest.mark.parametrize("case", ALL_SCORE_MODELS, ids=MODEL_IDS)
def test_score_model_is_protocol_instance(case: ModelCase) -> None:
    assert isinstance(case.factory(), ncsn.ScoreModel)


@pytest.mark.parametrize("case", ALL_SCORE_MODELS, ids=MODEL_IDS)
def test_score_model_keeps_shape_dtype_and_is_finite(case: ModelCase) -> None:
    model = case.factory()
    x = _x(case)
    sigma = case.sigmas[torch.tensor([0, 1, 3])].to(x)
    out = model(x, sigma)
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("case", ALL_SCORE_MODELS, ids=MODEL_IDS)
@pytest.mark.parametrize("loss_name, make_loss", ALL_LOSSES, ids=[n for n, _ in ALL_LOSSES])
def test_score_model_works_with_every_loss(case: ModelCase, loss_name: str, make_loss) -> None:
    model = case.factory()
    loss = make_loss(ncsn.Schedule(case.sigmas))
    value = loss(model, _x(case), generator=torch.Generator().manual_seed(1))
    assert value.ndim == 0 and torch.isfinite(value)
    params = list(model.parameters()) if isinstance(model, torch.nn.Module) else []
    if params:
        value.backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in params)


# ---------------------------------------------------------------- NoiseSchedule
@pytest.mark.parametrize("name, make", ALL_SCHEDULES, ids=[n for n, _ in ALL_SCHEDULES])
def test_schedule_contract(name: str, make) -> None:
    schedule = make()
    assert isinstance(schedule, ncsn.NoiseSchedule)
    sigmas = schedule.sigmas
    assert sigmas.ndim == 1 and sigmas.numel() >= 1
    assert (sigmas > 0).all() and torch.isfinite(sigmas).all()
    assert (sigmas[1:] < sigmas[:-1]).all()
    draws = schedule.sample(500, generator=torch.Generator().manual_seed(0))
    assert draws.shape == (500,)
    assert torch.isin(draws, sigmas).all()
    again = schedule.sample(500, generator=torch.Generator().manual_seed(0))
    assert torch.equal(draws, again)
    if sigmas.numel() > 1:  # every level is drawn
        assert torch.unique(draws).numel() == sigmas.numel()


# ---------------------------------------------------------------- ScoreLoss
@pytest.mark.parametrize("name, make", ALL_LOSSES, ids=[n for n, _ in ALL_LOSSES])
def test_loss_contract(name: str, make) -> None:
    schedule = ncsn.GeometricSchedule(1.0, 0.1, 4)
    loss = make(schedule)
    assert isinstance(loss, ncsn.ScoreLoss)
    torch.manual_seed(0)
    net = ncsn.nets.ScoreMLP(2, hidden=8, sigmas=schedule.sigmas)
    x = torch.randn(16, 2)
    a = loss(net, x, generator=torch.Generator().manual_seed(5))
    b = loss(net, x, generator=torch.Generator().manual_seed(5))
    assert a.ndim == 0 and torch.isfinite(a) and torch.equal(a, b)
    a.backward()
    assert all(p.grad is not None for p in net.parameters())


@pytest.mark.parametrize("name, make", ALL_LOSSES, ids=[n for n, _ in ALL_LOSSES])
def test_loss_rejects_model_with_wrong_output_shape(name: str, make) -> None:
    loss = make(ncsn.GeometricSchedule(1.0, 0.1, 4))
    x = torch.randn(4, 3, requires_grad=False)
    with pytest.raises(
        ValueError, match=r"output shape \(\d+, 2\) differs from its input shape \(\d+, 3\)"
    ):
        loss(lambda x, s: x[:, :2] * 1.0, x)
