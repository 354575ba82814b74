"""Class-conditional networks and the noisy classifier (nets/conditional.py)."""

from __future__ import annotations

import pytest
import torch

import ncsn
from ncsn.nets import ConditionalRefineNet, ConditionalScoreMLP, NoisyClassifierMLP

SIGMAS = ncsn.geometric_sigmas(1.0, 0.01, 10)


def test_a_new_conditional_refinenet_computes_the_refinenet_with_its_level_rows() -> None:
    """Class rows start at zero: every label gives the unconditional network's output, and the
    level rows load into a RefineNet unchanged (the official layout)."""
    net = ConditionalRefineNet(1, 4, SIGMAS, 10, generator=torch.Generator().manual_seed(0))
    plain = ncsn.nets.RefineNet(1, 4, SIGMAS)
    state = {k: v for k, v in net.state_dict().items() if "class_embed" not in k}
    plain.load_state_dict(state)
    x, sigma = torch.rand(3, 1, 8, 8), SIGMAS[[0, 4, 9]]
    for y in ([0, 3, 10], [9, 9, 9]):
        torch.testing.assert_close(net(x, sigma, torch.tensor(y)), plain(x, sigma), rtol=0, atol=0)
    extra = sorted(set(net.state_dict()) - set(plain.state_dict()))
    assert extra and all(k.endswith("class_embed.weight") for k in extra)


def test_the_class_changes_the_output_once_its_rows_are_trained() -> None:
    net = ConditionalRefineNet(1, 4, SIGMAS, 3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, ncsn.nets.conditional.ClassCondInstanceNorm2dPlus):
                m.class_embed.weight.normal_(0, 0.5, generator=torch.Generator().manual_seed(1))
    x, sigma = torch.rand(2, 1, 8, 8), SIGMAS[[2, 2]]
    a = net(x, sigma, torch.tensor([0, 0]))
    b = net(x, sigma, torch.tensor([1, 3]))
    assert (a - b).abs().amax(dim=(1, 2, 3)).min() > 1e-3
    # forward_levels is forward with the indices
    torch.testing.assert_close(net.forward_levels(x, torch.tensor([2, 2]), torch.tensor([1, 3])), b)


def test_gradients_reach_the_class_rows_and_the_level_rows() -> None:
    net = ConditionalRefineNet(1, 4, SIGMAS, 3)
    loss = ncsn.losses.DenoisingScoreMatching(ncsn.Schedule(SIGMAS))
    x = torch.rand(4, 1, 8, 8)
    loss(
        net, x, y=torch.tensor([0, 1, 2, 3]), generator=torch.Generator().manual_seed(0)
    ).backward()
    norm = net.res1[0].normalize1
    assert norm.class_embed.weight.grad is not None and norm.embed.weight.grad is not None
    used = norm.class_embed.weight.grad.abs().sum(1) > 0
    assert used.tolist() == [True, True, True, True]


@pytest.mark.parametrize(
    "make",
    [
        lambda: ConditionalRefineNet(1, 4, SIGMAS, 3, generator=torch.Generator().manual_seed(0)),
        lambda: ConditionalScoreMLP(
            3, 4, 16, sigmas=SIGMAS, generator=torch.Generator().manual_seed(0)
        ),
        lambda: NoisyClassifierMLP((1, 4, 4), 5, 16, generator=torch.Generator().manual_seed(0)),
    ],
    ids=["refinenet", "mlp", "classifier"],
)
def test_configs_rebuild_the_network_and_generators_make_it_reproducible(make) -> None:  # type: ignore[no-untyped-def]
    a, b = make(), make()
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    config = ncsn.nets.model_config(a)
    rebuilt = ncsn.nets.build_model(config)
    assert type(rebuilt) is type(a) and ncsn.nets.model_config(rebuilt) == config
    rebuilt.load_state_dict(a.state_dict())


