"""Losses against exact values: oracle models, zero models and the exact score-matching objective."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import Tensor, nn

import ncsn
from ncsn.losses import annealed_ssm, dsm, projections_like, ssm


def _pad(s: Tensor, x: Tensor) -> Tensor:
    return s.reshape(-1, *([1] * (x.ndim - 1)))


@pytest.mark.parametrize("shape", [(5, 2), (3, 2, 4, 4), (2, 7)])
@pytest.mark.parametrize("power", [0.0, 1.0, 2.0])
def test_dsm_is_exactly_zero_for_the_oracle(shape: tuple[int, ...], power: float) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(shape, generator=g)
    z = torch.randn(shape, generator=g)
    sigma = torch.rand(shape[0], generator=g) + 0.01
    oracle = lambda xt, s: -z / _pad(s, z)  # noqa: E731
    loss = dsm(oracle, x, sigma, noise=z, power=power)
    assert torch.equal(loss, torch.zeros(shape[0]))


@pytest.mark.parametrize("power", [0.0, 2.0, 3.0])
def test_dsm_with_zero_model_is_half_noise_norm_times_sigma_power(power: float) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(6, 3, 5, 5, generator=g, dtype=torch.float64)
    z = torch.randn(x.shape, generator=g, dtype=torch.float64)
    sigma = torch.linspace(0.01, 2.0, 6, dtype=torch.float64)
    loss = dsm(lambda xt, s: torch.zeros_like(xt), x, sigma, noise=z, power=power)
    expected = 0.5 * z.flatten(1).square().sum(1) * sigma ** (power - 2)
    torch.testing.assert_close(loss, expected, rtol=1e-12, atol=0)


def test_dsm_matches_the_official_formula() -> None:
    """½ Σ (s − target)² σ^p with target = −(x̃ − x)/σ² (spec §1.3)."""
    g = torch.Generator().manual_seed(2)
    x = torch.rand(4, 1, 6, 6, generator=g, dtype=torch.float64)
    z = torch.randn(x.shape, generator=g, dtype=torch.float64)
    sigma = torch.tensor([1.0, 0.5, 0.1, 0.01], dtype=torch.float64)
    model = lambda xt, s: torch.sin(3 * xt) / _pad(s, xt)  # noqa: E731
    xt = x + _pad(sigma, x) * z
    target = -(xt - x) / _pad(sigma, x) ** 2
    official = 0.5 * ((model(xt, sigma) - target) ** 2).flatten(1).sum(1) * sigma**2.0
    torch.testing.assert_close(dsm(model, x, sigma, noise=z), official, rtol=1e-10, atol=0)


def test_configured_dsm_is_the_batch_mean_of_the_kernel() -> None:
    schedule = ncsn.GeometricSchedule(1.0, 0.01, 10)
    loss = ncsn.losses.DenoisingScoreMatching(schedule, power=2.0)
    x = torch.rand(32, 2, dtype=torch.float64)
    model = lambda xt, s: -xt  # noqa: E731
    value = loss(model, x, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    sigma = schedule.sample(32, generator=g).double()
    expected = dsm(model, x, sigma, generator=g).mean()
    torch.testing.assert_close(value, expected)


def _coupled(xt: Tensor, s: Tensor) -> Tensor:
    """A non-linear score model with a full Jacobian (each output depends on two inputs)."""
    return -torch.tanh(xt) * (1 + 0.5 * xt.roll(1, dims=1)) / (1 + _pad(s, xt))


@pytest.mark.parametrize(
    "distribution, variance_reduction",
    [("rademacher", False), ("sphere", False), ("gaussian", True)],
)
def test_configured_ssm_is_the_batch_mean_of_the_kernel(
    distribution: str, variance_reduction: bool
) -> None:
    """Same draws in the configured loss's order: σ from the schedule, then z, then v."""
    schedule = ncsn.GeometricSchedule(1.0, 0.1, 4)
    settings = dict(
        projections=3,
        distribution=distribution,
        variance_reduction=variance_reduction,
        power=3.0,
    )
    loss = ncsn.losses.SlicedScoreMatching(schedule, **settings)  # type: ignore[arg-type]
    x = torch.rand(16, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(10))
    value = loss(_coupled, x, generator=torch.Generator().manual_seed(11))

    def kernel(**changes: object) -> Tensor:
        g = torch.Generator().manual_seed(11)
        sigma = schedule.sample(16, generator=g).double()
        z = torch.randn(x.shape, generator=g, dtype=torch.float64)
        return annealed_ssm(_coupled, x, sigma, noise=z, generator=g, **{**settings, **changes})  # type: ignore[arg-type]

    torch.testing.assert_close(value, kernel().mean(), rtol=1e-12, atol=0)
    # the check is sensitive to every setting: each variant misses the configured value
    other = "gaussian" if distribution != "gaussian" else "rademacher"
    variants = {
        "sum": kernel().sum(),
        "power": kernel(power=2.0).mean(),
        "projections": kernel(projections=1).mean(),
        "distribution": kernel(distribution=other).mean(),
        "variance_reduction": kernel(variance_reduction=not variance_reduction).mean(),
    }
    for name, variant in variants.items():
        assert not torch.isclose(value, variant, rtol=1e-3), name


