"""Save large checkpoints in a loop until killed (driven by tests/test_checkpoints.py).

Usage: python save_loop.py FOLDER NUMEL. Continues after the newest checkpoint in FOLDER; prints
"saving <step>" before and "saved <step>" after every save, flushing stdout.
"""

from __future__ import annotations

import os
import sys

import torch

from ncsn.training import checkpoint_path, latest_checkpoint, load_checkpoint, save_checkpoint


def main(folder: str, numel: int) -> None:
    latest = latest_checkpoint(folder) if os.path.isdir(folder) else None
    step = 0 if latest is None else int(load_checkpoint(latest)["step"])
    while True:
        step += 1
        payload = torch.full((numel,), float(step))
        print(f"saving {step}", flush=True)
        save_checkpoint(checkpoint_path(folder, step), {"step": step, "payload": payload}, keep=2)
        print(f"saved {step}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
