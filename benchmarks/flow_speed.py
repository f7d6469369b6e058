"""Optical-flow extraction speed, frames per second for one worker (one OpenCV thread), per method.

    python benchmarks/flow_speed.py [--size 340x256] [--pairs 10]

Flow is computed on grayscale frames of a synthetic-motion video at the given size (the paper's
short side 256), the cost that `python -m i3d_train.flow` pays per video besides decoding.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from i3d_train.data.synthetic import SyntheticConfig, render_video
from i3d_train.flow.extract import compute_flow


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="340x256", help="WxH")
    p.add_argument("--pairs", type=int, default=10)
    args = p.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    cv2.setNumThreads(1)
    cfg = SyntheticConfig(num_frames=args.pairs + 1, height=h + h % 2, width=w + w % 2)
    gray = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in render_video(cfg, 0, 0)])
    print(f"{w}x{h}, {args.pairs} frame pairs, 1 OpenCV thread, OpenCV {cv2.__version__}")
    for method in ("tvl1", "farneback"):
        t = time.perf_counter()
        compute_flow(gray, method)
        secs = time.perf_counter() - t
        print(f"  {method:<10} {args.pairs / secs:8.2f} frames/s per worker")


if __name__ == "__main__":
    main()
