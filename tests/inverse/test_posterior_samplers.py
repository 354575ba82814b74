"""The posterior samplers as Samplers (inverse/langevin.py, snips.py, ddrm.py, dps.py,
measurement.py): every one keeps shapes and dtypes, is reproducible from its generator, leaves x
unchanged, makes the model calls it says, is the loop over its kernel, and refuses bad settings
naming them; the measurement term, the projection (inpainting is its mask case, draw for draw),
DDRM's and DPS's steps on a point mass, and the restoration metrics (SSIM against scikit-image)."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

import ncsn
from ncsn import inverse
from ncsn.inverse import (
    DDRM,
    DPS,
    SNIPS,
    Blur,
    Downsample,
    Identity,
    Mask,
    Measurement,
    PosteriorLangevin,
    gaussian_kernel,
)
from ncsn.samplers import StepInfo

SHAPE = (1, 4, 4)
SIGMAS = ncsn.geometric_sigmas(2.0, 0.05, 4, dtype=torch.float64)


def _model(x: Tensor, sigma: Tensor) -> Tensor:
    """A smooth non-linear score model."""
    return -torch.tanh(x - 0.5) / (1 + sigma.reshape(-1, *([1] * (x.ndim - 1))) ** 2)


def _measurement(noise_std: float = 0.1, dtype: torch.dtype = torch.float64) -> Measurement:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, *SHAPE, generator=g, dtype=dtype)
    return inverse.measure(Downsample(SHAPE, 2), x, noise_std, generator=g)


SAMPLERS: dict[str, Callable[[Measurement], ncsn.Sampler]] = {
    "posterior_langevin": lambda m: PosteriorLangevin(SIGMAS, 1e-3, 3, measurement=m),
    "posterior_langevin_denoise": lambda m: PosteriorLangevin(
        SIGMAS, 1e-3, 3, measurement=m, denoise=True
    ),
    "snips": lambda m: SNIPS(SIGMAS, 1e-3, 3, measurement=m),
    "ddrm": lambda m: DDRM(SIGMAS, measurement=m),
    "dps": lambda m: DPS(SIGMAS, measurement=m, zeta=0.5),
}
CALLS = {
    "posterior_langevin": 12,
    "posterior_langevin_denoise": 13,
    "snips": 12,
    "ddrm": 4,
    "dps": 4,
}


@pytest.mark.parametrize("name", SAMPLERS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sampler_contract(name: str, dtype: torch.dtype) -> None:
    m = _measurement(dtype=dtype)
    sampler = SAMPLERS[name](m)
    assert isinstance(sampler, ncsn.Sampler)
    x0 = sampler.start(generator=torch.Generator().manual_seed(1))  # type: ignore[attr-defined]
    assert x0.shape == (3, *SHAPE) and x0.dtype == dtype
    before = x0.clone()
    seen: list[StepInfo] = []
    calls = []

    def counted(x: Tensor, sigma: Tensor) -> Tensor:
        calls.append(1)
        return _model(x, sigma)

    a = sampler(counted, x0, generator=torch.Generator().manual_seed(2), callback=seen.append)
    b = sampler(_model, x0, generator=torch.Generator().manual_seed(2))
    assert a.shape == x0.shape and a.dtype == dtype and torch.isfinite(a).all()
    assert torch.equal(a, b) and torch.equal(x0, before)
    assert len(calls) == CALLS[name] == sampler.num_model_calls  # type: ignore[attr-defined]
    assert len(seen) == CALLS[name]
    assert not a.requires_grad


def test_loops_are_their_kernels() -> None:
    """Each configured sampler equals the hand-written loop over its public kernel."""
    m = _measurement()
    x0 = torch.rand(3, *SHAPE, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    levels = SIGMAS.tolist()
    nexts = [*levels[1:], 0.0]

    def run(sampler: ncsn.Sampler) -> Tensor:
        return sampler(_model, x0, generator=torch.Generator().manual_seed(4))

    g = torch.Generator().manual_seed(4)
    x = x0.clone()
    pl = PosteriorLangevin(SIGMAS, 1e-3, 2, measurement=m)
    for sigma, alpha in zip(levels, pl.step_sizes, strict=True):
        for _ in range(2):
            x = inverse.posterior_langevin_step(_model, x, sigma, alpha, m, generator=g)
    assert torch.equal(run(pl), x)

    g = torch.Generator().manual_seed(4)
    x = x0.clone()
    sn = SNIPS(SIGMAS, 1e-3, 2, measurement=m)
    for sigma, alpha in zip(levels, sn.step_sizes, strict=True):
        for _ in range(2):
            x = inverse.snips_step(_model, x, sigma, alpha, m, generator=g)
    assert torch.equal(run(sn), x)

    for cls, kernel in ((DDRM, inverse.ddrm_step), (DPS, inverse.dps_step)):
        g = torch.Generator().manual_seed(4)
        x = x0.clone()
        for sigma, nxt in zip(levels, nexts, strict=True):
            x = kernel(_model, x, sigma, nxt, m, generator=g)
        torch.testing.assert_close(run(cls(SIGMAS, measurement=m)), x, rtol=0, atol=1e-12)


def test_inpainting_is_posterior_langevin_with_a_mask_projection() -> None:
    """inpaint(AnnealedLangevin) and PosteriorLangevin(Mask, σ_y = 0, projection=True) draw the
    same numbers and return the same samples."""
    g = torch.Generator().manual_seed(0)
    images = torch.rand(3, *SHAPE, generator=g)
    mask = ncsn.samplers.inpainting_mask("right_half", images.shape)
    start = ncsn.samplers.Inpainting(images, mask).start(
        torch.rand(images.shape, generator=torch.Generator().manual_seed(1))
    )
    a = ncsn.samplers.inpaint(
        ncsn.samplers.AnnealedLangevin([1.0, 0.5], 0.01, 3, denoise=True),
        _model,
        images,
        mask,
        init=start,
        generator=torch.Generator().manual_seed(5),
    )
    measurement = Measurement(Mask(mask, batched=True), torch.where(mask, images, 0.0))
    sampler = PosteriorLangevin(
        [1.0, 0.5], 0.01, 3, measurement=measurement, denoise=True, projection=True
    )
    b = sampler(_model, start, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_projection_imposes_any_svd_operator() -> None:
    """After the hook at σ = 0, A·x = y exactly for a noiseless blur (every s > 0)."""
    op = Blur(SHAPE, gaussian_kernel(3, 0.5))
    truth = torch.rand(2, *SHAPE, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    m = inverse.measure(op, truth, 0.0)
    x = torch.zeros_like(truth)
    inverse.Projection(m)(x, 0.0)
    torch.testing.assert_close(op.forward(x), m.y, rtol=0, atol=1e-12)
    torch.testing.assert_close(x, truth, rtol=0, atol=1e-10)


def test_posterior_score_adds_the_measurement_term() -> None:
    m = _measurement(noise_std=0.3)
    x = torch.rand(3, *SHAPE, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sigma = torch.tensor([0.4, 0.4, 0.4], dtype=torch.float64)
    got = inverse.PosteriorScore(_model, m)(x, sigma)
    want = _model(x, sigma) + m.operator.adjoint(m.y - m.operator.forward(x)) / (0.3**2 + 0.4**2)
    torch.testing.assert_close(got, want)


def _point_mass(x0: Tensor) -> ncsn.ScoreModel:
    """The exact score of a point mass at x0 perturbed by N(0, σ²I): (x0 − x)/σ²."""
    return lambda x, sigma: (x0 - x) / sigma.reshape(-1, *([1] * (x.ndim - 1))) ** 2


@pytest.mark.parametrize("eta, eta_b", [(0.85, 1.0), (0.3, 0.6), (1.0, 0.0)])
def test_ddrm_step_keeps_the_ve_marginals(eta: float, eta_b: float) -> None:
    """With the exact denoiser of a point mass x0, x ~ x0 + σ·N(0, I) and y = A·x0 + σ_y·n, one
    DDRM step gives x0 + σ'·N(0, I) in every spectral coordinate: the consistency DDRM's three
    cases are built for (unmeasured, noisier and cleaner than σ')."""
    n = 20_000
    op = Blur((1, 3, 3), gaussian_kernel(3, 0.9))
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(1, 1, 3, 3, generator=g, dtype=torch.float64).expand(n, 1, 3, 3)
    m = inverse.measure(op, x0, 0.05, generator=g)
    sigma, next_sigma = 0.5, 0.2
    x = x0 + sigma * torch.randn(x0.shape, generator=g, dtype=torch.float64)
    out = inverse.ddrm_step(
        _point_mass(x0[:1]), x, sigma, next_sigma, m, eta=eta, eta_b=eta_b, generator=g
    )
    svd = inverse.operator_svd(op)
    assert svd is not None
    s = svd.singular_values
    assert bool(((s > 0) & (next_sigma * s < 0.05)).any()) and bool((next_sigma * s >= 0.05).any())
    z = svd.v_t(out - x0) / next_sigma
    assert (z.mean(0).abs() < 5 / math.sqrt(n)).all()
    assert ((z.var(0) - 1).abs() < 5 * math.sqrt(2 / n)).all()


def test_dps_step_is_ve_ancestral_sampling_plus_the_residual_gradient() -> None:
    """ζ = 0 on a point mass: x0 + σ'·N(0, I) from x0 + σ·N(0, I); ζ > 0 on a linear denoiser
    (a Gaussian prior): the step moves by −ζ·Mᵀ·Aᵀ·r/‖r‖ with M the denoiser's matrix."""
    n = 20_000
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(1, 3, generator=g, dtype=torch.float64).expand(n, 3)
    m = inverse.measure(Identity((3,)), x0[:1], 0.1, generator=g)
    x = x0 + 0.8 * torch.randn(x0.shape, generator=g, dtype=torch.float64)
    out = inverse.dps_step(_point_mass(x0[:1]), x, 0.8, 0.3, m, zeta=0.0, generator=g)
    z = (out - x0) / 0.3
    assert (z.mean(0).abs() < 5 / math.sqrt(n)).all()
    assert ((z.var(0) - 1).abs() < 5 * math.sqrt(2 / n)).all()

    prior = ncsn.toy.Gaussian(
        torch.zeros(3, dtype=torch.float64), torch.eye(3, dtype=torch.float64)
    )
    x = torch.rand(2, 3, generator=g, dtype=torch.float64)
    noise = torch.zeros_like(x)
    plain = inverse.dps_step(prior.score_model(), x, 0.8, 0.3, m, zeta=0.0, noise=noise)
    guided = inverse.dps_step(prior.score_model(), x, 0.8, 0.3, m, zeta=0.7, noise=noise)
    denoiser = 1 / (1 + 0.8**2)  # E[x0 | x] = x/(1 + σ²) for N(0, I)
    r = m.y - denoiser * x
    torch.testing.assert_close(guided - plain, 0.7 * denoiser * r / r.norm(dim=1, keepdim=True))


BAD: list[tuple[Callable[[], object], type[Exception], str]] = [
    (lambda: PosteriorLangevin(SIGMAS, 1e-3, 3, measurement="y"), TypeError, "measurement"),  # type: ignore[arg-type]
    (
        lambda: PosteriorLangevin(SIGMAS, 0.0, 3, measurement=_measurement()),
        ValueError,
        "step_size",
    ),
    (
        lambda: PosteriorLangevin(SIGMAS, 1e-3, 3, measurement=_measurement(), projection=True),
        ValueError,
        "noise_std",
    ),
    (
        lambda: PosteriorLangevin(
            SIGMAS,
            1e-3,
            3,
            measurement=inverse.measure(
                Blur(SHAPE, gaussian_kernel(3, 1.0), padding="zeros"), torch.rand(1, *SHAPE)
            ),
            projection=True,
        ),
        ValueError,
        "SVD",
    ),
    (
        lambda: SNIPS(
            SIGMAS,
            1e-3,
            3,
            measurement=inverse.measure(
                Blur(SHAPE, gaussian_kernel(3, 1.0), padding="zeros"), torch.rand(1, *SHAPE)
            ),
        ),
        ValueError,
        "SVD",
    ),
    (lambda: DDRM(SIGMAS, measurement=_measurement(), eta=1.5), ValueError, "eta"),
    (lambda: DDRM(SIGMAS, measurement=_measurement(), eta_b=-0.1), ValueError, "eta_b"),
    (lambda: DDRM([*SIGMAS.tolist(), 0.0], measurement=_measurement()), ValueError, "sigmas"),
    (lambda: DPS(SIGMAS, measurement=_measurement(), zeta=-1.0), ValueError, "zeta"),
    (lambda: DPS(SIGMAS, measurement=_measurement(), zeta="1"), TypeError, "zeta"),  # type: ignore[arg-type]
    (
        lambda: Measurement(Downsample(SHAPE, 2), torch.zeros(2, 1, 4, 4)),
        ValueError,
        "y must have shape",
    ),
    (
        lambda: Measurement(Downsample(SHAPE, 2), torch.zeros(2, 1, 2, 2), -1.0),
        ValueError,
        "noise_std",
    ),
    (
        lambda: Measurement(Downsample(SHAPE, 2), torch.full((2, 1, 2, 2), math.nan)),
        ValueError,
        "NaN",
    ),
    (lambda: Measurement("A", torch.zeros(2, 1, 2, 2)), TypeError, "operator"),  # type: ignore[arg-type]
    (
        lambda: Measurement(Downsample(SHAPE, 2), torch.zeros(2, 1, 2, 2, dtype=torch.int64)),
        TypeError,
        "y must be a real",
    ),
    (
        lambda: SAMPLERS["ddrm"](_measurement())(_model, torch.zeros(3, 1, 8, 8)),
        ValueError,
        r"x must have shape \[B, 1, 4, 4\]",
    ),
    (
        lambda: SAMPLERS["dps"](_measurement())(_model, torch.zeros(5, 1, 4, 4)),
        ValueError,
        "3 measurements but x 5 chains",
    ),
    (lambda: SAMPLERS["snips"](_measurement()).start(7), ValueError, "batch=7"),  # type: ignore[attr-defined]
    (lambda: inverse.Projection(_measurement()), ValueError, "noise_std"),
    (
        lambda: inverse.ddrm_step(_model, torch.zeros(3, *SHAPE), 1.0, 1.0, _measurement()),
        ValueError,
        "next_sigma",
    ),
    (
        lambda: inverse.gaussian_posterior(
            ncsn.toy.Gaussian(torch.zeros(16), torch.eye(16)), _measurement(0.0)
        ),
        ValueError,
        "noise_std",
    ),
    (
        lambda: inverse.gaussian_posterior(
            ncsn.toy.Gaussian(torch.zeros(16), torch.eye(16)), _measurement()
        ),
        ValueError,
        "one measurement",
    ),
    (lambda: inverse.ssim(torch.rand(2, 1, 4, 4), torch.rand(2, 1, 4, 4)), ValueError, "window"),
    (lambda: inverse.psnr(torch.rand(2, 3), torch.rand(2, 4)), ValueError, "same shape"),
]


@pytest.mark.parametrize("call, error, match", BAD, ids=[case[2] for case in BAD])
def test_bad_arguments_are_named(
    call: Callable[[], object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        call()


# scikit-image 0.26 structural_similarity / peak_signal_noise_ratio on the inputs built below
# (computed once in a scratch environment; scikit-image is not a dependency)
SKIMAGE_SSIM = [0.9357055828476373, 0.9441044122010842, 0.9099160503784063]
SKIMAGE_SSIM_RGB_RANGE_2 = [0.9471019424806721, 0.9443258090709606]
SKIMAGE_SSIM_RGB_WINDOW_5 = [0.9461592565248078, 0.9412567047305238]
SKIMAGE_PSNR = [17.244876722292645, 18.06470805267974, 16.801296102789696]


def test_ssim_and_psnr_equal_scikit_image() -> None:
    x, _ = ncsn.data.load_digits("test")
    a = x[:3].double()
    g = torch.Generator().manual_seed(0)
    b = (a + 0.2 * torch.randn(a.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    c = torch.rand(2, 3, 9, 11, generator=g, dtype=torch.float64)
    d = c + 0.1 * torch.randn(c.shape, generator=g, dtype=torch.float64)
    want = torch.tensor(SKIMAGE_SSIM, dtype=torch.float64)
    torch.testing.assert_close(inverse.ssim(b, a), want, rtol=0, atol=1e-12)
    rgb = torch.tensor(SKIMAGE_SSIM_RGB_RANGE_2, dtype=torch.float64)
    torch.testing.assert_close(inverse.ssim(d, c, data_range=2.0), rgb, rtol=0, atol=1e-12)
    five = torch.tensor(SKIMAGE_SSIM_RGB_WINDOW_5, dtype=torch.float64)
    torch.testing.assert_close(inverse.ssim(d, c, window=5), five, rtol=0, atol=1e-12)
    psnr = torch.tensor(SKIMAGE_PSNR, dtype=torch.float64)
    torch.testing.assert_close(inverse.psnr(a, b), psnr, rtol=0, atol=1e-10)


def test_consistency_is_the_residual_norm() -> None:
    m = _measurement(noise_std=0.0)
    x = torch.rand(3, *SHAPE, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    want = (m.operator.forward(x) - m.y).reshape(3, -1).norm(dim=1)
    torch.testing.assert_close(inverse.consistency(x, m), want)
