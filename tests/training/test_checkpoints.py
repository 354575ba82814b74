"""Checkpoints: atomic saves that survive SIGKILL, keep-K, weights_only loading, typed errors."""

from __future__ import annotations

import contextlib
import errno
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch

import ncsn
from ncsn.training import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    checkpoint_path,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    model_weights,
    save_checkpoint,
)
from ncsn.training import checkpoints as checkpoints_module

SAVE_LOOP = Path(__file__).parent / "_scripts" / "save_loop.py"


def test_round_trip_keeps_tensors_and_plain_values(tmp_path: Path) -> None:
    net = ncsn.nets.ScoreMLP(2, hidden=8)
    state = {
        "step": 7,
        "model": net.state_dict(),
        "config": {"kind": "ScoreMLP", "kwargs": {"dim": 2, "hidden": 8}, "sigmas": [1.0, 0.1]},
        "misc": (None, True, 1.5, "x", torch.float64, torch.device("cpu")),
    }
    path = save_checkpoint(checkpoint_path(tmp_path / "run", 7), state)
    assert path == tmp_path / "run" / "checkpoint-00000007.pt"
    loaded = load_checkpoint(path)
    assert loaded["format"] == CHECKPOINT_FORMAT
    assert (
        loaded["step"] == 7
        and loaded["config"] == state["config"]
        and loaded["misc"] == state["misc"]
    )
    for key, value in net.state_dict().items():
        assert torch.equal(loaded["model"][key], value)
    # the file is an ordinary torch file that weights_only loading accepts
    assert torch.load(path, weights_only=True)["step"] == 7
    assert [p.name for p in (tmp_path / "run").iterdir()] == [path.name]  # no temporary left


def test_model_weights_prefers_the_ema(tmp_path: Path) -> None:
    raw, ema = {"w": torch.zeros(2)}, {"w": torch.ones(2)}
    path = save_checkpoint(tmp_path / "c.pt", {"step": 1, "model": raw, "ema": ema})
    ckpt = load_checkpoint(path)
    assert torch.equal(model_weights(ckpt)["w"], ema["w"])
    assert torch.equal(model_weights(ckpt, ema=False)["w"], raw["w"])
    assert torch.equal(model_weights({"model": raw, "ema": None})["w"], raw["w"])
    with pytest.raises(CheckpointError, match="no 'model' state dict"):
        model_weights({"step": 1})


