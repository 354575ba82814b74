"""The paper's Fig. 2: a score network trained on the mixture is accurate only where data live."""

from __future__ import annotations

import pytest
import torch

import ncsn


def _train(kind: str, steps: int) -> torch.nn.Module:
    torch.manual_seed(0)  # weight initialisation of the test network
    gmm = ncsn.toy.paper_mixture()
    net = ncsn.nets.ScoreMLP(2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = gmm.sample(128, generator=g)
        if kind == "ssm":  # SSM-VR on the clean data, as in the official toy runner
            loss = ncsn.losses.ssm(net, x, 1.0, generator=g).mean()
        else:  # DSM at one small noise level
            loss = ncsn.losses.dsm(net, x, 0.1, generator=g).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net


def _relative_errors(net: torch.nn.Module) -> tuple[float, float]:
    gmm = ncsn.toy.paper_mixture()
    with torch.no_grad():
        data = gmm.sample(4000, generator=torch.Generator().manual_seed(2))
        zero = torch.zeros(4000)
        near = ((net(data, zero) - gmm.score(data)) ** 2).sum(1).mean() / (
            gmm.score(data) ** 2
        ).sum(1).mean()
        axis = torch.linspace(-8, 8, 41)
        grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
        log_p = gmm.log_prob(grid)
        far = grid[log_p < log_p.max() - 30]  # far from both modes
        err_far = ((net(far, zero[: len(far)]) - gmm.score(far)) ** 2).sum(1).mean() / (
            gmm.score(far) ** 2
        ).sum(1).mean()
    return near.item(), err_far.item()


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind, steps, near_max, ratio_min", [("ssm", 2000, 0.05, 5.0), ("dsm", 3000, 0.15, 2.5)]
)
def test_fig2_score_is_accurate_near_modes_and_inaccurate_far_away(
    kind: str, steps: int, near_max: float, ratio_min: float
) -> None:
    near, far = _relative_errors(_train(kind, steps))
    assert near < near_max
    assert far > ratio_min * near and far > 0.1
