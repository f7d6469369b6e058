"""Extract optical flow for a video file or a folder of videos.

    python -m i3d_train.flow --src <video or folder> --dst <folder> [--method tvl1|farneback]
                             [--workers N] [--fps 25] [--short-side 256]

Each video gets ``<dst>/<path relative to src, without suffix>/`` with ``flow_x_00001.jpg``,
``flow_y_00001.jpg``, ... and ``meta.json``. Videos whose folder is complete are skipped, so an
interrupted run resumes; a video that fails is reported at the end and does not stop the others.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import cv2
from tqdm import tqdm

from i3d_train.flow.extract import METHODS, ExtractOptions, extract_video, is_complete

VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".webm", ".mov", ".gif", ".m4v", ".mpg", ".mpeg"}


def find_videos(src: Path) -> list[tuple[Path, str]]:
    """(video, output name) pairs: a file gives its stem; a folder its videos' relative paths."""
    if src.is_file():
        return [(src, src.stem)]
    if not src.is_dir():
        raise FileNotFoundError(f"--src {src}: no such file or folder")
    vids = sorted(p for p in src.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
    return [(p, p.relative_to(src).with_suffix("").as_posix()) for p in vids]


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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m i3d_train.flow", description=__doc__.splitlines()[0])
    p.add_argument("--src", required=True, type=Path)
    p.add_argument("--dst", required=True, type=Path)
    p.add_argument("--method", choices=METHODS, default="tvl1", help="tvl1 (the paper's) or farneback (fast)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--fps", type=float, default=25.0, help="frame rate to compute flow at (0: the file's own)")
    p.add_argument("--short-side", type=int, default=256, help="resize so the short side is this (0: keep)")
    p.add_argument("--bound", type=float, default=20.0)
    args = p.parse_args(argv)
    opts = ExtractOptions(args.method, args.fps or None, args.short_side or None, args.bound)
    try:
        summary = run(args.src, args.dst, opts, args.workers)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(
        f"flow: {summary['done']} done, {summary['skipped']} skipped (already complete), {len(summary['failed'])} failed; "
        f"{summary['flow_frames']} flow frames, {summary['fps_per_worker']:.1f} frames/s per worker"
    )
    for path, why in summary["failed"]:
        print(f"  failed: {path}: {why}")
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
