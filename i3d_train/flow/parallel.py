"""Flow for many videos over a pool of worker processes (resumable, one failure does not stop the rest)."""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import cv2
from tqdm import tqdm

from i3d_train.flow.extract import ExtractOptions, extract_video, is_complete
from i3d_train.video.files import find_videos


def _work(args: tuple[Path, Path, ExtractOptions]) -> tuple[str, int, float]:
    src, folder, opts = args
    cv2.setNumThreads(1)  # parallel over videos, not inside one
    t = time.perf_counter()
    meta = extract_video(src, folder, opts)
    return str(src), meta["flow_frames"], time.perf_counter() - t


def run(src: Path, dst: Path, opts: ExtractOptions, workers: int) -> dict:
    """Flow for every video under ``src`` into ``dst`` (same relative names); see :func:`extract_many`."""
    return extract_many([(video, dst / name) for video, name in find_videos(src)], opts, workers)


def extract_many(pairs: list[tuple[Path, Path]], opts: ExtractOptions, workers: int) -> dict:
    """Flow of each ``(video, folder)`` pair whose folder is not complete yet, over ``workers``
    processes. Returns counts (done, skipped, failed with reasons, flow frames, frames/s per worker)."""
    jobs = [(video, folder, opts) for video, folder in pairs if not is_complete(folder)]
    skipped = len(pairs) - len(jobs)
    done, failed, frames, busy = 0, [], 0, 0.0
    if not jobs:
        return {"done": 0, "skipped": skipped, "failed": [], "flow_frames": 0, "fps_per_worker": 0.0}
    # spawn, not fork: forking a process whose OpenCV/torch thread pools are running can deadlock.
    with ProcessPoolExecutor(max(1, workers), mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_work, j): j[0] for j in jobs}
        for fut in tqdm(as_completed(futures), total=len(futures), desc=f"flow ({opts.method})", unit="video"):
            try:
                _, n, secs = fut.result()
                done, frames, busy = done + 1, frames + n, busy + secs
            except Exception as e:  # noqa: BLE001 - one bad video must not stop the rest
                failed.append((str(futures[fut]), f"{type(e).__name__}: {e}"))
    return {
        "done": done,
        "skipped": skipped,
        "failed": failed,
        "flow_frames": frames,
        "fps_per_worker": frames / busy if busy else 0.0,
    }
