"""ncsn.training.run: one run per folder (run ids, step names), the data a run was trained on, and
checkpoints written before these were recorded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

import ncsn
from ncsn.training import CheckpointError, Output, Trainer, list_checkpoints, load_checkpoint

SCHEDULE = ncsn.GeometricSchedule(2.0, 0.1, 4)
DSM = ncsn.losses.DenoisingScoreMatching(SCHEDULE)


def toy_data(n: int = 40, seed: int = 1) -> Tensor:
    return ncsn.toy.paper_mixture().sample(n, generator=torch.Generator().manual_seed(seed)) / 5.0


def trainer(folder: Path | None = None, data: Any = None, **options: Any) -> Trainer:
    net = ncsn.nets.ScoreMLP(
        2, hidden=16, sigmas=SCHEDULE.sigmas, generator=torch.Generator().manual_seed(0)
    )
    settings: dict[str, Any] = {"batch_size": 12, "seed": 0, "ema_rate": 0.9} | options
    output = Output(folder, checkpoint_every=2, progress=False)
    return Trainer(net, DSM, toy_data() if data is None else data, output=output, **settings)


def _equal(a: Any, b: Any) -> None:
    if isinstance(a, Tensor):
        assert isinstance(b, Tensor) and torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _equal(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for u, v in zip(a, b, strict=True):
            _equal(u, v)
    else:
        assert a == b


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _run_id(folder: Path) -> str:
    record = json.loads((folder / "run.json").read_text())
    assert isinstance(record["run_id"], str)
    return record["run_id"]


# ------------------------------------------------------------------------------- one run per folder


def test_every_checkpoint_and_the_folder_name_the_run(tmp_path: Path) -> None:
    t = trainer(tmp_path)
    t.fit(4)
    assert [load_checkpoint(p)["run_id"] for p in list_checkpoints(tmp_path)] == [t.run_id] * 2
    assert _run_id(tmp_path) == t.run_id
    assert trainer().run_id != t.run_id  # a new run, a new id


def test_a_checkpoint_copied_in_from_another_run_is_refused(tmp_path: Path) -> None:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    trainer(ours).fit(4)
    trainer(theirs, seed=5).fit(6)
    shutil.copy(theirs / "checkpoint-00000006.pt", ours)
    before = _snapshot(ours)
    with pytest.raises(CheckpointError) as info:
        trainer(ours).restore(ours)
    message = str(info.value)
    assert len(message.splitlines()) == 1
    assert f"is of run {_run_id(theirs)}" in message and f"holds run {_run_id(ours)}" in message
    assert _snapshot(ours) == before  # nothing pruned, metrics.jsonl as it was


def test_another_runs_checkpoint_is_refused_in_this_runs_output_folder(tmp_path: Path) -> None:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    trainer(ours).fit(4)
    trainer(theirs, seed=5).fit(6)
    before = _snapshot(ours)
    with pytest.raises(CheckpointError, match=f"holds run {_run_id(ours)}"):
        trainer(ours).restore(theirs / "checkpoint-00000006.pt")
    assert _snapshot(ours) == before
    fork = trainer(tmp_path / "fork")  # a new folder takes the run over
    fork.restore(theirs / "checkpoint-00000004.pt")
    fork.fit(6)
    assert _run_id(tmp_path / "fork") == _run_id(theirs)


def test_a_checkpoint_renamed_to_another_step_is_refused(tmp_path: Path) -> None:
    trainer(tmp_path).fit(4)
    (tmp_path / "checkpoint-00000004.pt").rename(tmp_path / "checkpoint-00000009.pt")
    with pytest.raises(CheckpointError) as info:
        trainer(tmp_path).restore(tmp_path)
    message = str(info.value)
    assert "checkpoint-00000009.pt: records step 4 but its name says step 9" in message
    assert "rename it back to checkpoint-00000004.pt" in message


def test_a_run_folder_moved_elsewhere_continues_its_run(tmp_path: Path) -> None:
    first = trainer(tmp_path / "run")
    first.fit(4)
    shutil.copytree(tmp_path / "run", tmp_path / "moved")
    moved = trainer(tmp_path / "moved")
    moved.restore(tmp_path / "moved")
    assert moved.run_id == first.run_id
    moved.fit(6)
    straight = trainer()
    straight.fit(6)
    _equal(straight.model.state_dict(), moved.model.state_dict())


# ------------------------------------------------------------------------------- the data


def test_the_fingerprint_reads_a_fixed_subset_and_not_the_dtype() -> None:
    reads: list[int] = []

    class Counted(torch.utils.data.Dataset[Tensor]):
        def __init__(self, x: Tensor) -> None:
            self.x = x

        def __len__(self) -> int:
            return len(self.x)

        def __getitem__(self, i: int) -> Tensor:
            reads.append(i)
            return self.x[i]

    x = toy_data(1000)
    record = trainer(data=Counted(x)).data.record()
    assert record is not None and record["length"] == 1000 and record["shape"] == [2]
    assert len(reads) == 64 and reads[0] == 0 and reads[-1] == 999
    assert trainer(data=x.double()).data.record() == record == trainer(data=x).data.record()
    assert trainer(data=ncsn.toy.paper_mixture().sample).data.record() is None


@pytest.mark.parametrize("change", ["length", "content", "sampler"])
def test_resuming_on_changed_data_is_refused_naming_the_data(tmp_path: Path, change: str) -> None:
    trainer(tmp_path).fit(2)
    changed: Any = {
        "length": toy_data(39),
        "content": toy_data().index_fill(0, torch.tensor([13]), 0.5),
        "sampler": ncsn.toy.paper_mixture().sample,
    }[change]
    with pytest.raises(CheckpointError) as info:
        trainer(tmp_path, data=changed).restore(tmp_path)
    message = str(info.value)
    assert len(message.splitlines()) == 1
    assert "the data changed since this checkpoint: data holds " in message
    assert "the run was trained on 40 examples of shape [2] (fingerprint " in message
    assert "allow_data_change=True" in message
    if change == "length":
        assert "data holds 39 examples of shape [2]" in message
    if change == "sampler":
        assert "data holds a sampler" in message


def test_allow_data_change_continues_on_the_new_data(tmp_path: Path) -> None:
    trainer(tmp_path).fit(3)  # 36 of 40 examples into the first epoch
    assert load_checkpoint(tmp_path)["data"] == {"epoch": 0, "offset": 36}
    smaller = toy_data(30, seed=2)
    resumed = trainer(tmp_path, data=smaller)
    resumed.restore(tmp_path, allow_data_change=True)
    assert resumed.data.state() == {"epoch": 1, "offset": 0}  # beyond the new data: next epoch
    resumed.fit(4)
    assert load_checkpoint(tmp_path)["data_fingerprint"] == resumed.data.record()


class _PixelScore(nn.Module):
    """A 1x1-convolution score model of images with ``channels`` channels."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor, sigma: Tensor) -> Tensor:
        out: Tensor = self.conv(x) / sigma[:, None, None, None]
        return out


