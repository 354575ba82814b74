"""Multi-process training: torchrun with 2 CPU processes (gloo) equals single-process training.

The torchrun processes run tests/training/_scripts/ddp_train.py, which shares its model, data and
settings with the single-process runs below.
"""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path
from types import ModuleType

import pytest
import torch

from ncsn.training import (
    DistEnv,
    Trainer,
    distributed_env,
    latest_checkpoint,
    load_checkpoint,
)
from torchrun import torchrun

SCRIPT = Path(__file__).parent / "_scripts" / "ddp_train.py"
STEPS = 6


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ddp_train", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ddp_train = _script()


def _torchrun(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return torchrun(str(SCRIPT), *args, timeout=timeout)


def _assert_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ddp")
    result = _torchrun(str(out), str(STEPS), timeout=300)
    assert result.returncode == 0, result.stderr[-6000:]
    return out


@pytest.mark.parametrize("loss_name", ["dsm", "ssm"])
def test_two_processes_equal_one_process_with_the_same_global_batch(
    ddp_run: Path, loss_name: str, tmp_path: Path
) -> None:
    ddp = load_checkpoint(ddp_run / loss_name)
    assert ddp["step"] == STEPS and ddp["shards"] == 2 and ddp["batch_size"] == ddp_train.BATCH

    single = ddp_train.make_trainer(loss_name, tmp_path, STEPS)
    assert single.env.world_size == 1 and single.shards == 2
    single.fit(STEPS)
    _assert_close(single.model.state_dict(), ddp["model"])
    _assert_close(single.ema_model().state_dict(), ddp["ema"])
    opt_single, opt_ddp = single.optimizer.state_dict()["state"], ddp["optimizer"]["state"]
    for index in opt_single:
        _assert_close(opt_single[index], opt_ddp[index])

    # The comparison is sharp: one shard per batch (other noise draws) gives other parameters.
    other = ddp_train.make_trainer(loss_name, None, STEPS, shards=1)
    other.fit(STEPS)
    assert _max_diff(other.model.state_dict(), ddp["model"]) > 1e-4


@pytest.mark.parametrize("loss_name", ["dsm", "ssm"])
def test_a_two_process_checkpoint_resumes_in_one_process(
    ddp_run: Path, loss_name: str, tmp_path: Path
) -> None:
    halfway = ddp_run / loss_name / f"checkpoint-{STEPS // 2:08d}.pt"
    resumed = ddp_train.make_trainer(loss_name, tmp_path, STEPS, seed=999)
    resumed.restore(halfway)
    assert resumed.step == STEPS // 2 and resumed.seed == ddp_train.SEED
    resumed.fit(STEPS)
    _assert_close(resumed.model.state_dict(), load_checkpoint(ddp_run / loss_name)["model"])


def test_only_rank_zero_writes_logs_and_checkpoints(ddp_run: Path) -> None:
    # Rank 1's trainers have their own output folders (see ddp_train.py): what it wrote is there.
    assert sorted(p.name for p in ddp_run.iterdir()) == [
        "closed-rank0.txt",
        "closed-rank1.txt",
        "dsm",
        "ssm",
    ]
    for rank in (0, 1):  # both ranks ran to the end, and a closed trainer refuses to train
        assert "was closed" in (ddp_run / f"closed-rank{rank}.txt").read_text()
    for loss_name in ("dsm", "ssm"):
        folder = ddp_run / loss_name
        names = sorted(p.name for p in folder.iterdir())
        assert names == [
            "checkpoint-00000003.pt",
            "checkpoint-00000006.pt",
            "metrics.jsonl",
            "run.json",
        ]
        lines = (folder / "metrics.jsonl").read_text().splitlines()
        steps = [int(line.split('"step": ')[1].split(",")[0]) for line in lines]
        assert steps == [2, 3, 4, 6]  # each record once: log_every=2 plus the checkpoint at 3
    assert latest_checkpoint(ddp_run / "dsm") == ddp_run / "dsm" / "checkpoint-00000006.pt"


def test_a_failing_rank_ends_the_job_with_an_error_instead_of_hanging(tmp_path: Path) -> None:
    # A hang would raise subprocess.TimeoutExpired.
    result = _torchrun(str(tmp_path), "20", "1", "3", timeout=120)
    assert result.returncode != 0
    assert "rank 1 fails on purpose at step 3" in result.stderr


def test_distributed_env_reads_torchrun_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert distributed_env() == DistEnv(0, 1, 0)
    assert not distributed_env().distributed
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    env = distributed_env()
    assert env == DistEnv(3, 4, 1) and env.distributed


@pytest.mark.parametrize(
    ("rank", "world", "match"),
    [("2", "2", "RANK=2, WORLD_SIZE=2"), ("x", "2", "RANK='x'"), ("0", "0", "WORLD_SIZE=0")],
)
def test_distributed_env_rejects_bad_variables(
    monkeypatch: pytest.MonkeyPatch, rank: str, world: str, match: str
) -> None:
    monkeypatch.setenv("RANK", rank)
    monkeypatch.setenv("WORLD_SIZE", world)
    with pytest.raises(ValueError, match=match):
        distributed_env()


def test_shards_must_be_a_multiple_of_the_number_of_processes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    net, loss, data = ddp_train.build("dsm")
    with pytest.raises(ValueError, match="shards must be a multiple of the number of processes 2"):
        Trainer(net, loss, data, batch_size=16, shards=3, seed=0)


# ------------------------------------------------------------------ sharded sampling (ncsn sample)


def _torchrun_cli(*args: str, nproc: int, timeout: float) -> subprocess.CompletedProcess[str]:
    return torchrun("-m", "ncsn", *args, nproc=nproc, timeout=timeout)


@pytest.fixture(scope="module")
def image_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ncsn.cli import main

    out = tmp_path_factory.mktemp("sharded") / "run"
    args = ["train", "--data", "digits", "--ngf", "4", "--steps", "2", "--batch-size", "4"]
    assert main([*args, "--quiet", "--output", str(out)]) == 0
    return out


def test_sharded_sampling_gives_the_same_samples_on_one_and_two_processes(
    image_run: Path, tmp_path: Path
) -> None:
    """7 samples in chunks of 2 (4 chunks, the last of 1): rank 0 draws chunks 0 and 2, rank 1
    chunks 1 and 3; rank 0 alone writes the file and prints one line."""
    from ncsn.cli import main

    args = ["sample", str(image_run), "--num-samples", "7", "--batch-size", "2"]
    args += ["--steps-per-level", "1"]
    assert main([*args, "--quiet", "--output", str(tmp_path / "one")]) == 0
    result = _torchrun_cli(*args, "--output", str(tmp_path / "two"), nproc=2, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1 and "7 samples in" in lines[0] and "(2 processes)" in lines[0], lines
    # one progress bar (rank 0's: 2 chunks of 23 calls) and one warning, not one per process
    assert result.stderr.count("| 0/46") == 1 and result.stderr.count("warning:") <= 1
    one = torch.load(tmp_path / "one" / "samples.pt", weights_only=True)
    two = torch.load(tmp_path / "two" / "samples.pt", weights_only=True)
    assert one.shape == (7, 1, 8, 8) and torch.equal(one, two)
    assert (tmp_path / "two" / "samples.png").exists()
    assert not (tmp_path / "two" / "chunks").exists()  # removed once samples.pt is written


def test_evaluate_on_two_processes_equals_one(tmp_path: Path) -> None:
    import json

    from ncsn.cli import main
    from ncsn.data import load

    x, _ = load("digits", split="train")
    torch.save(x[:90].clone(), tmp_path / "samples.pt")
    args = ["evaluate", str(tmp_path), "--reference", "digits", "--batch-size", "20"]
    assert main(args) == 0
    one = json.loads((tmp_path / "evaluation.json").read_text())
    (tmp_path / "evaluation.json").unlink()
    result = _torchrun_cli(*args, nproc=2, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    assert len([line for line in result.stdout.splitlines() if line.strip()]) == 1
    two = json.loads((tmp_path / "evaluation.json").read_text())
    # The ranks add their float64 sums in another order; the covariance Σff/N − μμᵀ and d²'s
    # difference of traces amplify that rounding to ~1e-7 relative (measured 1.5e-7).
    assert two["frechet_distance"] == pytest.approx(one["frechet_distance"], rel=1e-6)
    assert two["classifier_score"] == pytest.approx(one["classifier_score"], rel=1e-9)
