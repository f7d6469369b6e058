"""The one way this project writes a file or a folder: under a temporary name beside it, then renamed
over it (``os.replace``: atomic on one file system), so a reader, a second process or a run killed
midway never sees half of it, and whatever exists under the final name is complete.

Temporary names are hidden, end in ``.tmp`` (never matched as an output) and carry the host, the process
id and a random token, so two processes writing the same output never share a temporary file::

    .<name>.<host>.<pid>.<token>.tmp            a file or folder
    .<stem>.<host>.<pid>.<token>.tmp<suffix>    when the writer needs the suffix (PyAV, savefig, np.save)

What a killed process left is removed by the next writer of the same output on the same host, once that
process is gone (a temporary file of another host is never touched: its process may still be writing).

Every writer uses it: checkpoints, flow folders, feature arrays and manifests, JSON records,
predictions, plots, converted weights, synthetic videos and downloads (whose resumable ``.part`` is
committed with :func:`commit`).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TMP_SUFFIX = ".tmp"


HOST = socket.gethostname().replace(".", "-")


def _parts(path: Path, keep_suffix: bool) -> tuple[str, str]:
    """(prefix, suffix) of the temporary names of ``path``."""
    if keep_suffix and path.suffix:
        return f".{path.stem}.", f"{TMP_SUFFIX}{path.suffix}"
    return f".{path.name}.", TMP_SUFFIX


def temp_path(path: str | os.PathLike, keep_suffix: bool = False, pid: int | None = None) -> Path:
    """A fresh temporary name beside ``path`` (see the module doc); ``pid``: another process's (tests)."""
    path = Path(path)
    prefix, suffix = _parts(path, keep_suffix)
    return path.with_name(f"{prefix}{HOST}.{pid or os.getpid()}.{secrets.token_hex(4)}{suffix}")


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale(path: str | os.PathLike, keep_suffix: bool = False) -> list[Path]:
    """Remove the temporary names of ``path`` left by processes of this host that are gone; returns them."""
    path = Path(path)
    prefix, suffix = _parts(path, keep_suffix)
    removed = []
    if not path.parent.is_dir():
        return removed
    for p in path.parent.glob(f"{prefix}{HOST}.*{suffix}"):
        fields = p.name[len(prefix) : len(p.name) - len(suffix)].split(".")
        if len(fields) == 3 and fields[1].isdigit() and not pid_alive(int(fields[1])):
            _remove(p)
            removed.append(p)
    return removed


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def commit(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Rename the finished ``tmp`` over ``path``; a folder replaces an existing folder of that name."""
    tmp, path = Path(tmp), Path(path)
    if tmp.is_dir() and path.is_dir():
        old = temp_path(path)
        os.replace(path, old)  # move the old one aside first: a folder cannot be renamed over another
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, keep_suffix: bool = False) -> Iterator[Path]:
    """``with atomic_path(out) as tmp: write(tmp)``: ``tmp`` becomes ``out`` when the block ends without an
    error, and is removed when it raises (or the process dies: then only a hidden ``.tmp`` is left)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path, keep_suffix)
    tmp = temp_path(path, keep_suffix)
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    commit(tmp, path)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Like :func:`atomic_path` for a folder: the temporary folder is created; filled, it replaces ``path``."""
    with atomic_path(path) as tmp:
        tmp.mkdir()
        yield tmp


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> Path:
    return write_text(path, json.dumps(obj, indent=indent) + "\n")
