"""The samplers' performance options against the plain eager float32 path.

Each option either reproduces the plain samples exactly or within the tolerance stated here (and in
the samplers' docstrings); options that cannot run on this machine raise a clear error. Speed is
measured in ``benchmarks/``, never asserted here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

import ncsn
from ncsn.samplers import AnnealedLangevin, Langevin, StepInfo

ROOT = Path(__file__).resolve().parents[1]
# torch's inductor import uses a deprecated TorchScript decorator (torch's own code, not ours).
INDUCTOR_WARNING = "ignore:`torch.jit.script_method` is deprecated:DeprecationWarning"
SIGMAS = ncsn.geometric_sigmas(1.0, 0.05, 4)


class _Small(nn.Module):
    """A σ-aware two-layer network: cheap to compile, non-linear, every output depends on σ."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.fc1 = nn.Linear(3, 16)
        self.fc2 = nn.Linear(16, 3)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)

    def forward(self, x: Tensor, sigma: Tensor) -> Tensor:
        return self.fc2(torch.tanh(self.fc1(x))) / sigma[:, None]


def _run(
    sampler: Langevin | AnnealedLangevin, model: Callable[[Tensor, Tensor], Tensor], x: Tensor
) -> tuple[Tensor, list[Tensor]]:
    scores: list[Tensor] = []

    def keep(info: StepInfo) -> None:
        scores.append(info.score.clone())

    out = sampler(model, x, generator=torch.Generator().manual_seed(7), callback=keep)
    return out, scores


def _start(shape: tuple[int, ...] = (64, 3)) -> Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(3))


# ------------------------------------------------------------------------- wrapper checks
def test_wrappers_check_their_arguments() -> None:
    with pytest.raises(
        ValueError, match=r"dtype must be torch.bfloat16 or torch.float16; got dtype=torch.float64"
    ):
        ncsn.nets.autocast(_Small(), torch.float64)
    with pytest.raises(TypeError, match="model must be a callable ScoreModel; got int"):
        ncsn.nets.compiled(3)  # type: ignore[arg-type]


def test_wrappers_hold_the_model_and_unwrap() -> None:
    net = _Small()
    stacked = ncsn.nets.autocast(ncsn.nets.compiled(net), torch.bfloat16)
    assert ncsn.nets.unwrap(stacked) is net
    assert ncsn.nets.unwrap(net) is net
    # The parameters are the model's own: an optimizer over the wrapper trains the model.
    assert [p.data_ptr() for p in stacked.parameters()] == [p.data_ptr() for p in net.parameters()]


@pytest.mark.parametrize("sampler", [AnnealedLangevin(SIGMAS, 1e-3, 2), Langevin(0.1, 1e-3, 2)])
def test_cuda_graphed_off_cuda_raises_before_sampling(sampler: Langevin | AnnealedLangevin) -> None:
    calls = []

    def model(x: Tensor, s: Tensor) -> Tensor:
        calls.append(1)
        return -x

    graphed = ncsn.nets.cuda_graphed(model)
    with pytest.raises(
        ValueError, match=r"cuda_graphed\(model\) needs x on a CUDA device; got x on cpu"
    ):
        sampler(graphed, _start())
    mask = torch.tensor([True, False, False])
    with pytest.raises(ValueError, match=r"cuda_graphed\(model\) needs x on a CUDA device"):
        ncsn.samplers.inpaint(sampler, graphed, _start(), mask)
    assert calls == []


def test_autocast_on_a_device_without_autocast_raises() -> None:
    fast = ncsn.nets.autocast(lambda x, s: -x)
    with pytest.raises(
        ValueError, match=r"autocast\(model, torch\.bfloat16\) needs autocast support on meta"
    ):
        fast(torch.empty(4, 3, device="meta"), torch.empty(4, device="meta"))


