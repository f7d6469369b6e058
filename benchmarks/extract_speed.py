"""Feature extraction: is decoding hidden behind the model? And is memory bounded on long videos?

    python benchmarks/extract_speed.py                          # CPU: RGB from videos, flow from folders
    python benchmarks/extract_speed.py --step 4                 # the THUMOS-14 recipe's step (4 new frames per snippet)
    python benchmarks/extract_speed.py --device cuda --videos 16 --frames 600 --source 320x240 \
        --size 224 --frame-size 340x256 --step 4 --batch 32 --workers 8,15   # a GPU, thumos14_i3d's geometry
    python benchmarks/extract_speed.py --memory 30              # peak memory of a synthetic 30-minute video

Speed: synthetic videos (a textured background panning under a moving square, with sensor noise, H.264)
and flow folders in ``python -m i3d_train.flow``'s format (synthetic smooth fields) go through the
overlapped pipeline (:mod:`i3d_train.features.pipeline`: ``--workers`` DataLoader workers decode, resize
and crop; the main process runs the model and writes). For each modality and worker count it prints:

- **loader alone**: snippets/s of the workers with no model (the decoding capacity);
- **model alone**: snippets/s of the model on snippets of the same videos prepared beforehand in memory
  (pinned on a GPU): upload, forward, features back;
- **end to end**: ``run_pipeline`` (decoding, model, writing ``.npy`` files), and the ratio end to end /
  model alone (1.0: decoding entirely hidden). Each end-to-end run is bracketed by two model-alone runs
  (their mean is its reference), ``--repeat`` times; the median ratio is printed with the range.

On a CPU the workers and the model share the cores: if the model kept every core busy, the ratio
could not pass ``1 / (1 + model alone / loader alone with 1 worker)`` (the model's rate over one
worker's is the CPU time decoding needs per unit of the model's). The model leaves some of the cores'
time idle, so measured ratios can be above that; on a GPU the model leaves the CPU to the workers.

Memory: ``python extract.py`` (the user's command, RGB, small frames, ``--memory-step`` frames between
snippets to keep it short) on a synthetic low-resolution video of ``--memory`` minutes and on a
1-minute one; the peak resident memory of the whole process tree (main process and workers, summed,
sampled every 0.1 s from /proc) is printed for both.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import torch

from i3d_train.features.pipeline import (
    Job,
    SnippetBatches,
    StreamSettings,
    Work,
    for_models,
    run_pipeline,
    snippet_loader,
    to_model_input,
)
from i3d_train.features.writer import Writer
from i3d_train.flow.store import FlowStore, write_flow_folder
from i3d_train.inference.fast import prepare
from i3d_train.models.i3d import InceptionI3d
from i3d_train.video.decoders import Decoder

ROOT = Path(__file__).resolve().parents[1]


def never(_: str) -> bool:
    return False


def size_arg(text: str) -> tuple[int, int]:
    w, h = text.lower().split("x")
    return int(w), int(h)


def textured_video(path: Path, frames: int, width: int, height: int, seed: int, fps: int = 25) -> None:
    """A smooth random texture panning 2 px/frame, a bright square crossing it, and +-6 grey levels of
    noise per frame (so the encoder and decoder work as on camera footage), H.264 (veryfast)."""
    import av

    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    tex = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.int16)
    with av.open(str(path), mode="w") as c:
        st = c.add_stream("libx264", rate=fps)
        st.width, st.height, st.pix_fmt = width, height, "yuv420p"
        st.options = {"preset": "veryfast", "g": "250"}
        for i in range(frames):
            f = np.roll(tex, (i, 2 * i), axis=(0, 1)) + rng.integers(-6, 7, tex.shape, dtype=np.int16)
            x, y = (5 * i) % (width - 32), height // 3
            f[y : y + 32, x : x + 32] = 250
            fr = av.VideoFrame.from_ndarray(np.clip(f, 0, 255).astype(np.uint8), format="rgb24")
            fr.pts, fr.time_base = i, Fraction(1, fps)
            c.mux(st.encode(fr))
        c.mux(st.encode())


def flow_folder(folder: Path, frames: int, width: int, height: int, seed: int, fps: int = 25) -> None:
    """A flow folder as ``python -m i3d_train.flow`` writes it (JPEG pairs + meta.json), of smooth random
    fields: reading it costs what reading computed flow costs."""
    rng = np.random.default_rng(seed)
    fields = []
    for _ in range(8):
        coarse = rng.normal(0, 6, (height // 16 + 1, width // 16 + 1, 2)).astype(np.float32)
        fields.append(cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC))
    flow = np.stack([fields[i % 8] for i in range(frames - 1)])
    meta = {"source": "synthetic", "fps": fps, "height": height, "width": width, "frames": frames,
            "flow_frames": frames - 1, "method": "tvl1", "backend": "synthetic", "bound": 20.0,
            "jpeg_quality": 95, "short_side": min(width, height)}  # fmt: skip
    write_flow_folder(folder, flow, FlowStore(20.0, 95), meta)


def make_inputs(args, tmp: Path, modalities: list[str]) -> list[Job]:
    """The videos (and flow folders), made in parallel on every core."""
    sw, sh = args.source or (args.size + 64, args.size + 32)
    fw, fh = args.frame_size or (round(sw * (args.size + 32) / min(sw, sh)), round(sh * (args.size + 32) / min(sw, sh)))
    jobs, todo = [], []
    with ProcessPoolExecutor(max(1, min(args.videos, os.cpu_count() or 1))) as pool:
        for i in range(args.videos):
            v, fdir = tmp / "videos" / f"v{i}.mp4", tmp / "flow" / f"v{i}"
            v.parent.mkdir(parents=True, exist_ok=True)
            todo.append(pool.submit(textured_video, v, args.frames, sw, sh, i))
            if "flow" in modalities:
                todo.append(pool.submit(flow_folder, fdir, args.frames, fw, fh, 1000 + i))
            jobs.append(Job(v, f"v{i}", fdir if "flow" in modalities else None))
        for t in todo:
            t.result()
    return jobs


def speed(args, tmp: Path, jobs: list[Job], modality: str) -> list[dict]:
    device = torch.device(args.device)
    s = StreamSettings(
        fps=25.0,
        stack=16,
        step=args.step,
        short_side=args.size + 32,
        frame_size=args.frame_size,
        crop_size=args.size,
        batch_size=args.batch,
        flow_source="folder",
    )
    model = prepare(InceptionI3d(400, 3 if modality == "rgb" else 2).to(device), precision=args.precision)
    run = 0

    decoder = Decoder(getattr(args, "decoder", "pyav"), args.device)

    def work() -> Work:
        nonlocal run
        run += 1
        w = Work(jobs, s, [modality], tmp / f"out_{modality}_{run}", os.getpid(), never, decoder=decoder)
        return for_models(w, {modality: model})

    # the model alone, on snippets prepared beforehand (up to --model-snippets of them)
    batches, n_alone = [], 0
    for item in SnippetBatches(work()):
        if item["kind"] == "error":
            raise SystemExit(f"{modality}: {item['error']}")
        if item["kind"] == "batch":
            x = item[modality].flatten(0, 1)
            batches.append(x.pin_memory() if device.type == "cuda" else x)
            n_alone += len(item["names"])
            if n_alone >= args.model_snippets:
                break

    def model_alone() -> float:
        outs = []
        t = time.perf_counter()
        for x in batches:
            outs.append(model(to_model_input(x, modality, device), "extract_features"))
        feats = [o.cpu() for o in outs]
        del feats
        return time.perf_counter() - t

    model_alone()  # warm-up: every batch shape once (and cudnn's choice of kernels)
    what = "video files" if modality == "rgb" else "flow folders"
    geometry = f"16x{args.size}x{args.size}, step {args.step}, batch {args.batch}"
    print(f"{modality:>4} ({what}; {geometry}; {device.type} {model.dtype or 'fp32'}; model alone on {n_alone} "
          f"snippets):", flush=True)  # fmt: skip
    rows = []
    for workers in args.workers:
        # the loader alone: the workers' output, consumed and dropped
        t, n = time.perf_counter(), 0
        for item in snippet_loader(work(), device, workers, args.prefetch):
            if item["kind"] == "batch":
                n += len(item["names"])
        loader = n / (time.perf_counter() - t)
        # end to end, bracketed by the model alone just before and just after (a shared machine's speed
        # drifts over minutes: each ratio compares runs a few seconds apart)
        rounds = []
        for _ in range(args.repeat):
            before = n_alone / model_alone()
            w = work()
            t = time.perf_counter()
            r = run_pipeline(w, {modality: model}, Writer(w.out_dir, [modality], "separate", False, {}), workers,
                             args.prefetch)  # fmt: skip
            e2e = n / (time.perf_counter() - t)
            assert len(r["done"]) == len(jobs), r
            alone = (before + n_alone / model_alone()) / 2
            rounds.append({"model_alone": round(alone, 2), "end_to_end": round(e2e, 2), "ratio": round(e2e / alone, 3)})
        ratios = sorted(x["ratio"] for x in rounds)
        median = (
            ratios[len(ratios) // 2]
            if len(ratios) % 2
            else sum(ratios[len(ratios) // 2 - 1 : len(ratios) // 2 + 1]) / 2
        )
        rows.append({"modality": modality, "workers": workers, "snippets": n, "loader_alone": round(loader, 2),
                     "rounds": rounds, "ratio_median": round(median, 3), "decoding": r["decoding"].summary()})  # fmt: skip
        each = ", ".join(f"{x['end_to_end']:.1f} / {x['model_alone']:.1f}" for x in rounds)
        print(f"     {workers:>2} workers, {n} snippets: loader alone {loader:.1f} snippets/s; end to end / model alone"
              f" (snippets/s) {each}; ratio {median:.2f} (median of {len(rounds)}, {ratios[0]:.2f} to "
              f"{ratios[-1]:.2f})", flush=True)  # fmt: skip
    return rows


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


def peak_memory(cmd: list[str], env: dict) -> tuple[int, float, int, str, str]:
    """Run ``cmd`` and sample its process tree's resident memory every 0.1 s: ``(peak bytes, seconds,
    exit code, stdout, stderr)``. The output goes to files, so a chatty command never blocks on a pipe."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, text=True)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, tree_rss(proc.pid))
            time.sleep(0.1)
        ran = time.perf_counter() - t
        out.seek(0)
        err.seek(0)
        return peak, ran, proc.returncode, out.read(), err.read()


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
    for minutes in sorted({1.0, args.memory}):
        v = tmp / f"long_{minutes:g}min.mp4"
        t = time.perf_counter()
        long_video(v, minutes)
        made = time.perf_counter() - t
        cmd = [sys.executable, str(ROOT / "extract.py"), f"input={v}", f"output_dir={tmp / f'mem{minutes:g}'}",
               f"weights.rgb={tmp / 'rgb.pt'}", "short_side=32", "crop_size=32", f"step={args.memory_step}",
               f"extract.num_workers={args.workers[0]}", f"hydra.run.dir={tmp / 'h'}"]  # fmt: skip
        peak, ran, code, out, err = peak_memory(cmd, {**os.environ, "PYTHONPATH": str(ROOT)})
        if code != 0:
            raise SystemExit(f"extract.py failed (exit {code}): {err[-2000:]}")
        feats = np.load(tmp / f"mem{minutes:g}" / f"{v.stem}_rgb.npy", mmap_mode="r")
        print(
            f"{minutes:g}-minute video ({int(minutes * 1500)} frames 32x32, written in {made:.0f} s): "
            f"{feats.shape[0]} snippets in {ran:.0f} s, peak memory {peak / 2**30:.2f} GiB "
            f"(main process + {args.workers[0]} workers) [{out.strip().splitlines()[0]}]"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--videos", type=int, default=4)
    p.add_argument("--frames", type=int, default=240)
    p.add_argument("--size", type=int, default=112, help="crop size")
    p.add_argument(
        "--source", type=size_arg, default=None, help="WxH of the synthetic videos (default: size+64 x size+32)"
    )
    p.add_argument(
        "--frame-size", type=size_arg, default=None, help="WxH: squash frames to it (default: short side size+32)"
    )
    p.add_argument("--step", type=int, default=16)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--workers", type=lambda t: [int(x) for x in t.split(",")], default=[1, 2], help="e.g. 1,2")
    p.add_argument("--prefetch", type=int, default=2, help="batches ready ahead per worker")
    p.add_argument("--precision", default="auto")
    p.add_argument("--decoder", default="pyav", choices=["auto", "pyav", "nvdec"], help="who decodes the videos")
    p.add_argument("--modalities", default="rgb,flow")
    p.add_argument("--model-snippets", type=int, default=512, help="snippets the model-alone figure runs on (at most)")
    p.add_argument(
        "--repeat", type=int, default=3, help="end-to-end runs per worker count (the median ratio is printed)"
    )
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    p.add_argument("--memory", type=float, default=0, help="minutes of synthetic video to extract (0: no memory run)")
    p.add_argument("--memory-step", type=int, default=64, help="frames between snippets in the memory run")
    args = p.parse_args()
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(f"{name}; torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs", flush=True)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if args.memory:
            memory(args, tmp)
            return
        modalities = args.modalities.split(",")
        t = time.perf_counter()
        jobs = make_inputs(args, tmp, modalities)
        print(
            f"inputs: {args.videos} videos x {args.frames} frames made in {time.perf_counter() - t:.0f} s", flush=True
        )
        rows = [r for m in modalities for r in speed(args, tmp, jobs, m)]
        if args.json:
            args.json.write_text(
                json.dumps(
                    {"device": name, "args": vars(args) | {"json": str(args.json)}, "rows": rows}, indent=1, default=str
                )
            )


if __name__ == "__main__":
    main()
