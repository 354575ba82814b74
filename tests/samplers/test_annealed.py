"""Annealed Langevin dynamics, Algorithm 1 (samplers/annealed.py)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

import ncsn
from ncsn.samplers import AnnealedLangevin, Langevin, StepInfo, langevin_step


def _model(x: Tensor, sigma: Tensor) -> Tensor:
    """A smooth non-linear score model for equivalence tests."""
    return -torch.tanh(x) / sigma.reshape(-1, *([1] * (x.ndim - 1)))


@pytest.mark.parametrize("denoise", [False, True])
def test_annealed_langevin_equals_the_kernel_loop(denoise: bool) -> None:
    sigmas = ncsn.geometric_sigmas(1.0, 0.01, 5)
    sampler = AnnealedLangevin(sigmas, 2e-5, 4, denoise=denoise)
    x0 = torch.rand(3, 2, 4, 4)
    got = sampler(_model, x0, generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(1)
    x = x0
    for sigma in sigmas.tolist():
        alpha = 2e-5 * (sigma / sigmas[-1].item()) ** 2
        for _ in range(4):
            x = langevin_step(_model, x, sigma, alpha, generator=g)
    if denoise:
        x = x + sigmas[-1].item() ** 2 * _model(x, sigmas[-1].expand(3))
    assert torch.equal(got, x)


def test_annealed_step_sizes_are_twice_the_official_ones() -> None:
    sigmas = ncsn.geometric_sigmas(1.0, 0.01, 10)
    sampler = AnnealedLangevin(sigmas, 2 * 2e-5, 100)
    official = [2e-5 * (s / sigmas[-1].item()) ** 2 for s in sigmas.tolist()]
    assert sampler.step_sizes == pytest.approx([2 * s for s in official], rel=1e-12)
    # spec §1.6 table: step_size 0.2 at level 0, 2e-5 at level 9 (code convention)
    assert sampler.step_sizes[0] / 2 == pytest.approx(0.2, rel=1e-5)


def test_sampler_builds_no_autograd_graph() -> None:
    net = ncsn.nets.ScoreMLP(2, hidden=8)
    seen: list[bool] = []

    def model(x: Tensor, s: Tensor) -> Tensor:
        seen.append(torch.is_grad_enabled())
        return net(x, s)

    out = AnnealedLangevin([1.0, 0.1], 0.01, 3)(model, torch.rand(4, 2))
    assert not out.requires_grad and seen and not any(seen)


def test_callback_sees_every_step() -> None:
    sampler = AnnealedLangevin([1.0, 0.5], 0.1, 3, denoise=True)
    infos: list[StepInfo] = []
    out = sampler(
        _model, torch.rand(2, 2), callback=lambda i: infos.append(i._replace(x=i.x.clone()))
    )
    assert [(i.level, i.step) for i in infos] == [
        (0, 0),
        (0, 1),
        (0, 2),
        (1, 0),
        (1, 1),
        (1, 2),
        (1, 3),
    ]
    assert infos[0].sigma == 1.0 and infos[0].step_size == pytest.approx(0.1 * 4)
    assert infos[3].step_size == pytest.approx(0.1)
    assert torch.equal(infos[-1].x, out)


def test_paper_fig3_annealing_recovers_mode_weights_and_plain_langevin_does_not() -> None:
    """Fig. 3 / App. B.1: 1280 chains from U[−8, 8]², exact scores, ε = 0.1."""
    gmm = ncsn.toy.paper_mixture()
    exact = gmm.score_model()
    g = torch.Generator().manual_seed(4)
    x0 = ncsn.samplers.uniform_init((1280, 2), low=-8, high=8, generator=g)
    plain = Langevin(0.0, 0.1, 1000)(exact, x0, generator=g)
    annealed = AnnealedLangevin(ncsn.geometric_sigmas(20.0, 1.0, 10), 0.1, 100)(
        exact, x0, generator=g
    )
    se = math.sqrt(0.8 * 0.2 / 1280)
    w_annealed = (gmm.component_posterior(annealed)[:, 1]).mean().item()
    w_plain = (gmm.component_posterior(plain)[:, 1]).mean().item()
    assert abs(w_annealed - 0.8) < 4 * se
    assert abs(w_plain - 0.8) > 0.1


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: AnnealedLangevin([1.0, 1.0], 0.1, 3), "strictly decreasing"),
        (lambda: AnnealedLangevin([0.5, 1.0], 0.1, 3), "strictly decreasing"),
        (lambda: AnnealedLangevin([], 0.1, 3), "at least one level"),
        (lambda: AnnealedLangevin(torch.ones(2, 2), 0.1, 3), r"1-D; got shape \(2, 2\)"),
        (lambda: AnnealedLangevin([1.0, float("nan")], 0.1, 3), "finite"),
        (lambda: AnnealedLangevin([1.0, -0.1], 0.1, 3), "positive"),
        (
            lambda: AnnealedLangevin([1.0, 0.1], 0.0, 3),
            "step_size must be positive and finite; got step_size=0.0",
        ),
        (lambda: AnnealedLangevin([1.0, 0.1], -1e-3, 3), "step_size=-0.001"),
        (lambda: AnnealedLangevin([1.0, 0.1], float("inf"), 3), "step_size=inf"),
        (
            lambda: AnnealedLangevin([1.0, 0.1], 0.1, 0),
            "steps_per_level must be >= 1; got steps_per_level=0",
        ),
    ],
)
def test_annealed_langevin_construction_errors(make, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match):
        make()


def test_sampler_call_errors() -> None:
    sampler = AnnealedLangevin([1.0, 0.1], 0.1, 2)
    with pytest.raises(ValueError, match="batch dimension"):
        sampler(_model, torch.tensor(0.5))
    with pytest.raises(ValueError, match="NaN or infinite"):
        sampler(_model, torch.tensor([[0.5, float("nan")]]))
    with pytest.raises(ValueError, match="generator is on device cpu but x is on device meta"):
        sampler(_model, torch.empty(2, 2, device="meta"), generator=torch.Generator())
    with pytest.raises(FloatingPointError, match="non-finite"):
        AnnealedLangevin([1.0, 0.1], 1e3, 50)(lambda x, s: x**3, torch.rand(4, 2) + 2)
    with pytest.raises(ValueError, match=r"step_size must be positive"):
        langevin_step(_model, torch.rand(2, 2), 1.0, 0.0)


def test_a_grid_ending_in_zero_is_refused_naming_denoise() -> None:
    """k-diffusion's grids end in 0 (a last step to σ = 0): here that step is denoise=True."""
    with pytest.raises(
        ValueError,
        match=r"sigmas must be positive; got \[1\.0, 0\.5, 0\.0\]; "
        r"a trailing 0 .* pass denoise=True",
    ):
        AnnealedLangevin([1.0, 0.5, 0.0], 0.1, 2)
    with pytest.raises(ValueError, match=r"sigmas must be positive; got \[1\.0, 0\.0, 0\.5\]$"):
        AnnealedLangevin([1.0, 0.0, 0.5], 0.1, 2)  # not a trailing 0: no advice about one
