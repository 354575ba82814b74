"""Adapters that turn other networks into :class:`~ncsn.ScoreModel` s (wrap, don't subclass).

* :class:`ScaledByInverseSigma`: NCSNv2's Technique 3, ``s(x, σ) = f(x) / σ`` for any
  unconditional network ``f``.
* :class:`Preconditioned`: Karras et al.'s preconditioning of an unconditional network ``f``,
  ``D(x, σ) = c_skip·x + c_out·f(c_in·x)`` and ``s = (D − x) / σ²``.
* :class:`DenoiserScore`: a denoiser ``D(x, σ) ≈ E[x₀ | x]`` gives ``s = (D(x, σ) − x) / σ²``
  (Tweedie's formula).
* :class:`NoisePredictorScore`: a noise predictor ``ε̂(x, σ) ≈ E[z | x]`` for ``x = x₀ + σz``
  gives ``s = −ε̂(x, σ) / σ``.
* :class:`DiffusersScore`: a diffusers UNet (σ or timestep inputs; score, noise, clean-data or
  v predictions) as a score model.

And the other way, for the samplers of other libraries:

* :class:`ScoreDenoiser`: a score model as a denoiser with k-diffusion's calling convention,
  ``D(x, σ) = x + σ²·s(x, σ)``.

Each adapter is an :class:`torch.nn.Module` that owns the wrapped module, so its parameters,
``.to()`` and ``state_dict()`` pass through (keys are prefixed with ``module.``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from ncsn._checks import (
    check_batch,
    check_nonempty,
    check_output,
    pad_event,
    positive_float,
    sigma_vector,
)

__all__ = [
    "DenoiserScore",
    "DiffusersScore",
    "NoisePredictorScore",
    "Preconditioned",
    "ScaledByInverseSigma",
    "ScoreDenoiser",
]

Prediction = Literal["score", "epsilon", "sample", "v_prediction"]
PREDICTIONS: tuple[str, ...] = ("score", "epsilon", "sample", "v_prediction")


def _check_callable(module: object) -> None:
    if not callable(module):
        raise TypeError(f"module must be callable (an nn.Module or a function); got {module!r}")


def _check_x(x: Tensor) -> None:
    check_batch(x)
    check_nonempty(x)


def _sigma(sigma: Tensor | float, x: Tensor) -> Tensor:
    """σ as ``[B]``, positive and finite: a Python number checked in Python, a tensor's values
    read on the CPU only (never a device synchronisation), as in the samplers."""
    return sigma_vector(sigma, x, allow_zero=False)


class ScaledByInverseSigma(nn.Module):
    """NCSNv2's noise conditioning: ``s(x, σ) = f(x) / σ`` with an unconditional ``f``.

    σ is broadcast over every event dimension, so ``f`` may take vectors, images or volumes.

    Shapes: ``x: [B, *event]``, ``sigma: [B]`` (or a scalar) → ``[B, *event]``.

    Args:
        module: an unconditional network ``f(x) -> [B, *event]``; an ``nn.Module`` or any
            callable taking one tensor.

    Raises:
        ValueError: (on call) ``f(x)`` does not have the shape of ``x``, ``sigma`` is not a
            scalar or ``[B]``, or not positive and finite (a Python number is always checked, a
            tensor on the CPU only: elsewhere that would synchronise), or the batch is empty.

    Example:
        >>> f = ncsn.nets.RefineNetBaseline(channels=1, ngf=4)
        >>> score = ncsn.nets.ScaledByInverseSigma(f)
        >>> score(torch.rand(2, 1, 8, 8), torch.tensor([1.0, 0.01])).shape
        torch.Size([2, 1, 8, 8])

    References:
        Song & Ermon (2020), "Improved Techniques for Training Score-Based Generative Models",
        Technique 3.
    """

    def __init__(self, module: nn.Module | Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        _check_callable(module)
        self.module = module

    def forward(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        _check_x(x)
        sigma_b = _sigma(sigma, x)
        out = self.module(x)
        check_output(out, x, "module")
        return out / pad_event(sigma_b, x)


class Preconditioned(nn.Module):
    """Karras et al.'s preconditioning (EDM) of an unconditional network ``f`` as a score model.

    ``f`` reads the noisy input scaled to unit variance and predicts a mix of the clean data and
    the noise chosen so that its target has unit variance at every σ; the denoiser and the score
    are then

        D(x, σ) = c_skip·x + c_out·f(c_in·x),   s(x, σ) = (D(x, σ) − x) / σ²

    with c_in = 1/√(σ² + σ_d²), c_skip = σ_d²/(σ² + σ_d²) and c_out = σ·σ_d/√(σ² + σ_d²), σ_d the
    data's standard deviation. Where NCSNv2's ``f(x)/σ`` (:class:`ScaledByInverseSigma`)
    predicts the noise at every σ, so that its error reaches the denoised estimate multiplied by
    σ, ``f`` here predicts the clean data at large σ (c_out → σ_d) and the noise at small σ
    (c_out → σ): an error of ``f`` moves ``D`` by at most σ_d times itself. ``f`` sees no σ (as
    NCSNv2's network), so it reads the noise level from its input.

    Shapes: ``x: [B, *event]``, ``sigma: [B]`` (or a scalar) → ``[B, *event]``.

    Args:
        module: an unconditional network ``f(x) -> [B, *event]``; an ``nn.Module`` or any
            callable taking one tensor.
        sigma_data: σ_d, the standard deviation of the data (positive; e.g. ``float(x.std())``
            of the training set).

    Raises:
        TypeError: ``module`` is not callable.
        ValueError: ``sigma_data`` is not positive and finite; (on call) ``f(x)`` does not have
            the shape of ``x``, ``sigma`` is not a scalar or ``[B]``, or not positive and finite
            (a Python number is always checked, a tensor on the CPU only), or the batch is empty.

    Example:
        >>> f = ncsn.nets.RefineNetBaseline(channels=1, ngf=4)
        >>> score = ncsn.nets.Preconditioned(f, sigma_data=0.3)
        >>> score(torch.rand(2, 1, 8, 8), torch.tensor([1.0, 0.01])).shape
        torch.Size([2, 1, 8, 8])
        >>> zero = ncsn.nets.Preconditioned(torch.zeros_like, sigma_data=1.0)
        >>> zero(torch.ones(1, 2), torch.tensor([1.0]))   # f = 0: the score of N(0, σ_d²)
        tensor([[-0.5000, -0.5000]])

    References:
        Karras, Aittala, Aila & Laine (2022), "Elucidating the design space of diffusion-based
        generative models", §5 and Table 1.
    """

    def __init__(
        self, module: nn.Module | Callable[[Tensor], Tensor], *, sigma_data: float
    ) -> None:
        super().__init__()
        _check_callable(module)
        self.module = module
        self.sigma_data = positive_float(sigma_data, "sigma_data")

    def extra_repr(self) -> str:
        return f"sigma_data={self.sigma_data:g}"

    def forward(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        _check_x(x)
        sigma_b = pad_event(_sigma(sigma, x), x)
        total = sigma_b.square() + self.sigma_data**2  # σ² + σ_d²
        out = self.module(x * total.rsqrt())
        check_output(out, x, "module")
        # s = (D − x)/σ² = c_out·f/σ² − x/(σ² + σ_d²), with c_out/σ² = σ_d / (σ·√(σ² + σ_d²))
        return out * (self.sigma_data / sigma_b * total.rsqrt()) - x / total


class DenoiserScore(nn.Module):
    """A denoiser as a score model: ``s(x, σ) = (D(x, σ) − x) / σ²`` (Tweedie's formula).

    Shapes: ``x: [B, *event]``, ``sigma: [B]`` (or a scalar) → ``[B, *event]``.

    Args:
        denoiser: ``D(x, sigma [B]) -> [B, *event]``, an estimate of the clean data ``E[x₀ | x]``.

    Example:
        >>> denoiser = lambda x, sigma: x / (1 + sigma[:, None] ** 2)   # optimal for x₀ ~ N(0, I)
        >>> ncsn.nets.DenoiserScore(denoiser)(torch.ones(1, 2), torch.tensor([1.0]))
        tensor([[-0.5000, -0.5000]])
    """

    def __init__(self, denoiser: nn.Module | Callable[[Tensor, Tensor], Tensor]) -> None:
        super().__init__()
        _check_callable(denoiser)
        self.module = denoiser

    def forward(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        _check_x(x)
        sigma_b = _sigma(sigma, x)
        out = self.module(x, sigma_b)
        check_output(out, x, "denoiser")
        return (out - x) / pad_event(sigma_b, x).square()


class NoisePredictorScore(nn.Module):
    """A noise predictor as a score model: ``s(x, σ) = −ε̂(x, σ) / σ``.

    For ``x = x₀ + σ·z`` with ``z ~ N(0, I)``, ``ε̂`` estimates ``E[z | x]`` (the DDPM-style
    parameterisation, here in σ units).

    Shapes: ``x: [B, *event]``, ``sigma: [B]`` (or a scalar) → ``[B, *event]``.

    Args:
        predictor: ``ε̂(x, sigma [B]) -> [B, *event]``.

    Example:
        >>> predictor = lambda x, sigma: sigma[:, None] * x / (1 + sigma[:, None] ** 2)
        >>> ncsn.nets.NoisePredictorScore(predictor)(torch.ones(1, 2), torch.tensor([1.0]))
        tensor([[-0.5000, -0.5000]])
    """

    def __init__(self, predictor: nn.Module | Callable[[Tensor, Tensor], Tensor]) -> None:
        super().__init__()
        _check_callable(predictor)
        self.module = predictor

    def forward(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        _check_x(x)
        sigma_b = _sigma(sigma, x)
        out = self.module(x, sigma_b)
        check_output(out, x, "noise predictor")
        return -out / pad_event(sigma_b, x)


class ScoreDenoiser(nn.Module):
    """A score model as a denoiser, called as k-diffusion calls its models:
    ``D(x, σ) = x + σ²·s(x, σ)`` (Tweedie's formula; the inverse of :class:`DenoiserScore`).

    k-diffusion's samplers (``sample_euler``, ``sample_heun``, ``sample_dpmpp_2m`` ...) take a
    denoiser ``model(x, sigma [B], **extra_args)`` and a σ grid that ends in 0; wrapped this way,
    any :class:`~ncsn.ScoreModel` runs in them. Its Euler and Heun samplers then follow exactly
    the path of :class:`~ncsn.samplers.ProbabilityFlowODE` with ``denoise=True`` on the same
    grid without the 0 (their last step, to σ = 0, is the denoising step).

    Shapes: ``x: [B, *event]``, ``sigma: [B]`` (or a scalar), positive → ``[B, *event]``.

    Args:
        model: a :class:`~ncsn.ScoreModel`; keyword arguments of a call (k-diffusion's
            ``extra_args``, e.g. class labels) are passed on to it.

    Raises:
        TypeError: ``model`` is not callable.
        ValueError: (on call) an empty batch, ``sigma`` not a scalar or ``[B]`` or not positive
            (checked where that is free: a Python number, a tensor on the CPU), or a model output
            of another shape.

    Example:
        >>> score = lambda x, sigma: -x / (1 + sigma[:, None] ** 2)   # N(0, I) perturbed by σ
        >>> denoiser = ncsn.nets.ScoreDenoiser(score)
        >>> denoiser(torch.ones(1, 2), torch.tensor([1.0]))   # E[x₀ | x] = x / (1 + σ²)
        tensor([[0.5000, 0.5000]])
        >>> import k_diffusion  # doctest: +SKIP
        >>> sigmas = k_diffusion.sampling.get_sigmas_karras(10, 0.01, 1.0)  # doctest: +SKIP
        >>> x = k_diffusion.sampling.sample_heun(denoiser, torch.randn(4, 2), sigmas)  # doctest: +SKIP
    """

    def __init__(self, model: nn.Module | Callable[..., Tensor]) -> None:
        super().__init__()
        _check_callable(model)
        self.module = model

    def forward(self, x: Tensor, sigma: Tensor | float, **kwargs: Any) -> Tensor:
        _check_x(x)
        sigma_b = _sigma(sigma, x)
        score = self.module(x, sigma_b, **kwargs)
        check_output(score, x, "score model")
        return x + pad_event(sigma_b, x).square() * score


def _math_attention_if_differentiated(x: Tensor) -> contextlib.AbstractContextManager[None]:
    """PyTorch's math attention kernel where the call will be differentiated in x: the fused
    CPU kernel's backward has no derivative of its own (sliced score matching, which
    differentiates the score in x and then the result in the weights, fails with "derivative
    for aten::_scaled_dot_product_flash_attention_for_cpu_backward is not implemented")."""
    if torch.is_grad_enabled() and x.requires_grad:
        return sdpa_kernel([SDPBackend.MATH])
    return contextlib.nullcontext()


def _check_prediction(prediction_type: object, timesteps: bool) -> Prediction:
    allowed = PREDICTIONS[1:] if timesteps else PREDICTIONS[:3]
    if prediction_type not in allowed:
        where = "with alphas_cumprod (timestep inputs)" if timesteps else "with σ inputs"
        raise ValueError(
            f"prediction_type must be one of {list(allowed)} {where}; got "
            f"prediction_type={prediction_type!r}"
        )
    return prediction_type  # type: ignore[return-value]


def _output_tensor(out: object) -> Tensor:
    """diffusers returns an output object with ``.sample`` (or a tuple with return_dict=False)."""
    if isinstance(out, Tensor):
        return out
    if isinstance(out, tuple) and out and isinstance(out[0], Tensor):
        return out[0]
    sample = getattr(out, "sample", None)
    if isinstance(sample, Tensor):
        return sample
    raise TypeError(
        f"the network must return a tensor, a tuple of them or an output with .sample; got "
        f"{type(out).__name__}"
    )


class DiffusersScore(nn.Module):
    """A diffusers UNet (``UNet2DModel``, ``UNet2DConditionModel`` ...) as a score model: one
    line turns a network called as ``net(x, t).sample`` into a :class:`~ncsn.ScoreModel`.

    Two input conventions, for the two kinds of diffusers models:

    * σ inputs (``alphas_cumprod=None``): ``net(x, σ)``, as diffusers' variance-exploding
      models take it (``ScoreSdeVePipeline``). ``prediction_type``: ``"score"`` (the default;
      a ``UNet2DModel`` with ``time_embedding_type="fourier"`` divides its output by σ itself),
      ``"epsilon"`` (s = −ε̂/σ) or ``"sample"`` (s = (x̂₀ − x)/σ²).
    * timestep inputs (``alphas_cumprod`` given, a DDPM-style scheduler's ``[T]`` ᾱ):
      x = x₀ + σz is the DDPM iterate x_t = √ᾱ·x₀ + √(1 − ᾱ)·z scaled by 1/√ᾱ, with
      σ² = (1 − ᾱ)/ᾱ. The network gets ``x/√(1 + σ²)`` and the fractional timestep t at which
      the scheduler's log σ_t (interpolated linearly) equals log σ; ``prediction_type``
      ``"epsilon"`` (default; s = −ε̂/σ), ``"sample"`` or ``"v_prediction"``.
      :meth:`from_scheduler` reads both from a scheduler.

    Where the call is differentiated in x (sliced score matching, which then differentiates
    that gradient in the weights), attention runs on PyTorch's math kernel: the fused CPU
    attention kernel has no second derivative.

    Shapes: ``x: [B, *event]``, ``sigma: [B]`` (or a scalar), positive → ``[B, *event]``.

    Args:
        network: the UNet, or any callable ``net(x, t)`` returning a tensor, a tuple whose first
            entry is one, or an output with ``.sample``.
        alphas_cumprod: ``[T]`` ᾱ_t of a DDPM-style scheduler (decreasing, in (0, 1]), or
            ``None`` for a network that takes σ.
        prediction_type: what the network predicts (see above).

    Raises:
        TypeError: ``network`` is not callable, or (on call) returns something else.
        ValueError: a ``prediction_type`` the input convention does not have, ``alphas_cumprod``
            not 1-D in (0, 1] and decreasing; (on call) what :class:`DenoiserScore` refuses.

    Example:
        >>> import diffusers  # doctest: +SKIP
        >>> unet = diffusers.UNet2DModel(sample_size=8, in_channels=1, out_channels=1,
        ...     block_out_channels=(8, 16), norm_num_groups=4)  # doctest: +SKIP
        >>> scheduler = diffusers.DDPMScheduler()  # doctest: +SKIP
        >>> model = ncsn.nets.DiffusersScore.from_scheduler(unet, scheduler)  # doctest: +SKIP
        >>> model(torch.rand(2, 1, 8, 8), torch.tensor([1.0, 0.1])).shape  # doctest: +SKIP
        torch.Size([2, 1, 8, 8])
        >>> net = lambda x, t: -x / (1 + t[:, None] ** 2)        # the score of N(0, I) at σ = t
        >>> ncsn.nets.DiffusersScore(net)(torch.ones(1, 2), torch.tensor([1.0]))
        tensor([[-0.5000, -0.5000]])
    """

    alphas_cumprod: Tensor | None

    def __init__(
        self,
        network: nn.Module | Callable[[Tensor, Tensor], Any],
        alphas_cumprod: Tensor | None = None,
        *,
        prediction_type: str | None = None,
    ) -> None:
        super().__init__()
        _check_callable(network)
        timesteps = alphas_cumprod is not None
        default = "epsilon" if timesteps else "score"
        self.prediction_type = _check_prediction(prediction_type or default, timesteps)
        self.module = network
        if alphas_cumprod is not None:
            abar = torch.as_tensor(alphas_cumprod).detach()
            if not abar.is_floating_point():
                raise TypeError(f"alphas_cumprod must be floating point; got {abar.dtype}")
            if abar.ndim != 1 or len(abar) < 2:
                raise ValueError(
                    f"alphas_cumprod must be 1-D with two or more entries; got shape "
                    f"{tuple(abar.shape)}"
                )
            cpu = abar.cpu().double()
            if not (bool((cpu > 0).all()) and bool((cpu <= 1).all())):
                raise ValueError(
                    f"alphas_cumprod must lie in (0, 1]; got values in "
                    f"[{float(cpu.min()):g}, {float(cpu.max()):g}]"
                )
            if not bool((cpu[1:] < cpu[:-1]).all()):
                raise ValueError("alphas_cumprod must be strictly decreasing (ᾱ_t of a scheduler)")
            self.register_buffer("alphas_cumprod", abar.clone())
        else:
            self.alphas_cumprod = None

    @classmethod
    def from_scheduler(
        cls, network: nn.Module | Callable[[Tensor, Tensor], Any], scheduler: Any
    ) -> DiffusersScore:
        """The network of a DDPM-style diffusers scheduler (``DDPMScheduler``,
        ``DDIMScheduler``, ``EulerDiscreteScheduler`` ...): its ``alphas_cumprod`` and
        ``config.prediction_type``.

        Raises:
            TypeError: ``scheduler`` has no ``alphas_cumprod``.
        """
        abar = getattr(scheduler, "alphas_cumprod", None)
        if not isinstance(abar, Tensor):
            raise TypeError(
                f"scheduler must have an alphas_cumprod tensor (a DDPM-style diffusers "
                f"scheduler); got {type(scheduler).__name__}"
            )
        config = getattr(scheduler, "config", None)
        prediction = getattr(config, "prediction_type", None) or "epsilon"
        return cls(network, abar, prediction_type=prediction)

    def timestep(self, sigma: Tensor) -> Tensor:
        """The fractional timestep ``[B]`` at which the scheduler's noise level is ``sigma``
        ``[B]``: log σ interpolated linearly between the scheduler's log σ_t, clamped to its
        range (timestep inputs only)."""
        if self.alphas_cumprod is None:
            raise ValueError("timestep() needs alphas_cumprod (a network with timestep inputs)")
        abar = self.alphas_cumprod.to(device=sigma.device, dtype=torch.float64)
        log_sigmas = (((1 - abar) / abar).sqrt()).log()  # increasing in t
        log_sigma = sigma.to(torch.float64).log().clamp(log_sigmas[0], log_sigmas[-1])
        high = torch.searchsorted(log_sigmas, log_sigma).clamp(1, len(log_sigmas) - 1)
        low = high - 1
        weight = (log_sigma - log_sigmas[low]) / (log_sigmas[high] - log_sigmas[low])
        return (low + weight).to(sigma.dtype)

    def forward(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        _check_x(x)
        sigma_b = _sigma(sigma, x)
        s = pad_event(sigma_b, x)
        with _math_attention_if_differentiated(x):
            if self.alphas_cumprod is None:
                out = _output_tensor(self.module(x, sigma_b))
            else:
                scale = (1 + s.square()).rsqrt()  # √ᾱ
                out = _output_tensor(self.module(x * scale, self.timestep(sigma_b)))
        check_output(out, x, "network")
        prediction = self.prediction_type
        if prediction == "score":
            return out
        if prediction == "v_prediction":  # ε = √ᾱ·v + √(1 − ᾱ)·x_t, with x_t = √ᾱ·x
            a = (1 + s.square()).rsqrt()
            out = a * out + (s * a) * (x * a)
            prediction = "epsilon"
        if prediction == "epsilon":
            return -out / s
        return (out - x) / s.square()  # "sample": x̂₀ in the data's units

    def extra_repr(self) -> str:
        inputs = "σ" if self.alphas_cumprod is None else f"timesteps ({len(self.alphas_cumprod)})"
        return f"inputs={inputs}, prediction_type={self.prediction_type!r}"
