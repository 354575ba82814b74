"""ncsn.training.EMA: the moving average, and an nn.Module whose state_dict is the averaged model's."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import ncsn
from ncsn.training import EMA

SCHEDULE = ncsn.GeometricSchedule(2.0, 0.1, 4)


def tiny_mlp(seed: int = 0) -> ncsn.nets.ScoreMLP:
    return ncsn.nets.ScoreMLP(
        2, hidden=16, sigmas=SCHEDULE.sigmas, generator=torch.Generator().manual_seed(seed)
    )


def test_ema_update_is_the_moving_average() -> None:
    net = tiny_mlp(0)
    ema = EMA(net, rate=0.75)
    assert not ema.model.training and not any(p.requires_grad for p in ema.model.parameters())
    old = {k: v.clone() for k, v in ema.state_dict().items()}
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    ema.update(net)
    for key, value in net.state_dict().items():
        if key in old:
            torch.testing.assert_close(ema.state_dict()[key], 0.75 * old[key] + 0.25 * value)


def test_ema_rejects_non_modules() -> None:
    with pytest.raises(TypeError, match=r"model must be a torch\.nn\.Module"):
        EMA(lambda x: x, 0.9)  # type: ignore[arg-type]


def test_the_state_dict_holds_the_averaged_models_own_keys() -> None:
    """The layout of every training checkpoint's "ema" entry, before and after EMA became a
    module: an old checkpoint's averaged weights load."""
    net = tiny_mlp(0)
    ema = EMA(net, 0.9)
    assert isinstance(ema, nn.Module)
    assert list(ema.state_dict()) == list(net.state_dict())
    old_entry = {k: v + 1.0 for k, v in tiny_mlp(1).state_dict().items()}  # plain keys
    ema.load_state_dict(old_entry)
    for key, value in old_entry.items():
        assert torch.equal(ema.model.state_dict()[key], value)


class _Owner(nn.Module):
    """A module holding a network and its EMA, as a LightningModule would."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.net = tiny_mlp(seed)
        self.ema = EMA(self.net, 0.9)


def test_an_ema_held_by_a_module_is_saved_and_loaded_with_it() -> None:
    owner = _Owner(0)
    with torch.no_grad():
        for p in owner.net.parameters():
            p.add_(1.0)
    owner.ema.update(owner.net)
    state = owner.state_dict()
    assert {k for k in state if k.startswith("ema.")} == {
        f"ema.{k}" for k in tiny_mlp().state_dict()
    }
    other = _Owner(1)
    other.load_state_dict(state)  # strict: every key in place
    for key, value in owner.ema.state_dict().items():
        assert torch.equal(other.ema.state_dict()[key], value)
    assert not torch.equal(other.ema.state_dict()["fc1.weight"], other.net.fc1.weight)


def test_the_ema_moves_with_to_and_keeps_averaging() -> None:
    net = tiny_mlp(0)
    ema = EMA(net, 0.5)
    ema.update(net)
    net, ema = net.double(), ema.double()
    assert all(p.dtype == torch.float64 for p in ema.model.parameters())
    before = ema.model.fc1.weight.clone()
    with torch.no_grad():
        net.fc1.weight.add_(2.0)
    ema.update(net)
    torch.testing.assert_close(ema.model.fc1.weight, 0.5 * before + 0.5 * net.fc1.weight)
    with pytest.raises(
        TypeError, match=r"parameter \w+ has dtype torch\.float32; the EMA tracks torch\.float64"
    ):
        ema.update(tiny_mlp(0))


def test_the_average_stays_in_eval_mode_and_is_a_score_model() -> None:
    net = tiny_mlp(0)
    owner = nn.ModuleDict({"net": net, "ema": EMA(net, 0.9)})
    owner.train()
    ema = owner["ema"]
    assert isinstance(ema, EMA) and ema.training and not ema.model.training
    x, sigma = torch.randn(5, 2), SCHEDULE.sigmas[:1].expand(5)
    assert torch.equal(ema(x, sigma), ema.model(x, sigma))


def test_a_foreign_state_is_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match=r"state does not fit this EMA's ScoreMLP: missing keys"):
        EMA(tiny_mlp()).load_state_dict({"a": torch.zeros(1)})
    ema = EMA(tiny_mlp())
    ema.load_state_dict({"fc1.weight": torch.zeros(16, 2)}, strict=False)  # what torch allows
    assert torch.equal(ema.model.fc1.weight, torch.zeros(16, 2))