def test_keep_prunes_all_but_the_newest(tmp_path: Path) -> None:
    for step in (5, 10, 15, 20):
        save_checkpoint(checkpoint_path(tmp_path, step), {"step": step}, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == [
        "checkpoint-00000015.pt",
        "checkpoint-00000020.pt",
    ]


def test_latest_checkpoint_picks_the_largest_step_and_ignores_other_files(tmp_path: Path) -> None:
    assert latest_checkpoint(tmp_path) is None
    for step in (900, 1000, 80):
        save_checkpoint(checkpoint_path(tmp_path, step), {"step": step})
    (tmp_path / ".tmp-checkpoint-checkpoint-00002000.pt.1.abcd").write_bytes(b"partial")
    (tmp_path / "checkpoint-notes.pt").write_bytes(b"x")
    latest = latest_checkpoint(tmp_path)
    assert latest == tmp_path / "checkpoint-00001000.pt"
    assert load_checkpoint(tmp_path)["step"] == 1000  # a folder loads its newest
    # the next save removes the leftover temporary of an interrupted one
    save_checkpoint(checkpoint_path(tmp_path, 1100), {"step": 1100})
    assert not list(tmp_path.glob(".tmp-*"))


def test_missing_paths_raise_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        latest_checkpoint(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no checkpoint-"):
        load_checkpoint(tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="not a directory"):
        latest_checkpoint(tmp_path / "file")


def test_truncated_and_corrupt_files_raise_checkpoint_error(tmp_path: Path) -> None:
    good = save_checkpoint(tmp_path / "good.pt", {"step": 1, "w": torch.randn(1000)})
    data = good.read_bytes()
    for cut in (0, 10, len(data) // 2, len(data) - 1):
        bad = tmp_path / f"cut{cut}.pt"
        bad.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match=rf"cut{cut}\.pt: not a readable checkpoint"):
            load_checkpoint(bad)
    noise = tmp_path / "noise.pt"
    noise.write_bytes(random.Random(0).randbytes(4096))
    with pytest.raises(CheckpointError, match=r"noise\.pt: not a readable checkpoint"):
        load_checkpoint(noise)
    flipped = bytearray(data)
    flipped[len(data) // 3 : len(data) // 3 + 64] = b"\xff" * 64
    (tmp_path / "flipped.pt").write_bytes(bytes(flipped))
    # torch alone would load these bytes; the CRC-32 check catches them
    with pytest.raises(
        CheckpointError, match=r"flipped\.pt: corrupt checkpoint \(checksum mismatch"
    ):
        load_checkpoint(tmp_path / "flipped.pt")


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo pwned",))


def test_files_that_need_arbitrary_unpickling_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "step": 1, "x": _Evil()}, path)
    with pytest.raises(CheckpointError, match=r"refused to unpickle posix\.system") as info:
        load_checkpoint(path)
    message = str(info.value)
    # one line, and no advice to load with weights_only=False or to allow-list the global
    assert len(message.splitlines()) == 1 and "\x1b" not in message
    assert "False" not in message and "safe_globals" not in message and "trust" not in message
    plain_pickle = tmp_path / "pickle.pt"
    plain_pickle.write_bytes(pickle.dumps({"step": 1}))
    with pytest.raises(CheckpointError, match=r"pickle\.pt"):
        load_checkpoint(plain_pickle)


def test_foreign_torch_files_raise_checkpoint_error(tmp_path: Path) -> None:
    net = ncsn.nets.ScoreMLP(2, hidden=4)
    official = tmp_path / "official.pth"
    torch.save([net.state_dict(), {"state": {}}], official)
    with pytest.raises(CheckpointError, match=r"got a list \(an official NCSN"):
        load_checkpoint(official)
    bare = tmp_path / "bare.pt"
    torch.save(net.state_dict(), bare)
    with pytest.raises(
        CheckpointError, match=r"expected format='ncsn\.training\.checkpoint/1'; got format=None"
    ):
        load_checkpoint(bare)


def test_save_rejects_values_weights_only_cannot_load(tmp_path: Path) -> None:
    with pytest.raises(
        TypeError, match=r"checkpoint\['config'\]\['fn'\] is a builtin_function_or_method"
    ):
        save_checkpoint(tmp_path / "c.pt", {"config": {"fn": print}})
    with pytest.raises(TypeError, match=r"checkpoint\['v'\] is a TorchVersion"):
        save_checkpoint(tmp_path / "c.pt", {"v": torch.__version__})
    with pytest.raises(TypeError, match="has a key"):
        save_checkpoint(tmp_path / "c.pt", {"m": {(1, 2): 3}})
    with pytest.raises(TypeError, match="checkpoint must be a dict"):
        save_checkpoint(tmp_path / "c.pt", [1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="own 'format' entry"):
        save_checkpoint(tmp_path / "c.pt", {"format": "mine"})
    with pytest.raises(ValueError, match="keep must be >= 1; got keep=0"):
        save_checkpoint(tmp_path / "c.pt", {"step": 0}, keep=0)
    with pytest.raises(ValueError, match="step must be a non-negative int; got step=-1"):
        checkpoint_path(tmp_path, -1)
    with pytest.raises(TypeError, match=r"path must be a str or os\.PathLike"):
        save_checkpoint(3, {"step": 0})  # type: ignore[arg-type]
    assert not list(tmp_path.iterdir())  # nothing was written


def test_a_failed_save_leaves_no_temporary_and_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = save_checkpoint(checkpoint_path(tmp_path, 1), {"step": 1})

    def broken_save(obj: object, f: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"step": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_a_full_disk_is_one_oserror_and_leaves_no_temporary_faked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch's zip writer reports a full disk as a RuntimeError about file positions."""
    path = save_checkpoint(checkpoint_path(tmp_path, 1), {"step": 1})

    def full_disk_save(obj: object, f: Any) -> None:
        f.write(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")

    monkeypatch.setattr(torch, "save", full_disk_save)
    monkeypatch.setattr(checkpoints_module.shutil, "disk_usage", lambda folder: _Usage(0))
    with pytest.raises(OSError) as info:
        save_checkpoint(checkpoint_path(tmp_path, 2), {"step": 2}, keep=1)
    assert info.value.errno == errno.ENOSPC
    message = str(info.value)
    assert len(message.splitlines()) == 1 and "no space left" in message
    assert "checkpoint-00000002.pt" in message and "earlier checkpoints are intact" in message
    # with room on the disk, the same error is torch's own, not a disguised full disk
    monkeypatch.setattr(checkpoints_module.shutil, "disk_usage", lambda folder: _Usage(2**30))
    with pytest.raises(RuntimeError, match="unexpected pos"):
        save_checkpoint(checkpoint_path(tmp_path, 2), {"step": 2}, keep=1)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    assert load_checkpoint(path)["step"] == 1


class _Usage(NamedTuple):
    free: int


@contextlib.contextmanager
def _small_tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``folder`` (needs root), unmounted afterwards."""
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root and mount(8); the faked test runs instead")
    folder.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"this machine does not allow mounting a tmpfs: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_really_full_disk_is_one_oserror_and_keeps_the_earlier_checkpoints(
    tmp_path: Path,
) -> None:
    with _small_tmpfs(tmp_path / "small", "64k") as folder:
        first = save_checkpoint(checkpoint_path(folder, 1), {"step": 1, "w": torch.ones(1000)})
        with pytest.raises(OSError) as info:
            save_checkpoint(checkpoint_path(folder, 2), {"step": 2, "w": torch.ones(100_000)})
        assert info.value.errno == errno.ENOSPC and len(str(info.value).splitlines()) == 1
        assert [p.name for p in folder.iterdir()] == [first.name]  # no temporary file left
        assert torch.equal(load_checkpoint(first)["w"], torch.ones(1000))


def test_a_trainer_on_a_full_disk_stops_with_one_oserror(tmp_path: Path) -> None:
    schedule = ncsn.GeometricSchedule(2.0, 0.1, 4)
    net = ncsn.nets.ScoreMLP(2, hidden=512, sigmas=schedule.sigmas)  # checkpoints of ~4 MB
    with _small_tmpfs(tmp_path / "small", "256k") as folder:
        trainer = ncsn.training.Trainer(
            net,
            ncsn.losses.DenoisingScoreMatching(schedule),
            torch.rand(16, 2),
            batch_size=8,
            seed=0,
            output=ncsn.training.Output(folder, progress=False),
        )
        with pytest.raises(OSError) as info:
            trainer.fit(2)
        assert info.value.errno == errno.ENOSPC and "no space left" in str(info.value)
        assert not list(folder.glob("*.pt")) and not list(folder.glob(".tmp-*"))


def test_no_error_repeats_torchs_advice_to_load_with_weights_only_false(tmp_path: Path) -> None:
    files = {
        "module.pt": lambda f: torch.save(torch.nn.Linear(2, 2), f),
        "legacy.pt": lambda f: torch.save({"x": _Evil()}, f, _use_new_zipfile_serialization=False),
        "array.pt": lambda f: torch.save({"x": np.arange(3, dtype=object)}, f),
        "pickle.pt": lambda f: f.write_bytes(pickle.dumps({"x": _Evil()})),
        "slice.pt": lambda f: torch.save({"x": slice(1, 2)}, f),
    }
    for name, write in files.items():
        path = tmp_path / name
        write(path)
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(path)
        message = str(info.value)
        assert len(message.splitlines()) == 1, (name, message)
        for advice in ("weights_only=False", "False", "safe_globals", "trust"):
            assert advice not in message, (name, message)


def _read_until(proc: subprocess.Popen[str], prefix: str, deadline: float) -> int:
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(
                f"save loop ended early: {proc.stderr.read() if proc.stderr else ''}"
            )
        if line.startswith(prefix):
            return int(line.split()[1])
    raise AssertionError(f"no {prefix!r} line in time")


@pytest.mark.slow  # 4 fresh Python processes: 5-13 s on 2 busy cores
def test_sigkill_during_saves_never_leaves_the_newest_checkpoint_unreadable(tmp_path: Path) -> None:
    """Kill a process that saves 16 MB checkpoints in a loop at random moments, many times.

    Every round starts a fresh process that continues after the newest checkpoint (and so also
    cleans up the temporary file the previous kill left).
    """
    rng = random.Random(1234)
    folder = tmp_path / "run"
    numel = 4_000_000
    torn = 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for _ in range(4):
        proc = subprocess.Popen(
            [sys.executable, str(SAVE_LOOP), str(folder), str(numel)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            deadline = time.monotonic() + 60
            _read_until(proc, "saving", deadline)
            for _ in range(1 + rng.randrange(2)):
                began = time.monotonic()
                done = _read_until(proc, "saved", deadline)
                duration = time.monotonic() - began  # how long one save takes on this machine
                _read_until(proc, "saving", deadline)
            time.sleep(rng.uniform(0.0, 0.7 * duration))  # most kills land inside the save
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            assert proc.stdout is not None and proc.stderr is not None
            proc.stdout.close()
            proc.stderr.close()
        torn += bool(list(folder.glob(".tmp-*")))
        newest = latest_checkpoint(folder)
        assert newest is not None
        ckpt = load_checkpoint(newest)
        assert ckpt["step"] >= done  # every completed save is durable
        assert newest.name == f"checkpoint-{ckpt['step']:08d}.pt"
        assert torch.equal(ckpt["payload"], torch.full((numel,), float(ckpt["step"])))
        for older in list_checkpoints(folder):
            assert load_checkpoint(older)["step"] <= ckpt["step"]
    assert torn >= 1, "no kill landed in the middle of a save; the test did not test anything"
