"""The paper's RefineNet, its InstanceNorm++ layers, the baseline network and the adapters."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import ncsn
from ncsn.nets import (
    CondInstanceNorm2dPlus,
    DenoiserScore,
    InstanceNorm2dPlus,
    NoisePredictorScore,
    Preconditioned,
    RefineNet,
    RefineNetBaseline,
    ScaledByInverseSigma,
)
from ncsn.nets.layers import ConvMeanPool, instance_norm_plus

DATA = Path(__file__).parent.parent / "fixtures"
SIGMAS = ncsn.geometric_sigmas(1.0, 0.01, 10)
SIZES = [(8, 8), (16, 16), (28, 28), (32, 32), (64, 64), (16, 24)]


def tiny(channels: int = 1, ngf: int = 4, seed: int = 0, **kwargs: object) -> RefineNet:
    return RefineNet(channels, ngf, SIGMAS, generator=torch.Generator().manual_seed(seed), **kwargs)  # type: ignore[arg-type]


def official_keys(name: str) -> list[tuple[str, tuple[int, ...]]]:
    rows = []
    for line in (DATA / f"official_refinenet_keys_{name}.txt").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, shape = line.split("\t")
        rows.append((key, tuple(int(s) for s in shape.strip("()").split(",") if s.strip())))
    return rows


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --- architecture: parameter counts and the official state-dict layout -----------------------


@pytest.mark.parametrize(
    ("cls", "channels", "ngf", "expected"),
    [
        (RefineNet, 3, 128, 30_117_635),
        (RefineNet, 1, 64, 7_638_657),
        (RefineNetBaseline, 3, 128, 29_727_107),
        (RefineNetBaseline, 1, 64, 7_443_393),
    ],
)
def test_parameter_counts(cls: type, channels: int, ngf: int, expected: int) -> None:
    with torch.device("meta"):
        net = cls(channels, ngf, SIGMAS) if cls is RefineNet else cls(channels, ngf)
    assert n_params(net) == expected


@pytest.mark.parametrize(("name", "channels", "ngf"), [("cifar10", 3, 128), ("mnist", 1, 64)])
def test_state_dict_layout_equals_official(name: str, channels: int, ngf: int) -> None:
    with torch.device("meta"):
        net = RefineNet(channels, ngf, SIGMAS)
    ours = [(k, tuple(v.shape)) for k, v in net.state_dict().items()]
    expected = official_keys(name)
    assert len(expected) == 173
    assert ours == expected
    assert sum(k.endswith("embed.weight") for k, _ in ours) == 71


def test_header_counts_match_files() -> None:
    for name, total in [("cifar10", 30_117_635), ("mnist", 7_638_657)]:
        header = (DATA / f"official_refinenet_keys_{name}.txt").read_text().splitlines()[1]
        assert header == f"# total parameters: {total}"
        counted = sum(torch.Size(shape).numel() for _, shape in official_keys(name))
        assert counted == total


def test_baseline_has_no_embeddings_and_same_convs() -> None:
    with torch.device("meta"):
        cond = RefineNet(3, 16, SIGMAS)
        base = RefineNetBaseline(3, 16)
    conv = {k: v.shape for k, v in cond.state_dict().items() if "embed" not in k}
    base_conv = {
        k: v.shape
        for k, v in base.state_dict().items()
        if not k.endswith(("gamma", "alpha", "beta"))
    }
    assert conv == base_conv
    assert not any("embed" in k for k in base.state_dict())


# --- ScoreModel contract: shapes, dtypes, gradients -------------------------------------------


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_and_dtype(size: tuple[int, int], dtype: torch.dtype) -> None:
    channels = 3 if size[0] == size[1] else 2
    net = tiny(channels).to(dtype)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, channels, *size, generator=g, dtype=dtype)
    out = net(x, SIGMAS[[0, 9]].to(dtype))
    assert out.shape == x.shape
    assert out.dtype == dtype
    assert bool(torch.isfinite(out).all())
    base = RefineNetBaseline(channels, 4, generator=torch.Generator().manual_seed(0)).to(dtype)
    out_b = base(x, SIGMAS[[0, 9]].to(dtype))
    assert out_b.shape == x.shape and out_b.dtype == dtype


def test_outputs_depend_on_level_and_per_example() -> None:
    net = tiny(seed=3)
    with torch.no_grad():  # move every level's γ, α, β apart so the levels are distinguishable
        for m in net.modules():
            if isinstance(m, CondInstanceNorm2dPlus):
                m.embed.weight.normal_(1.0, 0.3, generator=torch.Generator().manual_seed(4))
    x = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(2)).expand(3, -1, -1, -1)
    out = net(x, SIGMAS[[0, 5, 0]])
    torch.testing.assert_close(out[0], out[2])
    assert not torch.allclose(out[0], out[1])
    # One example's output does not depend on the others in the batch (instance norm only).
    torch.testing.assert_close(net(x[:1], SIGMAS[[5]])[0], out[1])


def test_gradients_reach_every_parameter() -> None:
    for net in (tiny(2), RefineNetBaseline(2, 4, generator=torch.Generator().manual_seed(0))):
        x = torch.rand(len(SIGMAS), 2, 8, 8, generator=torch.Generator().manual_seed(0))
        net(x, SIGMAS).square().sum().backward()
        for name, p in net.named_parameters():
            assert p.grad is not None, name
            assert bool(torch.isfinite(p.grad).all()), name
            assert bool((p.grad != 0).any()), name


def test_forward_levels_equals_forward() -> None:
    net = tiny()
    x = torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 3, 6, 9])
    torch.testing.assert_close(
        net.forward_levels(x, labels), net(x, SIGMAS[labels]), rtol=0, atol=0
    )


def test_scalar_sigma_and_tolerance() -> None:
    net = tiny()
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    ref = net.forward_levels(x, torch.full((3,), 4))
    torch.testing.assert_close(net(x, float(SIGMAS[4])), ref, rtol=0, atol=0)
    for rel in (9e-5, -9e-5):  # inside the 1e-4 relative tolerance
        sigma = SIGMAS[4].double() * (1 + rel)
        torch.testing.assert_close(net(x, sigma), ref, rtol=0, atol=0)
    torch.testing.assert_close(net(x, SIGMAS[[4, 4, 4]].double()), ref, rtol=0, atol=0)


def test_channels_last_input_gives_the_same_output() -> None:
    net = tiny(2)
    x = torch.rand(2, 2, 8, 12, generator=torch.Generator().manual_seed(0))
    ref = net(x, SIGMAS[[0, 1]])
    out = net(x.contiguous(memory_format=torch.channels_last), SIGMAS[[0, 1]])
    torch.testing.assert_close(out, ref)


def test_replaced_rcu_submodule_is_used() -> None:
    net = tiny(2)
    x = torch.rand(2, 2, 8, 8, generator=torch.Generator().manual_seed(0))
    ref = net(x, SIGMAS[[0, 1]])
    rcu = net.refine1.adapt_convs[0]
    old = getattr(rcu, "1_1_conv")
    new = nn.Conv2d(old.in_channels, old.out_channels, 3, padding=1, bias=False)
    with torch.no_grad():
        new.weight.copy_(old.weight)
    setattr(rcu, "1_1_conv", new)
    torch.testing.assert_close(net(x, SIGMAS[[0, 1]]), ref, rtol=0, atol=0)
    with torch.no_grad():
        new.weight.zero_()
    assert not torch.allclose(net(x, SIGMAS[[0, 1]]), ref)
    assert "refine1.adapt_convs.0.1_1_conv.weight" in net.state_dict()


def replicate_on_cpu(module: nn.Module) -> nn.Module:
    """What ``torch.nn.parallel.replicate`` (DataParallel) builds for one device, on the CPU: a
    shallow copy of every module (``_replicate_for_data_parallel``), children re-bound to their
    replicas and parameters to copies. (``replicate`` itself refuses CPU devices.)"""
    modules = list(module.modules())
    replicas = {id(m): m._replicate_for_data_parallel() for m in modules}
    for m in modules:
        replica = replicas[id(m)]
        for key, child in m._modules.items():
            setattr(replica, key, None if child is None else replicas[id(child)])
        for key, param in m._parameters.items():
            if param is None:
                replica._parameters[key] = None
            else:
                setattr(replica, key, param.detach().clone())
    return replicas[id(module)]


def test_replicas_and_copies_run_their_own_modules() -> None:
    net = tiny(2)
    x = torch.rand(2, 2, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = net(x, SIGMAS[[0, 1]])
        for make in (replicate_on_cpu, copy.deepcopy):
            replica = make(net)
            torch.testing.assert_close(replica(x, SIGMAS[[0, 1]]), ref, rtol=0, atol=0)
            for rcu in (replica.refine1.adapt_convs[0], replica.refine4.output_convs):
                getattr(rcu, "1_2_conv").weight.zero_()  # the replica's own copy
            assert not torch.allclose(replica(x, SIGMAS[[0, 1]]), ref), make.__name__
            torch.testing.assert_close(net(x, SIGMAS[[0, 1]]), ref, rtol=0, atol=0)


def test_train_and_eval_modes_agree() -> None:
    net = tiny()
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    out_train = net(x, SIGMAS[[1, 2]])
    torch.testing.assert_close(net.eval()(x, SIGMAS[[1, 2]]), out_train, rtol=0, atol=0)


def test_logit_transform_skips_rescaling() -> None:
    net = tiny()
    logit = tiny(logit_transform=True)
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(logit(2 * x - 1, SIGMAS[[0, 1]]), net(x, SIGMAS[[0, 1]]))


def test_generator_makes_initialisation_reproducible_without_global_rng() -> None:
    state = torch.get_rng_state()
    a = tiny(seed=7).state_dict()
    b = tiny(seed=7).state_dict()
    c = tiny(seed=8).state_dict()
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_norm_initialisation() -> None:
    g = torch.Generator().manual_seed(0)
    norm = CondInstanceNorm2dPlus(500, 10, generator=g)
    gamma, alpha, beta = norm.embed.weight.detach().chunk(3, dim=1)
    for part in (gamma, alpha):
        n = part.numel()  # 5000 draws from N(1, 0.02): mean within 5 standard errors
        assert abs(part.mean().item() - 1.0) < 5 * 0.02 / n**0.5
        assert abs(part.std().item() - 0.02) < 0.002
    assert bool((beta == 0).all())
    # The baseline's unconditional norm: γ, α ~ N(1, 0.02) drawn independently, β = 0.
    n = 5000
    plain = InstanceNorm2dPlus(n, generator=torch.Generator().manual_seed(0))
    for part in (plain.gamma, plain.alpha):
        # mean within 5 standard errors of 1; sample std within 5 of its standard errors
        # (≈ 0.02/√(2n)) of 0.02
        assert abs(part.mean().item() - 1.0) < 5 * 0.02 / n**0.5
        assert abs(part.std().item() - 0.02) < 5 * 0.02 / (2 * n) ** 0.5
    assert not torch.equal(plain.gamma, plain.alpha)
    assert torch.equal(plain.beta, torch.zeros(n))


# --- InstanceNorm++: the two formulas, checked by hand ------------------------------------------


def by_hand(x: Tensor, gamma: Tensor, alpha: Tensor, beta: Tensor, form: str) -> Tensor:
    """The formula of ncsn-spec §2.3, one scalar at a time."""
    b_size, c_size, h_size, w_size = x.shape
    out = torch.empty_like(x)
    n = h_size * w_size
    for b in range(b_size):
        mus = [sum(x[b, k].flatten().tolist()) / n for k in range(c_size)]
        m = sum(mus) / c_size
        v2 = sum((mu - m) ** 2 for mu in mus) / (c_size - 1)  # unbiased over channels
        for k in range(c_size):
            s2 = sum((v - mus[k]) ** 2 for v in x[b, k].flatten().tolist()) / n  # biased
            mu_hat = (mus[k] - m) / (v2 + 1e-5) ** 0.5
            g, a, be = float(gamma[b, k]), float(alpha[b, k]), float(beta[b, k])
            for i in range(h_size):
                for j in range(w_size):
                    h = (float(x[b, k, i, j]) - mus[k]) / (s2 + 1e-5) ** 0.5
                    if form == "official":
                        out[b, k, i, j] = g * (h + a * mu_hat) + be
                    else:
                        out[b, k, i, j] = g * h + be + a * mu_hat
    return out


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("form", ["official", "paper"])
def test_cond_instance_norm_plus_formula(form: str, memory_format: torch.memory_format) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 2, 3, generator=g, dtype=torch.float64) * 2 + 0.5
    x = x.contiguous(memory_format=memory_format)
    norm = CondInstanceNorm2dPlus(3, 4, form=form).double()  # type: ignore[arg-type]
    with torch.no_grad():
        norm.embed.weight.copy_(torch.randn(4, 9, generator=g, dtype=torch.float64))
    labels = torch.tensor([2, 0])
    gamma, alpha, beta = norm.embed.weight[labels].detach().chunk(3, dim=1)
    expected = by_hand(x, gamma, alpha, beta, form)
    torch.testing.assert_close(norm(x, labels), expected, rtol=1e-12, atol=1e-12)


def channels_last(x: Tensor) -> bool:
    """Stored channels_last and not also plain contiguous (as a C = 1 or 1×1 tensor would be)."""
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_instance_norm_keeps_channels_last_with_the_same_values(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(3)
    x = (torch.randn(3, 6, 5, 7, generator=g, dtype=dtype) * 0.5 + 4).requires_grad_()
    x_cl = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
    norm = CondInstanceNorm2dPlus(6, 4).to(dtype)
    with torch.no_grad():
        norm.embed.weight.normal_(1.0, 0.5, generator=g)
    labels = torch.tensor([3, 0, 2])
    out, out_cl = norm(x, labels), norm(x_cl, labels)
    assert channels_last(out_cl) and out.is_contiguous()
    # Round-off: either path in float32 is ~2e-5 (relative to the largest value) from float64,
    # second-order gradients included; a wrong formula would be off by O(1).
    rel = 1e-4 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(out_cl, out, rtol=0, atol=rel * out.abs().max().item())
    # Gradients of x and of the embedding, first and second order (sliced score matching).
    weights = torch.randn(out.shape, generator=g, dtype=dtype)
    grads = []
    for inp, res, w in (
        (x, out, weights),
        (x_cl, out_cl, weights.contiguous(memory_format=torch.channels_last)),
    ):
        gx, ge = torch.autograd.grad((res * w).sum(), (inp, norm.embed.weight), create_graph=True)
        (ggx,) = torch.autograd.grad(gx.square().sum() + ge.square().sum(), inp)
        grads.append((gx, ge, ggx))
    assert channels_last(grads[1][0]) and channels_last(grads[1][2])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=rel * a.abs().max().item())


def test_channels_last_norm_gradients_are_exact() -> None:
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64) + 1.0
    x = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    gamma, alpha, beta = torch.randn(3, 2, 3, generator=g, dtype=torch.float64).requires_grad_()

    def f(x: Tensor, gamma: Tensor, alpha: Tensor, beta: Tensor) -> Tensor:
        return instance_norm_plus(
            x.contiguous(memory_format=torch.channels_last), gamma, alpha, beta
        )

    assert torch.autograd.gradcheck(f, (x, gamma, alpha, beta))
    assert torch.autograd.gradgradcheck(f, (x, gamma, alpha, beta))


def test_channels_last_refinenet_keeps_the_format_at_every_conv() -> None:
    net = tiny(3).to(memory_format=torch.channels_last)
    x = torch.rand(2, 3, 8, 12, generator=torch.Generator().manual_seed(0))
    x_cl = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    formats: list[bool] = []
    hooks = [
        m.register_forward_pre_hook(lambda m, args: formats.append(channels_last(args[0])))
        for m in net.modules()
        if isinstance(m, nn.Conv2d)
    ]
    out = net(x_cl, SIGMAS[[0, 1]])
    for hook in hooks:
        hook.remove()
    assert len(formats) == 75 and all(formats)
    assert channels_last(out)
    out.square().sum().backward()
    assert x_cl.grad is not None and channels_last(x_cl.grad)
    torch.testing.assert_close(out, net(x, SIGMAS[[0, 1]]))


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_channels_last_instance_norm_compiles_into_one_graph() -> None:
    norm = CondInstanceNorm2dPlus(4, num_levels=3)
    x = torch.randn(2, 4, 6, 6).contiguous(memory_format=torch.channels_last)
    labels = torch.tensor([0, 2])
    torch._dynamo.reset()
    try:
        explanation = torch._dynamo.explain(norm)(x, labels)
        compiled = torch.compile(norm, backend="aot_eager", fullgraph=True)(x, labels)
    finally:
        torch._dynamo.reset()
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1
    torch.testing.assert_close(compiled, norm(x, labels))


def test_official_and_paper_forms_differ_by_gamma_times_alpha() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 3, 3, generator=g, dtype=torch.float64)
    gamma, alpha, beta = torch.randn(3, 4, generator=g, dtype=torch.float64)
    official = instance_norm_plus(x, gamma, alpha, beta, "official")
    paper = instance_norm_plus(x, gamma, alpha, beta, "paper")
    assert not torch.allclose(official, paper)
    # α_paper = γ·α_official makes them equal.
    torch.testing.assert_close(instance_norm_plus(x, gamma, gamma * alpha, beta, "paper"), official)
    # With γ = 1 they coincide.
    ones = torch.ones(4, dtype=torch.float64)
    torch.testing.assert_close(
        instance_norm_plus(x, ones, alpha, beta, "official"),
        instance_norm_plus(x, ones, alpha, beta, "paper"),
    )


def test_unconditional_norm_equals_one_level_conditional() -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 5, 4, 4, generator=g)
    plain = InstanceNorm2dPlus(5, generator=g)
    cond = CondInstanceNorm2dPlus(5, 1)
    with torch.no_grad():
        cond.embed.weight.copy_(torch.cat([plain.gamma, plain.alpha, plain.beta])[None])
    torch.testing.assert_close(plain(x), cond(x, torch.zeros(3, dtype=torch.long)))


def test_network_norm_option_changes_output() -> None:
    official = tiny(seed=5)
    paper = tiny(seed=5, norm="paper")
    paper.load_state_dict(official.state_dict())
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(official(x, SIGMAS[[0, 1]]), paper(x, SIGMAS[[0, 1]]))
    assert paper.norm == "paper" and official.norm == "official"


def test_conv_mean_pool_equals_strided_slice_average() -> None:
    g = torch.Generator().manual_seed(0)
    layer = ConvMeanPool(3, 5, 3)
    x = torch.randn(2, 3, 6, 10, generator=g)
    h = layer.conv(x)
    expected = (
        h[:, :, ::2, ::2] + h[:, :, 1::2, ::2] + h[:, :, ::2, 1::2] + h[:, :, 1::2, 1::2]
    ) / 4
    torch.testing.assert_close(layer(x), expected)
    assert F.avg_pool2d(h, 2).shape == (2, 5, 3, 5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_crp_pooling_is_the_official_average_with_one_rounding(dtype: torch.dtype) -> None:
    """The chained residual pooling's 5×5 average: in float32 exactly ``AvgPool2d(5, 1, 2)``; in
    half precision on the CPU the same forward bit for bit and the gradient float32's rounded once
    (PyTorch's own half kernel rounds every accumulation of its backward, and is slower)."""
    from ncsn.nets.refinenet import _avg_pool5

    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 9, 7, generator=g).to(dtype).requires_grad_()
    upstream = torch.randn(3, 4, 9, 7, generator=g).to(dtype)
    out = _avg_pool5(x)
    (grad,) = torch.autograd.grad(out, x, upstream)
    native = F.avg_pool2d(x, 5, stride=1, padding=2, count_include_pad=True)
    assert out.dtype == grad.dtype == dtype
    assert torch.equal(out, native)
    wide = x.detach().float().requires_grad_()
    (wide_grad,) = torch.autograd.grad(F.avg_pool2d(wide, 5, 1, 2), wide, upstream.float())
    assert torch.equal(grad, wide_grad.to(dtype))


