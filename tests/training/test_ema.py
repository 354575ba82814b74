"""ncsn.training.EMA: the moving average of the weights."""

from __future__ import annotations

import pytest
import torch

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
