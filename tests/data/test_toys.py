"""ncsn.data: the 2-D toy datasets."""

from __future__ import annotations

import math

import pytest
import torch

import ncsn.data as data


@pytest.mark.parametrize("name", data.TOY_NAMES)
def test_toy_shape_dtype_and_seed(name):
    toy = data.toy_dataset(name)
    assert isinstance(toy, data.ToySampler)
    a = toy.sample(500, generator=torch.Generator().manual_seed(3))
    b = toy.sample(500, generator=torch.Generator().manual_seed(3))
    c = toy.sample(500, generator=torch.Generator().manual_seed(4))
    assert a.shape == (500, 2) and a.dtype == torch.float32
    assert bool(torch.isfinite(a).all())
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_toy_names_and_errors():
    assert data.TOY_NAMES == ("mixture", "rings", "moons", "checkerboard", "swiss_roll")
    with pytest.raises(ValueError, match=r"name must be one of .*'spiral'"):
        data.toy_dataset("spiral")
    with pytest.raises(ValueError, match=r"n must be >= 1; got n=0"):
        data.Moons().sample(0)
    with pytest.raises(TypeError, match=r"generator must be a torch.Generator"):
        data.Rings().sample(3, generator=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"generator is on device cpu but device='meta'"):
        data.SwissRoll().sample(3, generator=torch.Generator(), device="meta")
    with pytest.raises(TypeError, match=r"dtype must be a floating"):
        data.Checkerboard().sample(3, dtype=torch.int32)
    with pytest.raises(ValueError, match=r"num_rings must be >= 1; got num_rings=0"):
        data.Rings(num_rings=0)
    with pytest.raises(ValueError, match=r"noise must be >= 0; got noise=-0.1"):
        data.Moons(noise=-0.1)
    with pytest.raises(ValueError, match=r"cells must be >= 2"):
        data.Checkerboard(cells=1)
    with pytest.raises(ValueError, match=r"scale must be positive"):
        data.SwissRoll(scale=0.0)


def test_toy_mixture_is_the_papers():
    x = data.toy_dataset("mixture").sample(20_000, generator=torch.Generator().manual_seed(0))
    upper = (x[:, 0] > 0).double()
    # weight 0.8 at (5, 5): binomial standard error sqrt(0.16 / n) = 0.0028, allow 5 of them
    assert abs(float(upper.mean()) - 0.8) < 5 * math.sqrt(0.16 / 20_000)
    assert torch.allclose(x[x[:, 0] > 0].mean(0), torch.tensor([5.0, 5.0]), atol=0.05)


def test_rings_radii_and_weights():
    x = data.Rings(num_rings=3, spacing=1.5, noise=0.0).sample(
        30_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    radius = x.norm(dim=1)
    ring = (radius / 1.5).round()
    assert torch.allclose(radius, 1.5 * ring, atol=1e-12)
    frac = torch.bincount(ring.long(), minlength=4)[1:].double() / len(x)
    expected = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64) / 6  # ∝ radius
    assert torch.allclose(frac, expected, atol=5 * math.sqrt(0.25 / len(x)))


def test_moons_lie_on_their_half_circles():
    x = data.Moons(noise=0.0, scale=2.0).sample(
        4000, generator=torch.Generator().manual_seed(1), dtype=torch.float64
    )
    p = x / 2.0 + torch.tensor([0.5, 0.25], dtype=torch.float64)
    upper = (p.norm(dim=1) - 1).abs() < 1e-9
    lower = ((p - torch.tensor([1.0, 0.5], dtype=torch.float64)).norm(dim=1) - 1).abs() < 1e-9
    assert bool((upper | lower).all())
    assert bool((p[upper, 1] >= -1e-12).all()) and bool((p[lower, 1] <= 0.5 + 1e-12).all())
    assert abs(float(upper.double().mean()) - 0.5) < 5 * math.sqrt(0.25 / 4000)


def test_checkerboard_only_dark_squares_uniformly():
    board = data.Checkerboard(cells=4, half_width=2.0)
    x = board.sample(40_000, generator=torch.Generator().manual_seed(2))
    assert bool((x.abs() <= 2.0).all())
    cell = ((x + 2.0) / 1.0).floor().long().clamp(max=3)
    assert bool(((cell[:, 0] + cell[:, 1]) % 2 == 0).all())
    counts = torch.bincount(cell[:, 0] * 4 + cell[:, 1], minlength=16).double()
    dark = counts[counts > 0]
    assert len(dark) == 8
    assert float((dark / len(x) - 1 / 8).abs().max()) < 5 * math.sqrt((1 / 8) * (7 / 8) / len(x))


def test_swiss_roll_follows_its_spiral():
    x = data.SwissRoll(noise=0.0, scale=0.5).sample(
        2000, generator=torch.Generator().manual_seed(3), dtype=torch.float64
    )
    t = x.norm(dim=1) / 0.5
    assert float(t.min()) >= 1.5 * math.pi - 1e-9 and float(t.max()) <= 4.5 * math.pi + 1e-9
    assert torch.allclose(x, 0.5 * torch.stack((t * t.cos(), t * t.sin()), 1), atol=1e-9)
