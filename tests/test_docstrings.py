"""Every docstring example in ``ncsn`` runs as a doctest and shows what it really prints.

Each module of the installed package is imported (``pkgutil.walk_packages``), its docstrings are
collected with :class:`doctest.DocTestFinder`, and each docstring with examples is one test, run
with ``ncsn`` and ``torch`` in its namespace (besides the module's own globals) and the
``ELLIPSIS`` and ``NORMALIZE_WHITESPACE`` options. A failing test lists every failing example.
Examples that need files write small ones into a ``tempfile.TemporaryDirectory()``. Lines
marked ``# doctest: +SKIP`` are not run: they need what a user has and the tests do not (a
downloaded MNIST, CIFAR-10 or CelebA, the Inception-v3 weights file, CUDA, a C++ compiler for
``torch.compile``).

Every module imports with the required dependencies alone, so none is left out, except
``ncsn.__main__``: importing it runs the ``ncsn`` command.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import types

import pytest
import torch

import ncsn

OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

# Modules that importing would run (``python -m ncsn``), not define.
NOT_IMPORTED = frozenset({"ncsn.__main__"})


def _modules() -> list[types.ModuleType]:
    """``ncsn`` and every module under it, in a stable order."""
    names = sorted(
        info.name
        for info in pkgutil.walk_packages(ncsn.__path__, prefix=f"{ncsn.__name__}.")
        if info.name not in NOT_IMPORTED
    )
    return [ncsn, *(importlib.import_module(name) for name in names)]


def _doctests() -> list[doctest.DocTest]:
    """The docstrings with examples, one :class:`doctest.DocTest` each (sorted by name)."""
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests: list[doctest.DocTest] = []
    for module in _modules():
        globs = {**vars(module), "ncsn": ncsn, "torch": torch}
        tests.extend(test for test in finder.find(module, globs=globs) if test.examples)
    return sorted(tests, key=lambda test: test.name)


DOCTESTS = _doctests()


def test_the_docstrings_are_found() -> None:
    """The walk reaches the subpackages, and no docstring is collected twice."""
    names = [test.name for test in DOCTESTS]
    assert len(names) == len(set(names))
    for expected in (
        "ncsn.metrics.evaluators.digits_evaluator",
        "ncsn.samplers.inpainting.inpaint",
    ):
        assert expected in names


@pytest.mark.parametrize("test", DOCTESTS, ids=[test.name for test in DOCTESTS])
def test_docstring_examples_run(test: doctest.DocTest) -> None:
    """The examples of one docstring run and print what it shows (all failures are listed)."""
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    result = runner.run(test, out=report.append)
    if result.failed:
        pytest.fail(
            f"{result.failed} of {result.attempted} examples of {test.name} failed:\n"
            + "".join(report),
            pytrace=False,
        )