def _linear_ssm_by_hand(a: Tensor, x: Tensor, v: Tensor, variance_reduction: bool) -> Tensor:
    """SSM of s(x) = A x (Jacobian A), one example and one direction at a time."""
    out = []
    for b in range(x.shape[0]):
        score = a @ x[b]
        terms = []
        for p in range(v.shape[0]):
            vp = v[p, b]
            second = 0.5 * score.dot(score) if variance_reduction else 0.5 * vp.dot(score) ** 2
            terms.append(vp.dot(a @ vp) + second)
        out.append(torch.stack(terms).mean())
    return torch.stack(out)


@pytest.mark.parametrize("jacobian", ["backward", "forward"])
@pytest.mark.parametrize("variance_reduction", [True, False])
def test_ssm_of_a_linear_model_equals_the_hand_computation(
    variance_reduction: bool, jacobian: str
) -> None:
    g = torch.Generator().manual_seed(12)
    a = torch.randn(3, 3, generator=g, dtype=torch.float64)
    x = torch.randn(4, 3, generator=g, dtype=torch.float64)
    v = torch.randn(2, 4, 3, generator=g, dtype=torch.float64)
    model = lambda xt, s: xt @ a.T  # noqa: E731
    got = ssm(
        model,
        x,
        1.0,
        projections=2,
        directions=v,
        variance_reduction=variance_reduction,
        jacobian=jacobian,  # type: ignore[arg-type]
    )
    expected = _linear_ssm_by_hand(a, x, v, variance_reduction)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    # the two branches differ on these values, so each is pinned by its own hand computation
    other = _linear_ssm_by_hand(a, x, v, not variance_reduction)
    assert (other - expected).abs().min() > 1e-3


def _exact_sm_objective(model: nn.Module, x: Tensor, sigma: Tensor) -> Tensor:
    """tr(∇ₓ s) + ½‖s‖² per example, with the full Jacobian."""
    out = []
    for xi, si in zip(x, sigma, strict=True):
        f = lambda v, si=si: model(v[None], si[None])[0]  # noqa: E731
        jac = torch.autograd.functional.jacobian(f, xi)
        s = f(xi)
        out.append(torch.trace(jac.reshape(xi.numel(), xi.numel())) + 0.5 * s.square().sum())
    return torch.stack(out)


@pytest.mark.parametrize("distribution", ["gaussian", "rademacher", "sphere"])
@pytest.mark.parametrize("variance_reduction", [True, False])
def test_ssm_expectation_is_the_exact_score_matching_objective(
    distribution: str, variance_reduction: bool
) -> None:
    torch.manual_seed(0)
    net = ncsn.nets.ScoreMLP(3, hidden=16).double()
    points = torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    sigma = torch.ones(3, dtype=torch.float64)
    exact = _exact_sm_objective(net, points, sigma)
    n = 4000
    x = points.repeat_interleave(n, dim=0)
    values = ssm(
        net,
        x,
        1.0,
        distribution=distribution,  # type: ignore[arg-type]
        variance_reduction=variance_reduction,
        generator=torch.Generator().manual_seed(5),
    ).reshape(3, n)
    mean, se = values.mean(1), values.std(1) / math.sqrt(n)
    assert ((mean - exact).abs() <= 4 * se + 1e-10).all(), (mean, exact, se)


