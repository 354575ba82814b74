"""Runs the type checker over the static protocol-conformance file."""

from __future__ import annotations

from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api")  # mypy is part of the `test` extra

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_every_implementation_statically_satisfies_its_protocol() -> None:
    stdout, stderr, status = mypy_api.run(
        [
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(ROOT / ".mypy_cache"),
            str(ROOT / "tests" / "typing_conformance.py"),
        ]
    )
    assert status == 0, stdout + stderr


@pytest.mark.slow
def test_conformance_file_fails_for_a_wrong_implementation(tmp_path: Path) -> None:
    """The check can fail: a model with the wrong signature is rejected."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import torch\nfrom ncsn import ScoreModel\n"
        "def wrong(x: torch.Tensor) -> torch.Tensor:\n    return x\n"
        "m: ScoreModel = wrong\n"
    )
    stdout, _, status = mypy_api.run(
        ["--strict", "--ignore-missing-imports", "--cache-dir", str(ROOT / ".mypy_cache"), str(bad)]
    )
    assert status != 0 and "ScoreModel" in stdout
