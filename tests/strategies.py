"""hypothesis strategies shared by the property tests and the bad-input tests."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import strategies as st

batches = st.integers(1, 4)
events = st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple)
float_dtypes = st.sampled_from([torch.float32, torch.float64])
seeds = st.integers(0, 2**31 - 1)

#: dtypes that cannot hold noise levels: integers, bools and complex numbers.
non_float_dtypes = st.sampled_from(
    [torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64, torch.bool, torch.complex64]
)

#: floating dtypes narrower than the float32 a network's parameters have by default.
other_float_dtypes = st.sampled_from([torch.float16, torch.bfloat16, torch.float64])

#: values that are not a ``torch.Generator`` (nor None).
non_generators = st.sampled_from(
    [0, 1.5, "cpu", torch.device("cpu"), np.random.default_rng(0), object(), [0]]
)


@st.composite
def schedules(draw: st.DrawFn) -> tuple[float, float, int]:
    """Valid geometric-schedule parameters ``(sigma_max, sigma_min, num_levels)``."""
    sigma_min = draw(st.floats(1e-3, 10.0))
    ratio = draw(st.floats(1.01, 1e3))
    return sigma_min * ratio, sigma_min, draw(st.integers(1, 12))


@st.composite
def colliding_schedules(draw: st.DrawFn) -> tuple[float, float, int, torch.dtype]:
    """Geometric-schedule parameters whose levels cannot all be distinct in the drawn dtype.

    The range σ_max − σ_min is at most a quarter of the dtype's epsilon relative to σ_max, i.e.
    at most half a unit in the last place at σ_max: every level rounds to one of at most two
    representable numbers, so three or more levels collide.
    """
    dtype = draw(st.sampled_from([torch.float16, torch.bfloat16, torch.float32]))
    eps = torch.finfo(dtype).eps
    sigma_max = draw(st.floats(1e-2, 100.0))
    shrink = draw(st.floats(1e-12, eps / 4))
    return sigma_max, sigma_max * (1.0 - shrink), draw(st.integers(3, 50)), dtype


@st.composite
def bad_sigma_vectors(draw: st.DrawFn) -> list[float]:
    """Non-empty lists of levels that are not strictly decreasing, positive and finite."""
    good = draw(st.lists(st.floats(1e-3, 1e3), min_size=1, max_size=6, unique=True))
    levels = sorted(good, reverse=True)
    flaw = draw(st.sampled_from(["nan", "inf", "zero", "negative", "repeat", "increasing"]))
    at = draw(st.integers(0, len(levels) - 1))
    if flaw == "nan":
        levels[at] = float("nan")
    elif flaw == "inf":
        levels[at] = float("inf")
    elif flaw == "zero":
        levels[-1] = 0.0
    elif flaw == "negative":
        levels[-1] = -levels[-1]
    elif flaw == "repeat":
        levels.insert(at, levels[at])
    else:
        levels.append(levels[-1] * 2.0)
    return levels


@st.composite
def wrong_sigma_shapes(draw: st.DrawFn, batch: int) -> tuple[int, ...]:
    """σ shapes that are neither a scalar ``()`` nor ``[batch]``."""
    shape = tuple(draw(st.lists(st.integers(0, 5), min_size=1, max_size=3)))
    if shape == (batch,):
        shape = (batch + 1,)
    return shape


def empty_batches(
    event: st.SearchStrategy[tuple[int, ...]] = events,
) -> st.SearchStrategy[tuple[int, ...]]:
    """Shapes ``[0, *event]``: a batch dimension of size 0."""
    return event.map(lambda e: (0, *e))


@st.composite
def bad_model_outputs(draw: st.DrawFn) -> tuple[str, object]:
    """How a score model's output can fail to fit its input ``x``: ``(kind, transform)`` with
    ``transform(x) -> output``; ``kind`` is the error the checks give (``"type"``, ``"dtype"``,
    ``"device"`` or ``"shape"``)."""
    kind = draw(st.sampled_from(["type", "dtype", "device", "shape"]))
    if kind == "type":
        wrap = draw(st.sampled_from([list, tuple, lambda t: t.tolist(), lambda t: None]))
        return kind, wrap
    if kind == "dtype":
        dtype = draw(
            st.sampled_from([torch.int64, torch.int32, torch.bool, torch.complex64, torch.uint8])
        )
        return kind, lambda t: t.to(dtype)
    if kind == "device":
        return kind, lambda t: torch.zeros(t.shape, dtype=t.dtype, device="meta")
    cut = draw(st.sampled_from(["drop-event", "sum", "flatten", "extra-dim"]))
    if cut == "drop-event":
        return kind, lambda t: t[..., :1] if t.shape[-1] > 1 else t[..., :0]
    if cut == "sum":
        return kind, lambda t: t.sum(dim=-1)
    if cut == "flatten":
        return kind, lambda t: t.reshape(-1)
    return kind, lambda t: t.unsqueeze(-1)