def test_projection_distributions_have_identity_second_moment() -> None:
    for distribution in ("gaussian", "rademacher", "sphere"):
        v = projections_like(
            torch.zeros(20000, 2, 2, dtype=torch.float64),
            distribution,  # type: ignore[arg-type]
            generator=torch.Generator().manual_seed(6),
        ).flatten(1)
        second = v.T @ v / v.shape[0]
        # each entry of the empirical E[vvᵀ] has standard error at most √(Var(v_i v_j)/n) ≤ √(3/n)
        assert (second - torch.eye(4, dtype=torch.float64)).abs().max() < 4 * math.sqrt(3 / 20000)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("distribution", ["gaussian", "rademacher", "sphere"])
def test_projections_lie_on_their_distributions_support(
    distribution: str, dtype: torch.dtype
) -> None:
    x = torch.zeros(500, 2, 3, 4, dtype=dtype)
    v = projections_like(x, distribution, generator=torch.Generator().manual_seed(13))  # type: ignore[arg-type]
    assert v.shape == x.shape and v.dtype == dtype and torch.isfinite(v).all()
    if distribution == "rademacher":
        assert ((v == 1) | (v == -1)).all()
        frac = (v == 1).double().mean().item()
        assert abs(frac - 0.5) < 4 * math.sqrt(0.25 / v.numel())
    elif distribution == "sphere":
        norms = v.flatten(1).double().norm(dim=1)
        tol = 1e-5 if dtype == torch.float32 else 1e-12
        torch.testing.assert_close(
            norms, torch.full((500,), math.sqrt(24.0), dtype=torch.float64), rtol=tol, atol=0
        )
        assert not torch.equal(v[0], v[1])  # one direction per example
    else:
        assert torch.unique(v).numel() == v.numel()  # continuous: no repeated values
        assert abs(v.double().std().item() - 1) < 4 / math.sqrt(2 * v.numel())