def test_a_changed_channel_count_names_the_data_not_a_weight(tmp_path: Path) -> None:
    def image_trainer(channels: int) -> Trainer:
        x = torch.rand(8, channels, 4, 4, generator=torch.Generator().manual_seed(channels))
        output = Output(tmp_path, progress=False)
        return Trainer(_PixelScore(channels), DSM, x, batch_size=4, seed=0, output=output)

    image_trainer(1).fit(2)
    with pytest.raises(CheckpointError) as info:
        image_trainer(3).restore(tmp_path)
    message = str(info.value)
    assert "data holds 8 examples of shape [3, 4, 4]" in message
    assert "trained on 8 examples of shape [1, 4, 4]" in message
    assert "weight" not in message


# ------------------------------------------------------------------------------- older checkpoints


def test_a_checkpoint_of_the_layout_before_run_ids_and_fingerprints_resumes_exactly(
    tmp_path: Path,
) -> None:
    """Checkpoints written before this layout have no run_id or data_fingerprint (and no
    run.json beside them): they still load and resume bit for bit."""
    trainer(tmp_path / "new").fit(4)
    old = tmp_path / "old"
    old.mkdir()
    checkpoint = load_checkpoint(tmp_path / "new")
    for key in ("run_id", "data_fingerprint", "format"):
        del checkpoint[key]
    ncsn.training.save_checkpoint(old / "checkpoint-00000004.pt", checkpoint)
    assert not (old / "run.json").exists()
    resumed = trainer(old)
    resumed.restore(old)
    resumed.fit(6)
    straight = trainer()
    straight.fit(6)
    _equal(straight.model.state_dict(), resumed.model.state_dict())
    _equal(straight.optimizer.state_dict(), resumed.optimizer.state_dict())
    _equal(straight.ema_model().state_dict(), resumed.ema_model().state_dict())
    assert _run_id(old) == resumed.run_id  # the folder names the run from now on
