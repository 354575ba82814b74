"""The training loop: data sources, EMA, clipping, evaluation, logs, exact resume, NaN handling."""

from __future__ import annotations

import json
import os
import signal
import sys
import types
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from torch import Tensor, nn

import ncsn
from ncsn.training import (
    CheckpointError,
    Evaluation,
    NonFiniteLossError,
    Output,
    Trainer,
    TrainStep,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
)

SCHEDULE = ncsn.GeometricSchedule(2.0, 0.1, 4)
DSM = ncsn.losses.DenoisingScoreMatching(SCHEDULE)
SSM = ncsn.losses.SlicedScoreMatching(SCHEDULE)


def tiny_mlp(seed: int = 0, hidden: int = 16) -> ncsn.nets.ScoreMLP:
    net = ncsn.nets.ScoreMLP(2, hidden=hidden, sigmas=SCHEDULE.sigmas)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=g))
    return net


def toy_data(n: int = 40, seed: int = 1) -> Tensor:
    return ncsn.toy.paper_mixture().sample(n, generator=torch.Generator().manual_seed(seed)) / 5.0


def toy_sampler(n: int, *, generator: torch.Generator | None = None) -> Tensor:
    return ncsn.toy.paper_mixture().sample(n, generator=generator) / 5.0


def jitter(x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """A transform in the style of uniform dequantisation."""
    return x + 0.01 * torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)


def quiet(folder: Path | None = None, **options: Any) -> Output:
    """Output settings without the progress bar."""
    return Output(folder, progress=False, **options)


def trainer(model: nn.Module | None = None, data: Any = None, **options: Any) -> Trainer:
    settings: dict[str, Any] = {"batch_size": 8, "seed": 0, "output": quiet()} | options
    loss = settings.pop("loss", DSM)
    return Trainer(model or tiny_mlp(), loss, toy_data() if data is None else data, **settings)


class Recorder:
    """A ScoreLoss that records every batch it sees and then computes DSM."""

    def __init__(self) -> None:
        self.batches: list[Tensor] = []

    def __call__(
        self, model: ncsn.ScoreModel, x: Tensor, *, generator: torch.Generator | None = None
    ) -> Tensor:
        self.batches.append(x.detach().clone())
        return DSM(model, x, generator=generator)