# ------------------------------------------------------------------------- autocast
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_keeps_the_chain_in_float32_and_stays_close(dtype: torch.dtype) -> None:
    """Reduced precision applies to the network only; the update is float32.

    Tolerance: each score within 2e-2 of max|score| (bfloat16 keeps 8 bits of mantissa, float16
    11; both go through two rounded layers), the samples within 1e-2 of max|samples|.
    """
    net = _Small()
    seen: list[tuple[bool, torch.dtype]] = []

    def model(x: Tensor, s: Tensor) -> Tensor:
        seen.append((torch.is_autocast_enabled("cpu"), net.fc1(x).dtype))
        return net(x, s)

    x0 = _start()
    sampler = AnnealedLangevin(SIGMAS, 1e-3, 3)
    plain_out, plain_scores = _run(sampler, net, x0)
    out, scores = _run(sampler, ncsn.nets.autocast(model, dtype), x0)
    assert seen and all(enabled and d == dtype for enabled, d in seen)
    assert out.dtype == torch.float32 and all(s.dtype == torch.float32 for s in scores)
    assert not torch.equal(out, plain_out)  # it did run in reduced precision
    for a, b in zip(scores, plain_scores, strict=True):
        assert (a - b).abs().max() <= 2e-2 * b.abs().max()
    assert (out - plain_out).abs().max() <= 1e-2 * plain_out.abs().max()


def test_autocast_inpainting_keeps_the_known_entries_exact() -> None:
    net = _Small()
    x = _start((16, 3))
    mask = torch.tensor([True, False, False])
    sampler = Langevin(0.1, 1e-3, 5)
    fast = ncsn.nets.autocast(net, torch.bfloat16)
    got = ncsn.samplers.inpaint(sampler, fast, x, mask, generator=torch.Generator().manual_seed(0))
    plain = ncsn.samplers.inpaint(sampler, net, x, mask, generator=torch.Generator().manual_seed(0))
    assert got.dtype == torch.float32
    assert torch.equal(got[:, 0], plain[:, 0])  # the re-imposed noisy observations: same draws
    assert (got - plain).abs().max() <= 1e-2 * plain.abs().max()


def test_autocast_passes_gradients_in_float32() -> None:
    """Training through the wrapper: float32 loss and parameter gradients, close to fp32's."""
    net = _Small()
    x = _start((32, 3))
    sigma = torch.full((32,), 0.5)
    fast = ncsn.nets.autocast(net, torch.bfloat16)
    out = fast(x, sigma)
    assert out.dtype == torch.float32
    out.square().sum().backward()
    grads = [p.grad.clone() for p in net.parameters()]  # type: ignore[union-attr]
    net.zero_grad()
    net(x, sigma).square().sum().backward()
    for a, p in zip(grads, net.parameters(), strict=True):
        assert a.dtype == torch.float32
        assert (a - p.grad).abs().max() <= 5e-2 * p.grad.abs().max()  # type: ignore[operator,union-attr]


# ------------------------------------------------------------------------- memory format
def test_channels_last_chain_gives_the_contiguous_samples() -> None:
    """Noise is drawn in logical order, so the layout of x does not change the samples."""

    def model(x: Tensor, s: Tensor) -> Tensor:
        return -torch.tanh(x) / s[:, None, None, None]

    x0 = torch.rand(2, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    x_cl = x0.contiguous(memory_format=torch.channels_last)
    sampler = AnnealedLangevin(SIGMAS, 1e-3, 3, denoise=True)
    plain = sampler(model, x0, generator=torch.Generator().manual_seed(1))
    channels_last = sampler(model, x_cl, generator=torch.Generator().manual_seed(1))
    assert torch.equal(plain, channels_last)
    assert channels_last.is_contiguous(memory_format=torch.channels_last)
    single = Langevin(0.1, 1e-3, 3)
    assert torch.equal(
        single(model, x0, generator=torch.Generator().manual_seed(2)),
        single(model, x_cl, generator=torch.Generator().manual_seed(2)),
    )


def test_channels_last_refinenet_matches_within_round_off() -> None:
    """Tolerance 1e-5 relative: the convolutions sum in another order in channels_last."""
    net = ncsn.nets.RefineNet(1, 4, SIGMAS, generator=torch.Generator().manual_seed(0))
    net_cl = ncsn.nets.RefineNet(1, 4, SIGMAS)
    net_cl.load_state_dict(net.state_dict())
    net_cl = net_cl.to(memory_format=torch.channels_last)
    x0 = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    sampler = AnnealedLangevin(SIGMAS, 2e-5, 2)
    plain = sampler(net, x0, generator=torch.Generator().manual_seed(2))
    fast = sampler(
        net_cl,
        x0.contiguous(memory_format=torch.channels_last),
        generator=torch.Generator().manual_seed(2),
    )
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5 * plain.abs().max().item())


