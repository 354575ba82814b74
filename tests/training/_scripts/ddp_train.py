"""Tiny ScoreMLP training shared by tests/training/test_distributed.py and the torchrun processes
it launches.

Usage (under torchrun): python ddp_train.py OUT STEPS [FAIL_RANK FAIL_STEP]. Trains a DSM and an SSM
model for STEPS steps with checkpoints every STEPS // 2 steps. Rank 0's trainers get the output folders
OUT/dsm and OUT/ssm, every other rank's OUT/rank{R}-dsm and OUT/rank{R}-ssm, so a file written by a
rank that should write nothing shows up under its own name. With FAIL_RANK and FAIL_STEP, that rank
raises from the step callback at that step. At the end every rank writes OUT/closed-rank{R}.txt
with the error a closed trainer raises.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

import ncsn
from ncsn.training import Output, Trainer, TrainStep, distributed_env, init_process_group

BATCH = 16
SEED = 1234


def build(loss_name: str) -> tuple[torch.nn.Module, ncsn.ScoreLoss, torch.Tensor]:
    """The same model, loss and data in every process (initialised from fixed generators)."""
    schedule = ncsn.GeometricSchedule(2.0, 0.1, 4)
    net = ncsn.nets.ScoreMLP(2, hidden=16, sigmas=schedule.sigmas)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=g))
    data = ncsn.toy.paper_mixture().sample(40, generator=g) / 5.0
    loss: ncsn.ScoreLoss
    if loss_name == "dsm":
        loss = ncsn.losses.DenoisingScoreMatching(schedule)
    else:
        loss = ncsn.losses.SlicedScoreMatching(schedule)
    return net, loss, data


def make_trainer(loss_name: str, out_dir: Path | None, steps: int, **options: object) -> Trainer:
    net, loss, data = build(loss_name)
    settings: dict[str, object] = {
        "batch_size": BATCH,
        "shards": 2,
        "ema_rate": 0.9,
        "max_grad_norm": 5.0,
        "seed": SEED,
        "output": Output(out_dir, checkpoint_every=steps // 2, log_every=2, progress=False),
    }
    return Trainer(net, loss, data, **(settings | options))  # type: ignore[arg-type]


def main(out: str, steps: int, fail_rank: int = -1, fail_step: int = -1) -> None:
    def callback(info: TrainStep) -> None:
        if trainer.env.rank == fail_rank and info.step == fail_step:
            raise RuntimeError(f"rank {fail_rank} fails on purpose at step {fail_step}")

    # Both trainers share the process group joined here, with a short collective timeout so that
    # a failing rank ends the job quickly; close them at the end, as a command-line tool would
    # (also when a step fails).
    rank = distributed_env().rank
    init_process_group(torch.device("cpu"), timeout=60.0)
    trainers: list[Trainer] = []
    try:
        for loss_name in ("dsm", "ssm"):
            folder = Path(out) / (loss_name if rank == 0 else f"rank{rank}-{loss_name}")
            trainer = make_trainer(loss_name, folder, steps, callback=callback)
            trainers.append(trainer)
            trainer.fit(steps)
    finally:
        for trainer in reversed(trainers):
            trainer.close()
        torch.distributed.destroy_process_group()
    try:
        trainers[-1].fit(steps + 1)
    except RuntimeError as err:  # a closed trainer refuses to train without its process group
        (Path(out) / f"closed-rank{rank}.txt").write_text(str(err))


if __name__ == "__main__":
    main(sys.argv[1], *map(int, sys.argv[2:]))
