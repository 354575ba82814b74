"""Crash-safe training checkpoints: atomic writes, the last K kept, ``weights_only`` loading.

A checkpoint is a plain ``dict`` of tensors and plain Python values (``dict``, ``list``, ``tuple``,
``str``, ``int``, ``float``, ``bool``, ``None``, ``torch.dtype``, ``torch.device``), so that
``torch.load(weights_only=True)`` reads it without executing any code. Files are named
``checkpoint-{step:08d}.pt``; :func:`save_checkpoint` writes a temporary file in the same folder,
flushes and fsyncs it, renames it over the final name with :func:`os.replace` and fsyncs the
folder, so a process killed at any moment leaves either the old set of checkpoints or the old set
plus the new one, never a torn file under a checkpoint name.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ncsn._checks import CheckpointError, check_bool, positive_int

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointError",
    "check_plain",
    "check_writable_folder",
    "checkpoint_path",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "model_weights",
    "read_file",
    "save_checkpoint",
    "state_dict_mismatch",
]

CHECKPOINT_FORMAT = "ncsn.training.checkpoint/1"
"""The value of the ``"format"`` entry that marks a file written by :func:`save_checkpoint`."""

_NAME = re.compile(r"^checkpoint-(\d+)\.pt$")
_TMP_PREFIX = ".tmp-checkpoint-"
_PLAIN = (str, int, float, bool, type(None), torch.dtype, torch.device)


def _as_path(path: str | os.PathLike[str], name: str) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or os.PathLike; got {path!r}")
    return Path(path).expanduser()


def check_writable_folder(folder: Path, name: str) -> None:
    """Create ``folder`` (with its parents) and check that a file can be written in it, before
    any work that would be lost.

    Raises:
        OSError: the subclass of the failure (:class:`NotADirectoryError` for a file,
            :class:`PermissionError`, ...), naming ``name`` and the folder.

    Example:
        >>> import pathlib, tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     ncsn.training.checkpoints.check_writable_folder(pathlib.Path(tmp) / "run", "out")
    """
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{name} {str(folder)!r} is a file, not a folder")
    probe = folder / f"{_TMP_PREFIX}probe.{os.getpid()}.{secrets.token_hex(4)}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        os.unlink(probe)
    except OSError as err:
        raise type(err)(
            err.errno, f"{name} {str(folder)!r} cannot be created or written to ({err.strerror})"
        ) from err


def _map_location(map_location: object) -> None:
    if map_location is None or isinstance(map_location, torch.device):
        return
    if not isinstance(map_location, str):
        raise TypeError(
            f"map_location must be a str, a torch.device or None; got map_location={map_location!r}"
        )
    try:
        torch.device(map_location)
    except RuntimeError as err:
        raise ValueError(
            f"map_location must name a torch device; got map_location={map_location!r}"
        ) from err


def check_plain(value: object, where: str = "checkpoint") -> None:
    """Raise :class:`TypeError` naming ``where`` unless ``value`` holds only tensors and plain
    Python values (what ``weights_only`` loading reads).

    Example:
        >>> ncsn.training.checkpoints.check_plain({"kind": "ScoreMLP", "kwargs": {"dim": 2}})
    """
    if isinstance(value, Tensor) or type(value) in _PLAIN:  # exact types: no str subclasses
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise TypeError(
                    f"{where} has a key {key!r} of type {type(key).__name__}; use str or int"
                )
            check_plain(item, f"{where}[{key!r}]")
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_plain(item, f"{where}[{i}]")
        return
    raise TypeError(
        f"{where} is a {type(value).__name__}; checkpoints hold only tensors and plain Python "
        "values (dict, list, tuple, str, int, float, bool, None) so that weights_only loading works"
    )


def checkpoint_path(folder: str | os.PathLike[str], step: int) -> Path:
    """The file name of the checkpoint at ``step`` in ``folder``: ``folder/checkpoint-{step:08d}.pt``.

    Example:
        >>> ncsn.training.checkpoint_path("runs/a", 500).name
        'checkpoint-00000500.pt'
    """
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be a non-negative int; got step={step!r}")
    return _as_path(folder, "folder") / f"checkpoint-{step:08d}.pt"


def list_checkpoints(folder: str | os.PathLike[str]) -> list[Path]:
    """The checkpoint files in ``folder``, oldest (smallest step) first.

    Raises:
        FileNotFoundError: if ``folder`` does not exist.
        NotADirectoryError: if ``folder`` is a file.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as run:
        ...     for step in (1000, 500):
        ...         _ = ncsn.training.save_checkpoint(ncsn.training.checkpoint_path(run, step), {"step": step})
        ...     [path.name for path in ncsn.training.list_checkpoints(run)]
        ['checkpoint-00000500.pt', 'checkpoint-00001000.pt']
    """
    root = _as_path(folder, "folder")
    if not root.exists():
        raise FileNotFoundError(f"checkpoint folder {str(root)!r} does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"checkpoint folder {str(root)!r} is not a directory")
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(folder: str | os.PathLike[str]) -> Path | None:
    """The checkpoint with the largest step in ``folder``, or ``None`` when there is none.

    Because :func:`save_checkpoint` renames complete files into place, every file with a
    checkpoint name is complete; temporary files of an interrupted save are ignored.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as run:
        ...     print(ncsn.training.latest_checkpoint(run))  # an empty folder
        ...     for step in (500, 1000):
        ...         _ = ncsn.training.save_checkpoint(ncsn.training.checkpoint_path(run, step), {"step": step})
        ...     ncsn.training.latest_checkpoint(run).name
        None
        'checkpoint-00001000.pt'
    """
    found = list_checkpoints(folder)
    return found[-1] if found else None


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":  # directories cannot be opened for fsync on Windows
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _out_of_space(folder: Path) -> bool:
    """Whether the file system of ``folder`` is full (less than one MiB left), read before the
    temporary file of a failed write is removed."""
    try:
        return shutil.disk_usage(folder).free < 2**20
    except OSError:
        return False


def save_checkpoint(
    path: str | os.PathLike[str], checkpoint: Mapping[str, Any], *, keep: int | None = None
) -> Path:
    """Write ``checkpoint`` to ``path`` atomically; optionally keep only the last ``keep`` in its folder.

    The dict is stamped with ``"format": CHECKPOINT_FORMAT`` and written to a temporary file in
    the target folder, which is flushed, fsynced and renamed over ``path`` (``os.replace``); the
    folder is then fsynced. Temporary files left by earlier interrupted saves are removed. One
    writer per folder is assumed.

    Args:
        path: the file to write (usually :func:`checkpoint_path`). Its folder is created.
        checkpoint: tensors and plain Python values only (see the module docstring).
        keep: if given, delete all but the ``keep`` newest ``checkpoint-*.pt`` files in the folder
            after the new one is safely in place.

    Returns:
        The path written.

    Raises:
        TypeError: if ``checkpoint`` holds anything but tensors and plain values.
        ValueError: if ``keep`` < 1 or ``checkpoint`` has a ``"format"`` entry of its own.
        IsADirectoryError: ``path`` is a folder.
        OSError: the folder of ``path`` cannot be created or written to (the subclass of the
            failure, e.g. :class:`PermissionError` or :class:`NotADirectoryError`), checked
            before anything is written; a full disk (``errno.ENOSPC``, one line), after which
            no temporary file is left and the earlier checkpoints are untouched.

    Example:
        >>> import tempfile
        >>> net = ncsn.nets.ScoreMLP(2, hidden=8)
        >>> with tempfile.TemporaryDirectory() as run:
        ...     for step in (0, 100, 200, 300):
        ...         path = ncsn.training.checkpoint_path(run, step)
        ...         saved = ncsn.training.save_checkpoint(path, {"step": step, "model": net.state_dict()}, keep=3)
        ...     saved == path, [p.name for p in ncsn.training.list_checkpoints(run)]  # the 3 newest
        (True, ['checkpoint-00000100.pt', 'checkpoint-00000200.pt', 'checkpoint-00000300.pt'])
    """
    target = _as_path(path, "path")
    if not isinstance(checkpoint, Mapping):
        raise TypeError(f"checkpoint must be a dict; got {type(checkpoint).__name__}")
    if "format" in checkpoint and checkpoint["format"] != CHECKPOINT_FORMAT:
        raise ValueError(
            f"checkpoint has its own 'format' entry {checkpoint['format']!r}; rename it"
        )
    if keep is not None:
        keep = positive_int(keep, "keep")
    check_plain(checkpoint)
    if target.is_dir():
        raise IsADirectoryError(
            f"path {str(target)!r} is a folder; give a file path such as "
            "ncsn.training.checkpoint_path(folder, step)"
        )
    folder = target.parent
    check_writable_folder(folder, "the folder of path")
    for stale in folder.glob(f"{_TMP_PREFIX}*"):
        stale.unlink(missing_ok=True)
    tmp_name = folder / f"{_TMP_PREFIX}{target.name}.{os.getpid()}.{secrets.token_hex(4)}"
    # os.open honours the umask (mkstemp would make the checkpoint private to its owner).
    fd = os.open(tmp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({**checkpoint, "format": CHECKPOINT_FORMAT}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, target)
    except BaseException as err:
        full = isinstance(err, (OSError, RuntimeError)) and _out_of_space(folder)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        if full:  # torch's zip writer reports a full disk as a RuntimeError about positions
            raise OSError(
                errno.ENOSPC,
                f"no space left on the device of {str(folder)!r} to write {target.name}; "
                "nothing was written and the earlier checkpoints are intact",
            ) from None
        raise
    _fsync_dir(folder)
    if keep is not None:
        for old in list_checkpoints(folder)[:-keep]:
            if old != target:
                old.unlink(missing_ok=True)
    return target


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def _reason(err: BaseException) -> str:
    """One line saying why ``torch.load(weights_only=True)`` (or the zip reader) failed.

    torch's weights_only message runs over several lines and advises loading with
    ``weights_only=False`` or allow-listing the global, i.e. running the file's code; keep only
    the name of the object the file wanted.
    """
    text = _ANSI.sub("", str(err))
    if "weights only" in text.lower() or "weights_only" in text or "WeightsUnpickler" in text:
        found = _GLOBAL.search(text)
        wanted = found.group(1) if found else "a Python object"
        return (
            f"refused to unpickle {wanted}: weights_only loading admits only tensors and "
            "plain Python values"
        )
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__


def _names(keys: list[str]) -> str:
    shown = ", ".join(keys[:3])
    return shown + (f" (+{len(keys) - 3} more)" if len(keys) > 3 else "")


def state_dict_mismatch(module: torch.nn.Module, state: Mapping[str, Any]) -> str | None:
    """One line naming the missing and unexpected keys and the shape mismatches between
    ``module.state_dict()`` and ``state``, or ``None`` when ``state`` fits.

    ``module.load_state_dict`` reports the same in a multi-line message that lists every key;
    this names three of each and counts the rest, for an error of one line.

    Example:
        >>> net = torch.nn.Linear(2, 3)
        >>> ncsn.training.state_dict_mismatch(net, {"weight": torch.zeros(3, 2)})
        'missing keys bias'
        >>> ncsn.training.state_dict_mismatch(net, net.state_dict()) is None
        True
    """
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module must be a torch.nn.Module; got {type(module).__name__}")
    if not isinstance(state, Mapping):
        raise TypeError(f"state must be a mapping (a state_dict); got {type(state).__name__}")
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {list(state[k].shape)} vs {list(own[k].shape)}"
        for k in own
        if k in state and isinstance(state[k], Tensor) and state[k].shape != own[k].shape
    ]
    parts = []
    if missing:
        parts.append(f"missing keys {_names(missing)}")
    if unexpected:
        parts.append(f"unexpected keys {_names(unexpected)}")
    if shapes:
        parts.append(f"shape mismatches (checkpoint vs model) {_names(shapes)}")
    return "; ".join(parts) or None


def read_file(
    path: str | os.PathLike[str], *, map_location: str | torch.device | None = "cpu"
) -> Any:
    """Whatever a ``.pt``/``.pth`` file holds, read safely: every stored CRC-32 is checked, then
    ``torch.load(weights_only=True)`` (tensors and plain Python values only, no code runs).

    :func:`load_checkpoint` is this plus the check that the file is an ``ncsn`` training
    checkpoint; use ``read_file`` for other files (an official ``[model, optimizer]`` list, a
    tensor of samples).

    Args:
        path: the file.
        map_location: where tensors go (default the CPU).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: a ``map_location`` that names no device (TypeError: one that is not a
            string, device or None).
        CheckpointError: one line saying why the file does not load (truncated, a checksum
            mismatch, an object that would need unpickling code, not a torch file).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     torch.save([{"weight": torch.ones(2)}, {"state": {}}], f"{tmp}/checkpoint.pth")
        ...     obj = ncsn.training.read_file(f"{tmp}/checkpoint.pth")
        >>> type(obj).__name__, obj[0]["weight"].tolist()
        ('list', [1.0, 1.0])
    """
    source = _as_path(path, "path")
    _map_location(map_location)
    if not source.exists():
        raise FileNotFoundError(f"file {str(source)!r} does not exist")
    if source.is_dir():
        raise CheckpointError(f"{source}: a folder, not a file")
    try:
        # torch does not verify the zip's CRC-32s, so a flipped bit in tensor data would load.
        if zipfile.is_zipfile(source):
            with zipfile.ZipFile(source) as archive:
                broken = archive.testzip()
            if broken is not None:
                raise CheckpointError(
                    f"{source}: corrupt checkpoint (checksum mismatch in {broken})"
                )
        return torch.load(source, map_location=map_location, weights_only=True)
    except CheckpointError:
        raise
    except Exception as err:  # zipfile and torch raise BadZipFile, EOFError, UnpicklingError, ...
        raise CheckpointError(f"{source}: not a readable checkpoint ({_reason(err)})") from err


def load_checkpoint(
    path: str | os.PathLike[str], *, map_location: str | torch.device | None = "cpu"
) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` with ``torch.load(weights_only=True)``.

    Args:
        path: a checkpoint file, or a folder (its :func:`latest_checkpoint` is read).
        map_location: where tensors go (default the CPU).

    Returns:
        The checkpoint dict (with its ``"format"`` entry).

    Raises:
        FileNotFoundError: if ``path`` does not exist or a folder holds no checkpoint.
        CheckpointError: if the file is truncated, corrupt (every stored CRC-32 is checked),
            needs unpickling of arbitrary objects, is not an ``ncsn`` training checkpoint (e.g.
            an official ``[model, optimizer]`` list: load those with the network loaders), or
            is named ``checkpoint-{N}.pt`` but records another step (renamed).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as run:
        ...     for step in (500, 1000):
        ...         _ = ncsn.training.save_checkpoint(ncsn.training.checkpoint_path(run, step), {"step": step})
        ...     ckpt = ncsn.training.load_checkpoint(run)  # the newest in the folder
        >>> ckpt["step"], ckpt["format"] == ncsn.training.CHECKPOINT_FORMAT
        (1000, True)
    """
    source = _as_path(path, "path")
    if source.is_dir():
        latest = latest_checkpoint(source)
        if latest is None:
            raise FileNotFoundError(f"no checkpoint-*.pt file in folder {str(source)!r}")
        source = latest
    obj = read_file(source, map_location=map_location)
    if not isinstance(obj, dict):
        hint = " (an official NCSN [model, optimizer] file?)" if isinstance(obj, list) else ""
        raise CheckpointError(
            f"{source}: expected an ncsn training checkpoint (a dict with format="
            f"{CHECKPOINT_FORMAT!r}); got a {type(obj).__name__}{hint}"
        )
    if obj.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{source}: expected format={CHECKPOINT_FORMAT!r}; got format={obj.get('format')!r}"
        )
    named, step = _NAME.match(source.name), obj.get("step")
    if named and type(step) is int and step != int(named.group(1)):
        raise CheckpointError(
            f"{source}: records step {step} but its name says step {int(named.group(1))} (a "
            f"renamed file); rename it back to {checkpoint_path(source.parent, step).name} or "
            "move it out of the folder"
        )
    return obj


