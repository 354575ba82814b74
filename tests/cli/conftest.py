"""Fixtures of the `ncsn` command's tests: a runner that captures the exit status and output,
tiny image data, and tiny trained runs."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from cli_runner import Runner, runner

import ncsn
from ncsn.cli import main


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Runner:
    return runner(capsys)


def write_images(folder: Path, n: int = 40) -> Path:
    """``n`` random 8-bit grey 8x8 images in ``folder/images.npz``."""
    images = np.random.default_rng(0).integers(0, 256, size=(n, 1, 8, 8), dtype=np.uint8)
    path = folder / "images.npz"
    np.savez(path, images=images)
    return path


@pytest.fixture
def images(tmp_path: Path) -> Path:
    return write_images(tmp_path)


TINY_IMAGES = ["--ngf", "4", "--steps", "2", "--batch-size", "4", "--quiet"]
TOY = ["--data", "mixture", "--steps", "3", "--batch-size", "16", "--hidden", "8", "--quiet"]


@pytest.fixture(scope="module")
def image_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A run of 2 steps on 40 random 8x8 images, and the images."""
    folder = tmp_path_factory.mktemp("images")
    data, out = write_images(folder), folder / "run"
    assert main(["train", "--data", str(data), *TINY_IMAGES, "--output", str(out)]) == 0
    return out, data


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of 3 steps on the toy mixture."""
    out = tmp_path_factory.mktemp("toy") / "run"
    assert main(["train", *TOY, "--output", str(out)]) == 0
    return out


@pytest.fixture
def no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if a Trainer is built (errors must come before any work)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a Trainer was built before the error")

    monkeypatch.setattr(ncsn.training, "Trainer", refuse)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A folder on a real filesystem of 256 KiB (a tmpfs), to fill up; skipped where this
    machine cannot mount one (it needs root)."""
    folder = tmp_path / "small-disk"
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root; the full-disk case is not exercised")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)