def test_conditional_mlp_is_the_score_mlp_at_initialisation() -> None:
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    net = ConditionalScoreMLP(2, 3, 16, sigmas=SIGMAS, generator=g())
    plain = ncsn.nets.ScoreMLP(2, 16, sigmas=SIGMAS, generator=g())
    x, sigma = torch.randn(4, 2), SIGMAS[[0, 3, 5, 9]]
    torch.testing.assert_close(
        net(x, sigma, torch.tensor([0, 1, 2, 3])), plain(x, sigma), rtol=0, atol=0
    )


def test_the_noisy_classifier_takes_any_sigma_and_event_shape() -> None:
    net = NoisyClassifierMLP((2, 3), 4, 8)
    out = net(torch.randn(5, 2, 3), torch.tensor([0.0, 1e-3, 0.37, 2.0, 50.0]))
    assert out.shape == (5, 4) and torch.isfinite(out).all()
    assert NoisyClassifierMLP(3, 2, 8)(torch.randn(2, 3), 0.5).shape == (2, 2)
    assert isinstance(net, ncsn.NoisyClassifier)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (
            lambda n: n(torch.rand(2, 1, 8, 8), SIGMAS[:2], torch.tensor([0, 4])),
            ValueError,
            r"y must lie in \[0, 4\); got y=\[0, 4\]",
        ),
        (
            lambda n: n(torch.rand(2, 1, 8, 8), SIGMAS[:2], torch.tensor([0.0, 1.0])),
            TypeError,
            "y must be an int64 or int32 tensor",
        ),
        (
            lambda n: n(torch.rand(2, 1, 8, 8), SIGMAS[:2], torch.tensor([0])),
            ValueError,
            r"y must have shape \[B\]=\[2\]",
        ),
        (
            lambda n: n(torch.rand(2, 1, 8, 8), torch.tensor([0.5, 0.5]), torch.tensor([0, 1])),
            ValueError,
            "sigma=0.5 is not one of",
        ),
        (lambda n: n(torch.rand(2, 1, 8, 8), SIGMAS[:2]), TypeError, "y"),
    ],
)
def test_conditional_refinenet_bad_calls(call, error: type[Exception], match: str) -> None:  # type: ignore[no-untyped-def]
    net = ConditionalRefineNet(1, 4, SIGMAS, 3)
    with pytest.raises(error, match=match):
        call(net)


@pytest.mark.parametrize(
    "make, error, match",
    [
        (
            lambda: ConditionalRefineNet(1, 4, SIGMAS, 0),
            ValueError,
            "num_classes must be >= 1; got num_classes=0",
        ),
        (lambda: ConditionalRefineNet(1, 4, SIGMAS, 2.5), TypeError, "num_classes must be an int"),
        (lambda: ConditionalScoreMLP(2, -1, sigmas=SIGMAS), ValueError, "num_classes must be >= 1"),
        (lambda: NoisyClassifierMLP((), 2), ValueError, "event_shape must name at least one"),
        (lambda: NoisyClassifierMLP((2, 0), 2), ValueError, "event_shape must be >= 1"),
        (
            lambda: NoisyClassifierMLP(2, 2, generator=0),
            TypeError,
            "generator must be a torch.Generator",
        ),
    ],
)
def test_bad_construction(make, error: type[Exception], match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=match):
        make()


def test_noisy_classifier_bad_calls() -> None:
    net = NoisyClassifierMLP((1, 4, 4), 3, 8)
    with pytest.raises(
        ValueError, match=r"expects x of shape \[B, 1, 4, 4\]; got x.shape=\(2, 16\)"
    ):
        net(torch.rand(2, 16), 1.0)
    with pytest.raises(ValueError, match="sigma must be non-negative and finite"):
        net(torch.rand(2, 1, 4, 4), -1.0)
    with pytest.raises(TypeError, match="convert one of them"):
        net(torch.rand(2, 1, 4, 4, dtype=torch.float64), 1.0)
