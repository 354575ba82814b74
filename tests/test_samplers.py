"""Samplers against their kernel loops, the official update rule and exact stationary laws."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor
from torch.overrides import TorchFunctionMode

import ncsn
from ncsn.samplers import AnnealedLangevin, Langevin, StepInfo, langevin_step


def _model(x: Tensor, sigma: Tensor) -> Tensor:
    """A smooth non-linear score model for equivalence tests."""
    return -torch.tanh(x) / sigma.reshape(-1, *([1] * (x.ndim - 1)))


def test_langevin_equals_the_kernel_loop() -> None:
    x0 = torch.rand(4, 3, 5, 5)
    got = Langevin(0.3, 0.01, 7)(_model, x0, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    x = x0
    for _ in range(7):
        x = langevin_step(_model, x, 0.3, 0.01, generator=g)
    assert torch.equal(got, x)


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


def test_one_step_equals_the_official_update_with_step_size_twice_step_lr() -> None:
    """Official image code: x + step_lr·s + sqrt(2·step_lr)·z (spec §1.5)."""
    step_lr = 2e-5 * (1.0 / 0.01) ** 2  # level 0 of the official schedule
    g = torch.Generator().manual_seed(2)
    x = torch.rand(8, 3, 32, 32, generator=g)
    z = torch.randn(x.shape, generator=g)
    sigma = torch.full((8,), 1.0)
    official = x + step_lr * _model(x, sigma) + z * math.sqrt(step_lr * 2)
    ours = langevin_step(_model, x, sigma, 2 * step_lr, noise=z)
    assert torch.equal(ours, official)


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


class _SyncWatch(TorchFunctionMode):
    """Records host-synchronising tensor methods called between the first and last model call."""

    SYNCS = frozenset(
        {"item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "nonzero"}
    )

    def __init__(self) -> None:
        super().__init__()
        self.armed = False
        self.syncs: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        name = getattr(func, "__name__", "")
        if self.armed and name in self.SYNCS:
            self.syncs.append(name)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize(
    "make",
    [
        lambda: AnnealedLangevin([1.0, 0.5, 0.1], 0.01, 5, denoise=True),
        lambda: Langevin(0.1, 0.01, 10),
    ],
)
def test_sampling_loop_makes_no_host_synchronisation(make) -> None:
    sampler = make()
    watch = _SyncWatch()
    calls = 0

    def model(x: Tensor, s: Tensor) -> Tensor:
        nonlocal calls
        calls += 1
        watch.armed = calls < sampler.num_model_calls  # armed from the first call to the last
        return -x * s.reshape(-1, 1)

    with watch:
        sampler(model, torch.rand(4, 3))
    assert calls == sampler.num_model_calls
    assert watch.syncs == []


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


def test_langevin_reaches_the_exact_gaussian_stationary_law() -> None:
    """Target N(μ, s²I) with its exact score; the discretised chain's stationary law is known exactly.

    x' = x + (α/2)(μ − x)/s² + √α z has stationary mean μ and variance α / (1 − (1 − α/(2s²))²).
    """
    mu, s, alpha, n = 1.5, 0.7, 0.05, 8000
    score = lambda x, sig: (mu - x) / s**2  # noqa: E731
    g = torch.Generator().manual_seed(3)
    x0 = ncsn.samplers.uniform_init((n, 2), low=-3, high=3, generator=g, dtype=torch.float64)
    x = Langevin(0.0, alpha, 600)(score, x0, generator=g).flatten()
    var_exact = alpha / (1 - (1 - alpha / (2 * s**2)) ** 2)
    m = x.numel()
    assert abs(x.mean().item() - mu) < 4 * math.sqrt(var_exact / m)
    assert abs(x.var().item() - var_exact) < 4 * var_exact * math.sqrt(2 / (m - 1))


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


# ---------------------------------------------------------------- inpainting (Algorithm 2)
def test_inpainting_reimposes_the_noisy_known_entries_after_every_step() -> None:
    sigmas = torch.tensor([1.0, 0.5])
    sampler = AnnealedLangevin(sigmas, 0.01, 3)
    x = torch.rand(2, 1, 4, 4)
    mask = ncsn.samplers.inpainting_mask("right_half", x.shape)
    seen: list[Tensor] = []
    ncsn.samplers.inpaint(
        sampler,
        _model,
        x,
        mask,
        generator=torch.Generator().manual_seed(5),
        callback=lambda i: seen.append(i.x.clone()),
    )
    # within a level the known entries stay fixed; they carry N(0, σ_i²) noise around x
    for level in range(2):
        steps = seen[3 * level : 3 * level + 3]
        for s in steps[1:]:
            assert torch.equal(s[mask], steps[0][mask])
    assert not torch.equal(seen[0][mask], seen[3][mask])
    assert (seen[-1][mask] - x[mask]).abs().max() < 0.5 * 5


def test_inpainting_samples_the_exact_gaussian_conditional() -> None:
    """A correlated 4-D Gaussian: inpainting coordinates 2, 3 given 0, 1 with exact scores."""
    torch.manual_seed(0)
    a = torch.randn(4, 4, dtype=torch.float64)
    cov = a @ a.T / 4 + 0.5 * torch.eye(4, dtype=torch.float64)
    gauss = ncsn.toy.Gaussian(torch.tensor([0.5, -1.0, 1.0, 0.0], dtype=torch.float64), cov)
    known = torch.tensor([True, True, False, False])
    values = torch.tensor([1.0, -0.5, 0.0, 0.0], dtype=torch.float64)
    n = 6000
    x = values.expand(n, 4).clone()
    g = torch.Generator().manual_seed(6)
    # plain Langevin at σ = 0 targets the conditional exactly, up to the known discretisation bias
    sampler = Langevin(0.0, 2e-2, 2000)
    out = ncsn.samplers.inpaint(sampler, gauss.score_model(), x, known, generator=g)[:, 2:]
    mean, ccov = gauss.conditional(known, values)
    # the discretised chain's exact stationary covariance: α (I − A²)⁻¹ with A = I − (α/2) P_uu
    alpha = 2e-2
    prec_uu = torch.linalg.inv(cov)[2:, 2:]
    amat = torch.eye(2, dtype=torch.float64) - alpha / 2 * prec_uu
    stat_cov = alpha * torch.linalg.inv(torch.eye(2, dtype=torch.float64) - amat @ amat)
    torch.testing.assert_close(torch.linalg.inv(prec_uu), ccov)  # conditional cov = P_uu⁻¹
    emp_mean, emp_cov = out.mean(0), torch.cov(out.T)
    se_mean = (stat_cov.diagonal() / n).sqrt()
    assert ((emp_mean - mean).abs() < 4 * se_mean).all(), (emp_mean, mean)
    se_cov = ((stat_cov.diagonal()[:, None] * stat_cov.diagonal()[None] + stat_cov**2) / n).sqrt()
    assert ((emp_cov - stat_cov).abs() < 4 * se_cov).all(), (emp_cov, stat_cov)


def test_annealed_inpainting_approaches_the_conditional() -> None:
    torch.manual_seed(1)
    a = torch.randn(4, 4, dtype=torch.float64)
    cov = a @ a.T / 4 + 0.5 * torch.eye(4, dtype=torch.float64)
    gauss = ncsn.toy.Gaussian(torch.zeros(4, dtype=torch.float64), cov)
    known = torch.tensor([[True, False, True, False]])
    values = torch.tensor([0.7, 0.0, -0.3, 0.0], dtype=torch.float64)
    n = 4000
    sampler = AnnealedLangevin(ncsn.geometric_sigmas(3.0, 0.01, 8), 1e-4, 300)
    out = ncsn.samplers.inpaint(
        sampler,
        gauss.score_model(),
        values.expand(n, 4).clone(),
        known,
        generator=torch.Generator().manual_seed(7),
    )[:, [1, 3]]
    mean, ccov = gauss.conditional(known[0], values)
    se_mean = (ccov.diagonal() / n).sqrt()
    assert ((out.mean(0) - mean).abs() < 4 * se_mean + 0.01).all()
    assert ((torch.cov(out.T) - ccov).abs() < 0.1 * ccov.diagonal().max()).all()


def test_inpainting_errors() -> None:
    sampler = AnnealedLangevin([1.0, 0.1], 0.01, 2)
    x = torch.rand(2, 1, 4, 4)
    with pytest.raises(
        ValueError, match=r"mask of shape \(3, 4\) cannot broadcast to x of shape \(2, 1, 4, 4\)"
    ):
        ncsn.samplers.inpaint(sampler, _model, x, torch.ones(3, 4))
    with pytest.raises(ValueError, match="mask must hold only 0 and 1"):
        ncsn.samplers.inpaint(sampler, _model, x, torch.full((4, 4), 0.5))
    with pytest.raises(ValueError, match="nothing to inpaint"):
        ncsn.samplers.inpaint(sampler, _model, x, torch.ones(4, 4))
    with pytest.raises(TypeError, match="has no inpaint method"):
        ncsn.samplers.inpaint(object(), _model, x, torch.zeros(4, 4))  # type: ignore[arg-type]


def test_mask_presets() -> None:
    m = ncsn.samplers.inpainting_mask("centre_box", (2, 3, 8, 8), fraction=0.5)
    assert m.shape == (2, 3, 8, 8) and (~m).sum() == 2 * 3 * 16 and not m[0, 0, 3, 3]
    assert ncsn.samplers.inpainting_mask("left_half", (1, 4, 4))[0, :, :2].logical_not().all()
    assert ncsn.samplers.inpainting_mask("top_half", (1, 4, 4))[0, :2].logical_not().all()
    assert ncsn.samplers.inpainting_mask("bottom_half", (1, 4, 4))[0, 2:].logical_not().all()
    r = ncsn.samplers.inpainting_mask(
        "random", (64, 3, 16, 16), fraction=0.3, generator=torch.Generator().manual_seed(0)
    )
    assert torch.equal(r[:, 0], r[:, 2])  # shared across channels
    frac = (~r[:, 0]).double().mean().item()
    assert abs(frac - 0.3) < 4 * math.sqrt(0.3 * 0.7 / (64 * 256))
    assert not torch.equal(r[0], r[1])  # per example
    with pytest.raises(ValueError, match="preset must be one of"):
        ncsn.samplers.inpainting_mask("diagonal", (4, 4))
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\); got fraction=1.5"):
        ncsn.samplers.inpainting_mask("random", (4, 4), fraction=1.5)


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
        (lambda: Langevin(0.1, 0.0, 3), "step_size=0.0"),
        (lambda: Langevin(0.1, float("nan"), 3), "step_size=nan"),
        (lambda: Langevin(0.1, 0.1, 0), "num_steps must be >= 1; got num_steps=0"),
        (lambda: Langevin(-0.1, 0.1, 3), "sigma must be non-negative; got sigma=-0.1"),
    ],
)
def test_sampler_construction_errors(make, match: str) -> None:
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


def test_initialisers() -> None:
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    u = ncsn.samplers.uniform_init((1000, 2), low=-8, high=8, generator=g())
    assert u.shape == (1000, 2) and u.min() >= -8 and u.max() <= 8 and u.dtype == torch.float32
    assert torch.equal(u, ncsn.samplers.uniform_init((1000, 2), low=-8, high=8, generator=g()))
    n = ncsn.samplers.gaussian_init((20000,), sigma=3.0, generator=g(), dtype=torch.float64)
    assert abs(n.std().item() - 3.0) < 4 * 3.0 / math.sqrt(2 * 20000)
    with pytest.raises(ValueError, match="low must be smaller than high"):
        ncsn.samplers.uniform_init((2, 2), low=1.0, high=1.0)
    with pytest.raises(ValueError, match="sigma must be positive and finite; got sigma=0"):
        ncsn.samplers.gaussian_init((2, 2), sigma=0)
    with pytest.raises(ValueError, match="shape must be a non-empty sequence"):
        ncsn.samplers.uniform_init((0, 2))
