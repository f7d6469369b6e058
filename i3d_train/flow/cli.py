"""Extract optical flow for a video file or a folder of videos.

    python -m i3d_train.flow --src <video or folder> --dst <folder> [--method tvl1|farneback]
                             [--workers N] [--fps 25] [--short-side 256]

Each video gets ``<dst>/<path relative to src, without suffix>/`` with ``flow_x_00001.jpg``,
``flow_y_00001.jpg``, ... and ``meta.json``. Videos whose folder is complete are skipped, so an
interrupted run resumes; a video that fails is reported at the end and does not stop the others.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from i3d_train.flow.extract import METHODS, ExtractOptions
from i3d_train.flow.parallel import run


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
        print(f"error: --src {e}", file=sys.stderr)
        return 2
    print(
        f"flow: {summary['done']} done, {summary['skipped']} skipped (already complete), {len(summary['failed'])} failed; "
        f"{summary['flow_frames']} flow frames, {summary['fps_per_worker']:.1f} frames/s per worker"
    )
    for path, why in summary["failed"]:
        print(f"  failed: {path}: {why}")
    return 1 if summary["failed"] else 0