def model_weights(checkpoint: Mapping[str, Any], *, ema: bool = True) -> dict[str, Tensor]:
    """The model ``state_dict`` stored in a training checkpoint: the EMA weights when present.

    Args:
        checkpoint: a dict from :func:`load_checkpoint`.
        ema: prefer the exponential moving average of the weights (what sampling should use)
            when the run kept one; ``False`` returns the raw trained weights.

    Example:
        >>> import tempfile
        >>> config = {"kind": "ScoreMLP", "kwargs": {"dim": 2, "hidden": 8}}
        >>> trained = ncsn.nets.ScoreMLP(**config["kwargs"])
        >>> with tempfile.TemporaryDirectory() as run:
        ...     state = {"step": 0, "model": trained.state_dict(), "config": config}
        ...     _ = ncsn.training.save_checkpoint(ncsn.training.checkpoint_path(run, 0), state)
        ...     ckpt = ncsn.training.load_checkpoint(run)
        >>> net = ncsn.nets.ScoreMLP(**ckpt["config"]["kwargs"])
        >>> net.load_state_dict(ncsn.training.model_weights(ckpt))
        <All keys matched successfully>
    """
    if not isinstance(checkpoint, Mapping):
        raise TypeError(
            f"checkpoint must be a dict from load_checkpoint; got {type(checkpoint).__name__}"
        )
    weights = checkpoint.get("ema") if check_bool(ema, "ema") else None
    if weights is None:
        weights = checkpoint.get("model")
    if not isinstance(weights, dict):
        raise CheckpointError("checkpoint has no 'model' state dict")
    return weights