def _equal_states(a: Any, b: Any, where: str = "") -> None:
    if isinstance(a, Tensor):
        assert isinstance(b, Tensor) and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _equal_states(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _equal_states(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


# ------------------------------------------------------------------------------- it trains


def test_training_lowers_the_held_out_loss() -> None:
    t = trainer(tiny_mlp(hidden=32), toy_sampler, batch_size=32, evaluation=Evaluation(toy_sampler))
    before = t.evaluate()
    summary = t.fit(150)
    assert summary.step == t.step == 150
    assert np.isfinite(summary.loss)
    after = t.evaluate()
    assert after < 0.5 * before, (before, after)


def test_default_optimizer_is_adam_with_the_papers_learning_rate() -> None:
    t = trainer()
    assert isinstance(t.optimizer, torch.optim.Adam)
    group = t.optimizer.param_groups[0]
    assert group["lr"] == 1e-3 and group["betas"] == (0.9, 0.999) and group["weight_decay"] == 0
    assert {id(p) for p in group["params"]} == {id(p) for p in t.model.parameters()}


# ------------------------------------------------------------------------------- exact resume

RESUME_CASES = [
    ("dsm", "tensor", 1),
    ("ssm", "tensor", 2),
    ("dsm", "dataset", 2),
    ("ssm", "sampler", 1),
    ("dsm", "sampler", 2),
]


@pytest.mark.parametrize(("loss_name", "source", "shards"), RESUME_CASES)
def test_resume_is_bit_identical_to_training_straight_through(
    tmp_path: Path, loss_name: str, source: str, shards: int
) -> None:
    data: Any = {
        "tensor": toy_data(),
        "dataset": torch.utils.data.TensorDataset(toy_data(), torch.zeros(40)),
        "sampler": toy_sampler,
    }[source]
    options: dict[str, Any] = {
        "loss": DSM if loss_name == "dsm" else SSM,
        "batch_size": 12,  # 40 examples: the halfway point falls inside an epoch
        "shards": shards,
        "ema_rate": 0.9,
        "max_grad_norm": 1.0,
        "transform": jitter,
    }
    steps = 10
    straight = trainer(tiny_mlp(0), data, output=quiet(log_every=3), **options)
    straight.fit(steps)

    first = trainer(tiny_mlp(0), data, output=quiet(tmp_path, log_every=3), **options)
    first.fit(steps // 2)
    assert latest_checkpoint(tmp_path) == tmp_path / f"checkpoint-{steps // 2:08d}.pt"

    resumed = trainer(
        tiny_mlp(7), data, output=quiet(tmp_path, log_every=3), **(options | {"seed": 99})
    )
    resumed.restore(tmp_path)
    assert resumed.step == steps // 2 and resumed.seed == 0
    resumed.fit(steps)

    _equal_states(straight.model.state_dict(), resumed.model.state_dict(), "model")
    _equal_states(straight.ema_model().state_dict(), resumed.ema_model().state_dict(), "ema")
    _equal_states(straight.optimizer.state_dict(), resumed.optimizer.state_dict(), "optimizer")
    assert straight.data.state() == resumed.data.state()
    # and the run really moved: the final weights differ from the halfway ones
    halfway = load_checkpoint(tmp_path / f"checkpoint-{steps // 2:08d}.pt")
    assert not torch.equal(
        halfway["model"]["fc1.weight"], resumed.model.get_parameter("fc1.weight")
    )


def test_checkpoints_hold_everything_needed_to_continue(tmp_path: Path) -> None:
    config = {"kind": "ScoreMLP", "kwargs": {"dim": 2, "hidden": 16}, "sigmas": SCHEDULE.sigmas}
    t = trainer(output=quiet(tmp_path, log_every=2), ema_rate=0.99, config=config, batch_size=12)
    t.fit(4)
    ckpt = load_checkpoint(tmp_path)
    assert ckpt["step"] == 4 and ckpt["config"].keys() == config.keys()
    assert torch.equal(ckpt["config"]["sigmas"], SCHEDULE.sigmas)
    assert ckpt["rng"]["seed"] == 0 and ckpt["data"] == {"epoch": 1, "offset": 8}
    assert ckpt["batch_size"] == 12 and ckpt["shards"] == 1 and ckpt["ema_rate"] == 0.99
    assert ckpt["model"].keys() == t.model.state_dict().keys() == ckpt["ema"].keys()
    assert ckpt["optimizer"]["state"][0]["step"] == 4
    net = ncsn.nets.ScoreMLP(**ckpt["config"]["kwargs"], sigmas=ckpt["config"]["sigmas"])
    net.load_state_dict(ncsn.training.model_weights(ckpt))
    assert torch.equal(net.fc1.weight, t.ema_model().get_parameter("fc1.weight"))


def _cosine(net: nn.Module, steps: int, ours: bool = False) -> tuple[torch.optim.Adam, Any]:
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    if ours:
        return optimizer, ncsn.training.cosine_decay(optimizer, steps)
    return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)


@pytest.mark.parametrize("ours", [False, True], ids=["CosineAnnealingLR", "cosine_decay"])
def test_a_scheduler_steps_once_per_update_and_resumes_exactly(tmp_path: Path, ours: bool) -> None:
    steps = 10
    net = tiny_mlp(0)
    optimizer, cosine = _cosine(net, steps, ours)
    seen: list[float] = []
    straight = trainer(net, optimizer=optimizer, scheduler=cosine, batch_size=12)
    straight.callback = lambda _: seen.append(optimizer.param_groups[0]["lr"])
    straight.fit(steps)
    # after update k the step size of update k + 1: the half cosine from 1e-2 down to 0
    expected = [5e-3 * (1 + np.cos(np.pi * k / steps)) for k in range(1, steps + 1)]
    np.testing.assert_allclose(seen, expected, rtol=1e-12, atol=1e-15)

    net = tiny_mlp(0)
    optimizer, cosine = _cosine(net, steps, ours)
    first = trainer(
        net, optimizer=optimizer, scheduler=cosine, batch_size=12, output=quiet(tmp_path)
    )
    first.fit(steps // 2)
    saved = load_checkpoint(tmp_path)["scheduler"]["class"]
    assert saved == ("LambdaLR" if ours else "CosineAnnealingLR")
    net = tiny_mlp(7)
    optimizer, cosine = _cosine(net, steps, ours)
    resumed = trainer(net, optimizer=optimizer, scheduler=cosine, batch_size=12)
    resumed.restore(tmp_path)
    assert cosine.last_epoch == steps // 2
    resumed.fit(steps)
    _equal_states(straight.model.state_dict(), resumed.model.state_dict(), "model")
    _equal_states(straight.optimizer.state_dict(), resumed.optimizer.state_dict(), "optimizer")
    _equal_states(straight.scheduler.state_dict(), resumed.scheduler.state_dict(), "scheduler")


def test_a_run_continues_only_with_the_scheduler_it_was_trained_with(tmp_path: Path) -> None:
    net = tiny_mlp(0)
    optimizer, cosine = _cosine(net, 10)
    trainer(net, optimizer=optimizer, scheduler=cosine, output=quiet(tmp_path / "cos")).fit(2)
    trainer(output=quiet(tmp_path / "plain")).fit(2)
    with pytest.raises(
        CheckpointError,
        match=r"trained with a CosineAnnealingLR scheduler and this Trainer has none "
        r"\(scheduler=None\); continue it with the same kind of scheduler",
    ):
        trainer().restore(tmp_path / "cos")
    net = tiny_mlp(0)
    optimizer, _ = _cosine(net, 10)
    linear = torch.optim.lr_scheduler.LinearLR(optimizer)
    with pytest.raises(
        CheckpointError, match=r"CosineAnnealingLR scheduler and this Trainer has a LinearLR"
    ):
        trainer(net, optimizer=optimizer, scheduler=linear).restore(tmp_path / "cos")
    net = tiny_mlp(0)
    optimizer, cosine = _cosine(net, 10)
    with pytest.raises(CheckpointError, match=r"trained without a learning-rate scheduler"):
        trainer(net, optimizer=optimizer, scheduler=cosine).restore(tmp_path / "plain")


def test_a_scheduler_must_drive_the_trainers_optimizer() -> None:
    net = tiny_mlp(0)
    optimizer, cosine = _cosine(net, 10)
    with pytest.raises(ValueError, match="scheduler CosineAnnealingLR needs optimizer="):
        trainer(net, scheduler=cosine)
    other, _ = _cosine(net, 10)
    with pytest.raises(ValueError, match="built on another optimizer than optimizer="):
        trainer(net, optimizer=other, scheduler=cosine)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer)
    with pytest.raises(TypeError, match="got ReduceLROnPlateau steps on a metric"):
        trainer(net, optimizer=optimizer, scheduler=plateau)
    with pytest.raises(TypeError, match="LRScheduler that steps once per optimiser step; got str"):
        trainer(net, optimizer=optimizer, scheduler="cosine")


# ------------------------------------------------------------------------------- data sources


def _row_ids(batches: list[Tensor]) -> list[int]:
    return [int(v) for b in batches for v in b[:, 0].tolist()]


@pytest.mark.parametrize("shards", [1, 2])
def test_indexed_data_visits_every_example_once_per_epoch(shards: int) -> None:
    n = 10
    rows = torch.stack([torch.arange(n, dtype=torch.float32), torch.zeros(n)], dim=1)
    recorder = Recorder()
    t = trainer(data=rows, loss=recorder, batch_size=4, shards=shards)
    t.fit(5)  # 20 examples: exactly two epochs, one batch straddling them
    assert all(b.shape == (4 // shards, 2) for b in recorder.batches)
    seen = _row_ids(recorder.batches)
    assert sorted(seen[:n]) == list(range(n)) and sorted(seen[n:]) == list(range(n))
    assert seen[:n] != seen[n:]  # each epoch is reshuffled
    assert t.data.state() == {"epoch": 2, "offset": 0}


def test_datasets_of_tuples_and_arrays_give_the_tensor_sources_batches() -> None:
    data = toy_data(12)
    sources: list[Any] = [
        data,
        torch.utils.data.TensorDataset(data, torch.arange(12)),
        [row.numpy() for row in data],
        [(row, "label") for row in data],
    ]
    seen = []
    for source in sources:
        recorder = Recorder()
        trainer(data=source, loss=recorder, batch_size=5).fit(4)
        seen.append(torch.cat(recorder.batches))
    for other in seen[1:]:
        assert torch.equal(seen[0], other)


def test_sampler_sources_draw_each_shard_with_its_own_generator() -> None:
    calls: list[tuple[int, int]] = []

    def source(n: int, *, generator: torch.Generator | None = None) -> Tensor:
        assert isinstance(generator, torch.Generator)
        calls.append((n, generator.initial_seed()))
        return toy_sampler(n, generator=generator)

    trainer(data=source, batch_size=8, shards=2).fit(3)
    assert [n for n, _ in calls] == [4] * 6
    assert len({seed for _, seed in calls}) == 6  # a distinct stream per (step, shard)


def test_the_transform_gets_every_batch_and_a_generator() -> None:
    seen: list[tuple[int, bool]] = []

    def transform(x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        seen.append((x.shape[0], isinstance(generator, torch.Generator)))
        return x + 100.0

    recorder = Recorder()
    t = trainer(
        data=toy_data(),
        loss=recorder,
        transform=transform,
        evaluation=Evaluation(toy_data(6, seed=5)),
    )
    t.fit(2)
    assert seen == [(8, True), (8, True)]
    assert all(float(b.mean()) > 50 for b in recorder.batches)
    t.evaluate()
    assert seen[-1] == (6, True)  # the held-out batch (at most its 6 examples) too


# ------------------------------------------------------------------------------- options


def test_ema_rate_zero_tracks_the_model_exactly() -> None:
    t = trainer(ema_rate=0.0)
    t.fit(3)
    _equal_states(t.model.state_dict(), t.ema_model().state_dict())
    assert t.ema_model() is not t.model


@pytest.mark.parametrize("loss", [DSM, SSM], ids=["dsm", "ssm"])
def test_evaluation_uses_the_ema_weights_and_fixed_noise(loss: ncsn.ScoreLoss) -> None:
    t = trainer(ema_rate=0.5, evaluation=Evaluation(toy_data(16, seed=3)), loss=loss)
    t.fit(3)
    value = t.evaluate()
    assert t.evaluate() == value  # same batch, same noise
    with torch.no_grad():
        for p in t.model.parameters():
            p.add_(1.0)
    assert t.evaluate() == value  # the raw weights are not what is evaluated
    with torch.no_grad():
        for p in t.ema_model().parameters():
            p.add_(1.0)
    assert t.evaluate() != value
    assert not t.ema_model().training


def test_gradient_clipping_bounds_the_update() -> None:
    norms: list[Tensor | None] = []

    def run(max_grad_norm: float | None) -> float:
        net = tiny_mlp(0)
        before = torch.cat([p.detach().flatten().clone() for p in net.parameters()])
        sgd = torch.optim.SGD(net.parameters(), lr=1.0)
        t = trainer(
            net,
            optimizer=sgd,
            max_grad_norm=max_grad_norm,
            callback=lambda info: norms.append(info.grad_norm),
        )
        t.fit(1)
        after = torch.cat([p.detach().flatten() for p in net.parameters()])
        return float((after - before).norm())

    clipped = run(1e-3)
    assert clipped <= 1e-3 * (1 + 1e-4)
    assert norms[-1] is not None and float(norms[-1]) > 1e-3  # the raw norm, before clipping
    assert run(None) > 1e-2 and norms[-1] is None


def test_the_callback_sees_every_step() -> None:
    infos: list[TrainStep] = []
    trainer(callback=infos.append).fit(4)
    assert [i.step for i in infos] == [1, 2, 3, 4]
    assert all(i.loss.ndim == 0 and not i.loss.requires_grad for i in infos)


def test_a_run_without_a_seed_draws_a_fresh_one() -> None:
    def final(seed: int | None) -> Tensor:
        t = trainer(seed=seed)
        t.fit(3)
        return t.model.get_parameter("fc1.weight").detach()

    assert torch.equal(final(5), final(5))
    assert not torch.equal(final(5), final(6))
    assert trainer(seed=None).seed != trainer(seed=None).seed  # a fresh seed from the OS


# ------------------------------------------------------------------------------- logs


def test_metrics_progress_and_checkpoint_schedule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    t = trainer(
        output=Output(
            tmp_path, checkpoint_every=4, keep=2, log_every=3, progress=True, tensorboard=False
        ),
        evaluation=Evaluation(toy_sampler, every=5),
    )
    t.fit(9)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [3, 4, 5, 6, 8, 9]
    assert [r["step"] for r in records if "eval_loss" in r] == [5]
    for r in records:
        assert set(r) >= {"step", "loss", "lr", "time"} and r["lr"] == 1e-3
        assert np.isfinite(r["loss"])
    times = [r["time"] for r in records]
    assert times == sorted(times)
    assert [p.name for p in list_checkpoints(tmp_path)] == [
        "checkpoint-00000008.pt",
        "checkpoint-00000009.pt",
    ]
    err = capsys.readouterr().err
    assert "9/9" in err and "step/s" in err and "loss=" in err


def test_logged_loss_is_the_mean_of_the_steps_since_the_last_record(tmp_path: Path) -> None:
    infos: list[TrainStep] = []
    t = trainer(output=quiet(tmp_path, log_every=3, tensorboard=False), callback=infos.append)
    summary = t.fit(6)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    losses = [float(i.loss) for i in infos]
    assert records[0]["loss"] == pytest.approx(np.mean(losses[:3]), rel=1e-6)
    assert records[1]["loss"] == pytest.approx(np.mean(losses[3:]), rel=1e-6)
    assert summary.loss == records[1]["loss"]


class _FakeWriter:
    instances: ClassVar[list[_FakeWriter]] = []

    def __init__(self, log_dir: str, purge_step: int | None = None) -> None:
        self.log_dir, self.purge_step = log_dir, purge_step
        self.scalars: list[tuple[str, float, int]] = []
        self.closed = False
        _FakeWriter.instances.append(self)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.scalars.append((tag, value, step))

    def close(self) -> None:
        self.closed = True


def test_tensorboard_scalars_when_it_is_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = types.ModuleType("torch.utils.tensorboard")
    module.SummaryWriter = _FakeWriter  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", module)
    _FakeWriter.instances.clear()
    t = trainer(output=quiet(tmp_path, log_every=2), evaluation=Evaluation(toy_sampler, every=4))
    t.fit(4)
    (writer,) = _FakeWriter.instances
    assert writer.log_dir == str(tmp_path / "tensorboard") and writer.closed
    tags = [(tag, step) for tag, _, step in writer.scalars]
    assert tags == [("loss", 2), ("lr", 2), ("loss", 4), ("eval_loss", 4), ("lr", 4)]
    assert trainer(output=quiet(tmp_path, tensorboard=False))._writer_cls is None


def test_tensorboard_is_optional(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # makes the import fail
    trainer(output=quiet(tmp_path)).fit(2)  # auto: silently without it
    assert (tmp_path / "metrics.jsonl").exists() and not (tmp_path / "tensorboard").exists()
    with pytest.raises(ImportError, match="pip install tensorboard"):
        trainer(output=quiet(tmp_path, tensorboard=True))


def test_restore_drops_metrics_of_the_lost_steps(tmp_path: Path) -> None:
    t = trainer(output=quiet(tmp_path, checkpoint_every=4, log_every=2, tensorboard=False))
    t.fit(7)  # records 2, 4, 6, 7; checkpoints 4 and 7
    (tmp_path / "checkpoint-00000007.pt").unlink()  # as if the process died after step 6
    again = trainer(output=quiet(tmp_path, checkpoint_every=4, log_every=2, tensorboard=False))
    again.restore(tmp_path)
    assert again.step == 4
    again.fit(6)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [2, 4, 6]


# ------------------------------------------------------------------------------- failures


def _nan_at(bad_step: int) -> Any:
    calls = [0]

    def source(n: int, *, generator: torch.Generator | None = None) -> Tensor:
        calls[0] += 1
        x = toy_sampler(n, generator=generator)
        return torch.full_like(x, float("nan")) if calls[0] == bad_step else x

    return source


@pytest.mark.parametrize("bad_step", [7, 10])
def test_a_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, bad_step: int
) -> None:
    t = trainer(data=_nan_at(bad_step), output=quiet(tmp_path, checkpoint_every=5, log_every=4))
    with pytest.raises(NonFiniteLossError, match=f"non-finite .* at step {bad_step};") as info:
        t.fit(20)
    assert info.value.step == bad_step
    assert isinstance(info.value, FloatingPointError)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-00000005.pt"]
    good = load_checkpoint(tmp_path)
    assert good["step"] == 5
    assert all(bool(torch.isfinite(v).all()) for v in good["model"].values())
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert max(r["step"] for r in records) < bad_step
    resumed = trainer(data=toy_sampler, output=quiet(tmp_path, checkpoint_every=5, log_every=4))
    resumed.restore(tmp_path)
    resumed.fit(8)  # training continues from the good state


def test_save_refuses_non_finite_parameters(tmp_path: Path) -> None:
    t = trainer(output=quiet(tmp_path))
    t.fit(1)
    with torch.no_grad():
        t.model.get_parameter("fc2.bias")[0] = float("inf")
    with pytest.raises(NonFiniteLossError, match="parameters are non-finite at step 1"):
        t.save(tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


def test_a_callback_error_propagates_without_a_checkpoint(tmp_path: Path) -> None:
    def boom(info: TrainStep) -> None:
        if info.step == 3:
            raise KeyboardInterrupt

    t = trainer(output=quiet(tmp_path, checkpoint_every=2), callback=boom)
    with pytest.raises(KeyboardInterrupt):
        t.fit(10)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-00000002.pt"]


def _sigint() -> None:
    os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_during_the_update_is_held_until_the_step_is_complete(tmp_path: Path) -> None:
    t = trainer(ema_rate=0.9, batch_size=12)
    update = t.optimizer.step

    def interrupted_update(*args: Any, **kwargs: Any) -> Any:
        if t.step == 2:
            _sigint()  # arrives in the middle of the third update
        return update(*args, **kwargs)

    t.optimizer.step = interrupted_update  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        t.fit(10)
    assert t.step == 3
    reference = trainer(ema_rate=0.9, batch_size=12)
    reference.fit(3)
    _equal_states(reference.model.state_dict(), t.model.state_dict(), "model")
    _equal_states(reference.ema_model().state_dict(), t.ema_model().state_dict(), "ema")
    assert reference.data.state() == t.data.state()


def test_ctrl_c_mid_step_leaves_an_exactly_resumable_state(tmp_path: Path) -> None:
    calls = [0]

    def interrupting(
        model: ncsn.ScoreModel, x: Tensor, *, generator: torch.Generator | None = None
    ) -> Tensor:
        calls[0] += 1
        if calls[0] == 4:
            _sigint()  # during the forward pass of step 4
        return DSM(model, x, generator=generator)

    t = trainer(loss=interrupting, ema_rate=0.9, batch_size=12, output=quiet(tmp_path))
    with pytest.raises(KeyboardInterrupt):
        t.fit(8)
    assert t.step == 3 and t.data.state() == {"epoch": 0, "offset": 36}
    t.save()  # what a command-line tool does on Ctrl-C
    resumed = trainer(ema_rate=0.9, batch_size=12, output=quiet(tmp_path))
    resumed.restore(tmp_path)
    resumed.fit(8)
    straight = trainer(ema_rate=0.9, batch_size=12)
    straight.fit(8)
    _equal_states(straight.model.state_dict(), resumed.model.state_dict(), "model")
    _equal_states(straight.optimizer.state_dict(), resumed.optimizer.state_dict(), "optimizer")


def test_restore_rejects_checkpoints_that_do_not_fit(tmp_path: Path) -> None:
    trainer(output=quiet(tmp_path / "plain")).fit(2)
    trainer(output=quiet(tmp_path / "ema"), ema_rate=0.9).fit(2)
    with pytest.raises(
        CheckpointError, match=r"has no EMA weights but this Trainer has ema_rate=0\.9"
    ):
        trainer(ema_rate=0.9).restore(tmp_path / "plain")
    # the reverse too: resuming without the EMA would silently drop it
    with pytest.raises(
        CheckpointError,
        match=r"has EMA weights with ema_rate=0\.9 but this Trainer has ema_rate=None; "
        r"pass ema_rate=0\.9",
    ):
        trainer().restore(tmp_path / "ema")
    with pytest.raises(CheckpointError, match=r"ema_rate=0\.9 but this Trainer has ema_rate=0\.99"):
        trainer(ema_rate=0.99).restore(tmp_path / "ema")
    with pytest.raises(
        CheckpointError, match=r"batch_size=8 but this Trainer has batch_size=12; pass batch_size=8"
    ):
        trainer(batch_size=12).restore(tmp_path / "plain")
    with pytest.raises(CheckpointError, match=r"shards=1 but this Trainer has shards=2"):
        trainer(shards=2).restore(tmp_path / "plain")
    trainer(data=toy_data(40), output=quiet(tmp_path / "big"), batch_size=12).fit(3)  # offset 36
    with pytest.raises(CheckpointError, match=r"data holds 20 examples .* trained on 40 examples"):
        trainer(data=toy_data(20), batch_size=12).restore(tmp_path / "big")
    # a checkpoint of the old layout records no data: its position is what can be checked
    old = load_checkpoint(tmp_path / "big")
    del old["data_fingerprint"]
    ncsn.training.save_checkpoint(tmp_path / "old.pt", old)
    with pytest.raises(CheckpointError, match=r"data position \(epoch=0, offset=36\) does not fit"):
        trainer(data=toy_data(20), batch_size=12).restore(tmp_path / "old.pt")
    with pytest.raises(FileNotFoundError):
        trainer().restore(tmp_path / "missing")


def test_weights_that_do_not_fit_are_summarised_in_one_line(tmp_path: Path) -> None:
    trainer(output=quiet(tmp_path)).fit(1)
    with pytest.raises(CheckpointError) as info:
        trainer(tiny_mlp(hidden=8)).restore(tmp_path)
    message = str(info.value)
    assert len(message.splitlines()) == 1
    assert "do not fit this Trainer's ScoreMLP: shape mismatches" in message
    assert "fc1.weight [16, 2] vs [8, 2]" in message
    ckpt = load_checkpoint(tmp_path)
    ckpt["model"]["extra.weight"] = ckpt["model"].pop("fc1.weight")
    ncsn.training.save_checkpoint(tmp_path / "edited.pt", ckpt)
    with pytest.raises(CheckpointError) as info:
        trainer().restore(tmp_path / "edited.pt")
    message = str(info.value)
    assert len(message.splitlines()) == 1
    assert "missing keys fc1.weight; unexpected keys extra.weight" in message


def test_restore_into_a_trainer_that_has_trained_is_exact(tmp_path: Path) -> None:
    # 40 examples, batch 8: steps 1-4 lie in epoch 0, so the seed-4 trainer has that epoch's
    # permutation cached when it restores the seed-0 checkpoint of step 2.
    trainer(tiny_mlp(0), output=quiet(tmp_path), seed=0).fit(2)
    other = trainer(tiny_mlp(0), seed=4)
    other.fit(1)
    other.restore(tmp_path)
    assert other.seed == 0 and other.step == 2
    other.fit(4)
    straight = trainer(tiny_mlp(0), seed=0)
    straight.fit(4)
    _equal_states(straight.model.state_dict(), other.model.state_dict(), "model")
    _equal_states(straight.optimizer.state_dict(), other.optimizer.state_dict(), "optimizer")


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_new_run_refuses_a_folder_with_another_runs_checkpoints(tmp_path: Path) -> None:
    trainer(output=quiet(tmp_path, checkpoint_every=2, log_every=1)).fit(4)
    before = _snapshot(tmp_path)
    fresh = trainer(output=quiet(tmp_path, checkpoint_every=2, log_every=1), seed=5)
    with pytest.raises(FileExistsError, match=r"already holds checkpoint-00000004\.pt, which this"):
        fresh.fit(2)
    with pytest.raises(FileExistsError, match=r"checkpoint-00000004\.pt"):
        fresh.save()  # neither overwritten nor pruned
    # restoring an older checkpoint while a newer one exists would mix the two as well
    older = trainer(output=quiet(tmp_path, checkpoint_every=2, log_every=1))
    older.restore(tmp_path / "checkpoint-00000002.pt")
    with pytest.raises(FileExistsError, match=r"checkpoint-00000004\.pt"):
        older.fit(3)
    del before["metrics.jsonl"]  # the restore dropped the records after step 2, as documented
    after = _snapshot(tmp_path)
    del after["metrics.jsonl"]
    assert after == before
    # the newest checkpoint itself continues, and another folder is free
    resumed = trainer(output=quiet(tmp_path, checkpoint_every=2, log_every=1))
    resumed.restore(tmp_path)
    resumed.fit(6)
    trainer(output=quiet(tmp_path / "other"), seed=5).fit(2)


def test_a_new_run_drops_the_records_of_a_run_without_checkpoints(tmp_path: Path) -> None:
    trainer(output=quiet(tmp_path, log_every=1)).fit(3)
    for path in list_checkpoints(tmp_path):
        path.unlink()  # as if the first run died before its first checkpoint
    trainer(output=quiet(tmp_path, log_every=1), seed=5).fit(2)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2]


def test_fit_to_the_current_step_still_writes_the_end_state(tmp_path: Path) -> None:
    t = trainer(output=quiet(tmp_path))
    summary = t.fit(0)
    assert summary.step == 0 and np.isnan(summary.loss)
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoint-00000000.pt"
    t.fit(2)
    with pytest.raises(ValueError, match="steps must be >= the current step 2; got steps=1"):
        t.fit(1)
    with pytest.raises(TypeError, match=r"steps must be an int; got steps=2\.5"):
        t.fit(2.5)  # type: ignore[arg-type]


def test_evaluate_and_save_need_their_inputs() -> None:
    t = trainer()
    with pytest.raises(ValueError, match="no evaluation data"):
        t.evaluate()
    with pytest.raises(ValueError, match="save\\(\\) needs a path"):
        t.save()


def test_a_sampler_returning_the_wrong_batch_is_reported() -> None:
    def short(n: int, *, generator: torch.Generator | None = None) -> Tensor:
        return torch.zeros(n - 1, 2)

    with pytest.raises(
        ValueError, match=r"data\(8, generator=\.\.\.\) returned 7 examples; expected 8"
    ):
        Trainer(tiny_mlp(), DSM, short, batch_size=8, seed=0, output=Output(progress=False)).fit(1)


def test_dataset_items_must_be_floating_tensors() -> None:
    with pytest.raises(TypeError, match=r"data\[i\] must be a tensor, a numpy array"):
        trainer(data=["a", "b", "c"], batch_size=2).fit(1)
    with pytest.raises(TypeError, match="the examples of data must be a floating-point tensor"):
        trainer(data=[torch.arange(2)] * 3, batch_size=2).fit(1)


def test_batches_follow_the_models_dtype() -> None:
    recorder = Recorder()
    trainer(data=toy_data().double(), loss=recorder).fit(1)
    assert recorder.batches[0].dtype == torch.float32
    recorder = Recorder()
    trainer(tiny_mlp().double(), data=toy_sampler, loss=recorder).fit(1)
    assert recorder.batches[0].dtype == torch.float64


def test_restore_takes_the_seed_and_rebuilds_the_held_out_batch(tmp_path: Path) -> None:
    trainer(output=quiet(tmp_path), evaluation=Evaluation(toy_sampler), seed=3).fit(2)
    reference = trainer(seed=3, evaluation=Evaluation(toy_sampler))
    reference.fit(2)
    other = trainer(seed=4, evaluation=Evaluation(toy_sampler))
    other.evaluate()  # builds its held-out batch from seed 4
    other.restore(tmp_path)
    assert other.evaluate() == reference.evaluate()


BAD_ARGUMENTS = [
    ({"batch_size": 0}, ValueError, "batch_size must be >= 1; got batch_size=0"),
    ({"batch_size": 10, "shards": 4}, ValueError, "batch_size must be divisible by shards=4"),
    ({"shards": 0}, ValueError, "shards must be >= 1; got shards=0"),
    ({"max_grad_norm": -1.0}, ValueError, "max_grad_norm must be positive"),
    ({"ema_rate": 1.0}, ValueError, r"ema_rate must be in \[0, 1\); got ema_rate=1.0"),
    ({"ema_rate": "0.9"}, TypeError, "ema_rate must be a real number"),
    ({"seed": 1.5}, TypeError, "seed must be an int; got seed=1.5"),
    ({"config": {"build": print}}, TypeError, r"config\['build'\] is a builtin"),
    ({"config": [1]}, TypeError, "config must be a dict or None"),
    ({"optimizer": "adam"}, TypeError, "optimizer must be a torch.optim.Optimizer"),
    ({"transform": 3}, TypeError, "transform must be callable"),
    ({"output": "runs/a"}, TypeError, "output must be an Output or None"),
    ({"evaluation": toy_data()}, TypeError, "evaluation must be an Evaluation or None"),
]

BAD_SETTINGS: list[tuple[Any, type[Exception], str]] = [
    (lambda: Output(checkpoint_every=0), ValueError, "checkpoint_every must be >= 1"),
    (lambda: Output(keep=0), ValueError, "keep must be >= 1; got keep=0"),
    (lambda: Output(log_every=-1), ValueError, "log_every must be >= 1"),
    (lambda: Output(tensorboard=True), ValueError, "tensorboard=True needs a folder"),
    (lambda: Output(3), TypeError, "folder must be a str, an os.PathLike or None; got 3"),
    (lambda: Output(progress="yes"), TypeError, "progress must be a bool"),
    (lambda: Evaluation(toy_data(), every=0), ValueError, "every must be >= 1"),
    (lambda: Evaluation(toy_data(), batch_size=-2), ValueError, "batch_size must be >= 1"),
]


@pytest.mark.parametrize(("build", "error", "match"), BAD_SETTINGS)
def test_output_and_evaluation_check_their_settings(
    build: Any, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        build()


@pytest.mark.parametrize(("options", "error", "match"), BAD_ARGUMENTS)
def test_bad_arguments_raise_typed_errors(
    options: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        trainer(**options)


@pytest.mark.parametrize(
    ("model", "data", "error", "match"),
    [
        (lambda x, s: x, toy_data(), TypeError, "model must be a torch.nn.Module; got function"),
        (nn.Identity(), toy_data(), ValueError, "model has no parameters"),
        (None, 3, TypeError, "data must be a tensor"),
        (None, torch.zeros(0, 2), ValueError, "data must hold at least one example"),
        (None, torch.arange(4), TypeError, "data must be a floating-point tensor"),
        (None, [], ValueError, "data must hold at least one example; got an empty dataset"),
    ],
)
def test_bad_models_and_data_raise_typed_errors(
    model: Any, data: Any, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        Trainer(model or tiny_mlp(), DSM, data, batch_size=2, seed=0, output=Output(progress=False))
    with pytest.raises(TypeError, match="loss must be a callable"):
        Trainer(tiny_mlp(), "dsm", toy_data(), seed=0)  # type: ignore[arg-type]
