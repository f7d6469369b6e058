"""TV-L1 backends compared: agreement on real clips, error against known flow, speed on CPU (and GPU).

    python benchmarks/flow_speed.py [--clips ../shared/data/real_clips] [--pairs-per-clip 3]
                                    [--pairs 8] [--size 340x256] [--only agreement,known,speed,memory]
    python benchmarks/flow_speed.py --device cuda [--batches 8,16,32,64,128]

1. Agreement: consecutive frame pairs of each clip in ``--clips`` (decoded at 25 fps, short side 256, grey,
   as ``python -m i3d_train.flow`` does), flow by OpenCV and by the torch backend, both clipped to
   [-20, 20]: mean end-point error between them and the share of pixels within 1 px.
2. Known flow: each backend's mean end-point error against the synthetic cases of
   ``i3d_train.flow.truth`` (translation, rotation, zoom, moving object) at 128x96.
3. Speed at ``--size`` (the paper's short side 256) on synthetic-motion frames: OpenCV with 2 worker
   processes (1 thread each) against the torch backend using both cores (2 processes with 1 thread, one
   process with 2 threads), in frame pairs per second, after the CPU time per pair of each on one thread
   (a figure that holds up better on a shared machine); Farneback per worker for reference. Then the
   memory one torch batch needs (growth of the peak resident memory of a fresh process, batch 1 and 4).
With ``--device cuda``: frames/s at ``--size`` for each batch size and the peak GPU memory.

``--long MINUTES``: peak resident memory of ``python -m i3d_train.flow`` (the user's command, one worker,
``--backend``/``--method`` as given, its process and children sampled every 0.1 s) on a synthetic video of 1
and of MINUTES minutes at ``--size`` (25 fps, a translating texture), with ``--long-pairs`` capping the
frames the torch TV-L1 computes (its memory does not grow with the length either, but a 30-minute video
takes hours on a CPU): the streamed command's memory is flat in the video's length.
"""

from __future__ import annotations

import argparse
import multiprocessing
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import torch

from i3d_train.data.synthetic import SyntheticConfig, render_video
from i3d_train.flow.compute import compute_flow, to_gray
from i3d_train.flow.truth import CASES, epe, synthetic_pair
from i3d_train.flow.tvl1 import tvl1
from i3d_train.video.files import find_videos
from i3d_train.video.reader import probe, read_frames

DEFAULT_CLIPS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real_clips"


def _opencv(f0: np.ndarray, f1: np.ndarray) -> np.ndarray:
    return cv2.optflow.DualTVL1OpticalFlow_create().calc(f0, f1, None)


def _torch(f0: np.ndarray, f1: np.ndarray, device: str = "cpu") -> np.ndarray:
    return tvl1(torch.from_numpy(f0).to(device), torch.from_numpy(f1).to(device)).permute(1, 2, 0).cpu().numpy()


def agreement(clips: Path, pairs_per_clip: int) -> None:
    videos = find_videos(clips) if clips.exists() else []
    if not videos:
        print(f"1. agreement on real clips: no videos in {clips} (skipped)")
        return
    print(f"1. agreement on real clips ({clips}), {pairs_per_clip} consecutive pairs each, clipped to [-20, 20]")
    all_err = []
    for video, name in videos:
        info = probe(video)
        n = min(info.num_frames_at(25.0), 10 + pairs_per_clip + 1)
        gray = to_gray(read_frames(video, np.arange(10, n), 25.0, info), 256)
        errs = []
        for i in range(len(gray) - 1):
            a = np.clip(_opencv(gray[i], gray[i + 1]), -20, 20)
            b = np.clip(_torch(gray[i], gray[i + 1]), -20, 20)
            errs.append(epe(a, b).ravel())
        e = np.concatenate(errs)
        all_err.append(e)
        h, w = gray.shape[1:]
        print(
            f"   {name:<52} {w}x{h}  mean EPE {e.mean():.4f} px  within 1 px {100 * (e <= 1).mean():6.2f}%  "
            f"max {e.max():.2f}"
        )
    e = np.concatenate(all_err)
    print(f"   all clips: mean EPE {e.mean():.4f} px (goal <= 0.25), within 1 px {100 * (e <= 1).mean():.2f}%")


def known_flow() -> None:
    print("2. mean EPE against the known flow (128x96): OpenCV | torch")
    for case in CASES:
        f0, f1, truth = synthetic_pair(case, 96, 128)
        a, b = epe(_opencv(f0, f1), truth).mean(), epe(_torch(f0, f1), truth).mean()
        print(f"   {case:<10} {a:.4f} | {b:.4f} px  (torch - OpenCV {b - a:+.4f})")


def _frames(w: int, h: int, n: int) -> np.ndarray:
    cfg = SyntheticConfig(num_frames=n, height=h + h % 2, width=w + w % 2)
    return np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in render_video(cfg, 0, 0)])[:, :h, :w]


