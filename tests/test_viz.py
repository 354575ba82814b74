"""ncsn.viz: plots need matplotlib (one clear error without it) and leave its backend alone."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import ncsn

_MATPLOTLIB_MODULES = ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg")


def test_missing_matplotlib_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in _MATPLOTLIB_MODULES:
        monkeypatch.setitem(sys.modules, name, None)  # `import` of these now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'ncsn\[examples\]'"):
        ncsn.viz.require_matplotlib()
    with pytest.raises(ImportError, match=r"plots need matplotlib; install it with"):
        ncsn.viz.plot_toy_samples([("data", torch.zeros(3, 2))], tmp_path / "toy.png")
    assert not (tmp_path / "toy.png").exists()


def test_plots_leave_the_matplotlib_backend_alone(tmp_path: Path) -> None:
    import matplotlib  # in the test extra

    before = matplotlib.get_backend()
    matplotlib.use("svg")  # a user's choice, not Agg: plotting must not switch it
    try:
        toy = ncsn.viz.plot_toy_samples(
            [("a", torch.randn(50, 2)), ("b", torch.randn(50, 2))], tmp_path / "toy.png"
        )
        fields = ncsn.viz.plot_score_fields(
            [("score", lambda x: -x)],
            tmp_path / "fields.png",
            log_density=lambda x: -0.5 * (x**2).sum(-1),
            points=5,
        )
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(before)
    for path in (toy, fields):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
