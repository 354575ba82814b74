"""Shared pieces of the bad-input tables that sit beside each module's tests
(``test_<module>_bad_inputs.py``): small models, losses and tensors, and the table's runner."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import settings

import ncsn
from ncsn import losses, nets

Call = Callable[[], object]
Error = type[Exception]
#: one case: (id, call, exception type, regex the message must match: it names the argument)
Case = tuple[str, Call, Error, str]

fast = settings(max_examples=25, deadline=None)

SIGMAS = ncsn.geometric_sigmas(1.0, 0.1, 3)
X = torch.rand(4, 2)
NAN = torch.full((4, 2), float("nan"))
GMM = ncsn.toy.paper_mixture()
EMPTY_RULE = r"x must hold at least one example; got shape \(0, 2\)"


def cases(table: list[Case]) -> pytest.MarkDecorator:
    """Parametrize a test ``(call, error, match)`` over a table of cases, each with its id."""
    return pytest.mark.parametrize(
        ("call", "error", "match"), [c[1:] for c in table], ids=[c[0] for c in table]
    )


def raises_naming(call: Call, error: Error, match: str) -> None:
    """``call()`` raises ``error`` with a message matching ``match``."""
    with pytest.raises(error, match=match):
        call()


def mlp(**kwargs: Any) -> nets.ScoreMLP:
    return nets.ScoreMLP(2, hidden=8, generator=torch.Generator().manual_seed(0), **kwargs)


def refinenet() -> nets.RefineNet:
    return nets.RefineNet(1, 4, SIGMAS, generator=torch.Generator().manual_seed(0))


def dsm_loss() -> losses.DenoisingScoreMatching:
    return losses.DenoisingScoreMatching(ncsn.Schedule(SIGMAS))


def ssm_loss() -> losses.SlicedScoreMatching:
    return losses.SlicedScoreMatching(ncsn.Schedule(SIGMAS))


class BadSchedule:
    """A schedule whose draw has the wrong shape (or is no tensor)."""

    def __init__(self, draw: Callable[[int], object]) -> None:
        self.sigmas = SIGMAS
        self.draw = draw

    def sample(self, batch: int, *, generator: torch.Generator | None = None) -> Any:
        return self.draw(batch)


def meta(shape: tuple[int, ...] = (4, 2)) -> torch.Tensor:
    """A tensor on another device than the CPU models (meta: shapes, no values)."""
    return torch.zeros(shape, device="meta")


def detached(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    return (-x).detach()


def re_shape(shape: tuple[int, ...]) -> str:
    """A regex for ``str(shape)``."""
    return str(shape).replace("(", r"\(").replace(")", r"\)")
