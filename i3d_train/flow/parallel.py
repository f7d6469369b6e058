"""Flow for many videos over a pool of worker processes (resumable, one failure does not stop the rest):
CPU workers, or one process per GPU for the torch backend; under torchrun / SLURM each rank takes its share."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import time
from pathlib import Path

import cv2
import torch
from tqdm import tqdm

from i3d_train.flow.compute import resolve_backend
from i3d_train.flow.store import is_complete
from i3d_train.flow.video import ExtractOptions, extract_video
from i3d_train.runtime.pool import outcomes
from i3d_train.runtime.sharding import launcher_shard, select, try_lock
from i3d_train.video.files import find_videos

_DEVICE: str | None = None  # the device of this worker process (torch backend), set by _init_worker


def _init_worker(devices, threads: int) -> None:
    global _DEVICE
    cv2.setNumThreads(1)  # parallel over videos, not inside one
    torch.set_num_threads(threads)
    _DEVICE = devices.get() if devices is not None else None


def _work(args: tuple[Path, Path, ExtractOptions]) -> tuple[str, int | None, float]:
    """``(video, flow frames, seconds)``; flow frames ``None`` when another process holds the video's
    lock (``<folder>.lock``, the project's one lock: :func:`i3d_train.runtime.sharding.try_lock`) or has
    finished it meanwhile: it is left to that process."""
    src, folder, opts = args
    if _DEVICE is not None:
        opts = dataclasses.replace(opts, device=_DEVICE)
    t = time.perf_counter()
    lock = try_lock(folder.parent, folder.name)
    if lock is None:
        return str(src), None, 0.0
    try:
        if is_complete(folder):  # finished by another process between the listing and the lock
            return str(src), None, 0.0
        meta = extract_video(src, folder, opts, progress=lock.refresh)
    finally:
        lock.release()
    return str(src), meta["flow_frames"], time.perf_counter() - t


def local_rank(env: dict[str, str] | None = None) -> int:
    """The GPU index of this process on its node as the launcher set it (torchrun's ``LOCAL_RANK``,
    SLURM's ``SLURM_LOCALID``), else 0."""
    env = os.environ if env is None else env
    return int(env.get("LOCAL_RANK", env.get("SLURM_LOCALID", "0")))


def run(src: Path, dst: Path, opts: ExtractOptions, workers: int) -> dict:
    """Flow for every video under ``src`` into ``dst`` (same relative names); see :func:`extract_many`.
    Under torchrun or SLURM this process takes its rank's share of the videos (the project's
    :mod:`i3d_train.runtime.sharding`: by name, stable under reordering), on GPU ``LOCAL_RANK`` when the
    device is ``cuda``."""
    videos = find_videos(src)
    shard, origin = launcher_shard()
    if shard.count > 1:
        videos = select(videos, shard)
        if opts.device in (None, "cuda") and torch.cuda.is_available():
            opts = dataclasses.replace(opts, device=f"cuda:{local_rank()}")
        print(f"flow: shard {shard} from {origin}: {len(videos)} videos")
    return extract_many([(video, dst / name) for video, name in videos], opts, workers)


def plan_workers(opts: ExtractOptions, workers: int) -> tuple[int, list[str] | None, int]:
    """``(processes, device per process or None, torch threads per process)``. The torch backend on a
    GPU: one process per visible GPU when the device is plain ``cuda`` (``workers`` above that share
    the GPUs round-robin); on a CPU the cores are shared out between the processes."""
    workers = max(1, workers)
    backend, device = resolve_backend(opts.method, opts.backend, opts.device)
    cores = os.cpu_count() or 1
    if backend != "torch" or torch.device(device).type != "cuda":
        return workers, None, max(1, cores // workers)
    gpus = [f"cuda:{i}" for i in range(torch.cuda.device_count())] if device == "cuda" else [device]
    procs = max(workers, len(gpus))
    return procs, [gpus[i % len(gpus)] for i in range(procs)], max(1, cores // procs)


def extract_many(pairs: list[tuple[Path, Path]], opts: ExtractOptions, workers: int) -> dict:
    """Flow of each ``(video, folder)`` pair whose folder is not complete yet, over ``workers``
    processes; any number of such processes may share one output folder (same machine, other nodes,
    torchrun ranks, ``data.flow_extract`` on several ranks): each video is taken by one, under its lock.
    Returns counts (done, left to another process, skipped, failed with reasons, flow frames, frames/s per
    worker)."""
    jobs = [(video, folder, opts) for video, folder in pairs if not is_complete(folder)]
    done, failed, frames, busy, elsewhere = 0, [], 0, 0.0, 0
    if jobs:
        outcomes = _run(jobs, *plan_workers(opts, workers))
        for video, outcome in tqdm(outcomes, total=len(jobs), desc=f"flow ({opts.method})", unit="video"):
            if isinstance(outcome, Exception):  # one bad video must not stop the rest
                failed.append((str(video), f"{type(outcome).__name__}: {outcome}"))
            elif outcome[1] is None:
                elsewhere += 1
            else:
                _, n, secs = outcome
                done, frames, busy = done + 1, frames + n, busy + secs
    return {
        "done": done,
        "elsewhere": elsewhere,  # left to another process (it held the video's lock)
        "skipped": len(pairs) - len(jobs),
        "failed": failed,
        "flow_frames": frames,
        "fps_per_worker": frames / busy if busy else 0.0,
    }


def _run(jobs: list, procs: int, devices: list[str] | None, threads: int):
    """Yield ``(video, outcome)`` per job as it ends: ``_work``'s result, or the exception it raised.
    One CPU worker runs the jobs in this process (a spawned one would first spend seconds importing
    torch); more, or GPUs, a pool of spawned processes."""
    queue = None
    if devices:
        queue = multiprocessing.get_context("spawn").Queue()
        for d in devices:
            queue.put(d)
    yield from outcomes(_work, jobs, procs, procs == 1 and not devices, _init_worker, (queue, threads))
