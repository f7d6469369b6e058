"""One prepared check of the whole GPU side, for a GPU machine lent for a few minutes.

    python benchmarks/gpu_check.py                       # everything, within --budget seconds (default 450)
    python benchmarks/gpu_check.py --only train,flow     # some sections
    python benchmarks/gpu_check.py --smoke               # a tiny version of every section (the CPU test runs it)

Writes ``benchmarks/results/gpu_check_<device>.json`` (``--out``) after every section, so a run cut short
keeps what it measured. Sections (each records its figures, or why it was skipped):

1. ``train``: the training step of every architecture at its paper input (``model.input``) through a
   real Lightning ``Trainer`` (``benchmarks/train_speed.py``'s ``run_steps``): clips/s in bf16-mixed with
   channels-last, peak GPU memory, and the largest batch that fits (doubling, then halving the gap, up to
   ``--max-batch``); for I3D also with ``trainer.compile=true`` (compile time reported apart).
2. ``loader``: the training loader alone at I3D's input (64 x 224 x 224, batch 8) from 340x256 H.264
   files, with PyAV workers and with NVDEC decoding, and from frame folders, against the I3D training
   step's clips/s (``benchmarks/loader_speed.py``).
3. ``flow``: the torch TV-L1 at 340x256, frames/s and peak memory for batches 8 to 128
   (``benchmarks/flow_speed.py --device cuda``).
4. ``extract``: feature extraction end to end against the model alone (``benchmarks/extract_speed.py``)
   at the THUMOS-14 geometry (320x240 sources squashed to 340x256, step 4, batch 32) and at
   ``kinetics_paper``'s (short side 256, step 16), with each decoder.
5. ``agreement``: the frames NVDEC and PyAV give for the same indices (max and mean absolute
   difference: only the YUV->RGB conversion may differ) and the I3D features of both (cosine per row).

Needs: torch with CUDA and pytorch-lightning (there already), and the wheels this project needs beyond
them, carried to the machine: ``av``, ``opencv-contrib-python-headless``, ``hydra-core``, ``omegaconf``,
``antlr4-python3-runtime``, ``torchmetrics``, and for NVDEC ``pynvvideocodec``. On a machine with
internet:  ``pip download --no-deps --only-binary=:all: --python-version 3.12 -d wheels <those names>``;
there:  ``pip install --no-deps wheels/*.whl && pip install --no-deps -e .``. A missing one skips what
needs it, with the reason in the JSON. docs/results.md takes its tables from this JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from argparse import Namespace
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the sibling benchmarks

SECTIONS = ("train", "loader", "flow", "extract", "agreement")


def environment() -> dict:
    env = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU",
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }
    for mod in ("pytorch_lightning", "av", "cv2", "PyNvVideoCodec", "hydra", "torchmetrics"):
        try:
            env[mod] = getattr(__import__(mod), "__version__", "installed")
        except Exception as e:  # noqa: BLE001 - reported, the sections that need it are skipped
            env[mod] = f"missing ({type(e).__name__})"
    return env


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_reset(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None


# --- 1. training steps -----------------------------------------------------------------------------


def fits(cfg, shapes: dict, batch: int, device: torch.device) -> bool:
    """Whether one bf16 channels-last training step (forward, backward, SGD) of ``batch`` clips fits."""
    from hydra.utils import instantiate

    peak_reset(device)
    module = net = opt = None
    try:
        torch.manual_seed(0)
        net = instantiate(cfg.model.net)
        module = instantiate(cfg.module, net=net, channels_last=True, scheduler=None).to(device)
        opt = torch.optim.SGD(module.parameters(), lr=1e-3, momentum=0.9)
        batch_d = {m: torch.rand(batch, *s, device=device) * 2 - 1 for m, s in shapes.items()}
        y = torch.randint(int(cfg.data.num_classes), (batch,), device=device)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            out = module(batch_d)
            outs = out.values() if isinstance(out, dict) else [out]
            loss = sum(torch.nn.functional.cross_entropy(o.float(), y) for o in outs)
        loss.backward()
        opt.step()
        sync(device)
        return True
    except torch.cuda.OutOfMemoryError:
        return False
    finally:
        del module, net, opt
        peak_reset(device)


def largest_batch(cfg, shapes: dict, device: torch.device, start: int, cap: int, deadline: float) -> dict:
    ok, bad = 0, None
    b = start
    while b <= cap and time.time() < deadline:
        if fits(cfg, shapes, b, device):
            ok, b = b, b * 2
        else:
            bad = b
            break
    while bad is not None and bad - ok > max(1, ok // 8) and time.time() < deadline:
        mid = (ok + bad) // 2
        ok, bad = (mid, bad) if fits(cfg, shapes, mid, device) else (ok, mid)
    return {"largest_batch": ok, "first_failing": bad, "cap": cap}


def train_section(args, device: torch.device, deadline: float) -> dict:
    import train_speed

    rows = []
    for model in args.models.split(","):
        if time.time() > deadline:
            rows.append({"model": model, "skipped": "out of time"})
            continue
        cfg = train_speed.model_config(model)
        batch = args.train_batch
        cfg.data.batch_size = batch
        shapes = train_speed.clip_shapes(cfg, full=not args.smoke)
        steps = args.steps + args.warmup
        data = train_speed.RandomClips(shapes, cfg.data.num_classes, batch * steps)
        row = {"model": model, "input": {m: list(s) for m, s in shapes.items()}, "batch": batch}
        precision = "bf16-mixed" if device.type == "cuda" else "32-true"
        peak_reset(device)
        t = train_speed.run_steps(cfg, data, precision, True, False, steps, device, time.perf_counter)
        row["eager"] = {
            "precision": precision,
            "channels_last": True,
            "clips_per_s": round(batch / statistics.median(t[args.warmup :]), 2),
            "peak_gib": peak_gib(device),
        }
        if model in args.compile_models.split(",") and time.time() < deadline - 120:
            peak_reset(device)
            t0 = time.perf_counter()
            t = train_speed.run_steps(cfg, data, precision, True, True, steps + 2, device, time.perf_counter)
            steady = statistics.median(t[args.warmup + 2 :])
            row["compiled"] = {
                "clips_per_s": round(batch / steady, 2),
                "first_steps_s": round(sum(t[: args.warmup + 2]), 1),
                "wall_s": round(time.perf_counter() - t0, 1),
                "peak_gib": peak_gib(device),
            }
        if device.type == "cuda":
            row.update(largest_batch(cfg, shapes, device, batch, args.max_batch, deadline))
        rows.append(row)
        print(json.dumps(row), flush=True)
    i3d = next((r for r in rows if r.get("model") == "i3d" and "eager" in r), None)
    goal = {}
    if i3d is not None:
        best = max(i3d["eager"]["clips_per_s"], i3d.get("compiled", {}).get("clips_per_s", 0))
        # mmaction2's I3D-R50 32x2: 0.43 s/iter for 8 GPUs x 8 clips on V100s, about 19 clips/s per GPU
        goal = {"i3d_clips_per_s": best, "vs_mmaction2_per_gpu": round(best / (64 / 0.43 / 8), 2), "goal": 10}
    return {"rows": rows, "i3d_goal": goal}


# --- 2. the training loader ------------------------------------------------------------------------


def _video(args_: tuple) -> str:
    import loader_speed

    folder, i, seconds, size = args_
    return str(loader_speed.make_videos(Path(folder) / f"b{i}", 1, seconds=seconds, size=size)[0])


def loader_section(args, device: torch.device, tmp: Path, deadline: float) -> dict:
    import loader_speed

    from i3d_train.data.dataset import VideoItem
    from i3d_train.data.frames import write_frame_folder
    from i3d_train.video.reader import probe, read_frames

    crop = 224 if not args.smoke else 32
    with ProcessPoolExecutor(max(1, min(args.loader_videos, os.cpu_count() or 1))) as pool:
        size = (340, 256) if not args.smoke else (80, 64)
        paths = [Path(p) for p in pool.map(_video, [(tmp, i, args.seconds, size) for i in range(args.loader_videos)])]
    items = [VideoItem(p, 0, p.name) for p in paths]
    out: dict = {"videos": len(paths), "clip": f"{loader_speed.FRAMES}x{crop}x{crop}", "batch": args.loader_batch}
    out["model_training"] = round(loader_speed.model_training(str(device), args.loader_batch, crop, steps=3), 2)
    rows = out["rows"] = []
    for decoder in ("pyav", "nvdec"):
        for w in args.loader_workers:
            if time.time() > deadline:
                rows.append({"decoder": decoder, "workers": w, "skipped": "out of time"})
                continue
            try:
                r, _ = loader_speed.loader(items, args.loader_clips, w, decoder, str(device), args.loader_batch, crop)
            except Exception as e:  # noqa: BLE001 - no NVDEC here: said, and the rest goes on
                rows.append({"decoder": decoder, "workers": w, "skipped": f"{type(e).__name__}: {e}"})
                continue
            rows.append({"storage": "video", "decoder": decoder, "workers": w, "clips_per_s": round(r, 2),
                         "vs_model": round(r / out["model_training"], 2)})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    info = probe(paths[0])
    frames = []
    for p in paths:
        write_frame_folder(tmp / "frames" / p.stem, read_frames(p, np.arange(info.num_frames), None))
        frames.append(VideoItem(p, 0, p.name, frames_dir=tmp / "frames" / p.stem))
    for w in args.loader_workers:
        if time.time() > deadline:
            break
        r, _ = loader_speed.loader(frames, args.loader_clips, w, "pyav", str(device), args.loader_batch, crop)
        rows.append({"storage": "frames", "workers": w, "clips_per_s": round(r, 2),
                     "vs_model": round(r / out["model_training"], 2)})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    return out


# --- 3. TV-L1 on the GPU ---------------------------------------------------------------------------


def flow_section(args, device: torch.device, deadline: float) -> dict:
    import flow_speed

    if device.type != "cuda":
        w, h = (64, 48) if args.smoke else (340, 256)
        from i3d_train.flow.tvl1 import tvl1

        gray = torch.from_numpy(flow_speed._frames(w, h, 3))
        t = time.perf_counter()
        tvl1(gray[:2], gray[1:3])
        return {"size": f"{w}x{h}", "rows": [{"batch": 2, "frames_per_s": round(2 / (time.perf_counter() - t), 2)}]}
    rows = flow_speed.gpu(340, 256, args.flow_batches, str(device))
    best = max(r["frames_per_s"] for r in rows)
    return {"size": "340x256", "rows": rows, "best_frames_per_s": best, "goal": 500}


# --- 4. extraction end to end ----------------------------------------------------------------------


def extract_section(args, device: torch.device, tmp: Path, deadline: float) -> dict:
    import extract_speed

    geometries = {
        "thumos14": {"source": (320, 240), "frame_size": (340, 256), "step": 4, "batch": 32, "goal": 0.9},
        "kinetics_paper": {"source": (340, 256), "frame_size": None, "step": 16, "batch": 32, "goal": 0.8},
    }
    out = {}
    for name, g in geometries.items():
        size = 224 if not args.smoke else 32
        a = Namespace(
            device=str(device),
            videos=args.extract_videos,
            frames=args.extract_frames,
            size=size,
            source=g["source"] if not args.smoke else (64, 48),
            frame_size=g["frame_size"] if not args.smoke else None,
            step=g["step"],
            batch=g["batch"] if not args.smoke else 2,
            workers=[args.extract_workers],
            prefetch=2,
            precision="auto",
            model_snippets=512 if not args.smoke else 8,
            repeat=1,
        )
        folder = tmp / name
        jobs = extract_speed.make_inputs(a, folder, ["rgb"])
        rows = []
        for decoder in ("pyav", "nvdec"):
            if time.time() > deadline:
                rows.append({"decoder": decoder, "skipped": "out of time"})
                continue
            a.decoder = decoder
            try:
                got = extract_speed.speed(a, folder, jobs, "rgb")
            except Exception as e:  # noqa: BLE001 - no NVDEC here: said, and the rest goes on
                rows.append({"decoder": decoder, "skipped": f"{type(e).__name__}: {e}"})
                continue
            rows += [{"decoder": decoder, **r} for r in got]
        out[name] = {"geometry": {k: v for k, v in g.items() if k != "goal"}, "goal_ratio": g["goal"], "rows": rows}
    return out


# --- 5. the two decoders agree ---------------------------------------------------------------------


def agreement_section(args, device: torch.device, tmp: Path, deadline: float) -> dict:
    import extract_speed

    from i3d_train.inference.fast import prepare
    from i3d_train.models.i3d import InceptionI3d
    from i3d_train.video.decoders import Decoder, nvdec_missing
    from i3d_train.video.reader import probe

    if device.type != "cuda" or nvdec_missing():
        return {"skipped": nvdec_missing() or "no GPU"}
    w, h = (340, 256) if not args.smoke else (64, 48)
    rows = []
    torch.manual_seed(0)
    model = prepare(InceptionI3d(400, 3).to(device), precision="fp32")
    pyav, gpu = Decoder("pyav"), Decoder("nvdec", str(device))
    for i in range(3):
        v = tmp / f"agree{i}.mp4"
        extract_speed.textured_video(v, 96, w, h, seed=i)
        info = probe(v)
        idx = np.arange(5, 69)
        a, b = pyav.read_frames(v, idx, 25.0, info), gpu.read_frames(v, idx, 25.0, info)
        diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
        clips = [torch.from_numpy(x).permute(3, 0, 1, 2)[None, :, :, :224, :224].float() / 127.5 - 1 for x in (a, b)]
        fa, fb = (model(c, "extract_features").float().cpu() for c in clips)
        rows.append({
            "video": f"{w}x{h} H.264, frames 5-68",
            "pixel_max_abs": int(diff.max()),
            "pixel_mean_abs": round(float(diff.mean()), 3),
            "feature_cosine": round(float(torch.nn.functional.cosine_similarity(fa, fb).min()), 5),
        })  # fmt: skip
    return {"rows": rows, "decoders": gpu.summary()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default=",".join(SECTIONS))
    p.add_argument("--budget", type=float, default=450, help="seconds for everything (sections past it are skipped)")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--smoke", action="store_true", help="tiny inputs: checks the script itself runs (CPU is fine)")
    p.add_argument("--models", default="i3d,c3d,convnet_lstm,two_stream,fused_two_stream,i3d_two_stream")
    p.add_argument("--compile-models", default="i3d")
    p.add_argument("--train-batch", type=int, default=8)
    p.add_argument("--max-batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--loader-videos", type=int, default=16)
    p.add_argument("--seconds", type=int, default=10, help="length of the loader's videos")
    p.add_argument("--loader-clips", type=int, default=240)
    p.add_argument("--loader-batch", type=int, default=8)
    p.add_argument("--loader-workers", type=lambda t: [int(x) for x in t.split(",")], default=[15])
    p.add_argument("--flow-batches", type=lambda t: [int(x) for x in t.split(",")], default=[8, 16, 32, 64, 128])
    p.add_argument("--extract-videos", type=int, default=16)
    p.add_argument("--extract-frames", type=int, default=600)
    p.add_argument("--extract-workers", type=int, default=15)
    args = p.parse_args()
    if args.smoke:
        args.models, args.compile_models, args.train_batch, args.steps, args.warmup = "i3d,two_stream", "", 2, 1, 1
        args.loader_videos, args.seconds, args.loader_clips, args.loader_batch = 2, 3, 4, 2
        args.loader_workers, args.extract_videos, args.extract_frames, args.extract_workers = [1], 2, 40, 1
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    start = time.time()
    deadline = start + args.budget
    env = environment()
    tag = env["device"].replace(" ", "_").replace("/", "_")
    out_path = args.out or HERE / "results" / f"gpu_check_{tag}{'_smoke' if args.smoke else ''}.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    result = {"environment": env, "args": {k: v for k, v in vars(args).items() if k != "out"}, "sections": {}}
    print(json.dumps(env), flush=True)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for section in args.only.split(","):
            t0 = time.time()
            if t0 > deadline:
                result["sections"][section] = {"skipped": "out of time"}
                continue
            print(f"== {section}", flush=True)
            try:
                with contextlib.redirect_stderr(io.StringIO()):
                    if section == "train":
                        got = train_section(args, device, deadline)
                    elif section == "loader":
                        got = loader_section(args, device, tmp, deadline)
                    elif section == "flow":
                        got = flow_section(args, device, deadline)
                    elif section == "extract":
                        got = extract_section(args, device, tmp, deadline)
                    elif section == "agreement":
                        got = agreement_section(args, device, tmp, deadline)
                    else:
                        raise SystemExit(f"--only: unknown section {section}; expected some of {', '.join(SECTIONS)}")
            except SystemExit:
                raise
            except Exception as e:  # noqa: BLE001 - one broken section must not lose the others' figures
                got = {"error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc(limit=4)}
            got["seconds"] = round(time.time() - t0, 1)
            result["sections"][section] = got
            result["seconds"] = round(time.time() - start, 1)
            out_path.write_text(json.dumps(result, indent=1, default=str))
            print(f"   {section}: {got['seconds']} s", flush=True)
    print(f"wrote {out_path} ({result.get('seconds', 0)} s)")


if __name__ == "__main__":
    main()
