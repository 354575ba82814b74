"""ncsn.training.train_step (the kernel the Trainer loops over) and the Trainer's model options:
bf16 autocast and torch.compile, from Python and from ``ncsn train``."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

import ncsn
from ncsn.cli import main
from ncsn.training import (
    EMA,
    MicroBatch,
    Output,
    StepResult,
    Trainer,
    load_checkpoint,
    train_step,
)

SCHEDULE = ncsn.GeometricSchedule(5.0, 0.1, 5)
DSM = ncsn.losses.DenoisingScoreMatching(SCHEDULE)


def _mlp(seed: int = 0) -> nn.Module:
    return ncsn.nets.ScoreMLP(
        2, 16, sigmas=SCHEDULE.sigmas, generator=torch.Generator().manual_seed(seed)
    )


def _batch(seed: int, n: int = 32) -> Tensor:
    return ncsn.toy.paper_mixture().sample(n, generator=torch.Generator().manual_seed(seed))


def _hand_written_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: Tensor,
    generator: torch.Generator,
    max_grad_norm: float | None,
    ema: EMA | None,
) -> tuple[Tensor, Tensor | None]:
    optimizer.zero_grad(set_to_none=True)
    loss = DSM(model, x, generator=generator)
    loss.backward()
    grad_norm = None
    if max_grad_norm is not None:
        grad_norm = nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    if ema is not None:
        ema.update(model)
    return loss.detach(), grad_norm


def _assert_same(a: Any, b: Any, where: str) -> None:
    if isinstance(a, Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (u, v) in enumerate(zip(a, b, strict=True)):
            _assert_same(u, v, f"{where}[{i}]")
    else:
        assert a == b, where


@pytest.mark.parametrize(("max_grad_norm", "ema_rate"), [(None, None), (0.5, 0.9)])
def test_train_step_equals_the_hand_written_step(
    max_grad_norm: float | None, ema_rate: float | None
) -> None:
    mine, theirs = _mlp(), _mlp()
    opt_mine = torch.optim.Adam(mine.parameters(), lr=1e-2)
    opt_theirs = torch.optim.Adam(theirs.parameters(), lr=1e-2)
    ema_mine = None if ema_rate is None else EMA(mine, ema_rate)
    ema_theirs = None if ema_rate is None else EMA(theirs, ema_rate)
    g_mine, g_theirs = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    for step in range(4):
        x = _batch(step)
        result = train_step(
            mine, DSM, opt_mine, x, generator=g_mine, max_grad_norm=max_grad_norm, ema=ema_mine
        )
        loss, grad_norm = _hand_written_step(
            theirs, opt_theirs, x, g_theirs, max_grad_norm, ema_theirs
        )
        assert isinstance(result, StepResult)
        assert result.loss.shape == () and not result.loss.requires_grad
        assert torch.equal(result.loss, loss)
        if max_grad_norm is None:
            assert result.grad_norm is None
        else:
            assert result.grad_norm is not None and torch.equal(result.grad_norm, grad_norm)
    _assert_same(mine.state_dict(), theirs.state_dict(), "model")
    _assert_same(opt_mine.state_dict(), opt_theirs.state_dict(), "optimizer")
    if ema_mine is not None and ema_theirs is not None:
        _assert_same(ema_mine.state_dict(), ema_theirs.state_dict(), "ema")


def test_train_step_with_a_grad_scaler_equals_the_scaled_hand_written_step() -> None:
    mine, theirs = _mlp(), _mlp()
    opt_mine = torch.optim.SGD(mine.parameters(), lr=1e-2)
    opt_theirs = torch.optim.SGD(theirs.parameters(), lr=1e-2)
    scaler_mine = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    scaler_theirs = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    x = _batch(0)
    result = train_step(
        mine,
        DSM,
        opt_mine,
        x,
        generator=torch.Generator().manual_seed(1),
        max_grad_norm=1.0,
        scaler=scaler_mine,
    )
    opt_theirs.zero_grad(set_to_none=True)
    loss = DSM(theirs, x, generator=torch.Generator().manual_seed(1))
    scaler_theirs.scale(loss).backward()
    scaler_theirs.unscale_(opt_theirs)
    grad_norm = nn.utils.clip_grad_norm_(theirs.parameters(), 1.0)
    scaler_theirs.step(opt_theirs)
    scaler_theirs.update()
    assert torch.equal(result.loss, loss.detach())
    assert result.grad_norm is not None and torch.equal(result.grad_norm, grad_norm)
    _assert_same(mine.state_dict(), theirs.state_dict(), "model")


def test_micro_batches_take_one_step_on_the_mean_of_their_losses() -> None:
    mine, theirs = _mlp(), _mlp()
    opt_mine = torch.optim.Adam(mine.parameters(), lr=1e-2)
    opt_theirs = torch.optim.Adam(theirs.parameters(), lr=1e-2)
    x = _batch(0, 48)
    seeds = (1, 2, 3)
    parts = [
        MicroBatch(x[16 * k : 16 * (k + 1)], torch.Generator().manual_seed(s))
        for k, s in enumerate(seeds)
    ]
    result = train_step(mine, DSM, opt_mine, parts, max_grad_norm=0.5)
    # by hand, as EDM's training loop accumulates
    opt_theirs.zero_grad(set_to_none=True)
    losses = []
    for k, seed in enumerate(seeds):
        value = DSM(theirs, x[16 * k : 16 * (k + 1)], generator=torch.Generator().manual_seed(seed))
        (value * (1.0 / 3)).backward()
        losses.append(value.detach())
    grad_norm = nn.utils.clip_grad_norm_(theirs.parameters(), 0.5)
    opt_theirs.step()
    assert torch.equal(result.loss, (losses[0] + losses[1] + losses[2]) * (1.0 / 3))
    assert result.grad_norm is not None and torch.equal(result.grad_norm, grad_norm)
    _assert_same(mine.state_dict(), theirs.state_dict(), "model")
    _assert_same(opt_mine.state_dict(), opt_theirs.state_dict(), "optimizer")


def test_the_backward_to_call_gets_each_weighted_loss() -> None:
    seen: list[Tensor] = []

    def backward(value: Tensor) -> None:  # what accelerator.backward is called with
        seen.append(value.detach())
        value.backward()

    def parts() -> list[MicroBatch]:
        x = _batch(0)
        return [
            MicroBatch(x[:16], torch.Generator().manual_seed(1)),
            MicroBatch(x[16:], torch.Generator().manual_seed(2)),
        ]

    mine, theirs = _mlp(), _mlp()
    train_step(mine, DSM, torch.optim.SGD(mine.parameters(), lr=0.1), parts(), backward=backward)
    train_step(theirs, DSM, torch.optim.SGD(theirs.parameters(), lr=0.1), parts())
    _assert_same(mine.state_dict(), theirs.state_dict(), "model")
    expected = [0.5 * DSM(_mlp(), p.x, generator=p.generator).detach() for p in parts()]
    assert len(seen) == 2 and all(torch.equal(a, b) for a, b in zip(seen, expected, strict=True))


def test_a_grad_scaler_scales_every_micro_batch() -> None:
    mine, theirs = _mlp(), _mlp()
    opt_mine = torch.optim.SGD(mine.parameters(), lr=1e-2)
    opt_theirs = torch.optim.SGD(theirs.parameters(), lr=1e-2)
    scaler_mine = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    scaler_theirs = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    x = _batch(0)
    parts = [
        MicroBatch(x[:16], torch.Generator().manual_seed(1)),
        MicroBatch(x[16:], torch.Generator().manual_seed(2)),
    ]
    train_step(mine, DSM, opt_mine, parts, scaler=scaler_mine)
    opt_theirs.zero_grad(set_to_none=True)
    for part in parts:
        value = DSM(theirs, part.x, generator=torch.Generator().manual_seed(1 + (part is parts[1])))
        scaler_theirs.scale(value * 0.5).backward()
    scaler_theirs.step(opt_theirs)
    scaler_theirs.update()
    _assert_same(mine.state_dict(), theirs.state_dict(), "model")


def test_under_ddp_only_the_last_micro_batch_all_reduces(tmp_path: Path) -> None:
    """A one-process gloo group: every part but the last runs in DDP's no_sync."""
    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        model = _mlp()
        ddp = nn.parallel.DistributedDataParallel(model)
        entered: list[int] = []
        no_sync = ddp.no_sync

        @contextlib.contextmanager
        def counting() -> Iterator[None]:
            entered.append(len(entered))
            with no_sync():
                yield

        ddp.no_sync = counting  # type: ignore[method-assign]
        x = _batch(0, 48)
        parts = [
            MicroBatch(x[16 * k : 16 * (k + 1)], torch.Generator().manual_seed(k)) for k in range(3)
        ]
        wrapped = ncsn.nets.autocast(ddp, torch.bfloat16)  # found inside the wrappers too
        train_step(wrapped, DSM, torch.optim.SGD(model.parameters(), lr=0.1), parts)
        assert entered == [0, 1]
    finally:
        dist.destroy_process_group()


