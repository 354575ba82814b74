"""ncsn.nets.adapters, the glue to other libraries: ScoreDenoiser (a score model as a
k-diffusion denoiser) and DiffusersScore (a diffusers network as a score model)."""

from __future__ import annotations

import importlib.util
import itertools
import warnings
from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

import ncsn
from ncsn.nets import DiffusersScore, ScoreDenoiser

SIGMAS = ncsn.geometric_sigmas(3.0, 0.05, 8)
MIXTURE = ncsn.toy.paper_mixture()


def _exact(x: Tensor, sigma: Tensor) -> Tensor:
    return MIXTURE.score_model()(x, sigma)


def _k_euler(denoiser: Callable[[Tensor, Tensor], Tensor], x: Tensor, grid: Tensor) -> Tensor:
    """k-diffusion's sample_euler (s_churn = 0), written out: d = (x − D)/σ, x += d·(σ' − σ)."""
    for sigma, nxt in itertools.pairwise(grid):
        d = (x - denoiser(x, sigma * x.new_ones(len(x)))) / sigma
        x = x + d * (nxt - sigma)
    return x


def _k_heun(denoiser: Callable[[Tensor, Tensor], Tensor], x: Tensor, grid: Tensor) -> Tensor:
    """k-diffusion's sample_heun (s_churn = 0): an Euler step to σ' = 0, else Heun's correction."""
    for sigma, nxt in itertools.pairwise(grid):
        d = (x - denoiser(x, sigma * x.new_ones(len(x)))) / sigma
        x_euler = x + d * (nxt - sigma)
        if nxt == 0:
            x = x_euler
            continue
        d2 = (x_euler - denoiser(x_euler, nxt * x.new_ones(len(x)))) / nxt
        x = x + (d + d2) / 2 * (nxt - sigma)
    return x


def test_score_denoiser_is_tweedie_and_inverts_denoiser_score() -> None:
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(0))
    sigma = torch.full((5,), 0.7)
    denoiser = ScoreDenoiser(_exact)
    expected = x + sigma[:, None].square() * _exact(x, sigma)
    torch.testing.assert_close(denoiser(x, sigma), expected, rtol=0, atol=0)
    torch.testing.assert_close(denoiser(x, 0.7), expected, rtol=0, atol=0)  # a scalar σ
    back = ncsn.nets.DenoiserScore(denoiser)
    torch.testing.assert_close(back(x, sigma), _exact(x, sigma), rtol=1e-6, atol=1e-6)


def test_score_denoiser_passes_extra_args_on() -> None:
    seen: dict[str, object] = {}

    def conditional(x: Tensor, sigma: Tensor, y: Tensor) -> Tensor:
        seen["y"] = y
        return -x

    y = torch.tensor([3, 1])
    ScoreDenoiser(conditional)(torch.ones(2, 2), torch.ones(2), y=y)
    assert seen["y"] is y


