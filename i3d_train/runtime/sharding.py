"""Splitting a video list over processes, GPUs and nodes, and making sure no video is written twice.

- **Which share**: ``extract.shard=i/n`` by hand, else the launcher's rank and world size: ``torchrun``
  (``RANK`` / ``WORLD_SIZE``), SLURM (``SLURM_PROCID`` / ``SLURM_NTASKS``, which is what Hydra's submitit
  launcher starts: one task per GPU), else ``0/1``.
- **Shards by name, not by position**: a video belongs to shard ``sha1(name) mod n``. Shards are
  disjoint and cover the list, and a video stays in its shard when the list is reordered, extended or
  filtered, so a re-run after editing the list resumes instead of reshuffling.
- **A lock per video**: before a process works on a video it creates ``<output>/<name>.lock`` with
  ``O_CREAT | O_EXCL`` (atomic on local file systems and NFSv3+), holding its pid, host and start time.
  A second process (an overlapping shard, the same list started twice) sees the lock and moves on. A
  lock is stale, and is taken over, when its process is gone (same host: the pid no longer exists) or
  when it has not been refreshed for ``stale_after_s`` seconds (another host; the holder touches it
  while it works).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from i3d_train.runtime.atomic import pid_alive

LOCK_SUFFIX = ".lock"


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, name: str) -> bool:
        return shard_of(name, self.count) == self.index


def shard_of(name: str, count: int) -> int:
    """The shard of a video, from its output name only (stable under reordering of the list)."""
    return int.from_bytes(hashlib.sha1(name.encode()).digest()[:8], "big") % count


def parse_shard(spec: str) -> Shard:
    """``"i/n"`` -> ``Shard(i, n)``; a one-line ``ValueError`` for anything else."""
    try:
        i, n = (int(x) for x in str(spec).split("/"))
    except ValueError:
        raise ValueError(f"shard={spec!r}: expected i/n with 0 <= i < n, e.g. 0/4") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"shard={spec!r}: expected i/n with 0 <= i < n, e.g. 0/4")
    return Shard(i, n)


def launcher_shard(env: dict[str, str] | None = None) -> tuple[Shard, str]:
    """``(shard, where it came from)`` from torchrun's or SLURM's environment, else ``0/1``."""
    env = os.environ if env is None else env
    if "RANK" in env and "WORLD_SIZE" in env:
        return Shard(int(env["RANK"]), int(env["WORLD_SIZE"])), "torchrun (RANK/WORLD_SIZE)"
    if "SLURM_PROCID" in env and "SLURM_NTASKS" in env:
        return Shard(int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"])), "SLURM (SLURM_PROCID/SLURM_NTASKS)"
    return Shard(0, 1), "single process"


def resolve_shard(spec: str | None, env: dict[str, str] | None = None) -> tuple[Shard, str]:
    """``extract.shard`` when given, else the launcher's."""
    if spec not in (None, "", "auto"):
        return parse_shard(spec), "extract.shard"
    return launcher_shard(env)


def select(items: list[tuple[Path, str]], shard: Shard) -> list[tuple[Path, str]]:
    """The ``(video, name)`` pairs of ``shard``, in the list's order."""
    return [(v, name) for v, name in items if shard.owns(name)]


@dataclass
class VideoLock:
    """``<out_dir>/<name>.lock``: held while one process extracts one video."""

    path: Path
    owner_pid: int

    def refresh(self) -> None:
        """Show that the holder is alive (another host judges staleness by the file's age)."""
        with contextlib.suppress(FileNotFoundError):
            os.utime(self.path)

    def release(self) -> None:
        try:
            holder = json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return
        if holder.get("pid") == self.owner_pid and holder.get("host") == socket.gethostname():
            self.path.unlink(missing_ok=True)


def lock_path(out_dir: str | Path, name: str) -> Path:
    return Path(out_dir) / f"{name}{LOCK_SUFFIX}"


def read_lock(path: Path) -> tuple[str, float] | None:
    """``(content, age in seconds)`` of a lock file, ``None`` if it is gone."""
    try:
        content = path.read_text()
        return content, time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return None


def is_stale(content: str, age: float, stale_after_s: float) -> bool:
    """True when a lock's holder is gone (same host: pid not running) or silent for too long."""
    try:
        holder = json.loads(content)
    except json.JSONDecodeError:  # being written right now, or garbage: judge by age alone
        holder = {}
    if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int):
        return not pid_alive(holder["pid"])
    return age > stale_after_s


def try_lock(out_dir: str | Path, name: str, owner_pid: int | None = None, stale_after_s: float = 600.0):
    """A :class:`VideoLock` if this process may work on ``name`` now, else ``None`` (someone else is).

    ``owner_pid``: the process that will release the lock (a DataLoader worker takes it on behalf of the
    main process, which writes the outputs); default this process.
    """
    path = lock_path(out_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    owner_pid = os.getpid() if owner_pid is None else owner_pid
    record = json.dumps({"pid": owner_pid, "host": socket.gethostname(), "started": time.time()})
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            seen = read_lock(path)
            if seen is None:
                continue
            if not is_stale(*seen, stale_after_s):
                return None
            # Take a stale lock over: move it aside (atomic), check that what was moved is the stale lock
            # judged above and not a fresh one another contender just made (put that back), then create
            # ours with O_EXCL again.
            grave = path.with_name(f"{path.name}.stale.{socket.gethostname()}.{os.getpid()}")
            try:
                os.rename(path, grave)
            except FileNotFoundError:
                continue
            moved = read_lock(grave)
            if moved is not None and moved[0] != seen[0]:
                with contextlib.suppress(FileExistsError):
                    os.link(grave, path)
                grave.unlink(missing_ok=True)
                return None
            grave.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            f.write(record)
        return VideoLock(path, owner_pid)
    return None