def _init(threads: int) -> None:
    cv2.setNumThreads(1)
    torch.set_num_threads(threads)


def _chunk(args: tuple[str, np.ndarray, int]) -> float:
    backend, gray, batch = args
    t = time.perf_counter()
    compute_flow(gray, "tvl1", backend=backend, device="cpu", batch=batch)
    return time.perf_counter() - t


def _parallel(backend: str, gray: np.ndarray, procs: int, threads: int, batch: int) -> float:
    """Pairs/s over ``procs`` processes, each taking a consecutive slice of the pairs."""
    n = len(gray) - 1
    bounds = np.linspace(0, n, procs + 1).round().astype(int)
    jobs = [(backend, gray[bounds[i] : bounds[i + 1] + 1], batch) for i in range(procs)]
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(procs, mp_context=ctx, initializer=_init, initargs=(threads,)) as pool:
        list(pool.map(_init_probe, range(procs)))  # start the processes before timing
        t = time.perf_counter()
        list(pool.map(_chunk, jobs))
        return n / (time.perf_counter() - t)


def _init_probe(_: int) -> int:
    return 0


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _rss_child(batch: int, w: int, h: int) -> None:
    """Print the peak resident memory one tvl1 call adds, in bytes (Linux: VmHWM after a reset)."""
    from i3d_train.flow.tvl1 import TVL1Params

    gray = torch.from_numpy(_frames(w, h, batch + 1))
    quick = TVL1Params(warps=1, inner_iterations=2, outer_iterations=1)  # same buffers, few iterations
    tiny = gray[:2, :32, :32]
    tvl1(tiny[:1], tiny[1:], quick)  # load the libraries, on frames too small to matter
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current size
    base = _status_kib("VmRSS")
    tvl1(gray[:batch], gray[1 : batch + 1], quick)
    print((_status_kib("VmHWM") - base) * 1024)


def memory(w: int, h: int) -> None:
    got = {}
    for b in (1, 4):
        cmd = [sys.executable, __file__, "--rss-child", str(b), "--size", f"{w}x{h}"]
        got[b] = int(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()[-1])
    per_pair = (got[4] - got[1]) / 3
    print(
        f"   memory, torch on CPU at {w}x{h}: peak resident growth batch 1 {got[1] / 2**20:.0f} MiB, batch 4 "
        f"{got[4] / 2**20:.0f} MiB: about {per_pair / 2**20:.0f} MiB per pair in a batch"
    )