class _FlatMLP(nn.Module):
    """An image model that flattens, applies an MLP and reshapes back."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.shape = shape
        self.net = ncsn.nets.ScoreMLP(math.prod(shape), hidden=8)

    def forward(self, x: Tensor, sigma: Tensor) -> Tensor:
        return self.net(x.flatten(1), sigma).reshape(x.shape)


@pytest.mark.parametrize("distribution", ["gaussian", "sphere", "rademacher"])
@pytest.mark.parametrize("variance_reduction", [True, False])
def test_ssm_on_images_sums_over_every_event_dimension(
    distribution: str, variance_reduction: bool
) -> None:
    """The official non-VR SSM normalised and summed over the last axis only; we use all event dims."""
    torch.manual_seed(0)
    image_model = _FlatMLP((2, 3, 4)).double()
    x = torch.randn(5, 2, 3, 4, dtype=torch.float64)
    kwargs = dict(distribution=distribution, variance_reduction=variance_reduction, projections=2)
    on_images = ssm(image_model, x, 1.0, generator=torch.Generator().manual_seed(7), **kwargs)  # type: ignore[arg-type]
    on_vectors = ssm(
        image_model.net, x.flatten(1), 1.0, generator=torch.Generator().manual_seed(7), **kwargs
    )  # type: ignore[arg-type]
    torch.testing.assert_close(on_images, on_vectors)
    v = projections_like(torch.zeros(5, 2, 3, 4), "sphere", generator=torch.Generator())
    torch.testing.assert_close(v.flatten(1).norm(dim=1), torch.full((5,), math.sqrt(24)))


def test_annealed_ssm_is_weighted_ssm_at_perturbed_points() -> None:
    torch.manual_seed(0)
    net = ncsn.nets.ScoreMLP(2, hidden=8, sigmas=[1.0, 0.5]).double()
    x = torch.randn(6, 2, dtype=torch.float64)
    z = torch.randn(6, 2, dtype=torch.float64)
    v = torch.randn(1, 6, 2, dtype=torch.float64)
    sigma = torch.tensor([1.0, 0.5] * 3, dtype=torch.float64)
    got = annealed_ssm(net, x, sigma, noise=z, directions=v, power=3.0)
    expected = ssm(net, x + sigma[:, None] * z, sigma, directions=v) * sigma**3
    torch.testing.assert_close(got, expected)


def test_ssm_gradients_reach_parameters_and_match_finite_differences() -> None:
    torch.manual_seed(0)
    net = ncsn.nets.ScoreMLP(2, hidden=4).double()
    x = torch.randn(3, 2, dtype=torch.float64)
    v = torch.randn(1, 3, 2, dtype=torch.float64)
    loss = ssm(net, x, 1.0, directions=v).sum()
    loss.backward()
    p = net.fc1.bias
    assert p.grad is not None
    analytic = p.grad[0].item()
    eps = 1e-6
    with torch.no_grad():
        p[0] += eps
    up = ssm(net, x, 1.0, directions=v).sum().item()
    with torch.no_grad():
        p[0] -= 2 * eps
    down = ssm(net, x, 1.0, directions=v).sum().item()
    assert analytic == pytest.approx((up - down) / (2 * eps), rel=1e-5)


def test_single_sigma_baseline_is_dsm_with_power_zero() -> None:
    loss = ncsn.losses.DenoisingScoreMatching(ncsn.Schedule([0.01]), power=0.0)
    x = torch.rand(8, 4, dtype=torch.float64)
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    value = loss(lambda xt, s: torch.zeros_like(xt), x, generator=g1)
    ncsn.Schedule([0.01]).sample(8, generator=g2)
    z = torch.randn(x.shape, generator=g2, dtype=torch.float64)
    torch.testing.assert_close(value, (0.5 * z.square().sum(1) / 0.01**2).mean())


# ---------------------------------------------------------------- bad input
def test_loss_errors_name_the_argument() -> None:
    model = lambda x, s: -x  # noqa: E731
    x = torch.rand(4, 2)
    with pytest.raises(
        ValueError, match=r"distribution must be one of .* got distribution='uniform'"
    ):
        ncsn.losses.SlicedScoreMatching(ncsn.GeometricSchedule(1.0, 0.1, 3), distribution="uniform")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="distribution must be one of"):
        ssm(model, x, 1.0, distribution="normal")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="projections must be >= 1; got projections=0"):
        ssm(model, x, 1.0, projections=0)
    with pytest.raises(ValueError, match="sigma must be positive"):
        dsm(model, x, torch.tensor([1.0, 0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="sigma must be positive"):
        dsm(model, x, float("nan"))
    with pytest.raises(
        ValueError, match=r"sigma must be a scalar or have shape \[B\]=\[4\]; got \(3,\)"
    ):
        dsm(model, x, torch.ones(3))
    with pytest.raises(ValueError, match=r"noise must have the shape of x \(4, 2\); got \(4, 3\)"):
        dsm(model, x, 1.0, noise=torch.zeros(4, 3))
    with pytest.raises(ValueError, match="batch dimension"):
        dsm(model, torch.tensor(1.0), 1.0)
    with pytest.raises(ValueError, match="power must be finite"):
        ncsn.losses.DenoisingScoreMatching(ncsn.GeometricSchedule(1.0, 0.1, 3), power=float("inf"))
    with pytest.raises(ValueError, match=r"directions must have shape"):
        ssm(model, x, 1.0, directions=torch.zeros(4, 2))
    with pytest.raises(TypeError, match="floating-point"):
        dsm(model, torch.ones(4, 2, dtype=torch.int64), 1.0)


@pytest.mark.parametrize(
    "sigma", [-1.0, float("nan"), float("inf"), torch.tensor([1.0, -0.5, 1.0, 1.0])]
)
def test_ssm_rejects_negative_or_non_finite_sigma(sigma: float | Tensor) -> None:
    x = torch.rand(4, 2)
    with pytest.raises(ValueError, match=r"sigma must be non-negative and finite; got sigma="):
        ssm(lambda xt, s: -xt, x, sigma)
    with pytest.raises(ValueError, match=r"sigma must be positive and finite; got sigma="):
        annealed_ssm(lambda xt, s: -xt, x, sigma)


def test_ssm_accepts_sigma_zero_for_an_unconditional_model() -> None:
    x = torch.rand(4, 2, dtype=torch.float64)
    v = torch.ones(1, 4, 2, dtype=torch.float64)
    # s(x) = -x: vᵀJv = -‖v‖² = -2, ½‖s‖² = ½‖x‖²
    got = ssm(lambda xt, s: -xt, x, 0.0, directions=v)
    torch.testing.assert_close(got, -2.0 + 0.5 * x.square().sum(1))


def test_sigma_error_names_the_value_given() -> None:
    with pytest.raises(ValueError, match=r"got sigma=-1\.0$"):
        ssm(lambda xt, s: -xt, torch.rand(4, 2), -1.0)
    with pytest.raises(ValueError, match=r"got sigma=\[1\.0, -0\.5\]$"):
        dsm(lambda xt, s: -xt, torch.rand(2, 2), torch.tensor([1.0, -0.5]))


def test_numpy_scalars_are_accepted_as_settings() -> None:
    import numpy as np

    schedule = ncsn.GeometricSchedule(1.0, 0.1, 3)
    loss = ncsn.losses.SlicedScoreMatching(schedule, projections=np.int64(2), power=np.float32(2.0))
    assert loss.projections == 2 and type(loss.projections) is int and type(loss.power) is float
    assert ncsn.losses.DenoisingScoreMatching(schedule, power=np.float64(1.0)).power == 1.0
    with pytest.raises(TypeError, match=r"projections must be an int; got projections=True"):
        ncsn.losses.SlicedScoreMatching(schedule, projections=True)
    with pytest.raises(TypeError, match=r"projections must be an int; got projections=2\.0"):
        ssm(lambda xt, s: -xt, torch.rand(2, 2), 1.0, projections=2.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"power must be a real number; got power='2'"):
        dsm(lambda xt, s: -xt, torch.rand(2, 2), 1.0, power="2")  # type: ignore[arg-type]


def test_generator_on_another_device_is_rejected() -> None:
    x = torch.empty(4, 2, device="meta")
    with pytest.raises(ValueError, match="generator is on device cpu but x is on device meta"):
        dsm(lambda x, s: -x, x, 1.0, generator=torch.Generator())


def _generator_reporting(device: str) -> torch.Generator:
    """A CPU generator that reports another device (the checks read only ``.device``)."""

    class Reporting(torch.Generator):
        @property
        def device(self) -> torch.device:  # type: ignore[override]
            return torch.device(device)

    return Reporting()


def _fake_cuda(index: int) -> Tensor:
    """A tensor that reports ``cuda:index`` without a GPU (no data: only checks may see it)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        return torch.empty(4, 2, device=f"cuda:{index}")


