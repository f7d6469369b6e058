"""Frames of many videos over worker processes: resumable, safe to run several times at once on one
``--dst``, one bad video does not stop the rest.

Each video is taken under its lock (``<dst>/<name>.lock``, :func:`i3d_train.runtime.sharding.try_lock`),
so any number of commands on one output folder (same machine or other nodes) do every video once: a
video another process holds, or finished meanwhile, is counted as left to it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
from tqdm import tqdm

from i3d_train.frames.extract import FrameOptions, extract_frames, is_complete
from i3d_train.runtime.pool import outcomes
from i3d_train.runtime.sharding import try_lock
from i3d_train.video.files import is_video


def list_videos(src: Path, dst: Path | None = None) -> list[tuple[Path, str]]:
    """``(video, name)`` pairs: a file gives its stem; a folder every video under it (sorted), named by its
    path relative to ``src`` without suffix: the rule training uses for ``<data.frames_root>/<name>``
    (``i3d_train.data.datamodule.attach_folders``). Hidden folders (a writer's temporary ones) and
    ``dst`` itself, when it lies inside ``src``, are not walked: a re-run does not list every frame."""
    src = Path(src)
    if src.is_file():
        return [(src, src.stem)]
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: no such file or folder")
    skip = Path(dst).resolve() if dst is not None else None
    out = []
    for dirpath, dirnames, filenames in os.walk(src, followlinks=True):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and (here / d).resolve() != skip]
        for f in filenames:
            p = here / f
            if is_video(f) and not f.startswith(".") and p.is_file():
                out.append((p, p.relative_to(src).with_suffix("").as_posix()))
    return sorted(out)


def init_worker() -> None:
    cv2.setNumThreads(1)  # parallel over videos, not inside one


def work(job: tuple[Path, Path, FrameOptions, int]) -> tuple[str, int | None, float]:
    """``(video, frames written, seconds)``; frames ``None`` when another process holds the video's lock or
    has finished it between the listing and the lock: it is left to that process."""
    src, folder, opts, threads = job
    t = time.perf_counter()
    lock = try_lock(folder.parent, folder.name)
    if lock is None:
        return str(src), None, 0.0
    try:
        if is_complete(folder):
            return str(src), None, 0.0
        meta = extract_frames(src, folder, opts, progress=lock.refresh, threads=threads)
    finally:
        lock.release()
    return str(src), meta["frames"], time.perf_counter() - t


def plan(src: Path, dst: Path) -> tuple[list[tuple[Path, Path]], list[tuple[str, str]]]:
    """``((video, folder) pairs, clashes)`` for every video under ``src`` (:func:`list_videos`); two videos
    that would share a folder (``a.avi`` and ``a.mp4``): the first is taken, the other is a clash
    ``(video, why)``, counted as failed. ``FileNotFoundError`` when ``src`` holds no video."""
    videos = list_videos(src, dst)
    if not videos:
        raise FileNotFoundError(f"{src}: no videos in it")
    pairs, clashes, seen = [], [], {}
    for video, name in videos:
        if name in seen:
            clashes.append((str(video), f"same frame folder {dst / name} as {seen[name]}"))
        else:
            seen[name] = video
            pairs.append((video, dst / name))
    return pairs, clashes


def run(src: Path, dst: Path, opts: FrameOptions, workers: int) -> dict:
    """Frames of every video under ``src`` into ``dst`` (same relative names): :func:`plan`, then
    :func:`extract_many`; the clashes are among the failed."""
    pairs, clashes = plan(src, dst)
    summary = extract_many(pairs, opts, workers)
    summary["failed"] = clashes + summary["failed"]
    return summary


def extract_many(pairs: list[tuple[Path, Path]], opts: FrameOptions, workers: int) -> dict:
    """Frames of each ``(video, folder)`` pair whose folder is not complete yet, over ``workers`` processes.
    Returns counts: done, left to another process, skipped (already complete), failed (with reasons),
    frames written, frames per second per worker."""
    workers = max(1, workers)
    threads = 0 if workers == 1 else max(1, (os.cpu_count() or 1) // workers)
    jobs = [(video, folder, opts, threads) for video, folder in pairs if not is_complete(folder)]
    done, elsewhere, failed, frames, busy = 0, 0, [], 0, 0.0
    for video, outcome in tqdm(run_jobs(jobs, workers), total=len(jobs), desc="frames", unit="video"):
        if isinstance(outcome, Exception):  # one bad video must not stop the rest
            failed.append((str(video), f"{type(outcome).__name__}: {outcome}"))
        elif outcome[1] is None:
            elsewhere += 1
        else:
            done, frames, busy = done + 1, frames + outcome[1], busy + outcome[2]
    return {
        "done": done,
        "elsewhere": elsewhere,
        "skipped": len(pairs) - len(jobs),
        "failed": failed,
        "frames": frames,
        "fps_per_worker": frames / busy if busy else 0.0,
    }


def run_jobs(jobs: list, workers: int):
    """Yield ``(video, outcome)`` per job as it ends: :func:`work`'s result or the exception it raised. One
    worker runs the jobs in this process; more, a pool of spawned processes (not forked: forking a
    process whose decoder or OpenCV threads run can deadlock)."""
    yield from outcomes(work, jobs, min(workers, len(jobs)), workers == 1 or len(jobs) <= 1, init_worker)
