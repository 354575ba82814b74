"""Fixtures of the ncsn.data tests: an isolated search path, small stand-in MNIST files, and a
loopback server serving them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from datafiles import FileServer, Small, make_small

from ncsn.data import _mnist


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No $NCSN_DATA, the user cache and the system folder under tmp_path, nothing verified."""
    monkeypatch.delenv("NCSN_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(_mnist, "_SYSTEM_FOLDER", tmp_path / "system")
    monkeypatch.setattr(_mnist, "_verified", set())
    return tmp_path


@pytest.fixture
def small(monkeypatch: pytest.MonkeyPatch) -> Small:
    """Small stand-ins for the four files, the module's checksum table pointed at them."""
    files, table = make_small()
    specs = tuple(_mnist._File(*row) for row in table)
    monkeypatch.setitem(_mnist._FILES, "mnist", specs)
    monkeypatch.setitem(_mnist._FILES, "fashion-mnist", specs)
    return files


@pytest.fixture
def server(small: Small) -> Iterator[FileServer]:
    served = FileServer(small.gz)
    yield served
    served.close()