def test_generator_on_another_cuda_device_index_is_rejected(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ncsn._checks import check_generator

    x1 = _fake_cuda(1)
    with pytest.raises(ValueError, match="generator is on device cuda:0 but x is on device cuda:1"):
        dsm(lambda x, s: -x, x1, 1.0, generator=_generator_reporting("cuda:0"))
    with pytest.raises(ValueError, match="generator is on device cuda:0 but x is on device cuda:1"):
        ssm(lambda x, s: -x, x1, 1.0, generator=_generator_reporting("cuda:0"))
    with pytest.raises(ValueError, match=r"generator is on device cuda:0 but device='cuda:1'"):
        ncsn.samplers.uniform_init(
            (2, 2), generator=_generator_reporting("cuda:0"), device="cuda:1"
        )
    check_generator(_generator_reporting("cuda:1"), x1)  # same index: accepted
    # torch.Generator("cuda") reports no index: it serves the current CUDA device
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    with pytest.raises(ValueError, match="generator is on device cuda but x is on device cuda:1"):
        check_generator(_generator_reporting("cuda"), x1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    check_generator(_generator_reporting("cuda"), x1)


@pytest.mark.parametrize("variance_reduction", [True, False])
def test_forward_and_backward_jacobian_modes_agree_on_loss_and_gradients(
    variance_reduction: bool,
) -> None:
    sigmas = torch.tensor([1.0, 0.1], dtype=torch.float64)
    torch.manual_seed(0)
    refinenet = ncsn.nets.RefineNet(channels=1, ngf=4, sigmas=sigmas).double()
    models = [
        ncsn.nets.ScoreMLP(3, hidden=8, sigmas=sigmas).double(),
        refinenet,
        # channels_last takes the norm's own differentiable-backward path in backward mode
        copy.deepcopy(refinenet).to(memory_format=torch.channels_last),
    ]
    for index, net in enumerate(models):
        shape = (4, 3) if isinstance(net, ncsn.nets.ScoreMLP) else (4, 1, 8, 8)
        x = torch.rand(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        if index == 2:
            x = x.contiguous(memory_format=torch.channels_last)
        results = []
        for mode in ("backward", "forward"):
            net.zero_grad()
            loss = ncsn.losses.SlicedScoreMatching(
                ncsn.Schedule(sigmas),
                variance_reduction=variance_reduction,
                projections=2,
                jacobian=mode,
            )(net, x, generator=torch.Generator().manual_seed(2))
            loss.backward()
            results.append((loss.detach(), [p.grad.clone() for p in net.parameters()]))
        torch.testing.assert_close(results[0][0], results[1][0])
        for a, b in zip(results[0][1], results[1][1], strict=True):
            torch.testing.assert_close(a, b)


def test_unknown_jacobian_mode_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"jacobian must be one of .* got jacobian='reverse'"):
        ncsn.losses.SlicedScoreMatching(ncsn.Schedule([1.0]), jacobian="reverse")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="jacobian must be one of"):
        ssm(lambda x, s: -x, torch.rand(2, 2), 1.0, jacobian="both")  # type: ignore[arg-type]


def test_forward_mode_leaves_the_network_copyable() -> None:
    """The σ lookup must not cache a tensor of the jvp transform (deepcopy, e.g. for EMA, failed)."""
    import copy

    sigmas = torch.tensor([1.0, 0.1])
    net = ncsn.nets.ScoreMLP(2, hidden=4, sigmas=sigmas)
    ncsn.losses.SlicedScoreMatching(ncsn.Schedule(sigmas), jacobian="forward")(
        net, torch.rand(3, 2)
    ).backward()
    clone = copy.deepcopy(net)
    x, s = torch.rand(2, 2), sigmas
    torch.testing.assert_close(clone(x, s), net(x, s))


@pytest.mark.parametrize(
    "make",
    [
        lambda s: ncsn.losses.DenoisingScoreMatching(s),
        lambda s: ncsn.losses.SlicedScoreMatching(s),
    ],
)
def test_configured_losses_make_no_host_synchronisation(make) -> None:
    """σ drawn from a schedule validated once needs no per-step value check (a device sync)."""
    from torch.overrides import TorchFunctionMode

    syncs: list[str] = []

    class Watch(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            if getattr(func, "__name__", "") in {"item", "tolist", "__bool__", "__float__", "cpu"}:
                syncs.append(func.__name__)
            return func(*args, **(kwargs or {}))

    loss = make(ncsn.GeometricSchedule(1.0, 0.01, 5))
    x = torch.rand(8, 3)
    with Watch():
        loss(
            lambda xt, s: -xt / (1 + s[:, None] ** 2), x, generator=torch.Generator().manual_seed(0)
        )
    assert syncs == []


def test_configured_losses_validate_their_schedule_once() -> None:
    class Bad:
        sigmas = torch.tensor([1.0, 2.0])

        def sample(self, batch: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
            return self.sigmas[:1].expand(batch)

    with pytest.raises(ValueError, match=r"schedule\.sigmas must be strictly decreasing"):
        ncsn.losses.DenoisingScoreMatching(Bad())
    with pytest.raises(ValueError, match=r"schedule\.sigmas must be strictly decreasing"):
        ncsn.losses.SlicedScoreMatching(Bad())


# ------------------------------------------------------------------ labels (class-conditional training)
def _conditional() -> ncsn.nets.ConditionalScoreMLP:
    net = ncsn.nets.ConditionalScoreMLP(
        2, 3, 16, sigmas=[1.0, 0.5, 0.1], generator=torch.Generator().manual_seed(0)
    ).double()
    with torch.no_grad():  # class rows away from zero, so that the labels matter
        net.class_bias.normal_(0, 1, generator=torch.Generator().manual_seed(1))
    return net


def test_kernels_with_labels_are_the_kernels_of_the_conditioned_model() -> None:
    net, x = _conditional(), torch.randn(6, 2, dtype=torch.float64)
    sigma = torch.tensor([1.0, 0.5, 0.1, 1.0, 0.5, 0.1], dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    fixed = ncsn.guidance.condition(net, y)
    g = lambda: torch.Generator().manual_seed(2)  # noqa: E731
    assert torch.equal(dsm(net, x, sigma, y=y, generator=g()), dsm(fixed, x, sigma, generator=g()))
    repeated = ncsn.guidance.condition(net, y.repeat(2))  # the particles are [B] after [B]
    for kernel in (ssm, annealed_ssm):
        a = kernel(net, x, sigma, y=y, projections=2, generator=g())
        assert torch.equal(a, kernel(repeated, x, sigma, projections=2, generator=g()))
    assert not torch.equal(
        dsm(net, x, sigma, y=y, generator=g()), dsm(net, x, sigma, y=y.flip(0), generator=g())
    )


@pytest.mark.parametrize("kind", ["dsm", "ssm"])
def test_configured_losses_take_labels_and_drop_them_at_the_rate(kind: str) -> None:
    schedule = ncsn.Schedule([1.0, 0.5, 0.1])
    make = ncsn.losses.DenoisingScoreMatching if kind == "dsm" else ncsn.losses.SlicedScoreMatching
    net, x = _conditional(), torch.randn(8, 2, dtype=torch.float64)
    y = torch.arange(8) % 3
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    fixed = ncsn.guidance.condition(net, y)
    # without dropout: the σ and z of the unlabelled call on the conditioned model
    assert torch.equal(
        make(schedule)(net, x, y=y, generator=g()), make(schedule)(fixed, x, generator=g())
    )
    if kind == "dsm":  # the labels are drawn after σ and z (SSM draws its projections after)
        null = ncsn.guidance.condition(net, None)
        everything = make(schedule, label_dropout=1.0, num_classes=3)(net, x, y=y, generator=g())
        assert torch.equal(everything, make(schedule)(null, x, generator=g()))
    some = make(schedule, label_dropout=0.5, num_classes=3)(net, x, y=y, generator=g())
    assert torch.isfinite(some) and not torch.equal(some, make(schedule)(fixed, x, generator=g()))


@pytest.mark.parametrize(
    "call, error, match",
    [
        (
            lambda: ncsn.losses.DenoisingScoreMatching(ncsn.Schedule([1.0]), label_dropout=0.1),
            ValueError,
            "give num_classes",
        ),
        (
            lambda: ncsn.losses.SlicedScoreMatching(
                ncsn.Schedule([1.0]), label_dropout=1.5, num_classes=2
            ),
            ValueError,
            r"label_dropout must lie in \[0, 1\]; got label_dropout=1.5",
        ),
        (
            lambda: ncsn.losses.DenoisingScoreMatching(ncsn.Schedule([1.0]), num_classes=0),
            ValueError,
            "num_classes must be >= 1",
        ),
        (
            lambda: dsm(
                _conditional(),
                torch.randn(2, 2, dtype=torch.float64),
                1.0,
                y=torch.tensor([0.0, 1.0]),
            ),
            TypeError,
            "y must be None or an integer tensor",
        ),
        (
            lambda: dsm(
                _conditional(), torch.randn(2, 2, dtype=torch.float64), 1.0, y=torch.tensor([0])
            ),
            ValueError,
            r"y must hold one label per example, shape \[B\]=\[2\]",
        ),
        (
            lambda: ncsn.losses.DenoisingScoreMatching(ncsn.Schedule([1.0]))(
                _conditional(), torch.randn(2, 2, dtype=torch.float64), y=torch.tensor([0, 5])
            ),
            ValueError,
            r"y must lie in \[0, 4\)",
        ),
    ],
)
def test_label_errors(call, error: type[Exception], match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=match):
        call()
