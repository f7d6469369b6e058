"""The one atomic-write helper every writer uses (i3d_train/runtime/atomic.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from i3d_train.runtime.atomic import HOST, atomic_dir, atomic_path, remove_stale, temp_path, write_json

DEAD_PID = 2**22 + 1  # above Linux's largest pid_max: no such process
ROOT = Path(__file__).resolve().parents[1]


def test_an_error_inside_leaves_the_old_file_and_no_temporary(tmp_path):
    out = tmp_path / "m.json"
    write_json(out, {"v": 1})
    with pytest.raises(RuntimeError), atomic_path(out) as tmp:
        tmp.write_text('{"v": 2, "half')
        raise RuntimeError("killed midway")
    assert json.loads(out.read_text()) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]


def test_two_writers_never_share_a_temporary_name(tmp_path):
    a, b = temp_path(tmp_path / "x.npy", keep_suffix=True), temp_path(tmp_path / "x.npy", keep_suffix=True)
    assert a != b and a.suffix == ".npy" and a.name.startswith(".x.") and f".{os.getpid()}." in a.name
    assert temp_path(tmp_path / "x.json").name.endswith(".tmp")


def test_a_folder_replaces_the_folder_of_that_name(tmp_path):
    out = tmp_path / "video"
    for n in (3, 1):
        with atomic_dir(out) as tmp:
            for i in range(n):
                (tmp / f"{i}.jpg").write_bytes(b"x")
    assert sorted(p.name for p in out.iterdir()) == ["0.jpg"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["video"]


def test_what_a_dead_process_left_is_removed_and_nothing_else(tmp_path):
    out = tmp_path / "clip.mp4"
    dead = temp_path(out, keep_suffix=True, pid=DEAD_PID)
    alive = temp_path(out, keep_suffix=True, pid=os.getppid())  # a process that exists
    elsewhere = tmp_path / f".clip.other-host.{DEAD_PID}.abcd1234.tmp.mp4"  # another host's: may be writing
    other_output = temp_path(tmp_path / "clip2.mp4", keep_suffix=True, pid=DEAD_PID)
    for p in (dead, alive, elsewhere, other_output):
        p.write_bytes(b"partial")
    assert remove_stale(out, keep_suffix=True) == [dead]
    assert not dead.exists() and alive.exists() and elsewhere.exists() and other_output.exists()
    assert HOST not in elsewhere.name


def test_sigkill_while_writing_leaves_nothing_that_counts(tmp_path):
    """A process killed (SIGKILL) inside the block: no file under the final name, only a hidden temporary,
    which the next writer of that output removes."""
    out = tmp_path / "features.npy"
    code = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from i3d_train.runtime.atomic import atomic_path\n"
        f"with atomic_path(Path({str(out)!r}), keep_suffix=True) as tmp:\n"
        "    tmp.write_bytes(b'x' * 1000)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == -9
    left = list(tmp_path.iterdir())
    assert not out.exists() and len(left) == 1 and left[0].name.startswith(".features.")
    with atomic_path(out, keep_suffix=True) as tmp:
        tmp.write_bytes(b"whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features.npy"] and out.read_bytes() == b"whole"
