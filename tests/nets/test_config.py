"""ncsn.nets.config: the one builder of the library's networks, and their plain-data configs."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

import ncsn
from ncsn.nets.config import build_model, model_config


@pytest.mark.parametrize(
    "make, shape, sigma",
    [
        (lambda: ncsn.nets.RefineNet(1, 4, ncsn.geometric_sigmas(1.0, 0.01, 5), norm="paper"), (2, 1, 8, 8), [1.0, 0.01]),
        (lambda: ncsn.nets.RefineNetBaseline(3, 4, logit_transform=True), (2, 3, 8, 8), [0.01, 0.01]),
        (lambda: ncsn.nets.ScoreMLP(2, hidden=16, sigmas=[2.0, 1.0]), (2, 2), [2.0, 1.0]),
        (lambda: ncsn.nets.ScoreMLP(3, hidden=8), (2, 3), [1.0, 1.0]),
        (lambda: ncsn.nets.ScaledByInverseSigma(ncsn.nets.RefineNetBaseline(1, 4)), (2, 1, 8, 8), [1.0, 0.5]),
    ],
)  # fmt: skip
def test_model_config_round_trip_loads_the_same_weights(
    make: Callable[[], torch.nn.Module], shape: tuple[int, ...], sigma: list[float]
) -> None:
    net = make()
    config = model_config(net)
    rebuilt = build_model(config)
    rebuilt.load_state_dict(net.state_dict())
    assert model_config(rebuilt) == config
    x, s = torch.rand(shape), torch.tensor(sigma)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x, s), net(x, s))


@pytest.mark.parametrize(
    "config",
    [
        {"kind": "RefineNet", "channels": 1, "ngf": 4, "sigmas": [1.0, 0.1]},
        {"kind": "RefineNetBaseline", "channels": 1, "ngf": 4},
        {"kind": "ScoreMLP", "dim": 2, "hidden": 8, "sigmas": None},
        {"kind": "ScaledByInverseSigma", "module": {"kind": "RefineNetBaseline", "channels": 1, "ngf": 4}},
    ],
)  # fmt: skip
def test_the_same_generator_seed_builds_the_same_weights(config: dict[str, object]) -> None:
    """The initial weights come from the generator, never from the global RNG."""
    a = build_model(config, generator=torch.Generator().manual_seed(0))
    with torch.random.fork_rng():
        torch.manual_seed(99)
        b = build_model(config, generator=torch.Generator().manual_seed(0))
    c = build_model(config, generator=torch.Generator().manual_seed(1))
    for (key, value), other in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(value, other), key
    assert any(not torch.equal(x, y) for x, y in zip(a.parameters(), c.parameters(), strict=True))


def test_config_errors() -> None:
    with pytest.raises(TypeError, match="model_config supports"):
        model_config(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="config kind must be one of"):
        build_model({"kind": "UNet"})
    with pytest.raises(ValueError, match="missing the field 'ngf'"):
        build_model({"kind": "RefineNetBaseline", "channels": 1})
    with pytest.raises(ValueError, match="config must be a dict"):
        build_model([1, 2])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"generator must be a torch\.Generator or None; got 3"):
        build_model({"kind": "ScoreMLP", "dim": 2}, generator=3)  # type: ignore[arg-type]
