"""Adapters that turn other networks into :class:`~ncsn.ScoreModel` s (wrap, don't subclass).

* :class:`ScaledByInverseSigma`: NCSNv2's Technique 3, ``s(x, σ) = f(x) / σ`` for any
  unconditional network ``f``.
* :class:`DenoiserScore`: a denoiser ``D(x, σ) ≈ E[x₀ | x]`` gives ``s = (D(x, σ) − x) / σ²``
  (Tweedie's formula).
* :class:`NoisePredictorScore`: a noise predictor ``ε̂(x, σ) ≈ E[z | x]`` for ``x = x₀ + σz``
  gives ``s = −ε̂(x, σ) / σ``.

Each adapter is an :class:`torch.nn.Module` that owns the wrapped module, so its parameters,
``.to()`` and ``state_dict()`` pass through (keys are prefixed with ``module.``).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from ncsn._checks import check_batch, check_nonempty, check_output, pad_event, sigma_vector

__all__ = ["DenoiserScore", "NoisePredictorScore", "ScaledByInverseSigma"]


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