def long_video(path: Path, minutes: float, w: int, h: int, fps: int = 25) -> int:
    """A translating texture, ``minutes`` long at ``w x h``, written frame by frame (never all in memory)."""
    from fractions import Fraction

    import av

    n = int(minutes * 60 * fps)
    rng = np.random.default_rng(0)
    tex = cv2.resize(rng.integers(0, 256, (h // 8, w // 4 + 8, 3), dtype=np.uint8), (2 * w, h))
    with av.open(str(path), mode="w") as c:
        st = c.add_stream("libx264", rate=fps)
        st.width, st.height, st.pix_fmt = w, h, "yuv420p"
        st.options = {"preset": "ultrafast", "g": "250"}
        for i in range(n):
            x = (2 * i) % w
            fr = av.VideoFrame.from_ndarray(np.ascontiguousarray(tex[:, x : x + w]), format="rgb24")
            fr.pts, fr.time_base = i, Fraction(1, fps)
            c.mux(st.encode(fr))
        c.mux(st.encode())
    return n


def long_memory(minutes: float, w: int, h: int, backend: str, method: str, cap: int) -> None:
    import os
    import tempfile

    from extract_speed import peak_memory  # benchmarks/ is the script's folder: on sys.path

    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(prefix="flow-long-") as tmp:
        for m in sorted({1.0, minutes}):
            src = Path(tmp) / f"src{m:g}"
            src.mkdir()
            t = time.perf_counter()
            n = long_video(src / "long.mp4", m, w, h)
            made = time.perf_counter() - t
            cmd = [sys.executable, "-m", "i3d_train.flow", "--src", str(src), "--dst", str(Path(tmp) / f"flow{m:g}"),
                   "--method", method, "--backend", backend, "--short-side", "0", "--workers", "1"]  # fmt: skip
            if cap and method == "tvl1" and backend == "torch":
                cmd += ["--fps", f"{25 * min(1.0, cap / n):.6f}"]  # fewer frames of the same length of video
            peak, ran, code, out, err = peak_memory(cmd, {**os.environ, "PYTHONPATH": str(root)})
            if code != 0:
                raise SystemExit(f"flow failed: {err[-2000:]}")
            line = [x for x in out.splitlines() if x.startswith("flow: ") and " done" in x][-1]
            print(
                f"{m:g}-minute video ({n} frames {w}x{h}, written in {made:.0f} s), {method} on {backend}: "
                f"peak memory {peak / 2**30:.2f} GiB in {ran:.0f} s [{line}]",
                flush=True,
            )


def speed(w: int, h: int, pairs: int) -> None:
    gray = _frames(w, h, pairs + 1)
    print(f"3. speed at {w}x{h}, {pairs} frame pairs, OpenCV {cv2.__version__}, torch {torch.__version__}")
    # CPU time per pair on one thread: what each backend costs, whatever else runs on the machine
    cpu = {}
    torch.set_num_threads(1)
    for backend in ("opencv", "torch"):
        t = time.process_time()
        compute_flow(gray, "tvl1", backend=backend, device="cpu", batch=1)
        cpu[backend] = (time.process_time() - t) / pairs
    print(
        f"   CPU time per pair, 1 thread: OpenCV {cpu['opencv']:.2f} s, torch {cpu['torch']:.2f} s "
        f"({cpu['opencv'] / cpu['torch']:.2f}x less for torch)"
    )
    cv2_2 = _parallel("opencv", gray, 2, 1, 1)
    print(f"   OpenCV TV-L1, 2 workers x 1 thread        {cv2_2:6.2f} frames/s")
    rows = {}
    for procs, threads, batch in ((2, 1, 1), (1, 2, 1), (1, 2, 2)):
        rows[(procs, threads, batch)] = fps = _parallel("torch", gray, procs, threads, batch)
        print(
            f"   torch TV-L1, {procs} process{'es' if procs > 1 else '  '} x {threads} thread{'s' if threads > 1 else ' '}, "
            f"batch {batch}  {fps:6.2f} frames/s  ({fps / cv2_2:.2f}x OpenCV)"
        )
    best = max(rows, key=rows.get)
    print(f"   fastest on this CPU: torch {best[0]} x {best[1]}, batch {best[2]}: {rows[best] / cv2_2:.2f}x OpenCV")
    t = time.perf_counter()
    compute_flow(gray, "farneback")
    print(f"   Farneback (OpenCV), 1 worker               {pairs / (time.perf_counter() - t):6.2f} frames/s")


def gpu(w: int, h: int, batches: list[int], device: str) -> list[dict]:
    """Frames/s and peak memory of the torch TV-L1 per batch size (printed, and returned)."""
    rows = []
    gray = torch.from_numpy(_frames(w, h, max(batches) + 1)).to(device)
    print(f"GPU {torch.cuda.get_device_name(device)}, {w}x{h}, torch {torch.__version__}")
    tvl1(gray[:2], gray[1:3])  # warm-up
    for b in batches:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        t = time.perf_counter()
        tvl1(gray[:b], gray[1 : b + 1])
        torch.cuda.synchronize(device)
        secs = time.perf_counter() - t
        peak = torch.cuda.max_memory_allocated(device)
        print(
            f"   batch {b:4d}: {b / secs:8.1f} frames/s, peak memory {peak / 2**30:.2f} GiB ({peak / b / 2**20:.0f} MiB/pair)"
        )
        rows.append({"batch": b, "frames_per_s": round(b / secs, 1), "peak_gib": round(peak / 2**30, 3)})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", type=Path, default=DEFAULT_CLIPS, help="folder of real videos for the agreement")
    p.add_argument("--pairs-per-clip", type=int, default=3)
    p.add_argument("--size", default="340x256", help="WxH for the speed runs")
    p.add_argument("--pairs", type=int, default=8, help="frame pairs per speed run")
    p.add_argument("--only", default="agreement,known,speed", help="comma-separated sections to run")
    p.add_argument("--device", default="cpu", help="cuda: the GPU mode (speed per batch size, peak memory)")
    p.add_argument("--batches", default="8,16,32,64,128")
    p.add_argument("--rss-child", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--long", type=float, default=0, help="minutes: the flow command's peak memory on a long video")
    p.add_argument("--backend", default="opencv", help="with --long: opencv | torch")
    p.add_argument("--method", default="farneback", help="with --long: farneback | tvl1")
    p.add_argument("--long-pairs", type=int, default=200, help="with --long, torch TV-L1: frames computed at most")
    args = p.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    if args.long:
        long_memory(args.long, w, h, args.backend, args.method, args.long_pairs)
        return
    if args.rss_child:
        _rss_child(args.rss_child, w, h)
        return
    cv2.setNumThreads(1)
    if torch.device(args.device).type == "cuda":
        gpu(w, h, [int(b) for b in args.batches.split(",")], args.device)
        return
    only = args.only.split(",")
    if "agreement" in only:
        agreement(args.clips, args.pairs_per_clip)
    if "known" in only:
        known_flow()
    if "speed" in only:
        speed(w, h, args.pairs)
    if "speed" in only or "memory" in only:
        memory(w, h)


if __name__ == "__main__":
    main()
