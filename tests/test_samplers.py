"""Samplers against their kernel loops, the official update rule and exact stationary laws."""

from __future__ import annotations

import itertools
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
        lambda: ncsn.samplers.ConsistentAnnealedSampling([1.0, 0.5, 0.1], eta=0.9, denoise=True),
        lambda: ncsn.samplers.PredictorCorrector([1.0, 0.5, 0.1], corrector_steps=2),
        lambda: ncsn.samplers.ProbabilityFlowODE([1.0, 0.5, 0.1], denoise=True),
    ],
    ids=["annealed", "langevin", "cas", "pc", "ode"],
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


def _annealed_inpainting_law(
    gauss: ncsn.toy.Gaussian, sampler: AnnealedLangevin, known: Tensor, values: Tensor
) -> tuple[Tensor, Tensor]:
    """Exact mean and covariance of the unknown coordinates after annealed inpainting.

    With the exact score of N(μ, Σ) every step is linear: with P = (Σ + σ²I)⁻¹ and the known
    entries y = v + σz̃ (z̃ drawn once per level), x_u ← A x_u + B z̃ + c + √α z with
    A = I − (α/2)P_uu, B = −(α/2)σP_uk, c = (α/2)(P_uu μ_u − P_uk(v − μ_k)). The moments of
    (x_u, z̃) propagate exactly from the U[0, 1] start (mean ½, variance 1/12); D = Cov(x_u, z̃)
    restarts at 0 with each level's fresh z̃.
    """
    cov, mu = gauss.cov, gauss.mean
    u, k = ~known, known
    nu, nk = int(u.sum()), int(k.sum())
    eye = torch.eye(nu, dtype=torch.float64)
    m = torch.full((nu,), 0.5, dtype=torch.float64)
    c = eye / 12
    for sigma, alpha in zip(sampler.sigmas.tolist(), sampler.step_sizes, strict=True):
        prec = torch.linalg.inv(cov + sigma**2 * torch.eye(cov.shape[0], dtype=torch.float64))
        p_uu, p_uk = prec[u][:, u], prec[u][:, k]
        a = eye - alpha / 2 * p_uu
        b = -alpha / 2 * sigma * p_uk
        const = alpha / 2 * (p_uu @ mu[u] - p_uk @ (values[k] - mu[k]))
        d = torch.zeros(nu, nk, dtype=torch.float64)
        for _ in range(sampler.steps_per_level):
            m = a @ m + const
            c = a @ c @ a.T + a @ d @ b.T + b @ d.T @ a.T + b @ b.T + alpha * eye
            d = a @ d + b
    return m, c


def test_annealed_inpainting_approaches_the_conditional() -> None:
    torch.manual_seed(1)
    a = torch.randn(4, 4, dtype=torch.float64)
    cov = a @ a.T / 4 + 0.5 * torch.eye(4, dtype=torch.float64)
    gauss = ncsn.toy.Gaussian(torch.zeros(4, dtype=torch.float64), cov)
    known = torch.tensor([True, False, True, False])
    values = torch.tensor([0.7, 0.0, -0.3, 0.0], dtype=torch.float64)
    n = 4000
    sampler = AnnealedLangevin(ncsn.geometric_sigmas(3.0, 0.01, 8), 1e-4, 300)
    out = ncsn.samplers.inpaint(
        sampler,
        gauss.score_model(),
        values.expand(n, 4).clone(),
        known[None],
        generator=torch.Generator().manual_seed(7),
    )[:, [1, 3]]
    # the chain's exact law, which the samples must match within their standard errors
    law_mean, law_cov = _annealed_inpainting_law(gauss, sampler, known, values)
    se_mean = (law_cov.diagonal() / n).sqrt()
    assert ((out.mean(0) - law_mean).abs() < 4 * se_mean).all(), (out.mean(0), law_mean)
    diag = law_cov.diagonal()
    se_cov = ((diag[:, None] * diag[None] + law_cov**2) / n).sqrt()
    assert ((torch.cov(out.T) - law_cov).abs() < 4 * se_cov).all(), (torch.cov(out.T), law_cov)
    # and that law is the conditional up to the schedule's bias (no sampling error here):
    # σ_L = 0.01 and a finite number of steps leave it within 1.5% of the conditional
    mean, ccov = gauss.conditional(known, values)
    scale = ccov.diagonal().max()
    assert ((law_mean - mean).abs() < 0.015 * scale.sqrt()).all(), (law_mean, mean)
    assert ((law_cov - ccov).abs() < 0.015 * scale).all(), (law_cov, ccov)


