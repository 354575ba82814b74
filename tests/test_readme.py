"""The README's Python example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.slow
def test_readme_quickstart_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has a Python example"
    namespace: dict[str, object] = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)
    weights = namespace["ncsn"].metrics.mode_weights(namespace["exact"], namespace["gmm"])  # type: ignore[attr-defined]
    assert abs(float(weights[1]) - 0.8) < 0.05
    x = namespace["x"]
    assert x.shape == (1280, 2) and bool(x.isfinite().all())  # type: ignore[attr-defined]
    learned = namespace["ncsn"].metrics.mode_weights(x, namespace["gmm"])  # type: ignore[attr-defined]
    assert abs(float(learned[1]) - 0.8) < 0.1