# --- errors ---------------------------------------------------------------------------------


def test_sigma_not_in_schedule_raises() -> None:
    net = tiny()
    x = torch.rand(2, 1, 8, 8)
    with pytest.raises(ValueError, match=r"sigma=0\.3 is not one of this network's noise levels"):
        net(x, torch.tensor([1.0, 0.3], dtype=torch.float64))
    with pytest.raises(ValueError, match=r"schedule: \[1\.0, 0\.59"):
        net(x, torch.tensor([1.0, 0.3]))
    schedule = re.escape(f"schedule: {SIGMAS.tolist()}")
    for rel in (1.1e-4, -1.1e-4, 2e-4):  # just outside the 1e-4 relative tolerance
        sigma = SIGMAS[4].double() * (1 + rel)
        pattern = rf"sigma={float(sigma)!r} is not one of .*tolerance 0\.0001\); {schedule}$"
        with pytest.raises(ValueError, match=pattern):
            net(x, torch.stack([SIGMAS[0].double(), sigma]))


def test_sigma_is_looked_up_and_checked_at_every_call() -> None:
    """No cache: every forward pass maps σ to its nearest level and checks it (on the CPU)."""
    net = tiny()
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    sigma = SIGMAS[[4, 4]].clone()
    net(x, sigma)
    assert torch.equal(net.lookup(sigma), torch.tensor([4, 4]))
    # In-place writes through .data do not bump the version counter.
    sigma.data.copy_(SIGMAS[[2, 2]])
    torch.testing.assert_close(net(x, sigma), net.forward_levels(x, torch.tensor([2, 2])))
    sigma.data.mul_(1.5)
    with pytest.raises(ValueError, match=r"sigma=0\.5[0-9]* is not one of .*schedule: \[1\.0,"):
        net(x, sigma)
    # The samplers' pattern: one expanded σ per level, its base changed through .data.
    base = SIGMAS[3].clone()
    expanded = base.expand(2)
    net(x, expanded)
    base.data.copy_(SIGMAS[7])
    torch.testing.assert_close(net(x, expanded), net.forward_levels(x, torch.tensor([7, 7])))
    sigma.data = torch.tensor([0.3, 0.3])  # a new storage under the same tensor object
    with pytest.raises(ValueError, match=r"sigma=0\.3"):
        net(x, sigma)


