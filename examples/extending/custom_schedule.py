"""Extending ncsn: a noise schedule of your own (the ``ncsn.NoiseSchedule`` protocol).

A schedule has ``.sigmas`` (``[L]``, strictly decreasing, positive, σ₁ first) and
``.sample(batch, *, generator=None) -> [batch]`` σ *values*, one level per example. The paper
draws levels uniformly, which makes DSM an unbiased estimate of (1/L)·Σᵢ λ(σᵢ)·ℓ(θ; σᵢ). This
schedule draws level i with probability pᵢ instead, so the loss estimates Σᵢ pᵢ·λ(σᵢ)·ℓ(θ; σᵢ):
here the paper's toy levels (geometric from 20 to 1), with the small σ (the hardest levels to learn and the
last ones the sampler visits) drawn twice as often as the large ones.

Run:  python examples/extending/custom_schedule.py
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

import ncsn
import ncsn.metrics


@dataclass(frozen=True, eq=False)
class WeightedSchedule:
    """Any validated levels ``[L]``, level i drawn with probability pᵢ (uniform by default)."""

    sigmas: Tensor
    probabilities: Tensor

    def __init__(
        self, sigmas: Tensor | Sequence[float], probabilities: Sequence[float] | None = None
    ) -> None:
        # ncsn.Schedule validates the levels: 1-D, finite, positive, strictly decreasing.
        levels = ncsn.Schedule(sigmas).sigmas
        count = levels.numel()
        probs = torch.full((count,), 1.0 / count, dtype=torch.float64)
        if probabilities is not None:
            probs = torch.as_tensor(probabilities, dtype=torch.float64)
            if probs.shape != (count,) or not bool((probs >= 0).all()) or float(probs.sum()) <= 0:
                raise ValueError(
                    f"probabilities must be {count} non-negative numbers, not all zero; "
                    f"got probabilities={list(probabilities)}"
                )
            probs = probs / probs.sum()
        object.__setattr__(self, "sigmas", levels)
        object.__setattr__(self, "probabilities", probs)

    def sample(self, batch: int, *, generator: torch.Generator | None = None) -> Tensor:
        """One level per example, drawn on the generator's device; returns σ values ``[batch]``."""
        device = generator.device if generator is not None else self.sigmas.device
        index = torch.multinomial(
            self.probabilities.to(device), batch, replacement=True, generator=generator
        )
        return self.sigmas.to(device)[index]


def main(*, steps: int = 2000, draws: int = 100_000, seed: int = 0) -> dict[str, float]:
    """Check the level frequencies, then train the paper's toy network with this schedule."""
    weights = [1.0] * 5 + [2.0] * 5  # the five smallest levels twice as often
    schedule = WeightedSchedule(ncsn.geometric_sigmas(20.0, 1.0, 10), weights)
    assert isinstance(schedule, ncsn.NoiseSchedule)  # a structural check: .sigmas and .sample
    g = torch.Generator().manual_seed(seed)

    drawn = schedule.sample(draws, generator=g)
    share_small = float((drawn <= schedule.sigmas[5]).double().mean())  # expected 10/15

    # Any ScoreLoss that takes a schedule takes this one; the network is conditioned on its levels.
    gmm = ncsn.toy.paper_mixture()
    net = ncsn.nets.ScoreMLP(2, sigmas=schedule.sigmas, generator=g)
    loss_fn = ncsn.losses.DenoisingScoreMatching(schedule)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(steps):
        loss = loss_fn(net, gmm.sample(128, generator=g), generator=g)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))

    # σ²-scaled error against the exact perturbed score, per level (largest σ first).
    error = ncsn.metrics.score_error(
        net, gmm.score_model(), gmm.sample(4096, generator=g), schedule.sigmas, generator=g
    )
    scaled = error * schedule.sigmas**2
    return {
        "share_of_small_levels": share_small,
        "expected_share": 2 / 3,
        "standard_error": math.sqrt(2 / 3 * 1 / 3 / draws),
        "first_loss": sum(losses[:20]) / 20,
        "last_loss": sum(losses[-20:]) / 20,
        **{
            f"sigma2_error_at_{s:.3g}": float(e)
            for s, e in zip(schedule.sigmas.tolist(), scaled, strict=True)
        },
    }


if __name__ == "__main__":
    for key, value in main().items():
        print(f"{key}: {value:.4f}")