@pytest.mark.parametrize("solver, k_sampler", [("euler", _k_euler), ("heun", _k_heun)])
def test_k_diffusion_convention_follows_the_probability_flow_ode(
    solver: str, k_sampler: Callable[..., Tensor]
) -> None:
    x0 = 3.0 * torch.randn(64, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ours = ncsn.samplers.ProbabilityFlowODE(SIGMAS.double(), solver=solver, denoise=True)
    grid = torch.cat([SIGMAS.double(), torch.zeros(1, dtype=torch.float64)])
    theirs = k_sampler(ScoreDenoiser(_exact), x0, grid)
    torch.testing.assert_close(theirs, ours(_exact, x0), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("sampler", ["sample_euler", "sample_heun"])
def test_the_real_k_diffusion_samplers_follow_the_probability_flow_ode(sampler: str) -> None:
    try:
        with warnings.catch_warnings():  # its dependencies' import-time deprecations
            warnings.simplefilter("ignore", DeprecationWarning)
            import k_diffusion
    except Exception as err:  # not installed, or its torchvision does not match this torch
        pytest.skip(f"k-diffusion cannot be imported here ({type(err).__name__}: {err})")
    x0 = 3.0 * torch.randn(64, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    grid = torch.cat([SIGMAS.double(), torch.zeros(1, dtype=torch.float64)])
    theirs = getattr(k_diffusion.sampling, sampler)(ScoreDenoiser(_exact), x0, grid, disable=True)
    solver = sampler.removeprefix("sample_")
    ours = ncsn.samplers.ProbabilityFlowODE(SIGMAS.double(), solver=solver, denoise=True)
    torch.testing.assert_close(theirs, ours(_exact, x0), rtol=1e-10, atol=1e-10)


def test_diffusers_score_sigma_inputs_every_prediction() -> None:
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    sigma = torch.tensor([2.0, 1.0, 0.5, 0.1], dtype=torch.float64)
    s = _exact(x, sigma)
    nets = {
        "score": lambda x, t: _exact(x, t),
        "epsilon": lambda x, t: -t[:, None] * _exact(x, t),
        "sample": lambda x, t: x + t[:, None] ** 2 * _exact(x, t),
    }
    for prediction, net in nets.items():
        model = DiffusersScore(net, prediction_type=prediction)
        torch.testing.assert_close(model(x, sigma), s, rtol=1e-12, atol=1e-12, msg=prediction)


def _ddpm_alphas(steps: int = 1000) -> Tensor:
    betas = torch.linspace(1e-4, 0.02, steps, dtype=torch.float64)
    return torch.cumprod(1 - betas, 0)


@pytest.mark.parametrize("prediction", ["epsilon", "sample", "v_prediction"])
def test_diffusers_score_timestep_inputs_recover_the_exact_score(prediction: str) -> None:
    """A network that answers for the DDPM iterate x_t = √ᾱ·x₀ + √(1 − ᾱ)·ε at the timestep of
    σ, built from the exact score, gives back the exact score of x = x_t/√ᾱ."""
    abar = _ddpm_alphas()
    log_sigmas = ((1 - abar) / abar).sqrt().log()

    def net(x_t: Tensor, t: Tensor) -> Tensor:
        # the σ of fractional timestep t, as DiffusersScore.timestep interpolates it
        low = t.floor().long().clamp(0, len(abar) - 2)
        w = t - low
        sigma = (log_sigmas[low] * (1 - w) + log_sigmas[low + 1] * w).exp()
        a = (1 + sigma**2).rsqrt()[:, None]
        x = x_t / a
        eps = -sigma[:, None] * _exact(x, sigma)
        if prediction == "epsilon":
            return eps
        x0 = x + sigma[:, None] ** 2 * _exact(x, sigma)
        if prediction == "sample":
            return x0
        return a * eps - (a * sigma[:, None]) * x0  # v = √ᾱ·ε − √(1 − ᾱ)·x₀

    model = DiffusersScore(net, abar, prediction_type=prediction)
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    sigma = torch.tensor([50.0, 3.0, 0.4, 0.02], dtype=torch.float64)
    torch.testing.assert_close(model(x, sigma), _exact(x, sigma), rtol=1e-9, atol=1e-9)


def test_timestep_is_the_scheduler_index_at_its_own_levels() -> None:
    abar = _ddpm_alphas()
    model = DiffusersScore(lambda x, t: x, abar)
    sigmas = ((1 - abar) / abar).sqrt()
    index = torch.tensor([0, 17, 500, 999])
    torch.testing.assert_close(model.timestep(sigmas[index]), index.double(), rtol=0, atol=1e-9)


def test_diffusers_score_bad_settings_are_named() -> None:
    with pytest.raises(ValueError, match="prediction_type"):
        DiffusersScore(lambda x, t: x, prediction_type="v_prediction")  # needs timesteps
    with pytest.raises(ValueError, match="prediction_type"):
        DiffusersScore(lambda x, t: x, _ddpm_alphas(), prediction_type="score")
    with pytest.raises(ValueError, match="decreasing"):
        DiffusersScore(lambda x, t: x, _ddpm_alphas().flip(0))
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        DiffusersScore(lambda x, t: x, torch.tensor([1.5, 0.5]))
    with pytest.raises(TypeError, match="callable"):
        DiffusersScore(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="alphas_cumprod"):
        DiffusersScore.from_scheduler(lambda x, t: x, object())
    with pytest.raises(TypeError, match=r"\.sample"):
        DiffusersScore(lambda x, t: "no tensor")(torch.ones(1, 2), torch.ones(1))


needs_diffusers = pytest.mark.skipif(
    importlib.util.find_spec("diffusers") is None, reason="diffusers is not installed"
)


def _unet(attention: bool) -> nn.Module:
    import diffusers

    torch.manual_seed(0)  # test-side: diffusers initialises from the global RNG
    down = ("DownBlock2D", "AttnDownBlock2D") if attention else ("DownBlock2D", "DownBlock2D")
    up = ("AttnUpBlock2D", "UpBlock2D") if attention else ("UpBlock2D", "UpBlock2D")
    return diffusers.UNet2DModel(
        sample_size=8,
        in_channels=1,
        out_channels=1,
        block_out_channels=(8, 16),
        layers_per_block=1,
        norm_num_groups=4,
        down_block_types=down,
        up_block_types=up,
    )


@needs_diffusers
def test_a_diffusers_unet_is_a_score_model_and_its_folder_round_trips(tmp_path: object) -> None:
    import diffusers

    model = DiffusersScore.from_scheduler(_unet(attention=True), diffusers.DDPMScheduler())
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    sigma = torch.tensor([1.0, 0.1])
    with torch.no_grad():
        out = model(x, sigma)
    assert out.shape == x.shape and bool(out.isfinite().all())
    folder = ncsn.save_model(model, f"{tmp_path}/unet", sigmas=SIGMAS, data={"shape": [1, 8, 8]})
    loaded = ncsn.load(folder)
    assert isinstance(loaded.model, DiffusersScore) and loaded.model.prediction_type == "epsilon"
    with torch.no_grad():
        assert torch.equal(loaded.model(x, sigma), out)


@needs_diffusers
def test_sliced_score_matching_runs_on_a_unet_with_attention() -> None:
    """The fused CPU attention kernel has no double backward; DiffusersScore picks the math
    kernel where the call is differentiated in x, so SSM trains the UNet's weights."""
    model = DiffusersScore(_unet(attention=True))
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(6))
    ssm = ncsn.losses.SlicedScoreMatching(ncsn.GeometricSchedule(3.0, 0.05, 8))
    loss = ssm(model, x, generator=torch.Generator().manual_seed(7))
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(bool(g.isfinite().all()) for g in grads)
