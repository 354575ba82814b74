"""The example notebooks are stored without outputs and run from top to bottom on the CPU.

Executing them needs ``nbclient``, ``nbformat`` and ``ipykernel`` (and matplotlib from the
``examples`` extra); ``nox -s notebooks`` installs them. Each notebook runs in a fresh kernel whose
working directory is ``examples/``, with as many threads as the rest of the suite
(``NCSN_TEST_THREADS``, default 1, as in ``conftest.py``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))
EXPECTED = [
    "01_toy_mixture.ipynb",
    "02_dsm_vs_ssm.ipynb",
    "03_digits_end_to_end.ipynb",
    "04_official_checkpoints.ipynb",
    "05_composing_parts.ipynb",
    "06_samplers.ipynb",
    "07_mnist.ipynb",
    "08_conditional.ipynb",
    "09_inverse_problems.ipynb",
]
NEEDS_MNIST = {"07_mnist.ipynb"}
"""Notebooks that read the real MNIST files (skipped, with the reason, where they are absent)."""
CELL_TIMEOUT = 600  # seconds for one cell; a notebook takes 15 s to 2 min on two CPU cores


def _load(path: Path) -> dict[str, Any]:
    notebook: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return notebook


def test_the_notebooks_exist() -> None:
    assert [p.name for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    notebook = _load(path)
    assert notebook["nbformat"] == 4
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert code, "a notebook without code"
    for cell in code:
        assert cell["outputs"] == [], f"{path.name}: a cell was saved with its outputs"
        assert cell["execution_count"] is None, f"{path.name}: a cell was saved executed"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_says_how_to_scale_up(path: Path) -> None:
    text = "".join(
        "".join(cell["source"]) for cell in _load(path)["cells"] if cell["cell_type"] == "markdown"
    )
    assert "## Scaling up" in text or "## With the real files" in text, path.name


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nbformat
    from nbclient import NotebookClient

    if path.name in NEEDS_MNIST:
        import ncsn

        try:
            ncsn.data.mnist(split="test")
        except FileNotFoundError as err:
            pytest.skip(f"MNIST IDX files not found ({str(err).splitlines()[0][:120]})")

    # The kernel is `python -m ipykernel_launcher`: make `python` this interpreter, and give the
    # kernel the suite's thread count (extra threads only slow small models on a shared machine).
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("NCSN_TEST_THREADS", "1"))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend draws the plots
    before = sorted(p.relative_to(EXAMPLES) for p in EXAMPLES.rglob("*"))

    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(EXAMPLES)}},
    )
    client.execute()  # raises CellExecutionError with the cell and its traceback on any error

    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert not errors
    pictures = sum(
        "image/png" in output.get("data", {})
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )
    assert pictures >= 1, f"{path.name} draws no plot"
    after = sorted(p.relative_to(EXAMPLES) for p in EXAMPLES.rglob("*"))
    assert after == before, f"{path.name} left files in examples/: {set(after) - set(before)}"


@pytest.mark.parametrize("where", [".", "examples", "tests"])
def test_official_notebook_finds_its_fixture_from_anywhere_in_the_repository(
    where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cells = _load(EXAMPLES / "04_official_checkpoints.ipynb")["cells"]
    (code,) = ["".join(c["source"]) for c in cells if "data_dir = " in "".join(c["source"])]
    finder = code[: code.index("fixture = ")]  # the lines that locate tests/fixtures
    monkeypatch.chdir(EXAMPLES.parent / where)
    namespace: dict[str, object] = {"Path": Path}
    exec(finder, namespace)
    data_dir = namespace["data_dir"]
    assert isinstance(data_dir, Path)
    assert (data_dir / "official_refinenet_c3_ngf8.pth").is_file()