def test_sigma_shape_raises() -> None:
    with pytest.raises(ValueError, match=r"sigma must be a scalar or have shape \[B\]=\[2\]"):
        tiny()(torch.rand(2, 1, 8, 8), SIGMAS[:3])


@pytest.mark.parametrize(
    "shape", [(2, 1, 7, 8), (2, 1, 8, 9), (2, 1, 9, 9), (2, 3, 8, 8), (1, 8, 8), (2, 1, 3, 8)]
)
def test_bad_input_shape_raises(shape: tuple[int, ...]) -> None:
    net = tiny()
    pattern = rf"x of shape \[B, 1, H, W\] with even H and W.*x\.shape={tuple(shape)}".replace(
        "(", r"\("
    ).replace(")", r"\)")
    with pytest.raises(ValueError, match=pattern):
        net(torch.rand(shape), SIGMAS[:1].expand(shape[0]))
    with pytest.raises(ValueError, match="even H and W"):
        RefineNetBaseline(1, 4)(torch.rand(shape))


@pytest.mark.parametrize(("height", "width"), [(2, 2), (2, 8), (8, 2)])
def test_inputs_below_4x4_raise(height: int, width: int) -> None:
    # 2x2 would run the downsampled stages on 1x1 maps (the official code raises there).
    pattern = rf"needs H >= 4 and W >= 4 .*got H={height}, W={width}"
    with pytest.raises(ValueError, match=pattern):
        tiny()(torch.rand(2, 1, height, width), SIGMAS[:2])
    with pytest.raises(ValueError, match=rf"RefineNetBaseline needs H >= 4.*H={height}"):
        RefineNetBaseline(1, 4)(torch.rand(2, 1, height, width))
    with pytest.raises(ValueError, match=pattern):
        tiny().forward_levels(torch.rand(2, 1, height, width), torch.tensor([0, 1]))
    assert tiny()(torch.rand(2, 1, 4, 4), SIGMAS[:2]).shape == (2, 1, 4, 4)  # the smallest


