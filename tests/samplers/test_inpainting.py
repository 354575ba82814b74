"""Inpainting, Algorithm 2, as a step hook for every sampler (samplers/inpainting.py): the noisy\nknown entries, the exact Gaussian conditional, and bad masks and starts."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

import ncsn
from contracts import gaussian_score
from ncsn.samplers import (
    AnnealedLangevin,
    ConsistentAnnealedSampling,
    Langevin,
    PredictorCorrector,
    ProbabilityFlowODE,
    StepInfo,
)


def _model(x: Tensor, sigma: Tensor) -> Tensor:
    """A smooth non-linear score model for equivalence tests."""
    return -torch.tanh(x) / sigma.reshape(-1, *([1] * (x.ndim - 1)))


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


@pytest.mark.parametrize(
    "sampler",
    [
        ConsistentAnnealedSampling([1.0, 0.5, 0.25], eta=0.6, denoise=True),
        PredictorCorrector([1.0, 0.5, 0.25]),
        ProbabilityFlowODE([1.0, 0.5, 0.25], denoise=True),
    ],
    ids=["cas", "pc", "ode"],
)
def test_inpainting_works_with_every_new_sampler(sampler: ncsn.Sampler) -> None:
    x = torch.rand(2, 1, 4, 4)
    mask = ncsn.samplers.inpainting_mask("right_half", x.shape)
    out = ncsn.samplers.inpaint(
        sampler, _model, x, mask, generator=torch.Generator().manual_seed(0)
    )
    assert torch.equal(out[mask], x[mask])  # the denoising step ends at σ = 0: known entries exact
    assert not torch.equal(out[~mask], x[~mask])


# ---------------------------------------------------------------- bad input
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
    with pytest.raises(TypeError, match="sampler must be a Sampler; got <object"):
        ncsn.samplers.inpaint(object(), _model, x, torch.zeros(4, 4))  # type: ignore[arg-type]

    def no_hook(model, x0, *, generator=None, callback=None):  # type: ignore[no-untyped-def]
        return x0

    # hook= is part of the Sampler protocol: a sampler without it is a type error, and Python's
    # own TypeError names the keyword (no signature inspection)
    with pytest.raises(TypeError, match="unexpected keyword argument 'hook'"):
        ncsn.samplers.inpaint(no_hook, _model, x, torch.zeros(4, 4))


X = torch.rand(4, 2)
SIGMAS = ncsn.geometric_sigmas(1.0, 0.1, 3)
AL = ncsn.samplers.AnnealedLangevin(SIGMAS, 0.01, 1)
OBS = torch.rand(4, 2)
KNOWN_LEFT = torch.tensor([1, 0])


def _meta(shape: tuple[int, ...] = (4, 2)) -> Tensor:
    """A tensor on another device than the CPU (meta: shapes, no values)."""
    return torch.zeros(shape, device="meta")


AUDIT_CASES: list[tuple[str, Callable[[], object], type[Exception], str]] = [
    (
        "inpaint/mask as a string",
        lambda: ncsn.samplers.inpaint(AL, gaussian_score, OBS, "right_half"),
        TypeError,  # type: ignore[arg-type]
        r"mask must be a tensor of bools or 0/1 values; got str 'right_half'",
    ),
    (
        "inpaint/mask None",
        lambda: ncsn.samplers.inpaint(AL, gaussian_score, OBS, None),
        TypeError,  # type: ignore[arg-type]
        r"mask must be a tensor of bools or 0/1 values; got NoneType None",
    ),
    (
        "inpaint/complex mask",
        lambda: ncsn.samplers.inpaint(AL, gaussian_score, OBS, KNOWN_LEFT.to(torch.complex64)),
        TypeError,
        r"mask must hold bools or real 0/1 values; got dtype torch\.complex64",
    ),
    (
        "inpaint/mask on another device",
        lambda: ncsn.samplers.inpaint(AL, gaussian_score, OBS, KNOWN_LEFT.to("meta")),
        ValueError,
        r"mask is on device meta but x is on device cpu",
    ),
    (
        "inpaint/init on another device",
        lambda: ncsn.samplers.inpaint(AL, gaussian_score, OBS, KNOWN_LEFT, init=_meta()),
        ValueError,
        r"init is on device meta but x is on device cpu",
    ),
    (
        "inpaint/integer init",
        lambda: ncsn.samplers.inpaint(
            AL, gaussian_score, OBS, KNOWN_LEFT, init=torch.zeros(4, 2, dtype=torch.int64)
        ),
        TypeError,
        r"init must be a floating-point tensor; got dtype torch\.int64",
    ),
    (
        "Inpainting hook/x of another shape",
        lambda: ncsn.samplers.Inpainting(OBS, KNOWN_LEFT)(torch.zeros(3, 2), 0.5),
        ValueError,
        r"x must have the shape of the observations \(4, 2\); got \(3, 2\)",
    ),
]


@pytest.mark.parametrize(
    ("call", "error", "match"), [c[1:] for c in AUDIT_CASES], ids=[c[0] for c in AUDIT_CASES]
)
def test_audited_bad_input_raises_naming_the_argument(
    call: Callable[[], object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        call()