def test_inpainting_noise_on_known_entries_is_sigma_times_one_draw_per_level() -> None:
    """After each level's first step the known entries are x + σ_i·z̃_i, z̃_i ~ N(0, I) drawn once
    per level (constant within it, fresh at the next): a 2σ_i or reused z̃ fails."""
    sigmas = [1.0, 0.5, 0.25]
    steps = 3
    sampler = AnnealedLangevin(sigmas, 0.01, steps)
    x = torch.rand(2000, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(20))
    mask = torch.tensor([True, True, False, False])
    seen: list[StepInfo] = []
    ncsn.samplers.inpaint(
        sampler,
        lambda xt, s: -xt,
        x,
        mask,
        generator=torch.Generator().manual_seed(21),
        callback=lambda i: seen.append(i._replace(x=i.x.clone())),
    )
    assert len(seen) == len(sigmas) * steps
    draws = []
    for level, sigma in enumerate(sigmas):
        infos = seen[level * steps : (level + 1) * steps]
        assert all(i.level == level and i.sigma == sigma for i in infos)
        for i in infos[1:]:
            assert torch.equal(i.x[:, mask], infos[0].x[:, mask])
        z = ((infos[0].x[:, mask] - x[:, mask]) / sigma).flatten()
        m = z.numel()
        assert abs(z.mean().item()) < 4 / math.sqrt(m)
        assert abs(z.std().item() - 1) < 4 / math.sqrt(2 * m)
        draws.append(z)
    for a, b in itertools.pairwise(draws):
        assert abs(torch.corrcoef(torch.stack([a, b]))[0, 1].item()) < 4 / math.sqrt(a.numel())


def test_langevin_inpainting_perturbs_known_entries_once_with_sigma() -> None:
    sigma = 0.3
    x = torch.rand(2000, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(22))
    mask = torch.tensor([False, True, True, False])
    out = ncsn.samplers.inpaint(
        Langevin(sigma, 0.01, 4),
        lambda xt, s: -xt,
        x,
        mask,
        generator=torch.Generator().manual_seed(23),
    )
    z = ((out[:, mask] - x[:, mask]) / sigma).flatten()
    assert abs(z.mean().item()) < 4 / math.sqrt(z.numel())
    assert abs(z.std().item() - 1) < 4 / math.sqrt(2 * z.numel())


@pytest.mark.parametrize(
    "sampler",
    [AnnealedLangevin([1.0, 0.1], 0.01, 3), AnnealedLangevin([1.0, 0.1], 0.01, 3, denoise=True)],
    ids=["annealed", "annealed_denoise"],
)
def test_inpainting_ignores_nan_placeholders_in_unknown_entries(sampler: AnnealedLangevin) -> None:
    x = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(24))
    mask = ncsn.samplers.inpainting_mask("right_half", x.shape)
    placeholders = x.masked_fill(~mask, float("nan"))
    inputs_finite: list[bool] = []

    def model(xt: Tensor, s: Tensor) -> Tensor:
        inputs_finite.append(bool(torch.isfinite(xt).all()))
        return _model(xt, s)

    g = lambda: torch.Generator().manual_seed(25)  # noqa: E731
    out = ncsn.samplers.inpaint(sampler, model, placeholders, mask, generator=g())
    assert torch.isfinite(out).all() and inputs_finite and all(inputs_finite)
    # the unknown entries' values never matter: the result equals that of zeros there
    zeros = x.masked_fill(~mask, 0.0)
    assert torch.equal(out, ncsn.samplers.inpaint(sampler, _model, zeros, mask, generator=g()))
    with pytest.raises(ValueError, match=r"x \(the observations\) contains NaN .* known entries"):
        ncsn.samplers.inpaint(sampler, _model, x.masked_fill(mask, float("nan")), mask)


def test_langevin_inpainting_ignores_nan_placeholders_in_unknown_entries() -> None:
    x = torch.rand(3, 4, generator=torch.Generator().manual_seed(26))
    mask = torch.tensor([True, False, True, False])
    out = ncsn.samplers.inpaint(
        Langevin(0.1, 0.01, 3), _model, x.masked_fill(~mask, float("nan")), mask
    )
    assert torch.isfinite(out).all()


