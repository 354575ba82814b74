"""ncsn.data._download.fetch: atomic, verified, resumable downloads, against a loopback server."""

from __future__ import annotations

import hashlib
import io
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from datafiles import FileServer, closed_port_url

from ncsn.data import DownloadError
from ncsn.data._download import fetch

BODY = bytes(range(256)) * 300  # 76,800 bytes: several reads of 64 KiB
NAME = "train-images-idx3-ubyte.gz"
REMEDY = "put the files in a folder and pass it as root"


def verify_against(body: bytes):
    expected = hashlib.sha256(body).hexdigest()

    def verify(path: Path) -> str | None:
        found = hashlib.sha256(path.read_bytes()).hexdigest()
        return None if found == expected else f"expected SHA-256 {expected}, found {found}"

    return verify


@pytest.fixture
def server() -> Iterator[FileServer]:
    served = FileServer({NAME: BODY})
    yield served
    served.close()


def get(urls: list[str], dest: Path, body: bytes = BODY, *, progress: bool = False) -> None:
    fetch(urls, dest, verify=verify_against(body), progress=progress, remedy=REMEDY)


def test_download_writes_the_file_and_no_part(tmp_path: Path, server: FileServer) -> None:
    get([server.url + NAME], tmp_path / NAME)
    assert (tmp_path / NAME).read_bytes() == BODY
    assert sorted(p.name for p in tmp_path.iterdir()) == [NAME]
    assert server.requests == [(NAME, None)]


def test_404_on_the_first_mirror_falls_over_to_the_second(
    tmp_path: Path, server: FileServer
) -> None:
    second = FileServer({NAME: BODY})
    try:
        server.faults[NAME] = ["404"]
        get([server.url + NAME, second.url + NAME], tmp_path / NAME)
    finally:
        second.close()
    assert (tmp_path / NAME).read_bytes() == BODY
    assert server.requests == [(NAME, None)] and second.requests == [(NAME, None)]


def test_a_dropped_connection_is_resumed_with_range(tmp_path: Path, server: FileServer) -> None:
    server.faults[NAME] = ["drop", "drop"]
    get([server.url + NAME], tmp_path / NAME)
    assert (tmp_path / NAME).read_bytes() == BODY
    half = len(BODY) // 2
    quarter = (len(BODY) - half) // 2
    assert server.requests == [
        (NAME, None),
        (NAME, f"bytes={half}-"),
        (NAME, f"bytes={half + quarter}-"),
    ]


def test_a_server_that_ignores_range_restarts_the_file(tmp_path: Path, server: FileServer) -> None:
    server.faults[NAME] = ["drop", "ignore-range"]
    get([server.url + NAME], tmp_path / NAME)
    assert (tmp_path / NAME).read_bytes() == BODY  # not the first half twice
    assert server.requests == [(NAME, None), (NAME, f"bytes={len(BODY) // 2}-")]


def test_a_part_left_by_an_interrupted_call_is_resumed(tmp_path: Path, server: FileServer) -> None:
    (tmp_path / f"{NAME}.part").write_bytes(BODY[:1000])
    get([server.url + NAME], tmp_path / NAME)
    assert (tmp_path / NAME).read_bytes() == BODY
    assert server.requests == [(NAME, "bytes=1000-")]


def test_a_complete_part_is_not_fetched_again(tmp_path: Path, server: FileServer) -> None:
    (tmp_path / f"{NAME}.part").write_bytes(BODY)
    get([server.url + NAME], tmp_path / NAME)
    assert (tmp_path / NAME).read_bytes() == BODY and server.requests == []


def test_a_part_longer_than_the_file_starts_again(tmp_path: Path, server: FileServer) -> None:
    (tmp_path / f"{NAME}.part").write_bytes(BODY + b"junk")  # 416 for its range
    get([server.url + NAME], tmp_path / NAME)
    assert (tmp_path / NAME).read_bytes() == BODY
    assert server.requests == [(NAME, f"bytes={len(BODY) + 4}-"), (NAME, None)]


@pytest.mark.parametrize("served", ["wrong", "truncated"])
def test_a_wrong_or_truncated_file_is_refused_then_the_next_mirror_is_tried(
    tmp_path: Path, server: FileServer, served: str
) -> None:
    bad = BODY[::-1] if served == "wrong" else BODY[:-100]
    server.files[NAME] = bad
    good = FileServer({NAME: BODY})
    try:
        get([server.url + NAME, good.url + NAME], tmp_path / NAME)
    finally:
        good.close()
    assert (tmp_path / NAME).read_bytes() == BODY


@pytest.mark.parametrize("served", ["wrong", "truncated"])
def test_a_wrong_or_truncated_file_from_every_mirror_is_a_one_line_error(
    tmp_path: Path, server: FileServer, served: str
) -> None:
    bad = BODY[::-1] if served == "wrong" else BODY[: len(BODY) // 3]
    server.files[NAME] = bad
    expected, found = hashlib.sha256(BODY).hexdigest(), hashlib.sha256(bad).hexdigest()
    with pytest.raises(DownloadError) as caught:
        get([server.url + NAME], tmp_path / NAME)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"could not download {NAME} ({server.url}{NAME}: ")
    assert f"expected SHA-256 {expected}, found {found}" in message and REMEDY in message
    assert list(tmp_path.iterdir()) == []  # neither the file nor a part is left


def test_offline_is_a_one_line_error_naming_the_url_and_the_remedy(tmp_path: Path) -> None:
    url = closed_port_url() + NAME
    with pytest.raises(DownloadError) as caught:
        get([url], tmp_path / NAME)
    assert str(caught.value) == (f"could not download {NAME} ({url}: connection refused); {REMEDY}")
    assert isinstance(caught.value, OSError) and list(tmp_path.iterdir()) == []


def test_every_mirror_failing_is_listed(tmp_path: Path, server: FileServer) -> None:
    server.faults[NAME] = ["404"]
    offline = closed_port_url() + NAME
    with pytest.raises(DownloadError, match=r"HTTP 404 Not Found; .*: connection refused\)"):
        get([server.url + NAME, offline], tmp_path / NAME)


def test_a_connection_that_keeps_dropping_without_data_fails_the_mirror(
    tmp_path: Path, server: FileServer
) -> None:
    server.faults[NAME] = ["drop-early"] * 3
    with pytest.raises(DownloadError, match=r"the connection dropped 3 times in a row without"):
        get([server.url + NAME], tmp_path / NAME)
    assert len(server.requests) == 3


def test_a_local_write_error_is_not_a_download_error(tmp_path: Path, server: FileServer) -> None:
    with pytest.raises(FileNotFoundError):  # the folder is gone: no mirror would help
        get([server.url + NAME], tmp_path / "gone" / NAME)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("progress", [True, False])
def test_progress_bar_on_a_terminal_only_when_asked(
    tmp_path: Path, server: FileServer, monkeypatch: pytest.MonkeyPatch, progress: bool
) -> None:
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    get([server.url + NAME], tmp_path / NAME, progress=progress)
    shown = terminal.getvalue()
    assert (NAME in shown and "75.0k" in shown) if progress else shown == ""
