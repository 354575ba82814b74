"""Extending ncsn: a score model of your own, conditioned on the noise *value* σ.

A score model is anything callable as ``model(x [B, *event], sigma [B]) -> [B, *event]``
(the ``ncsn.ScoreModel`` protocol). This one embeds log σ with random Fourier features and feeds
it to an MLP next to x, so, unlike the paper's networks, it accepts *any* σ, not only the levels of
one schedule. Its output is divided by σ (NCSNv2's Technique 3), so the network only has to
predict a quantity of order one at every level.

Run:  python examples/extending/custom_score_model.py
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

import ncsn
import ncsn.metrics


class FourierScoreMLP(nn.Module):
    """s(x, σ) = MLP([x, sin(ω log σ), cos(ω log σ)]) / σ for vector data ``[B, dim]``."""

    def __init__(
        self,
        dim: int,
        hidden: int = 128,
        features: int = 16,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        # Built on the meta device and then initialised from `generator`, so that constructing the
        # model neither draws from nor depends on the global RNG.
        self.net = nn.Sequential(
            nn.Linear(dim + 2 * features, hidden, device="meta"),
            nn.SiLU(),
            nn.Linear(hidden, hidden, device="meta"),
            nn.SiLU(),
            nn.Linear(hidden, dim, device="meta"),
        ).to_empty(device="cpu")
        with torch.no_grad():
            for layer in self.net:
                if isinstance(layer, nn.Linear):  # PyTorch's default bounds, 1/√fan_in
                    bound = 1 / math.sqrt(layer.in_features)
                    layer.weight.uniform_(-bound, bound, generator=generator)
                    layer.bias.uniform_(-bound, bound, generator=generator)
        # Fixed random frequencies: a buffer, so they move with .to() and are saved with the model.
        self.register_buffer("omega", 2.0 * torch.randn(features, generator=generator))

    def forward(self, x: Tensor, sigma: Tensor) -> Tensor:
        if x.ndim != 2:
            raise ValueError(f"FourierScoreMLP expects x of shape [B, D]; got {tuple(x.shape)}")
        angle = sigma.log()[:, None] * self.omega[None, :]  # [B, features]
        h = torch.cat([x, angle.sin(), angle.cos()], dim=1)
        return self.net(h) / sigma[:, None]


def main(*, steps: int = 4000, chains: int = 1280, seed: int = 0) -> dict[str, float]:
    """Train on the paper's mixture with DSM, sample with annealed Langevin, measure mode weights."""
    g = torch.Generator().manual_seed(seed)
    gmm = ncsn.toy.paper_mixture()
    schedule = ncsn.GeometricSchedule(20.0, 1.0, 10)  # App. B.1 of the paper

    model = FourierScoreMLP(dim=2, generator=g)
    assert isinstance(model, ncsn.ScoreModel)  # a structural check: it has the right __call__
    loss_fn = ncsn.losses.DenoisingScoreMatching(schedule)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(steps):
        loss = loss_fn(model, gmm.sample(128, generator=g), generator=g)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    # Because the model takes any σ, it can be sampled with a finer schedule than it was trained on.
    sampler = ncsn.samplers.AnnealedLangevin(
        ncsn.geometric_sigmas(20.0, 1.0, 20), step_size=0.1, steps_per_level=50
    )
    x0 = ncsn.samplers.uniform_init((chains, 2), low=-8.0, high=8.0, generator=g)
    with torch.no_grad():
        samples = sampler(model, x0, generator=g)
    weights = ncsn.metrics.mode_weights(samples, gmm)
    # The score error against the exact perturbed score at a few levels, scaled by σ² (unit-free).
    sigmas = torch.tensor([20.0, 5.0, 1.0])
    error = ncsn.metrics.score_error(
        model, gmm.score_model(), gmm.sample(2048, generator=g), sigmas, generator=g
    )
    return {
        "final_loss": float(loss.detach()),
        "weight_of_(5,5)": float(weights[1]),
        **{
            f"sigma2_error_at_{s:g}": float(e * s**2)
            for s, e in zip(sigmas.tolist(), error, strict=True)
        },
        "standard_error": math.sqrt(0.8 * 0.2 / chains),
    }


if __name__ == "__main__":
    for key, value in main().items():
        print(f"{key}: {value:.4f}")