class _CountingScore:
    """The score of N(0, I), counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, xt: Tensor, s: Tensor) -> Tensor:
        self.calls += 1
        return -xt


def test_inpainting_checks_init_before_the_chain_starts() -> None:
    model = _CountingScore()
    x = torch.rand(2, 4)
    mask = torch.tensor([True, True, False, False])
    bad = torch.rand(2, 4)
    bad[1, 3] = float("nan")
    for sampler in (AnnealedLangevin([1.0, 0.1], 0.01, 2), Langevin(0.1, 0.01, 2)):
        with pytest.raises(ValueError, match=r"init \(the starting point\) contains NaN"):
            ncsn.samplers.inpaint(sampler, model, x, mask, init=bad)
        with pytest.raises(TypeError, match=r"init must be a torch\.Tensor or None; got list"):
            ncsn.samplers.inpaint(sampler, model, x, mask, init=[[0.0] * 4] * 2)  # type: ignore[arg-type]
    assert model.calls == 0
    # a NaN init at a known entry is ignored (known entries are overwritten before the first step)
    ok = torch.rand(2, 4)
    ok[0, 0] = float("nan")
    out = ncsn.samplers.inpaint(AnnealedLangevin([1.0, 0.1], 0.01, 2), model, x, mask, init=ok)
    assert torch.isfinite(out).all()


def test_inpainting_known_entries_are_noisy_without_denoise_and_clean_with_it() -> None:
    x = torch.rand(4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(27))
    mask = torch.tensor([True, False, True, False, True, False])
    sigmas = [1.0, 0.2]
    g = lambda: torch.Generator().manual_seed(28)  # noqa: E731
    noisy = ncsn.samplers.inpaint(AnnealedLangevin(sigmas, 0.01, 2), _model, x, mask, generator=g())
    clean = ncsn.samplers.inpaint(
        AnnealedLangevin(sigmas, 0.01, 2, denoise=True), _model, x, mask, generator=g()
    )
    assert torch.equal(clean[:, mask], x[:, mask])
    residual = noisy[:, mask] - x[:, mask]
    assert residual.abs().min() > 0 and residual.abs().max() < 0.2 * 6  # σ_L·z̃, |z̃| < 6


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
    with pytest.raises(TypeError, match="does not accept hook="):
        ncsn.samplers.inpaint(object(), _model, x, torch.zeros(4, 4))  # type: ignore[arg-type]

    def no_hook(model, x0, *, generator=None, callback=None):  # type: ignore[no-untyped-def]
        return x0

    with pytest.raises(TypeError, match="does not accept hook="):
        ncsn.samplers.inpaint(no_hook, _model, x, torch.zeros(4, 4))


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
    with pytest.raises(
        ValueError,
        match=r"shape must be a sequence of at least 2 positive ints ending with \(H, W\); got shape=\(4,\)",
    ):
        ncsn.samplers.inpainting_mask("random", (4,))
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\); got fraction=1.5"):
        ncsn.samplers.inpainting_mask("random", (4, 4), fraction=1.5)


def _random_mask(shape: tuple[int, ...], seed: int = 0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return ncsn.samplers.inpainting_mask("random", shape, fraction=0.3, generator=g)


def _missing_fraction_is(mask: Tensor, fraction: float) -> bool:
    missing = (~mask).double()
    return abs(missing.mean().item() - fraction) < 4 * math.sqrt(
        fraction * (1 - fraction) / mask.numel()
    )


def test_random_mask_of_an_image_without_channels() -> None:
    m = _random_mask((64, 48))
    assert m.shape == (64, 48) and m.dtype == torch.bool and _missing_fraction_is(m, 0.3)


def test_random_mask_of_one_image_is_shared_across_channels() -> None:
    m = _random_mask((3, 64, 48))
    assert m.shape == (3, 64, 48)
    assert torch.equal(m[0], m[1]) and torch.equal(m[0], m[2]) and _missing_fraction_is(m[0], 0.3)


@pytest.mark.parametrize("shape", [(6, 3, 16, 16), (6, 2, 4, 8, 8)], ids=["4d", "5d"])
def test_random_mask_of_a_batch_is_per_example_and_shared_across_channels(
    shape: tuple[int, ...],
) -> None:
    m = _random_mask(shape)
    assert m.shape == shape
    for c in range(1, shape[1]):
        assert torch.equal(m[:, c], m[:, 0])
    for b in range(1, shape[0]):
        assert not torch.equal(m[b], m[0])
    if len(shape) == 5:  # every spatial position is its own pixel
        assert not torch.equal(m[:, :, 0], m[:, :, 1])
    assert _missing_fraction_is(m[:, 0], 0.3)
    assert torch.equal(m, _random_mask(shape))  # reproducible from the generator


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


@pytest.mark.parametrize(
    "sigma, shown",
    [
        (-1.0, r"sigma=-1\.0"),
        (float("nan"), r"sigma=nan"),
        (float("inf"), r"sigma=inf"),
        (torch.tensor([0.5, -0.1]), r"sigma=\[0\.5, -0\.1"),
    ],
)
def test_langevin_step_rejects_negative_or_non_finite_sigma(
    sigma: float | Tensor, shown: str
) -> None:
    with pytest.raises(ValueError, match=rf"sigma must be non-negative and finite; got {shown}"):
        langevin_step(_model, torch.rand(2, 2), sigma, 0.1)


def test_langevin_step_accepts_sigma_zero() -> None:
    x = torch.rand(3, 2, dtype=torch.float64)
    z = torch.randn(3, 2, dtype=torch.float64)
    out = langevin_step(lambda xt, s: -xt, x, 0.0, 0.04, noise=z)
    assert torch.equal(out, x + (-x) * 0.02 + z * 0.2)


def test_langevin_step_checks_noise_before_calling_the_model() -> None:
    model = _CountingScore()
    with pytest.raises(ValueError, match=r"noise must have the shape of x \(2, 3\); got \(2, 2\)"):
        langevin_step(model, torch.rand(2, 3), 0.1, 0.1, noise=torch.zeros(2, 2))
    with pytest.raises(TypeError, match=r"noise must be a torch\.Tensor or None; got list"):
        langevin_step(model, torch.rand(2, 3), 0.1, 0.1, noise=[0.0])  # type: ignore[arg-type]
    assert model.calls == 0


def test_langevin_step_casts_noise_to_the_dtype_of_x() -> None:
    x = torch.rand(4, 3)
    z64 = torch.randn(4, 3, dtype=torch.float64)
    out = langevin_step(_model, x, 0.5, 0.01, noise=z64)
    assert out.dtype == torch.float32
    assert torch.equal(out, langevin_step(_model, x, 0.5, 0.01, noise=z64.float()))


def test_samplers_compare_and_hash_by_their_settings() -> None:
    a = AnnealedLangevin([1.0, 0.5], 0.1, 3)
    same = AnnealedLangevin(torch.tensor([1.0, 0.5], dtype=torch.float64), 0.1, 3)
    assert a == same and hash(a) == hash(same) and len({a, same}) == 1
    assert a != AnnealedLangevin([1.0, 0.25], 0.1, 3)
    assert a != AnnealedLangevin([1.0, 0.5, 0.25], 0.1, 3)
    assert a != AnnealedLangevin([1.0, 0.5], 0.2, 3)
    assert a != AnnealedLangevin([1.0, 0.5], 0.1, 4)
    assert a != AnnealedLangevin([1.0, 0.5], 0.1, 3, denoise=True)
    assert a != Langevin(0.5, 0.1, 3) and a != "AnnealedLangevin"
    b = Langevin(0.5, 0.1, 3)
    assert b == Langevin(0.5, 0.1, 3) and hash(b) == hash(Langevin(0.5, 0.1, 3))
    assert b != Langevin(0.5, 0.1, 4) and b != Langevin(0.0, 0.1, 3)


def test_numpy_scalars_are_accepted_as_numbers() -> None:
    import numpy as np

    a = AnnealedLangevin(np.array([1.0, 0.5]), np.float32(0.125), np.int64(3))
    assert a == AnnealedLangevin([1.0, 0.5], 0.125, 3)
    assert type(a.step_size) is float and type(a.steps_per_level) is int
    b = Langevin(np.float64(0.5), np.float32(0.125), np.int32(3))
    assert b == Langevin(0.5, 0.125, 3) and hash(b) == hash(Langevin(0.5, 0.125, 3))
    x = ncsn.samplers.uniform_init((np.int64(2), 3), low=np.float32(-1), high=np.int64(1))
    assert x.shape == (2, 3)
    assert ncsn.samplers.gaussian_init((2,), sigma=np.float32(2.0)).shape == (2,)
    assert langevin_step(_model, torch.rand(2, 2), np.float64(0.5), np.float32(0.1)).shape == (2, 2)
    mask = ncsn.samplers.inpainting_mask("random", (np.int64(4), 4), fraction=np.float64(0.5))
    assert mask.shape == (4, 4)


@pytest.mark.parametrize("bad", [True, "0.1", None, torch.tensor(0.1)])
def test_non_numbers_are_rejected_with_a_type_error(bad: object) -> None:
    import numpy as np

    with pytest.raises(TypeError, match="step_size must be a real number; got step_size="):
        AnnealedLangevin([1.0], bad, 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="num_steps must be an int; got num_steps="):
        Langevin(0.1, 0.1, bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="steps_per_level must be an int; got steps_per_level="):
        AnnealedLangevin([1.0], 0.1, np.float64(3.0))  # type: ignore[arg-type]
