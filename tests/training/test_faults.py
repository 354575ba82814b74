"""What a cluster does to a training run: SIGTERM, torn files on resume, poisoned optimizer state,
and resuming on another number of processes.

The command-line runs use the tiny toy settings of tests/test_cli.py; the multi-process ones run
``ncsn train`` under torchrun with two CPU processes (gloo).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor

import ncsn
from ncsn.cli import main
from ncsn.training import (
    NonFiniteLossError,
    Output,
    Terminated,
    Trainer,
    TrainStep,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
)
from torchrun import free_port, torchrun

SCHEDULE = ncsn.GeometricSchedule(2.0, 0.1, 4)
DSM = ncsn.losses.DenoisingScoreMatching(SCHEDULE)

TOY_RUN = [
    "--data",
    "mixture",
    "--sigma-max",
    "20",
    "--sigma-min",
    "1",
    "--num-levels",
    "5",
    "--hidden",
    "8",
    "--batch-size",
    "16",
    "--lr",
    "0.01",
    "--ema",
    "0.9",
    "--grad-clip",
    "5",
    "--quiet",
]
ENV = {k: v for k, v in os.environ.items() if k not in {"RANK", "WORLD_SIZE", "LOCAL_RANK"}}
ENV["OMP_NUM_THREADS"] = "1"


def quiet(folder: Path | None = None, **options: Any) -> Output:
    """Output settings without the progress bar."""
    return Output(folder, progress=False, **options)


def trainer(**options: Any) -> Trainer:
    net = ncsn.nets.ScoreMLP(2, hidden=16, sigmas=SCHEDULE.sigmas)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=g))
    data = ncsn.toy.paper_mixture().sample(40, generator=torch.Generator().manual_seed(1)) / 5.0
    settings: dict[str, Any] = {"batch_size": 12, "seed": 0, "output": quiet()} | options
    return Trainer(net, DSM, data, **settings)


def _equal(a: Any, b: Any, where: str = "") -> None:
    if isinstance(a, Tensor):
        assert isinstance(b, Tensor) and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _equal(a[key], b[key], f"{where}.{key}")
    else:
        assert a == b, where


def _same_run(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Two checkpoints hold the same training state, bit for bit."""
    assert a["step"] == b["step"]
    for part in ("model", "ema", "optimizer"):
        _equal(a[part], b[part], part)


def _cli(*args: str) -> int:
    return main(["train", *args])


