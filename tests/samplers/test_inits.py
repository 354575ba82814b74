"""Starting points and inpainting masks (samplers/inits.py)."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

import ncsn


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
AUDIT_CASES: list[tuple[str, Callable[[], object], type[Exception], str]] = [
    (
        "uniform_init/integer dtype",
        lambda: ncsn.samplers.uniform_init((2, 2), dtype=torch.int64),
        TypeError,
        r"dtype must be a floating-point torch\.dtype; got dtype=torch\.int64",
    ),
    (
        "gaussian_init/complex dtype (complex points)",
        lambda: ncsn.samplers.gaussian_init((2, 2), 1.0, dtype=torch.complex64),
        TypeError,
        r"dtype must be a floating-point torch\.dtype; got dtype=torch\.complex64",
    ),
    (
        "uniform_init/unknown device",
        lambda: ncsn.samplers.uniform_init((2, 2), device="gpu0"),
        ValueError,
        r"device must name a torch device; got device='gpu0'",
    ),
    (
        "gaussian_init/float16 overflow (inf points)",
        lambda: ncsn.samplers.gaussian_init((2, 2), 1e6, dtype=torch.float16),
        ValueError,
        r"sigma=1000000\.0 with mean=0\.0 overflows dtype=torch\.float16",
    ),
    (
        "uniform_init/bounds beyond float16",
        lambda: ncsn.samplers.uniform_init((2, 2), 0.0, 1e6, dtype=torch.float16),
        ValueError,
        r"low=0\.0 and high=1000000\.0 must be representable in dtype=torch\.float16",
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
