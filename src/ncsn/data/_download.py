"""Fetching one file over HTTP(S) with the standard library: atomic, verified, resumable (private).

A file is written to ``<name>.part`` in its destination folder, checked, then renamed into place,
so a reader never sees a partial file under the final name. A dropped connection is resumed with
an HTTP ``Range`` request; a server that ignores ``Range`` (answers ``200`` with the whole file)
restarts the part from its first byte. A part left by an interrupted call is resumed by the next.
"""

from __future__ import annotations

import http.client
import os
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from tqdm import tqdm

from ncsn.data._common import DownloadError

__all__: list[str] = []

_CHUNK = 1 << 16
_TIMEOUT_S = 30.0
_STALLS = 3  # attempts in a row on one URL that add no byte before the URL counts as failed


class _Failed(Exception):
    """One URL failed on the network side; the message says how, in a few words."""


def _reason(err: BaseException) -> str:
    if isinstance(err, urllib.error.URLError) and not isinstance(err, urllib.error.HTTPError):
        if not isinstance(err.reason, BaseException):
            return " ".join(str(err.reason).split())
        err = err.reason
    if isinstance(err, ConnectionRefusedError):
        return "connection refused"
    if isinstance(err, TimeoutError):
        return f"no answer within {_TIMEOUT_S:g} s"
    if isinstance(err, socket.gaierror):
        return f"host not found ({err.strerror})"
    return " ".join(f"{type(err).__name__}: {err}".split())


def _part_size(part: Path) -> int:
    return part.stat().st_size if part.is_file() else 0


def _open(url: str, start: int, user_agent: str) -> http.client.HTTPResponse | None:
    """The response for ``url`` from byte ``start``; ``None`` when the server refuses the range."""
    headers = {"User-Agent": user_agent}
    if start:
        headers["Range"] = f"bytes={start}-"
    try:
        response: http.client.HTTPResponse = urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=_TIMEOUT_S
        )
    except urllib.error.HTTPError as err:
        err.close()
        if err.code == 416 and start:  # the part is longer than this file
            return None
        raise _Failed(f"HTTP {err.code} {err.reason}") from err
    except (OSError, http.client.HTTPException, ValueError) as err:  # URLError is an OSError
        raise _Failed(_reason(err)) from err
    return response


def _attempt(url: str, part: Path, *, progress: bool, user_agent: str) -> bool:
    """One request, appended to ``part`` (or restarting it). True when the file is complete."""
    start = _part_size(part)
    response = _open(url, start, user_agent)
    if response is None:
        part.unlink()
        return False
    with response:
        if start and not (
            response.status == 206
            and response.headers.get("Content-Range", "").startswith(f"bytes {start}-")
        ):
            start = 0  # the server ignored Range: the whole file follows
        length = response.headers.get("Content-Length", "")
        total = start + int(length) if length.isdigit() else None
        bar = tqdm(
            total=total,
            initial=start,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=part.name.removesuffix(".part"),
            disable=not (progress and sys.stderr.isatty()),
            dynamic_ncols=True,
        )
        with bar, part.open("ab" if start else "wb") as fh:
            while True:
                try:
                    chunk = response.read(_CHUNK)
                except (OSError, http.client.HTTPException):
                    return False  # dropped half-way: what arrived stays in the part
                if not chunk:
                    break
                fh.write(chunk)
                bar.update(len(chunk))
            fh.flush()
            os.fsync(fh.fileno())
    # http.client returns b"" rather than raising when a connection closes before Content-Length.
    return total is None or _part_size(part) >= total


def fetch(
    urls: Sequence[str],
    dest: Path,
    *,
    verify: Callable[[Path], str | None],
    progress: bool,
    remedy: str,
    user_agent: str = "ncsn",
) -> None:
    """Download ``dest`` from the first of ``urls`` that gives a file ``verify`` accepts.

    ``verify(path)`` returns ``None`` for a right file, else a few words on what is wrong (the
    checksums). A URL that fails (an HTTP error, refused, no answer, dropped ``_STALLS`` times in
    a row without progress, or a wrong file) is recorded and the next one is tried.

    Raises:
        DownloadError: no URL gave a right file; one line naming each URL and its failure, then
            ``remedy``.
        OSError: writing in ``dest``'s folder failed (a full disk); the part stays for a resume.
    """
    part = dest.with_name(dest.name + ".part")
    if part.is_file() and verify(part) is None:  # an earlier call got it all, then stopped
        os.replace(part, dest)
        return
    failures = []
    for url in urls:
        stalls = 0
        try:
            while True:
                before = _part_size(part)
                if _attempt(url, part, progress=progress, user_agent=user_agent):
                    break
                stalls = 0 if _part_size(part) > before else stalls + 1
                if stalls >= _STALLS:
                    raise _Failed(f"the connection dropped {_STALLS} times in a row without data")
        except _Failed as err:
            failures.append(f"{url}: {err}")
            continue
        problem = verify(part)
        if problem is None:
            os.replace(part, dest)
            return
        part.unlink()
        failures.append(f"{url}: {problem}")
    tried = "; ".join(failures) if failures else "no mirror was given"
    raise DownloadError(f"could not download {dest.name} ({tried}); {remedy}")