def _popen(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ncsn", "train", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


def _newest_step(folder: Path) -> int:
    newest = latest_checkpoint(folder) if folder.is_dir() else None
    return -1 if newest is None else int(newest.name[len("checkpoint-") : -len(".pt")])


def _wait_for_checkpoint_after(folder: Path, step: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while _newest_step(folder) <= step:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no checkpoint in time"
        time.sleep(0.02)


# ------------------------------------------------------------------------------- SIGTERM


def _send(signum: int) -> None:
    os.kill(os.getpid(), signum)


@pytest.mark.parametrize(
    ("signum", "error"), [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, Terminated)]
)
def test_a_signal_during_the_update_is_held_until_the_step_is_complete(
    signum: int, error: type[BaseException]
) -> None:
    t = trainer(ema_rate=0.9)
    update = t.optimizer.step

    def interrupted_update(*args: Any, **kwargs: Any) -> Any:
        if t.step == 2:
            _send(signum)  # arrives in the middle of the third update
        return update(*args, **kwargs)

    t.optimizer.step = interrupted_update  # type: ignore[method-assign]
    with pytest.raises(error) as info:
        t.fit(10)
    assert type(info.value) is error
    assert t.step == 3
    reference = trainer(ema_rate=0.9)
    reference.fit(3)
    _equal(reference.model.state_dict(), t.model.state_dict(), "model")
    _equal(reference.ema_model().state_dict(), t.ema_model().state_dict(), "ema")
    assert reference.data.state() == t.data.state()


def test_sigterm_is_a_keyboard_interrupt_and_the_handlers_are_restored() -> None:
    assert issubclass(Terminated, KeyboardInterrupt)
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)

    def stop(info: TrainStep) -> None:
        if info.step == 2:
            _send(signal.SIGTERM)

    t = trainer(callback=stop)
    with pytest.raises(Terminated):
        t.fit(10)
    assert t.step == 2
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before

    # A handler the program installed itself is left alone: fit does not take SIGTERM over.
    seen: list[int] = []

    def own(signum: int, frame: object) -> None:
        seen.append(signum)

    previous = signal.signal(signal.SIGTERM, own)
    try:
        trainer(callback=stop).fit(4)
        assert seen == [signal.SIGTERM]
        assert signal.getsignal(signal.SIGTERM) is own
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_sigterm_checkpoints_the_current_step_exits_143_and_resumes_exactly(
    tmp_path: Path,
) -> None:
    out = tmp_path / "run"
    proc = _popen(*TOY_RUN, "--output", str(out), "--steps", "1000000", "--checkpoint-every", "50")
    try:
        _wait_for_checkpoint_after(out, 0, proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == 143, err
    found = re.search(r"terminated \(SIGTERM\) at step (\d+); checkpoint (\S+) \(resume with", err)
    assert found is not None, err
    step, saved = int(found.group(1)), Path(found.group(2))
    assert saved == out / f"checkpoint-{step:08d}.pt" == latest_checkpoint(out)
    checkpoint = load_checkpoint(saved)
    assert checkpoint["step"] == step >= 50
    assert float(checkpoint["optimizer"]["state"][0]["step"]) == step

    final = str(step + 7)
    assert _cli("--output", str(out), "--steps", final, "--resume", "--quiet") == 0
    straight = tmp_path / "straight"
    assert (
        _cli(*TOY_RUN, "--output", str(straight), "--steps", final, "--checkpoint-every", "50") == 0
    )
    _same_run(load_checkpoint(out), load_checkpoint(straight))


@pytest.mark.slow  # 10 fresh Python processes and 2 runs of 3000 steps: about 2 minutes
def test_ten_sigterms_at_random_moments_never_lose_a_checkpoint_or_change_the_result(
    tmp_path: Path,
) -> None:
    """SIGTERM a run ten times, in training and in saves, resuming after each; every checkpoint
    loads and the end result equals an uninterrupted run's."""
    rng = random.Random(2024)
    out, final = tmp_path / "run", 3000
    wide = [*TOY_RUN, "--hidden", "256", "--steps", str(final)]  # larger saves: more land in one
    terminated = 0
    while terminated < 10:
        every = rng.choice(["1", "7"])  # every step: most signals land inside a save
        resume = ["--resume"] if out.exists() else []
        before = _newest_step(out)
        proc = _popen(*wide, "--output", str(out), "--checkpoint-every", every, *resume)
        try:
            _wait_for_checkpoint_after(out, before, proc)
            time.sleep(rng.uniform(0.0, 0.3))
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
            proc.communicate()
        assert proc.returncode in (0, 143), err
        terminated += proc.returncode == 143
        for path in list_checkpoints(out):
            assert load_checkpoint(path)["step"] == int(path.name[11:-3])
        assert _newest_step(out) > before
        if proc.returncode == 0:
            break
    assert terminated == 10
    rest = ["--steps", str(final), "--checkpoint-every", "1000", "--resume", "--quiet"]
    assert _cli("--output", str(out), *rest) == 0
    straight = tmp_path / "straight"
    assert _cli(*wide, "--output", str(straight), "--checkpoint-every", "1000") == 0
    _same_run(load_checkpoint(out), load_checkpoint(straight))


# ------------------------------------------------------------------------------- torn files


@pytest.mark.parametrize(
    "bad",
    ['{"step": 3, "loss": 0.', "[1, 2]", '"text"', '{"loss": 1.0}', "\x00\x00\x00"],
    ids=["torn", "list", "string", "no-step", "binary"],
)
def test_a_bad_metrics_line_is_cut_off_with_one_warning(tmp_path: Path, bad: str) -> None:
    trainer(output=quiet(tmp_path, log_every=1)).fit(4)
    metrics = tmp_path / "metrics.jsonl"
    good = metrics.read_text().splitlines(keepends=True)
    assert len(good) == 4
    metrics.write_text("".join(good[:2]) + bad + "\n" + "".join(good[2:]))
    resumed = trainer(output=quiet(tmp_path, log_every=1))
    with pytest.warns(RuntimeWarning) as caught:
        resumed.restore(tmp_path)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "metrics.jsonl line 3" in message and "dropped it and the 2 lines after it" in message
    assert metrics.read_text() == "".join(good[:2])
    resumed.fit(6)  # no second warning: the file is whole again
    assert [json.loads(line)["step"] for line in metrics.read_text().splitlines()] == [1, 2, 5, 6]


def test_a_torn_last_metrics_line_on_cli_resume_is_one_warning_line(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert _cli(*TOY_RUN, "--output", str(out), "--steps", "4", "--checkpoint-every", "2") == 0
    with open(out / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write('{"step": 5, "lo')  # a record cut by a crash
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ncsn",
            "train",
            "--output",
            str(out),
            "--steps",
            "6",
            "--resume",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: "), result.stderr
    assert "metrics.jsonl line 3" in lines[0] and "dropped it and the 0 lines after it" in lines[0]
    records = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in records][-2:] == [4, 6]


def test_a_torn_newest_checkpoint_is_skipped_with_one_line_and_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert _cli(*TOY_RUN, "--output", str(out), "--steps", "6", "--checkpoint-every", "2") == 0
    torn = out / "checkpoint-00000006.pt"
    data = torn.read_bytes()
    torn.write_bytes(data[: len(data) // 2])
    capsys.readouterr()
    assert _cli("--output", str(out), "--steps", "8", "--resume", "--quiet") == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "checkpoint-00000006.pt" in err[0] and "not a readable checkpoint" in err[0]
    assert "checkpoint-00000004.pt" in err[0]  # where it resumed from
    kept = out / "checkpoint-00000006.pt.unreadable"
    assert kept.read_bytes() == data[: len(data) // 2]  # never deleted
    straight = tmp_path / "straight"
    assert _cli(*TOY_RUN, "--output", str(straight), "--steps", "8", "--checkpoint-every", "2") == 0
    _same_run(load_checkpoint(out), load_checkpoint(straight))


def test_resume_with_no_readable_checkpoint_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert _cli(*TOY_RUN, "--output", str(out), "--steps", "2", "--checkpoint-every", "2") == 0
    (out / "checkpoint-00000002.pt").write_bytes(b"torn")
    capsys.readouterr()
    assert _cli("--output", str(out), "--steps", "4", "--resume", "--quiet") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no readable checkpoint" in err[0] and "00000002" in err[0], err
    assert (out / "checkpoint-00000002.pt").read_bytes() == b"torn"  # left where it was


# ------------------------------------------------------------------------------- finiteness


@pytest.mark.parametrize(
    ("part", "message"),
    [("optimizer", "the optimizer state is non-finite"), ("ema", "the EMA weights are non-finite")],
)
def test_a_non_finite_optimizer_or_ema_state_is_never_saved(
    tmp_path: Path, part: str, message: str
) -> None:
    def poison(info: TrainStep) -> None:
        if info.step == 3:
            if part == "optimizer":
                state = t.optimizer.state[next(iter(t.model.parameters()))]
                state["exp_avg_sq"][0] = float("inf")  # the parameters stay finite
            else:
                next(iter(t.ema_model().parameters())).data[0] = float("nan")

    t = trainer(output=quiet(tmp_path, checkpoint_every=2), ema_rate=0.9, callback=poison)
    with pytest.raises(NonFiniteLossError, match=f"{message} at step 4") as info:
        t.fit(10)
    assert info.value.step == 4
    assert all(bool(p.isfinite().all()) for p in t.model.parameters())
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-00000002.pt"]
    with pytest.raises(NonFiniteLossError, match=message):
        t.save(tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


# ------------------------------------------------------------------------------- process count


def test_default_shards_continue_the_checkpoints_shards_exactly(tmp_path: Path) -> None:
    straight = trainer(shards=3, ema_rate=0.9)
    straight.fit(6)
    trainer(shards=3, ema_rate=0.9, output=quiet(tmp_path)).fit(3)
    resumed = trainer(ema_rate=0.9)  # shards=None: one process would mean shards=1
    resumed.restore(tmp_path)
    assert resumed.shards == 3
    resumed.fit(6)
    _equal(straight.model.state_dict(), resumed.model.state_dict(), "model")
    _equal(straight.optimizer.state_dict(), resumed.optimizer.state_dict(), "optimizer")


def test_ranks_split_the_shards_contiguously_and_as_evenly_as_possible() -> None:
    from ncsn.training.distributed import local_shards

    for shards in range(1, 9):
        for world_size in range(1, shards + 1):
            parts = [local_shards(shards, rank, world_size) for rank in range(world_size)]
            assert [k for part in parts for k in part] == list(range(shards))
            assert max(map(len, parts)) - min(map(len, parts)) <= 1
            if shards % world_size == 0:  # the even split that runs of this many processes used
                size = shards // world_size
                assert parts == [range(r * size, (r + 1) * size) for r in range(world_size)]


def _torchrun_train(nproc: int, *args: str) -> subprocess.CompletedProcess[str]:
    """A fresh run's launch (not a resumed one) may be retried once if it hangs (tests/torchrun.py)."""
    fresh = "--resume" not in args
    output = [Path(args[args.index("--output") + 1])] if fresh and "--output" in args else None
    return torchrun("-m", "ncsn", "train", *args, nproc=nproc, env=ENV, retry_removing=output)


def _halfway_copy(src: Path, dst: Path, step: int) -> None:
    dst.mkdir()
    name = f"checkpoint-{step:08d}.pt"
    shutil.copy(src / name, dst / name)


def _close(a: dict[str, Tensor], b: dict[str, Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)


def test_a_two_process_run_resumes_in_one_process_and_the_reverse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two torchrun launches (about 15 s)."""
    run = [*TOY_RUN, "--checkpoint-every", "3"]
    two = tmp_path / "two"
    result = _torchrun_train(2, *run, "--output", str(two), "--steps", "6")
    assert result.returncode == 0, result.stderr[-4000:]
    assert load_checkpoint(two)["shards"] == 2

    # 2 -> 1: the one process computes both parts; the same result up to the all-reduce's rounding
    one = tmp_path / "two-then-one"
    _halfway_copy(two, one, 3)
    capsys.readouterr()
    assert _cli("--output", str(one), "--steps", "6", "--resume", "--quiet") == 0
    assert "differ" not in capsys.readouterr().out
    resumed, straight = load_checkpoint(one), load_checkpoint(two)
    assert resumed["shards"] == 2
    for part in ("model", "ema"):
        _close(resumed[part], straight[part])

    # 1 -> 2: two processes cannot share one part; the run continues with two, and says so
    single = tmp_path / "one"
    assert _cli(*run, "--output", str(single), "--steps", "6") == 0
    assert load_checkpoint(single)["shards"] == 1
    more = tmp_path / "one-then-two"
    _halfway_copy(single, more, 3)
    result = _torchrun_train(2, "--output", str(more), "--steps", "6", "--resume", "--quiet")
    assert result.returncode == 0, result.stderr[-4000:]
    notes = [line for line in result.stdout.splitlines() if "shards" in line]
    assert len(notes) == 1 and "from step 3 on" in notes[0], result.stdout  # rank 0 only
    assert load_checkpoint(more)["shards"] == 2
    diff = max(
        float((load_checkpoint(more)["model"][k] - load_checkpoint(single)["model"][k]).abs().max())
        for k in load_checkpoint(single)["model"]
    )
    assert diff > 1e-4  # other noise draws from step 3 on


@pytest.mark.slow  # two torchrun launches of three and two processes: about 20 s
def test_a_three_process_run_resumes_on_two_processes_with_an_uneven_split(tmp_path: Path) -> None:
    run = [*TOY_RUN, "--batch-size", "12", "--checkpoint-every", "3"]
    three = tmp_path / "three"
    result = _torchrun_train(3, *run, "--output", str(three), "--steps", "6")
    assert result.returncode == 0, result.stderr[-4000:]
    two = tmp_path / "three-then-two"
    _halfway_copy(three, two, 3)
    result = _torchrun_train(2, "--output", str(two), "--steps", "6", "--resume", "--quiet")
    assert result.returncode == 0, result.stderr[-4000:]
    resumed, straight = load_checkpoint(two), load_checkpoint(three)
    assert resumed["shards"] == 3
    for part in ("model", "ema"):
        _close(resumed[part], straight[part])


@pytest.mark.slow  # one torchrun launch: about 10 s
def test_sigterm_under_torchrun_leaves_rank_zeros_checkpoint_of_the_current_step(
    tmp_path: Path,
) -> None:
    """torchrun's agent forwards SIGTERM to every process; rank 0 saves. (The agent itself then
    exits with status 1 and a SignalException traceback of its own: torch's behaviour.)"""
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--nnodes=1",
        "--master_addr=127.0.0.1",
        f"--master_port={free_port()}",
        "-m",
        "ncsn",
        "train",
        *TOY_RUN,
        "--output",
        str(out),
        "--steps",
        "1000000",
        "--checkpoint-every",
        "50",
    ]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV
    )
    try:
        _wait_for_checkpoint_after(out, 0, proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        proc.communicate()
    found = re.findall(r"terminated \(SIGTERM\) at step (\d+); checkpoint (\S+)", err)
    assert len(found) == 1, err  # rank 0 only
    step = int(found[0][0])
    assert Path(found[0][1]) == latest_checkpoint(out) and load_checkpoint(out)["step"] == step
    assert _cli("--output", str(out), "--steps", str(step + 3), "--resume", "--quiet") == 0
    assert load_checkpoint(out)["step"] == step + 3
