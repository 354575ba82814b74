"""Sessions mirroring CI: `nox -s tests`, `nox -s slow`, `nox -s lint`, `nox -s typecheck`, ...

Each session installs the CPU build of torch first (pinned, so pip does not pull a CUDA build).
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.default_venv_backend = "venv"

TORCH = "torch==2.13.0"


def _install(session: nox.Session, *extras: str) -> None:
    session.install(TORCH)
    spec = f".[{','.join(extras)}]" if extras else "."
    session.install("-e", spec)


@nox.session
def tests(session: nox.Session) -> None:
    """The fast test suite (everything but tests marked slow)."""
    _install(session, "test")
    session.run("pytest", "-m", "not slow", *session.posargs)


@nox.session
def slow(session: nox.Session) -> None:
    """Statistical, training and multi-process tests (marked slow)."""
    _install(session, "test")
    session.run("pytest", "-m", "slow", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "src", "tests", "examples", "benchmarks", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "examples", "benchmarks", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    _install(session, "test")
    session.run("mypy", "src/ncsn", "tests/typing_conformance.py")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site strictly (any warning fails): `nox -s docs`."""
    _install(session, "docs")
    session.install("ruff")  # mkdocstrings formats the rendered signatures with it
    session.run("mkdocs", "build", "--strict", *session.posargs)


@nox.session
def notebooks(session: nox.Session) -> None:
    """Execute every example notebook from top to bottom on the CPU."""
    _install(session, "examples", "test")
    session.install("nbclient", "nbformat", "ipykernel")
    session.run("pytest", "tests/test_notebooks.py", *session.posargs)


@nox.session
def quality(session: nox.Session) -> None:
    """The sample-quality table on the embedded digits: recipes x samplers x training budgets,
    the single-σ baseline and the real floor (`benchmarks/quality.py`; about 1.5 hours on 2 cores,
    `nox -s quality -- --quick` a minute)."""
    _install(session)
    session.run("python", "benchmarks/quality.py", *session.posargs)


@nox.session
def benchmarks(session: nox.Session) -> None:
    """The CPU benchmark suite (under ~10 min on 2 cores; `nox -s benchmarks -- --quick`: ~2 min).

    Then benchmarks/gpu.sh, which runs the GPU variants where CUDA is visible and otherwise says
    so and exits 0. Results: benchmarks/results/*.json; the numbers are read, not asserted.
    """
    _install(session)
    quick = ["--quick"] if "--quick" in session.posargs else []
    session.run("python", "benchmarks/sampling.py", *quick)
    session.run("python", "benchmarks/training.py", *quick)
    session.run("bash", "benchmarks/gpu.sh", *quick, external=True, env={"PYTHON": "python"})
