"""Extract optical flow for a video file or a folder of videos.

    python -m i3d_train.flow --src <video or folder> --dst <folder> [--method tvl1|farneback]
                             [--backend auto|torch|opencv] [--device cpu|cuda] [--batch N]
                             [--workers N] [--fps 25] [--short-side 256]

TV-L1 runs on PyTorch (any device; on CUDA one process per visible GPU) or on OpenCV; ``auto`` picks
torch on a GPU and the faster one on a CPU. Under torchrun / srun each rank takes its share of the videos.
Each video gets ``<dst>/<path relative to src, without suffix>/`` with ``flow_x_00001.jpg``,
``flow_y_00001.jpg``, ... and ``meta.json``. Videos whose folder is complete are skipped, so an
interrupted run resumes; a video that fails is reported at the end and does not stop the others.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from i3d_train.flow.compute import BACKENDS, METHODS, resolve_backend
from i3d_train.flow.parallel import run
from i3d_train.flow.video import ExtractOptions


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m i3d_train.flow", description=__doc__.splitlines()[0])
    p.add_argument("--src", required=True, type=Path)
    p.add_argument("--dst", required=True, type=Path)
    p.add_argument("--method", choices=METHODS, default="tvl1", help="tvl1 (the paper's) or farneback (fast)")
    p.add_argument("--backend", choices=BACKENDS, default="auto", help="TV-L1 implementation (auto: torch on a GPU)")
    p.add_argument(
        "--device", default=None, help="torch backend: cpu, cuda (all GPUs), cuda:1 ... (default: cuda if any)"
    )
    p.add_argument(
        "--batch", type=int, default=None, help="torch backend: frame pairs per batch (default: 1 CPU, 64 GPU)"
    )
    p.add_argument("--workers", type=int, default=1, help="processes (on CUDA: at least one per GPU)")
    p.add_argument("--fps", type=float, default=25.0, help="frame rate to compute flow at (0: the file's own)")
    p.add_argument("--short-side", type=int, default=256, help="resize so the short side is this (0: keep)")
    p.add_argument("--bound", type=float, default=20.0)
    args = p.parse_args(argv)
    if args.batch is not None and args.batch < 1:
        p.error(f"--batch must be at least 1, got {args.batch}")
    opts = ExtractOptions(
        args.method,
        args.fps or None,
        args.short_side or None,
        args.bound,
        backend=args.backend,
        device=args.device,
        batch=args.batch,
    )
    try:
        backend, device = resolve_backend(opts.method, opts.backend, opts.device)
    except (ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if opts.method == "tvl1":
        print(f"flow: tvl1 on {backend}" + (f" ({device})" if backend == "torch" else ""))
    try:
        summary = run(args.src, args.dst, opts, args.workers)
    except FileNotFoundError as e:
        print(f"error: --src {e}", file=sys.stderr)
        return 2
    print(
        f"flow: {summary['done']} done, {summary['elsewhere']} left to another process, {summary['skipped']} skipped "
        f"(already complete), {len(summary['failed'])} failed; "
        f"{summary['flow_frames']} flow frames, {summary['fps_per_worker']:.1f} frames/s per worker"
    )
    for path, why in summary["failed"]:
        print(f"  failed: {path}: {why}")
    return 1 if summary["failed"] else 0