# ------------------------------------------------------------------------- torch.compile
@pytest.mark.filterwarnings(INDUCTOR_WARNING)
def test_compile_without_a_working_compiler_raises_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch._inductor.config as inductor_config

    monkeypatch.setattr(ncsn.nets.wrappers, "_COMPILER_WORKS", set())
    calls = []

    def model(x: Tensor, s: Tensor) -> Tensor:
        calls.append(1)
        return -x

    torch._dynamo.reset()
    try:
        with (
            inductor_config.patch({"cpp.cxx": ("/nonexistent/c++",)}),
            pytest.raises(
                RuntimeError,
                match=r"compiled\(model\) needs a working torch.compile for cpu .*No working C\+\+ compiler",
            ),
        ):
            AnnealedLangevin(SIGMAS, 1e-3, 2)(ncsn.nets.compiled(model), _start())
    finally:
        torch._dynamo.reset()
    assert calls == []  # raised before the loop, with no eager fallback


@pytest.mark.filterwarnings(INDUCTOR_WARNING)
def test_compile_matches_the_eager_sampler() -> None:
    """Tolerance 1e-6 relative (the compiled network may fuse and reorder float32 operations)."""
    net = _Small()
    x0 = _start()
    fast_net = ncsn.nets.compiled(net)
    for sampler in [AnnealedLangevin(SIGMAS, 1e-3, 3, denoise=True), Langevin(0.2, 1e-3, 4)]:
        expected, expected_scores = _run(sampler, net, x0)
        got, scores = _run(sampler, fast_net, x0)
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
        assert len(scores) == len(expected_scores) == sampler.num_model_calls
        again, _ = _run(sampler, fast_net, x0)  # compiled once, reused: same seed, same samples
        assert torch.equal(again, got)


class _SmallConditional(nn.Module):
    """_Small with a label embedding: a ConditionalScoreModel with 3 classes (and null label 3)."""

    num_classes = 3

    def __init__(self) -> None:
        super().__init__()
        self.net = _Small()
        self.embed = nn.Embedding(4, 16)
        with torch.no_grad():
            self.embed.weight.copy_(torch.randn(4, 16, generator=torch.Generator().manual_seed(1)))

    def forward(self, x: Tensor, sigma: Tensor, y: Tensor) -> Tensor:
        hidden = torch.tanh(self.net.fc1(x) + self.embed(y))
        return self.net.fc2(hidden) / sigma[:, None]


@pytest.mark.filterwarnings(INDUCTOR_WARNING)
def test_compiled_and_autocast_pass_a_conditional_models_labels_through() -> None:
    """compiled(net) and autocast(net) of a conditional model are conditional models: they show
    num_classes and pass y on, so guidance takes them; cuda_graphed (x, σ only) is refused."""
    net, x = _SmallConditional(), _start((8, 3))
    sigma, y = torch.full((8,), 0.5), torch.tensor([0, 1, 2, 3] * 2)
    expected = net(x, sigma, y)
    fast = ncsn.nets.compiled(net)
    assert fast.num_classes == 3
    torch.testing.assert_close(fast(x, sigma, y), expected, rtol=1e-6, atol=1e-6)
    guided = ncsn.guidance.ClassifierFreeGuidance(fast, 1, weight=2.0)  # type: ignore[arg-type]
    reference = ncsn.guidance.ClassifierFreeGuidance(net, 1, weight=2.0)
    torch.testing.assert_close(guided(x, sigma), reference(x, sigma), rtol=1e-6, atol=1e-6)
    half = ncsn.nets.autocast(net, torch.bfloat16)
    assert half.num_classes == 3
    torch.testing.assert_close(half(x, sigma, y), expected, rtol=0.05, atol=0.05)
    assert half(x, sigma, y).dtype == torch.float32
    assert not hasattr(ncsn.nets.compiled(_Small()), "num_classes")  # unconditional stays so
    with pytest.raises(TypeError, match="model must be a ConditionalScoreModel"):
        ncsn.guidance.condition(ncsn.nets.cuda_graphed(net), 1)  # type: ignore[arg-type]


@pytest.mark.slow
@pytest.mark.filterwarnings(INDUCTOR_WARNING)
def test_compile_with_a_level_conditioned_network_matches_the_eager_sampler() -> None:
    """ScoreMLP looks σ up in its schedule (a host-side check that breaks the compiled graph)."""
    net = ncsn.nets.ScoreMLP(2, hidden=32, sigmas=SIGMAS)
    x0 = ncsn.samplers.uniform_init(
        (256, 2), low=-2, high=2, generator=torch.Generator().manual_seed(0)
    )
    sampler = AnnealedLangevin(SIGMAS, 1e-3, 3)
    expected, _ = _run(sampler, net, x0)
    got, _ = _run(sampler, ncsn.nets.compiled(net), x0)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------------- benchmarks
