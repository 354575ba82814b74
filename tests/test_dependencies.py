"""The runtime dependencies are exactly the third-party packages ``src/ncsn`` imports."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# distribution name -> the module it installs, where they differ
MODULE_OF = {"pillow": "PIL", "typing-extensions": "typing_extensions"}


def _imported_top_level_modules() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "src" / "ncsn").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"ncsn", "__future__"}


def _declared_runtime_modules() -> set[str]:
    # pyproject's `dependencies = [...]` list (tomllib is Python >= 3.11 only)
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    block = re.search(r"^dependencies = \[(.*?)^\]", text, flags=re.S | re.M)
    assert block is not None
    specs = re.findall(r'"([^"]+)"', block.group(1))
    names = {re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0].lower() for spec in specs}
    return {MODULE_OF.get(name, name) for name in names}


def test_runtime_dependencies_are_exactly_what_the_package_imports() -> None:
    imported = _imported_top_level_modules()
    # imported lazily: by ncsn.viz from the `examples` extra, by the Hub glue from the `hub` extra
    optional = {"matplotlib", "huggingface_hub"}
    assert _declared_runtime_modules() == imported - optional
