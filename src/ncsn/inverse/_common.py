"""What the posterior samplers share (private): the checks of their measurement, their operator's
SVD in the dtype of the chain, their starting points, and the step hook that chains a
projection with the user's."""

from __future__ import annotations

import torch
from torch import Tensor

from ncsn._checks import check_generator_type
from ncsn._types import StepHook
from ncsn.inverse.measurement import Measurement
from ncsn.inverse.operators import SVD, operator_svd

__all__: list[str] = []


def check_measurement(value: Measurement, name: str) -> Measurement:
    """A sampler's ``measurement`` field: a :class:`Measurement`."""
    if not isinstance(value, Measurement):
        raise TypeError(
            f"{name} must be an ncsn.inverse.Measurement (ncsn.inverse.measure(...) builds one); "
            f"got {type(value).__name__}"
        )
    return value


def require_svd(measurement: Measurement, where: str) -> SVD:
    """The operator's SVD, or a ValueError saying which samplers need none."""
    svd = operator_svd(measurement.operator)
    if svd is None:
        raise ValueError(
            f"{where} needs an operator with a closed-form SVD; {measurement.operator!r} has "
            "none (PosteriorLangevin and DPS take any operator)"
        )
    return svd


class Spectral:
    """An SVD's pieces in the chain's dtype and device: s ``[N]`` or ``[B, N]``, the masks of
    the measured coordinates, and ȳ = u_t(y) ``[B or 1, N]``."""

    def __init__(self, svd: SVD, measurement: Measurement, x: Tensor) -> None:
        self.svd = svd
        self.s = svd.singular_values.to(device=x.device, dtype=x.dtype)
        self.measured = self.s > 0
        self.safe_s = torch.where(
            self.measured, self.s, torch.ones((), dtype=x.dtype, device=x.device)
        )
        self.y_bar = svd.u_t(measurement.observations(x))


def uniform_start(
    measurement: Measurement, batch: int | None, generator: torch.Generator | None
) -> Tensor:
    """U[0, 1] of shape ``[B, *in_shape]`` in y's dtype, on the generator's device (else y's)."""
    check_generator_type(generator)
    chains = measurement.chains(batch)
    device = generator.device if generator is not None else measurement.y.device
    shape = (chains, *measurement.operator.in_shape)
    return torch.rand(shape, generator=generator, dtype=measurement.y.dtype, device=device)


def normal_start(
    measurement: Measurement,
    sigma: float,
    batch: int | None,
    generator: torch.Generator | None,
) -> Tensor:
    """σ·z, z ~ N(0, I) of shape ``[B, *in_shape]`` in y's dtype, on the generator's device."""
    check_generator_type(generator)
    chains = measurement.chains(batch)
    device = generator.device if generator is not None else measurement.y.device
    shape = (chains, *measurement.operator.in_shape)
    return sigma * torch.randn(shape, generator=generator, dtype=measurement.y.dtype, device=device)


class Chained:
    """Two step hooks, one after the other (the sampler's own first); its repr is the user's."""

    def __init__(self, first: StepHook, second: StepHook | None) -> None:
        self.first, self.second = first, second

    def __call__(self, x: Tensor, sigma: float, /) -> None:
        self.first(x, sigma)
        if self.second is not None:
            result = self.second(x, sigma)
            if result is not None:
                raise TypeError(
                    f"hook must change x in place and return None; hook={self.second!r} "
                    f"returned {type(result).__name__}"
                )

    def __repr__(self) -> str:
        return repr(self.second) if self.second is not None else repr(self.first)
