"""Peak memory of ``python -m i3d_train.frames`` on a long video: flat in the video's length.

    python benchmarks/frames_memory.py [--long 10] [--size 64x48]

Writes a synthetic video of 1 minute and of ``--long`` minutes (25 fps, a translating texture, at
``--size``) and runs the frame command on each (one worker, its process and children sampled every
0.1 s), printing the peak resident memory, the time and the command's closing line. A command that
held the video's frames would grow with the length; the streamed one (one frame at a time) does not.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from extract_speed import peak_memory  # benchmarks/ is the script's folder: on sys.path
from flow_speed import long_video

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--long", type=float, default=10.0, help="minutes of the long video")
    p.add_argument("--size", default="64x48", help="WxH of the videos")
    args = p.parse_args()
    w, h = (int(x) for x in args.size.split("x"))
    with tempfile.TemporaryDirectory(prefix="frames-long-") as tmp:
        for minutes in sorted({1.0, args.long}):
            src = Path(tmp) / f"src{minutes:g}"
            src.mkdir()
            t = time.perf_counter()
            n = long_video(src / "long.mp4", minutes, w, h)
            made = time.perf_counter() - t
            cmd = [sys.executable, "-m", "i3d_train.frames", "--src", str(src), "--dst", str(Path(tmp) / f"frames{minutes:g}"),
                   "--workers", "1"]  # fmt: skip
            peak, ran, code, out, err = peak_memory(cmd, {**os.environ, "PYTHONPATH": str(ROOT)})
            if code != 0:
                raise SystemExit(f"frames failed: {err[-2000:]}")
            line = [x for x in out.splitlines() if x.startswith("frames: ")][-1]
            print(f"{minutes:g}-minute video ({n} frames {w}x{h}, written in {made:.0f} s): peak memory "
                  f"{peak / 2**30:.2f} GiB in {ran:.0f} s [{line}]", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
