"""Feature extraction: is decoding hidden behind the model? And is memory bounded on long videos?

    python benchmarks/extract_speed.py                          # CPU: RGB from videos, flow from folders
    python benchmarks/extract_speed.py --device cuda --videos 8 --frames 600 --size 224 --workers 8
    python benchmarks/extract_speed.py --memory 30              # peak memory of a synthetic 30-minute video

Speed: synthetic videos (and their stored flow folders, written first with ``python -m i3d_train.flow``'s
code) go through the overlapped pipeline (:mod:`i3d_train.extract_pipeline`, ``--workers`` DataLoader
workers) end to end, and the model alone runs on the same snippets, already prepared in memory. Printed:
snippets/s of each and their ratio (1.0: decoding entirely hidden), for RGB from video files and for flow
from folders.

Memory: ``python extract.py`` (the user's command, RGB, small frames, ``--memory-step`` frames between
snippets to keep it short) on a synthetic low-resolution video of ``--memory`` minutes and on a
1-minute one; the peak resident memory of the whole process tree (main process and workers, summed,
sampled every 0.1 s from /proc) is printed for both.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from i3d_train.data.synthetic import SyntheticConfig, render_video, write_video
from i3d_train.extract_pipeline import Job, SnippetBatches, StreamSettings, Work, Writer, run_pipeline, to_model_input
from i3d_train.flow.extract import ExtractOptions, extract_video
from i3d_train.inference import prepare
from i3d_train.models.i3d import InceptionI3d

ROOT = Path(__file__).resolve().parents[1]


def never(_: str) -> bool:
    return False


def speed(args, tmp: Path, modality: str) -> None:
    device = torch.device(args.device)
    videos, jobs = tmp / "videos", []
    for i in range(args.videos):
        v = videos / f"v{i}.mp4"
        if not v.exists():
            cfg = SyntheticConfig(num_frames=args.frames, height=args.size + 32, width=args.size + 64, seed=i)
            write_video(v, render_video(cfg, i % 5, i % 3), 25)
        flow_dir = tmp / "flow" / f"v{i}"
        if modality == "flow" and not (flow_dir / "meta.json").exists():
            extract_video(v, flow_dir, ExtractOptions(method="farneback", short_side=args.size + 32))
        jobs.append(Job(v, f"v{i}", flow_dir if modality == "flow" else None))
    s = StreamSettings(
        fps=25.0,
        stack=16,
        step=args.step,
        short_side=args.size + 32,
        crop_size=args.size,
        batch_size=args.batch,
        flow_source="folder",
    )
    model = prepare(InceptionI3d(400, 3 if modality == "rgb" else 2).to(device), precision=args.precision)

    def work(out: Path) -> Work:
        return Work(jobs, s, [modality], out, os.getpid(), never)

    # the model alone, on the same snippets prepared beforehand
    items = list(SnippetBatches(work(tmp / f"prepared_{modality}_{time.time_ns()}")))  # (its locks stay there)
    errors = [i["error"] for i in items if i["kind"] == "error"]
    if errors:
        raise SystemExit(f"{modality}: {errors[0]}")
    batches = [b for b in items if b["kind"] == "batch"]
    n = sum(len(b["names"]) for b in batches)

    def model_alone() -> float:
        t = time.perf_counter()
        for b in batches:
            x = b[modality].flatten(0, 1)
            model(to_model_input(x.pin_memory() if device.type == "cuda" else x, modality, device), "extract_features")
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t

    model_alone()  # warm-up: every batch shape once
    took = model_alone()
    alone = n / took
    # end to end
    out = tmp / f"out_{modality}_{time.time_ns()}"
    t = time.perf_counter()
    r = run_pipeline(work(out), {modality: model}, Writer(out, [modality], "separate", False, {}), args.workers)
    e2e = n / (time.perf_counter() - t)
    assert len(r["done"]) == len(jobs), r
    print(
        f"{modality:>4} ({'video files' if modality == 'rgb' else 'flow folders'}): {n} snippets of 16x{args.size}x"
        f"{args.size}, batch {args.batch}, {args.workers} workers, {device.type} {model.dtype or 'fp32'}: "
        f"model alone {alone:.2f} snippets/s, end to end {e2e:.2f} snippets/s, ratio {e2e / alone:.2f}"
    )


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def long_video(path: Path, minutes: float, fps: int = 25, size: int = 32) -> None:
    """A low-resolution synthetic video: a square moving over a gradient, written in pieces."""
    n = int(minutes * 60 * fps)
    yy, xx = np.mgrid[0:size, 0:size]
    base = np.stack([xx * 255 // size, yy * 255 // size, np.full_like(xx, 128)], -1).astype(np.uint8)

    def frames():
        for i in range(n):
            f = base.copy()
            x = (i * 2) % (size - 8)
            f[8:16, x : x + 8] = 255
            yield f

    from fractions import Fraction

    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as c:
        st = c.add_stream("libx264", rate=fps)
        st.width = st.height = size
        st.pix_fmt = "yuv420p"
        st.options = {"preset": "ultrafast", "g": "250"}
        for i, f in enumerate(frames()):
            fr = av.VideoFrame.from_ndarray(f, format="rgb24")
            fr.pts, fr.time_base = i, Fraction(1, fps)
            c.mux(st.encode(fr))
        c.mux(st.encode())


def memory(args, tmp: Path) -> None:
    torch.save(InceptionI3d(400, 3).state_dict(), tmp / "rgb.pt")
    for minutes in (1.0, args.memory):
        v = tmp / f"long_{minutes:g}min.mp4"
        t = time.perf_counter()
        long_video(v, minutes)
        made = time.perf_counter() - t
        cmd = [sys.executable, str(ROOT / "extract.py"), f"input={v}", f"output_dir={tmp / 'mem'}",
               f"weights.rgb={tmp / 'rgb.pt'}", "short_side=32", "crop_size=32", f"step={args.memory_step}",
               f"extract.num_workers={args.workers}", f"hydra.run.dir={tmp / 'h'}"]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, tree_rss(proc.pid))
            time.sleep(0.1)
        out = proc.stdout.read()
        ran = time.perf_counter() - t
        feats = np.load(tmp / "mem" / f"{v.stem}_rgb.npy", mmap_mode="r")
        print(
            f"{minutes:g}-minute video ({int(minutes * 1500)} frames 32x32, written in {made:.0f} s): "
            f"{feats.shape[0]} snippets in {ran:.0f} s, peak memory {peak / 2**30:.2f} GiB "
            f"(main process + {args.workers} workers) [{out.strip().splitlines()[0]}]"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--videos", type=int, default=2)
    p.add_argument("--frames", type=int, default=80)
    p.add_argument("--size", type=int, default=112, help="crop size (frames are size+32 high, size+64 wide)")
    p.add_argument("--step", type=int, default=16)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--precision", default="auto")
    p.add_argument("--modalities", default="rgb,flow")
    p.add_argument("--memory", type=float, default=0, help="minutes of synthetic video to extract (0: no memory run)")
    p.add_argument("--memory-step", type=int, default=64, help="frames between snippets in the memory run")
    args = p.parse_args()
    print(f"torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs (a shared machine: figures vary)")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if args.memory:
            memory(args, tmp)
            return
        for m in args.modalities.split(","):
            speed(args, tmp, m)


if __name__ == "__main__":
    main()