def test_micro_batches_are_checked() -> None:
    model = _mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    part = MicroBatch(_batch(0), torch.Generator())
    with pytest.raises(TypeError, match="generator= goes with a tensor x"):
        train_step(model, DSM, optimizer, [part], generator=torch.Generator())
    with pytest.raises(TypeError, match=r"parts\[0\] must be a MicroBatch"):
        train_step(model, DSM, optimizer, [_batch(0)])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="non-empty sequence"):
        train_step(model, DSM, optimizer, [])
    with pytest.raises(ValueError, match="weight must be positive"):
        train_step(model, DSM, optimizer, [part], weight=0.0)
    with pytest.raises(TypeError, match="backward must be callable"):
        train_step(model, DSM, optimizer, [part], backward=3)  # type: ignore[arg-type]


class _SyncWatch(TorchFunctionMode):
    """Records host-synchronising tensor methods called inside the mode (as in test_samplers)."""

    SYNCS = frozenset(
        {"item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "nonzero"}
    )

    def __init__(self) -> None:
        super().__init__()
        self.syncs: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        name = getattr(func, "__name__", "")
        if name in self.SYNCS:
            self.syncs.append(name)
        return func(*args, **(kwargs or {}))


class _PlainScore(nn.Module):
    """A score model without σ checks (those belong to the networks, not to the step)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 16), nn.SiLU(), nn.Linear(16, 2))

    def forward(self, x: Tensor, sigma: Tensor) -> Tensor:
        h = torch.cat([x, sigma.log()[:, None]], dim=1)
        out: Tensor = self.net(h) / sigma[:, None]
        return out


def test_train_step_makes_no_host_synchronisation() -> None:
    model = _PlainScore()
    # SGD with momentum: Adam reads its CPU step counter with .item(), which is no device sync
    # but would look like one here.
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    ema = EMA(model, 0.99)
    g = torch.Generator().manual_seed(0)
    x = _batch(0)
    train_step(model, DSM, optimizer, x, generator=g, max_grad_norm=1.0, ema=ema)  # warm-up
    with _SyncWatch() as watch:
        result = train_step(model, DSM, optimizer, x, generator=g, max_grad_norm=1.0, ema=ema)
    assert watch.syncs == []
    assert result.grad_norm is not None

    # The watch does see a step that reads its loss on the host.
    def reading(model: ncsn.ScoreModel, x: Tensor, *, generator: Any = None) -> Tensor:
        value = DSM(model, x, generator=generator)
        float(value.detach())
        return value

    with _SyncWatch() as watch:
        train_step(model, reading, optimizer, x, generator=g)
    assert watch.syncs == ["__float__"]


def test_train_step_checks_its_arguments() -> None:
    model = _mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    with pytest.raises(ValueError, match="max_grad_norm"):
        train_step(model, DSM, optimizer, _batch(0), max_grad_norm=0.0)
    with pytest.raises(TypeError, match="loss must be a callable"):
        train_step(model, "dsm", optimizer, _batch(0))  # type: ignore[arg-type]


# ------------------------------------------------------------------- bf16 autocast


# Measured on RefineNet(1, ngf=8) at 16×16, DSM over 10 levels, 6 initialisations: the bf16 loss
# within 1.9e-3 (relative) of float32's and the gradients within 0.123 (‖Δg‖ / ‖g‖; cosine
# similarity >= 0.995): bfloat16 keeps 8 bits of mantissa. The tolerances leave a factor ~2-5.
BF16_LOSS_RTOL = 1e-2
BF16_GRAD_RTOL = 0.25


@pytest.mark.parametrize("seed", [0, 1])
def test_bf16_autocast_loss_and_gradients_are_within_tolerance_of_float32(seed: int) -> None:
    sigmas = ncsn.geometric_sigmas(1.0, 0.01, 10)
    dsm = ncsn.losses.DenoisingScoreMatching(ncsn.Schedule(sigmas))
    net = ncsn.nets.RefineNet(1, 8, sigmas, generator=torch.Generator().manual_seed(seed))
    x = torch.rand(8, 1, 16, 16, generator=torch.Generator().manual_seed(100 + seed))
    results = []
    for model in (net, ncsn.nets.autocast(net, torch.bfloat16)):
        optimizer = torch.optim.SGD(net.parameters(), lr=0.0)  # lr 0: the weights stay put
        result = train_step(model, dsm, optimizer, x, generator=torch.Generator().manual_seed(7))
        grads = torch.cat([p.grad.flatten() for p in net.parameters() if p.grad is not None])
        results.append((result.loss, grads))
    (loss32, grad32), (loss16, grad16) = results
    assert loss16.dtype == torch.float32 and grad16.dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in net.parameters())
    assert float((loss16 - loss32).abs() / loss32.abs()) <= BF16_LOSS_RTOL
    assert float((grad16 - grad32).norm() / grad32.norm()) <= BF16_GRAD_RTOL
    assert not torch.equal(grad16, grad32)  # autocast did run in reduced precision


def quiet(folder: Path | None = None) -> Output:
    """Output settings without the progress bar, a record every 2 steps."""
    return Output(folder, progress=False, log_every=2)


def _trainer(**kwargs: Any) -> Trainer:
    options: dict[str, Any] = {"batch_size": 16, "seed": 0, "output": quiet()}
    return Trainer(_mlp(), DSM, _batch(5, 64), **(options | kwargs))


def test_trainer_bf16_keeps_float32_weights_and_saves_the_plain_model(tmp_path: Path) -> None:
    t = _trainer(autocast_dtype=torch.bfloat16, ema_rate=0.9, output=quiet(tmp_path))
    summary = t.fit(4)
    assert summary.step == 4 and torch.isfinite(torch.tensor(summary.loss))
    assert all(p.dtype == torch.float32 for p in t.model.parameters())
    checkpoint = load_checkpoint(tmp_path)
    assert checkpoint["model"].keys() == _mlp().state_dict().keys()
    assert checkpoint["autocast_dtype"] == "torch.bfloat16" and checkpoint["compile"] is False
    plain = _trainer(ema_rate=0.9)
    plain.fit(4)
    # Not the float32 run (reduced precision), but close to it.
    diff = max(
        float((t.model.state_dict()[n] - v).abs().max())
        for n, v in plain.model.state_dict().items()
    )
    assert 0 < diff < 1e-2


def test_trainer_bf16_resumes_exactly(tmp_path: Path) -> None:
    straight = _trainer(autocast_dtype=torch.bfloat16)
    straight.fit(6)
    first = _trainer(autocast_dtype=torch.bfloat16, output=quiet(tmp_path))
    first.fit(3)
    resumed = _trainer(autocast_dtype=torch.bfloat16, output=quiet(tmp_path))
    resumed.restore(tmp_path)
    resumed.fit(6)
    _assert_same(straight.model.state_dict(), resumed.model.state_dict(), "model")


def test_trainer_float16_uses_a_grad_scaler_saved_in_the_checkpoint(tmp_path: Path) -> None:
    t = _trainer(autocast_dtype=torch.float16, output=quiet(tmp_path), max_grad_norm=1.0)
    t.fit(3)
    assert isinstance(t.scaler, torch.amp.GradScaler)
    checkpoint = load_checkpoint(tmp_path)
    assert checkpoint["scaler"]["scale"] == t.scaler.get_scale()
    assert _trainer().scaler is None and _trainer(autocast_dtype=torch.bfloat16).scaler is None


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int8, "bf16"])
def test_trainer_refuses_another_autocast_dtype(dtype: Any) -> None:
    with pytest.raises(ValueError, match="autocast_dtype"):
        _trainer(autocast_dtype=dtype)


def test_trainer_refuses_a_non_bool_compile() -> None:
    with pytest.raises(TypeError, match="compile"):
        _trainer(compile="yes")


# ------------------------------------------------------------------- torch.compile


def test_trainer_compile_trains_like_eager_or_says_the_compiler_is_missing(
    tmp_path: Path,
) -> None:
    t = _trainer(compile=True, output=quiet(tmp_path), max_grad_norm=1.0, ema_rate=0.9)
    try:
        t.fit(3)
    except RuntimeError as err:  # the wrapper's error where torch.compile cannot work here
        assert "compiled(model) needs a working torch.compile" in str(err)
        assert t.step == 0
        return
    eager = _trainer(max_grad_norm=1.0, ema_rate=0.9)
    eager.fit(3)
    for name, value in eager.model.state_dict().items():
        torch.testing.assert_close(t.model.state_dict()[name], value, rtol=1e-4, atol=1e-5)
    checkpoint = load_checkpoint(tmp_path)
    assert checkpoint["model"].keys() == eager.model.state_dict().keys()  # not the wrapper's
    assert checkpoint["compile"] is True
    assert copy.deepcopy(t.ema_model()) is not None


@pytest.mark.parametrize(
    ("size_in", "size_out"), [((4, 4), (8, 8)), ((7, 5), (14, 28)), ((1, 3), (5, 2))]
)
def test_the_compiled_upsampling_equals_bilinear_interpolation(
    size_in: tuple[int, int], size_out: tuple[int, int]
) -> None:
    """The matrix form RefineNet's fusion takes in compiled autocast regions is the same map."""
    from ncsn.nets._upsample import _weights

    x = torch.rand(2, 3, *size_in, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = nn.functional.interpolate(x, size=size_out, mode="bilinear", align_corners=True)
    h, w = _weights(size_out[0], size_in[0], x), _weights(size_out[1], size_in[1], x)
    torch.testing.assert_close(torch.einsum("ih,bchw,jw->bcij", h, x, w), expected)


class _FusionThenPooling(nn.Module):
    """The smallest part of RefineNet where the inductor bug showed: a convolution at half
    resolution, the last refine block's multi-resolution fusion (upsampling it to full size) and
    its chained residual pooling. Without the pooling after the fusion the bug did not show."""

    def __init__(self, sigmas: Tensor) -> None:
        super().__init__()
        net = ncsn.nets.RefineNet(1, 4, sigmas, generator=torch.Generator().manual_seed(0))
        self.fine = nn.Conv2d(1, 4, 3, padding=1)
        self.coarse = nn.Conv2d(1, 4, 3, padding=1, stride=2)
        self.head = nn.Conv2d(4, 1, 3, padding=1)
        self.msf, self.crp = net.refine4.msf, net.refine4.crp
        self.sigmas = sigmas
        with torch.no_grad():
            gen = torch.Generator().manual_seed(1)
            for conv in (self.fine, self.coarse, self.head):
                for p in conv.parameters():
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.3)

    def forward(self, x: Tensor, sigma: Tensor) -> Tensor:
        labels = torch.searchsorted(-self.sigmas, -sigma).clamp(max=len(self.sigmas) - 1)
        assert self.msf is not None
        h = self.msf([self.fine(x), self.coarse(x)], labels, (x.shape[-2], x.shape[-1]))
        return self.head(self.crp(h, labels)) / sigma.view(-1, 1, 1, 1)


@pytest.mark.slow  # a cold torch.compile of this forward and backward takes ~1 min on 2 cores
@pytest.mark.parametrize(("dtype", "size"), [(torch.bfloat16, 8), (None, 16)])
def test_compiled_upsampling_passes_gradients_to_the_layers_below(
    dtype: torch.dtype | None, size: int
) -> None:
    """torch 2.13's inductor on the CPU returned zero gradients through F.interpolate: under
    autocast 129 of RefineNet's 173 parameters stopped learning in bf16 compiled training, and
    in float32 from 16×16 up (143 of 173 at the MNIST configuration), both found by
    benchmarks/training.py's output check. With F.interpolate in place of upsample_bilinear this
    test fails in both cases: the half-resolution convolution's gradient is zero."""
    sigmas = ncsn.geometric_sigmas(1.0, 0.01, 10)
    dsm = ncsn.losses.DenoisingScoreMatching(ncsn.Schedule(sigmas))
    net = _FusionThenPooling(sigmas)
    x = torch.rand(4, 1, size, size, generator=torch.Generator().manual_seed(1))
    fast_model = ncsn.nets.compiled(net)
    grads = []
    try:
        for model in (net, fast_model if dtype is None else ncsn.nets.autocast(fast_model, dtype)):
            net.zero_grad(set_to_none=True)
            dsm(model, x, generator=torch.Generator().manual_seed(7)).backward()
            grads.append({n: p.grad.clone() for n, p in net.named_parameters()})
    except RuntimeError as err:  # the wrapper's error where torch.compile cannot work here
        assert "compiled(model) needs a working torch.compile" in str(err)
        return
    eager, fast = grads
    dead = [n for n in fast if fast[n].abs().max() == 0 and eager[n].abs().max() > 0]
    assert dead == []
    flat = [torch.cat([g[n].flatten() for n in eager]) for g in (eager, fast)]
    tolerance = BF16_GRAD_RTOL if dtype is not None else 1e-4
    assert float((flat[1] - flat[0]).norm() / flat[0].norm()) <= tolerance


def test_compiled_is_static_unless_asked() -> None:
    net = ncsn.nets.ScoreMLP(dim=2, hidden=4, sigmas=ncsn.geometric_sigmas(1.0, 0.1, 3))
    assert ncsn.nets.compiled(net).options == {"dynamic": False}
    assert ncsn.nets.compiled(net, dynamic=True, mode="reduce-overhead").options == {
        "dynamic": True,
        "mode": "reduce-overhead",
    }


@pytest.mark.slow  # two cold compilations of a small forward and backward, ~1 min on 2 cores
def test_a_compiled_refinenet_part_takes_a_second_image_size() -> None:
    """With torch's automatic dynamic shapes the second shape recompiled with symbolic sizes and
    inductor crashed ("cannot determine truth value of Relational"), as benchmarks/training.py
    did going from the MNIST to the CIFAR-10 configuration."""
    sigmas = ncsn.geometric_sigmas(1.0, 0.01, 10)
    dsm = ncsn.losses.DenoisingScoreMatching(ncsn.Schedule(sigmas))
    net = _FusionThenPooling(sigmas)
    fast = ncsn.nets.compiled(net)
    try:
        for size in (8, 16):
            x = torch.rand(4, 1, size, size, generator=torch.Generator().manual_seed(size))
            grads = []
            for model in (net, fast):
                net.zero_grad(set_to_none=True)
                dsm(model, x, generator=torch.Generator().manual_seed(7)).backward()
                grads.append(torch.cat([p.grad.flatten() for p in net.parameters()]))
            assert float((grads[1] - grads[0]).norm() / grads[0].norm()) <= 1e-4  # round-off
    except RuntimeError as err:  # the wrapper's error where torch.compile cannot work here
        assert "compiled(model) needs a working torch.compile" in str(err)


# ------------------------------------------------------------------- ncsn train --bf16


def test_cli_train_bf16_end_to_end_and_resume_keeps_it(tmp_path: Path) -> None:
    out = tmp_path / "run"
    common = ["--output", str(out), "--batch-size", "16", "--quiet", "--checkpoint-every", "2"]
    assert (
        main(["train", "--data", "mixture", "--steps", "2", "--hidden", "16", "--bf16", *common])
        == 0
    )
    checkpoint = load_checkpoint(out)
    assert checkpoint["config"]["train"]["bf16"] is True
    assert checkpoint["config"]["train"]["compile"] is False
    assert checkpoint["autocast_dtype"] == "torch.bfloat16"
    assert main(["train", "--steps", "4", "--resume", *common]) == 0  # the recorded --bf16
    assert load_checkpoint(out)["autocast_dtype"] == "torch.bfloat16"
    assert load_checkpoint(out)["step"] == 4

    plain = tmp_path / "plain"
    args = ["--output", str(plain), "--batch-size", "16", "--quiet"]
    assert main(["train", "--data", "mixture", "--steps", "2", "--hidden", "16", *args]) == 0
    assert main(["train", "--steps", "4", "--resume", "--bf16", *args]) == 2
