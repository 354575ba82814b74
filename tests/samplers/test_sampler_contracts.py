"""Every sampler of the contract table (``contracts.ALL_SAMPLERS``) gets every check of the
:class:`~ncsn.Sampler` protocol, with every score model of ``ALL_SCORE_MODELS``."""

from __future__ import annotations

import pytest
import torch

import ncsn
from contracts import ALL_SAMPLERS, ALL_SCORE_MODELS, ModelCase

MODEL_IDS = [c.name for c in ALL_SCORE_MODELS]


def _x(case: ModelCase, batch: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand((batch, *case.event_shape), generator=g, dtype=torch.float64)


@pytest.mark.parametrize("case", ALL_SCORE_MODELS, ids=MODEL_IDS)
@pytest.mark.parametrize(
    "sampler_name, make_sampler", ALL_SAMPLERS, ids=[n for n, _ in ALL_SAMPLERS]
)
def test_score_model_works_with_every_sampler(
    case: ModelCase, sampler_name: str, make_sampler
) -> None:
    sampler = make_sampler(case.sigmas)
    x0 = _x(case)
    out = sampler(case.factory(), x0, generator=torch.Generator().manual_seed(2))
    assert out.shape == x0.shape and out.dtype == x0.dtype and torch.isfinite(out).all()
    assert not out.requires_grad


@pytest.mark.parametrize("name, make", ALL_SAMPLERS, ids=[n for n, _ in ALL_SAMPLERS])
def test_sampler_contract(name: str, make) -> None:
    sampler = make(ncsn.geometric_sigmas(1.0, 0.1, 3))
    assert isinstance(sampler, ncsn.Sampler)
    x0 = torch.rand(5, 2, 3)
    before = x0.clone()
    g = lambda: torch.Generator().manual_seed(7)  # noqa: E731
    a = sampler(lambda x, s: -x, x0, generator=g())
    b = sampler(lambda x, s: -x, x0, generator=g())
    assert torch.equal(a, b) and a.shape == x0.shape and a.dtype == x0.dtype
    assert torch.equal(x0, before) and a.data_ptr() != x0.data_ptr()  # input left unchanged
    # a configuration object: equal settings compare and hash equal
    again = make(ncsn.geometric_sigmas(1.0, 0.1, 3))
    assert sampler == again and hash(sampler) == hash(again)
    calls: list[ncsn.samplers.StepInfo] = []
    sampler(lambda x, s: -x, x0, generator=g(), callback=calls.append)
    # one StepInfo per step (a Heun step makes two model calls), each with x and the score
    assert 1 <= len(calls) <= sampler.num_model_calls
    assert all(c.x.shape == x0.shape and c.score.shape == x0.shape for c in calls)


@pytest.mark.parametrize("name, make", ALL_SAMPLERS, ids=[n for n, _ in ALL_SAMPLERS])
def test_sampler_rejects_model_with_wrong_output_shape(name: str, make) -> None:
    sampler = make(ncsn.geometric_sigmas(1.0, 0.1, 3))
    with pytest.raises(
        ValueError, match=r"output shape \(2, 1\) differs from its input shape \(2, 3\)"
    ):
        sampler(lambda x, s: x[:, :1], torch.rand(2, 3))


@pytest.mark.parametrize("name, make", ALL_SAMPLERS, ids=[n for n, _ in ALL_SAMPLERS])
def test_sampler_counts_model_calls(name: str, make) -> None:
    sampler = make(ncsn.geometric_sigmas(1.0, 0.1, 3))
    count = 0

    def model(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        nonlocal count
        count += 1
        return -x

    sampler(model, torch.rand(2, 3))
    assert count == sampler.num_model_calls