def test_dtype_mismatch_raises() -> None:
    with pytest.raises(TypeError, match=r"x has dtype torch\.float64 but the RefineNet parameters"):
        tiny()(torch.rand(2, 1, 8, 8, dtype=torch.float64), SIGMAS[:2])
    with pytest.raises(TypeError, match=r"x must be a torch\.Tensor"):
        tiny()([[0.0]], SIGMAS[:1])  # type: ignore[arg-type]


def test_forward_levels_errors() -> None:
    net = tiny()
    x = torch.rand(2, 1, 8, 8)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\); got labels=\[0, 10\]"):
        net.forward_levels(x, torch.tensor([0, 10]))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\); got labels=\[-1, 0\]"):
        net.forward_levels(x, torch.tensor([-1, 0]))
    with pytest.raises(TypeError, match="labels must be an int64 or int32 tensor"):
        net.forward_levels(x, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"labels must have shape \[B\]=\[2\]"):
        net.forward_levels(x, torch.tensor([0, 1, 2]))


def test_constructor_errors() -> None:
    with pytest.raises(ValueError, match=r"ngf must be >= 2 .*got ngf=1"):
        RefineNet(1, 1, SIGMAS)
    with pytest.raises(ValueError, match="channels must be >= 1; got channels=0"):
        RefineNet(0, 4, SIGMAS)
    with pytest.raises(TypeError, match="ngf must be an int"):
        RefineNetBaseline(1, 4.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sigmas must be strictly decreasing"):
        RefineNet(1, 4, [0.1, 1.0])
    with pytest.raises(
        ValueError, match=r"form must be one of \['official', 'paper'\]; got form='code'"
    ):
        RefineNet(1, 4, SIGMAS, norm="code")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="form='x'"):
        RefineNetBaseline(1, 4, norm="x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="logit_transform must be a bool"):
        RefineNet(1, 4, SIGMAS, logit_transform=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"generator must be a torch\.Generator or None"):
        RefineNet(1, 4, SIGMAS, generator=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"num_features must be >= 2.*num_features=1"):
        CondInstanceNorm2dPlus(1, 10)
    with pytest.raises(ValueError, match="num_levels must be >= 1; got num_levels=0"):
        CondInstanceNorm2dPlus(4, 0)
    with pytest.raises(ValueError, match="form='x'"):
        InstanceNorm2dPlus(4, form="x")  # type: ignore[arg-type]


# --- works with the library's losses and samplers ---------------------------------------------


def test_with_losses_and_sampler() -> None:
    net = tiny()
    schedule = ncsn.Schedule(SIGMAS)
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    for loss in (
        ncsn.losses.DenoisingScoreMatching(schedule),
        ncsn.losses.SlicedScoreMatching(schedule),  # needs double backward through the net
    ):
        net.zero_grad()
        value = loss(net, x, generator=g)
        assert value.ndim == 0 and bool(torch.isfinite(value))
        value.backward()
        assert all(p.grad is not None for p in net.parameters())
    sampler = ncsn.samplers.AnnealedLangevin(SIGMAS, step_size=2e-5, steps_per_level=1)
    out = sampler(net, x, generator=g)
    assert out.shape == x.shape and bool(torch.isfinite(out).all())


# --- adapters ---------------------------------------------------------------------------------


def test_scaled_by_inverse_sigma_on_images() -> None:
    base = RefineNetBaseline(1, 4, generator=torch.Generator().manual_seed(0))
    net = ScaledByInverseSigma(base)
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    sigma = torch.tensor([1.0, 0.01])
    out = net(x, sigma)
    f = base(x)
    torch.testing.assert_close(out[0], f[0] / 1.0)
    torch.testing.assert_close(out[1], f[1] / 0.01)
    torch.testing.assert_close(net(x, 0.5), f / 0.5)
    assert set(net.state_dict()) == {f"module.{k}" for k in base.state_dict()}


@pytest.mark.parametrize("event", [(3,), (2, 3, 4), (1, 2, 2, 2)])
def test_scaled_by_inverse_sigma_any_event_rank(event: tuple[int, ...]) -> None:
    x = torch.randn(3, *event, generator=torch.Generator().manual_seed(0))
    sigma = torch.tensor([1.0, 2.0, 4.0])
    out = ScaledByInverseSigma(torch.tanh)(x, sigma)
    expected = torch.stack([torch.tanh(x[i]) / sigma[i] for i in range(3)])
    torch.testing.assert_close(out, expected)


def test_scaled_by_inverse_sigma_errors() -> None:
    with pytest.raises(TypeError, match="module must be callable"):
        ScaledByInverseSigma(3)  # type: ignore[arg-type]
    net = ScaledByInverseSigma(lambda x: x[:, :1])
    with pytest.raises(ValueError, match=r"module output shape \(2, 1\) differs from its input"):
        net(torch.zeros(2, 3), torch.ones(2))
    with pytest.raises(ValueError, match=r"sigma must be a scalar or have shape \[B\]"):
        ScaledByInverseSigma(torch.tanh)(torch.zeros(2, 3), torch.ones(3))


def test_preconditioned_is_karras_denoiser_through_tweedie() -> None:
    # D(x, σ) = c_skip·x + c_out·f(c_in·x), s = (D − x)/σ², written out in float64 per example.
    f = RefineNetBaseline(1, 4, generator=torch.Generator().manual_seed(0)).double()
    net = Preconditioned(f, sigma_data=0.31)
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    sigma = torch.tensor([16.88, 0.5, 0.01], dtype=torch.float64)
    out = net(x, sigma)
    for i, s in enumerate(sigma.tolist()):
        total = s**2 + 0.31**2
        c_in, c_skip, c_out = total**-0.5, 0.31**2 / total, s * 0.31 / total**0.5
        denoised = c_skip * x[i] + c_out * f(c_in * x[i : i + 1])[0]
        torch.testing.assert_close(out[i], (denoised - x[i]) / s**2, rtol=1e-12, atol=1e-12)
    assert set(net.state_dict()) == {f"module.{k}" for k in f.state_dict()}


@pytest.mark.parametrize("event", [(3,), (2, 3, 4)])
def test_preconditioned_with_zero_network_is_the_exact_gaussian_score(
    event: tuple[int, ...],
) -> None:
    # f = 0 leaves D = c_skip·x = E[x₀ | x] for x₀ ~ N(0, σ_d² I): the score −x/(σ² + σ_d²).
    x = torch.randn(3, *event, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sigma = torch.tensor([0.01, 1.0, 20.0], dtype=torch.float64)
    out = Preconditioned(torch.zeros_like, sigma_data=0.5)(x, sigma)
    expected = -x / (sigma.view(-1, *[1] * len(event)) ** 2 + 0.25)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=0.0)


def test_preconditioned_keeps_the_input_dtype_under_autocast_and_round_trips() -> None:
    f = RefineNetBaseline(1, 4, generator=torch.Generator().manual_seed(0))
    net = Preconditioned(f, sigma_data=0.3)
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert net(x, torch.tensor([2.0, 0.1])).dtype == torch.float32
    config = ncsn.nets.model_config(net)
    assert config["kind"] == "Preconditioned" and config["sigma_data"] == 0.3
    rebuilt = ncsn.nets.build_model(config)
    rebuilt.load_state_dict(net.state_dict())
    assert rebuilt.sigma_data == 0.3
    torch.testing.assert_close(rebuilt(x, 0.5), net(x, 0.5), rtol=0, atol=0)


@pytest.mark.parametrize("sigma_data", [0.0, -0.3, float("nan"), float("inf")])
def test_preconditioned_rejects_a_bad_sigma_data(sigma_data: float) -> None:
    with pytest.raises(
        ValueError, match=r"sigma_data must be positive and finite; got sigma_data="
    ):
        Preconditioned(torch.tanh, sigma_data=sigma_data)


def test_preconditioned_errors() -> None:
    with pytest.raises(TypeError, match="module must be callable"):
        Preconditioned(3, sigma_data=1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="sigma_data"):
        Preconditioned(torch.tanh, sigma_data="0.3")  # type: ignore[arg-type]
    net = Preconditioned(lambda x: x[:, :1], sigma_data=1.0)
    with pytest.raises(ValueError, match=r"module output shape \(2, 1\) differs from its input"):
        net(torch.zeros(2, 3), torch.ones(2))
    with pytest.raises(ValueError, match=r"sigma must be positive and finite; got sigma=0\.0"):
        Preconditioned(torch.tanh, sigma_data=1.0)(torch.zeros(2, 3), 0.0)
    with pytest.raises(ValueError, match=r"sigma must be a scalar or have shape \[B\]"):
        Preconditioned(torch.tanh, sigma_data=1.0)(torch.zeros(2, 3), torch.ones(3))


def test_denoiser_and_noise_predictor_adapters_exact_gaussian() -> None:
    # x0 ~ N(0, I), x = x0 + σz: the exact score is -x/(1+σ²), E[x0|x] = x/(1+σ²),
    # E[z|x] = σx/(1+σ²).
    x = torch.randn(4, 2, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sigma = torch.tensor([0.1, 0.5, 1.0, 3.0], dtype=torch.float64)
    s = sigma[:, None, None]
    exact = -x / (1 + s**2)

    def denoiser(x: Tensor, sigma: Tensor) -> Tensor:
        return x / (1 + sigma[:, None, None] ** 2)

    def predictor(x: Tensor, sigma: Tensor) -> Tensor:
        return sigma[:, None, None] * x / (1 + sigma[:, None, None] ** 2)

    torch.testing.assert_close(DenoiserScore(denoiser)(x, sigma), exact)
    torch.testing.assert_close(NoisePredictorScore(predictor)(x, sigma), exact)
    with pytest.raises(ValueError, match="denoiser output shape"):
        DenoiserScore(lambda x, s: x[:, 0])(x, sigma)
    with pytest.raises(ValueError, match="noise predictor output shape"):
        NoisePredictorScore(lambda x, s: x[:, 0])(x, sigma)
    with pytest.raises(TypeError, match="module must be callable"):
        DenoiserScore(None)  # type: ignore[arg-type]
