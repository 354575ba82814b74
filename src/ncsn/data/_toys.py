"""2-D toy distributions to sample training sets from (the paper's mixture and four classics)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from ncsn._checks import draw_device_dtype, positive_float, positive_int
from ncsn.data._common import choice, float_dtype
from ncsn.toy import paper_mixture

__all__ = [
    "TOY_NAMES",
    "Checkerboard",
    "Moons",
    "Rings",
    "SwissRoll",
    "ToySampler",
    "toy_dataset",
]


@runtime_checkable
class ToySampler(Protocol):
    """Anything that draws ``[n, D]`` points: ``sample(n, *, generator=None) -> [n, D]``."""

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor: ...


def _setup(
    n: int,
    generator: torch.Generator | None,
    dtype: torch.dtype | None,
    device: torch.device | str | None,
) -> tuple[torch.dtype, torch.device]:
    positive_int(n, "n")
    dev, dt = draw_device_dtype(generator, device, dtype)
    return float_dtype(dt), dev


def _nonnegative(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TypeError(f"{name} must be a finite real number; got {name}={value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0; got {name}={value!r}")
    return float(value)


@dataclass(frozen=True)
class Rings:
    """Concentric circles of radii ``spacing·k`` (k = 1..num_rings) plus Gaussian noise.

    A ring is chosen with probability proportional to its radius, so points are spread evenly
    along the total arc length; the angle is uniform and ``noise`` is the std of isotropic noise.

    Example:
        >>> ncsn.data.Rings().sample(5, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([5, 2])
    """

    num_rings: int = 3
    spacing: float = 1.0
    noise: float = 0.08

    def __post_init__(self) -> None:
        positive_int(self.num_rings, "num_rings")
        positive_float(self.spacing, "spacing")
        _nonnegative(self.noise, "noise")

    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """Draw ``[n, 2]`` points (device: ``device``, else the generator's, else the CPU)."""
        dtype, device = _setup(n, generator, dtype, device)
        radii = self.spacing * torch.arange(1, self.num_rings + 1, dtype=dtype, device=device)
        ring = torch.multinomial(radii, n, replacement=True, generator=generator)
        angle = 2 * math.pi * torch.rand(n, generator=generator, dtype=dtype, device=device)
        points = radii[ring, None] * torch.stack((angle.cos(), angle.sin()), dim=1)
        noise = torch.randn(n, 2, generator=generator, dtype=dtype, device=device)
        return points + self.noise * noise


@dataclass(frozen=True)
class Moons:
    """Two interleaving half circles, centred on the origin, plus Gaussian noise.

    Upper moon ``(cos t, sin t)``, lower moon ``(1 − cos t, 1/2 − sin t)`` with ``t ~ U(0, π)``,
    each with probability 1/2, shifted by ``(−1/2, −1/4)`` and scaled by ``scale``; ``noise`` is
    the std of isotropic noise added afterwards.

    Example:
        >>> ncsn.data.Moons().sample(5, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([5, 2])
    """

    noise: float = 0.05
    scale: float = 1.0

    def __post_init__(self) -> None:
        _nonnegative(self.noise, "noise")
        positive_float(self.scale, "scale")

    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """Draw ``[n, 2]`` points (device: ``device``, else the generator's, else the CPU)."""
        dtype, device = _setup(n, generator, dtype, device)
        t = math.pi * torch.rand(n, generator=generator, dtype=dtype, device=device)
        lower = torch.rand(n, generator=generator, device=device) < 0.5
        upper_xy = torch.stack((t.cos(), t.sin()), dim=1)
        lower_xy = torch.stack((1 - t.cos(), 0.5 - t.sin()), dim=1)
        points = torch.where(lower[:, None], lower_xy, upper_xy)
        points = points - torch.tensor([0.5, 0.25], dtype=dtype, device=device)
        noise = torch.randn(n, 2, generator=generator, dtype=dtype, device=device)
        return self.scale * points + self.noise * noise


@dataclass(frozen=True)
class Checkerboard:
    """Uniform on the dark squares of a ``cells × cells`` board covering ``[−half_width, half_width]²``.

    A square ``(i, j)`` is dark when ``i + j`` is even (the bottom-left one is dark); each dark
    square is equally likely and the point is uniform inside it. The density is exactly piecewise
    constant: no noise is added.

    Example:
        >>> ncsn.data.Checkerboard().sample(5, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([5, 2])
    """

    cells: int = 4
    half_width: float = 4.0

    def __post_init__(self) -> None:
        positive_int(self.cells, "cells")
        if self.cells < 2:
            raise ValueError(f"cells must be >= 2 for a checkerboard; got cells={self.cells}")
        positive_float(self.half_width, "half_width")

    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """Draw ``[n, 2]`` points (device: ``device``, else the generator's, else the CPU)."""
        dtype, device = _setup(n, generator, dtype, device)
        index = torch.arange(self.cells, device=device)
        i, j = torch.meshgrid(index, index, indexing="ij")
        dark = ((i + j) % 2 == 0).flatten()
        squares = torch.stack((i.flatten()[dark], j.flatten()[dark]), dim=1)
        pick = torch.randint(len(squares), (n,), generator=generator, device=device)
        offset = torch.rand(n, 2, generator=generator, dtype=dtype, device=device)
        width = 2 * self.half_width / self.cells
        return -self.half_width + (squares[pick].to(dtype) + offset) * width


@dataclass(frozen=True)
class SwissRoll:
    """The 2-D swiss roll: ``scale · (t cos t, t sin t)`` with ``t ~ U(1.5π, 4.5π)``, plus noise.

    ``noise`` is the std of isotropic Gaussian noise added after scaling. The defaults put the
    roll in about ``[−7, 7]²``, the range of the paper's mixture.

    Example:
        >>> ncsn.data.SwissRoll().sample(5, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([5, 2])
    """

    noise: float = 0.25
    scale: float = 0.5

    def __post_init__(self) -> None:
        _nonnegative(self.noise, "noise")
        positive_float(self.scale, "scale")

    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """Draw ``[n, 2]`` points (device: ``device``, else the generator's, else the CPU)."""
        dtype, device = _setup(n, generator, dtype, device)
        u = torch.rand(n, generator=generator, dtype=dtype, device=device)
        t = 1.5 * math.pi * (1 + 2 * u)
        points = torch.stack((t * t.cos(), t * t.sin()), dim=1)
        noise = torch.randn(n, 2, generator=generator, dtype=dtype, device=device)
        return self.scale * points + self.noise * noise


TOY_NAMES = ("mixture", "rings", "moons", "checkerboard", "swiss_roll")
"""Names accepted by :func:`toy_dataset` (and by :func:`ncsn.data.load`)."""


def toy_dataset(name: str) -> ToySampler:
    """A 2-D toy distribution with its default settings, by name.

    ``"mixture"`` is the paper's ``0.2·N((−5, −5), I) + 0.8·N((5, 5), I)`` from
    :func:`ncsn.toy.paper_mixture` (which also knows its exact scores); the others are
    :class:`Rings`, :class:`Moons`, :class:`Checkerboard` and :class:`SwissRoll`.

    Args:
        name: one of :data:`TOY_NAMES`.

    Returns:
        An object with ``sample(n, *, generator=None) -> [n, 2]``.

    Raises:
        ValueError: an unknown name.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> ncsn.data.toy_dataset("moons").sample(128, generator=g).shape
        torch.Size([128, 2])
    """
    choice(name, "name", TOY_NAMES)
    if name == "mixture":
        return paper_mixture()
    classes: dict[str, type[Rings | Moons | Checkerboard | SwissRoll]] = {
        "rings": Rings,
        "moons": Moons,
        "checkerboard": Checkerboard,
        "swiss_roll": SwissRoll,
    }
    return classes[name]()