def test_timing_helper_interleaves_and_pairs_rounds() -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import _timing
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    order: list[str] = []
    cases = {name: (lambda name=name: order.append(name)) for name in ("a", "b", "c")}
    samples = _timing.measure(cases, repeats=2, warmup=1)
    assert order == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]  # rotating order
    assert all(len(s.wall) == 2 and len(s.cpu) == 2 for s in samples.values())
    a = _timing.Samples(wall=(1.0, 4.0, 9.0), cpu=(1.0, 1.0, 1.0))
    b = _timing.Samples(wall=(2.0, 2.0, 3.0), cpu=(2.0, 2.0, 2.0))
    assert _timing.ratio(a, b) == 2.0  # median of the per-round ratios 0.5, 2, 3
    assert _timing.ratio(a, b, "cpu") == 0.5
    with pytest.raises(ValueError, match="repeats >= 1"):
        _timing.measure(cases, repeats=0)


@pytest.mark.slow  # two interpreter start-ups importing torch
def test_gpu_script_skips_cleanly_without_cuda() -> None:
    # No visible device, whatever the machine has: this checks the CPU-only path.
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    out = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu.sh"), "--quick"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "no CUDA device" in out.stdout and "skipping" in out.stdout


# ------------------------------------------------------------------------- gradient checkpointing
def _grads(net: nn.Module, loss: ncsn.ScoreLoss, x: Tensor) -> tuple[Tensor, list[Tensor]]:
    net.zero_grad(set_to_none=True)
    value = loss(net, x, generator=torch.Generator().manual_seed(5))
    value.backward()
    return value.detach(), [p.grad.clone() for p in net.parameters()]  # type: ignore[union-attr]


@pytest.mark.parametrize("baseline", [False, True])
def test_gradient_checkpointing_gives_the_same_loss_and_gradients(baseline: bool) -> None:
    def make(flag: bool) -> nn.Module:
        g = torch.Generator().manual_seed(0)
        if baseline:
            return ncsn.nets.RefineNetBaseline(1, 4, generator=g, gradient_checkpointing=flag)
        return ncsn.nets.RefineNet(1, 4, SIGMAS, generator=g, gradient_checkpointing=flag)

    plain, saving = make(False), make(True)
    assert list(plain.state_dict()) == list(saving.state_dict())  # the official keys
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    schedule = ncsn.Schedule(SIGMAS)
    for loss in (
        ncsn.losses.DenoisingScoreMatching(schedule),
        ncsn.losses.SlicedScoreMatching(schedule, jacobian="backward"),
    ):
        expected, expected_grads = _grads(plain, loss, x)
        got, grads = _grads(saving, loss, x)
        assert torch.equal(got, expected)
        for a, b in zip(grads, expected_grads, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    with torch.no_grad():  # sampling: nothing to recompute, the same outputs
        sigma = SIGMAS[[0, 1, 2]]
        assert torch.equal(saving(x, sigma), plain(x, sigma))


def test_gradient_checkpointing_refuses_function_transforms() -> None:
    net = ncsn.nets.RefineNet(1, 4, SIGMAS, gradient_checkpointing=True)
    loss = ncsn.losses.SlicedScoreMatching(ncsn.Schedule(SIGMAS), jacobian="forward")
    with pytest.raises(
        RuntimeError, match=r"gradient_checkpointing=True does not work under torch\.func"
    ):
        loss(net, torch.rand(2, 1, 8, 8))
    net.gradient_checkpointing = False  # a plain attribute: switched off, it works again
    assert loss(net, torch.rand(2, 1, 8, 8)).ndim == 0
    with pytest.raises(TypeError, match="gradient_checkpointing must be a bool; got 'yes'"):
        ncsn.nets.RefineNet(1, 4, SIGMAS, gradient_checkpointing="yes")  # type: ignore[arg-type]


@pytest.mark.filterwarnings(INDUCTOR_WARNING)
def test_instance_norm_compiles_into_one_graph() -> None:
    """A graph break per norm (e.g. an untraceable functorch query) would undo compile=True."""
    norm = ncsn.nets.layers.CondInstanceNorm2dPlus(4, num_levels=3)
    x, labels = torch.randn(2, 4, 6, 6), torch.tensor([0, 2])
    torch._dynamo.reset()
    try:
        explanation = torch._dynamo.explain(norm)(x, labels)
    finally:
        torch._dynamo.reset()
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1
