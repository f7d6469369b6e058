"""Data loader throughput against the cost of decoding alone.

    python benchmarks/loader_speed.py [--videos 8] [--clips 48] [--workers 0,1,2]

Makes 10-second 25 fps 340x256 H.264 videos (the size UCF-101/Kinetics are usually stored at after
resizing), then measures, for 64-frame training clips:

- decode only: the same 64 consecutive frames per clip decoded with plain PyAV in one process (seek to
  the keyframe before the clip, decode, convert to RGB) - the lower bound of any video loader;
- the project's loader (``VideoDataset`` + ``DataLoader``, random start, short side 256, random
  224x224 crop, flip, [-1, 1] floats) with N workers, and with frame folders (``img_00001.jpg``);
- what a probe of one video costs (the loader probes each video once per run, not once per sample).

Prints clips per second for each and the loader / decode-only ratio; with ``--model``, also the clips/s of
I3D RGB training steps at the same clip and batch (the rate the loader must keep up with), and the
loader's share of it. ``--decoders pyav,nvdec --device cuda``: the loader with GPU decoding too. Last, the
JPEG decoders a frame-folder loader could use, on the same frames (the project reads them with OpenCV).

    python benchmarks/loader_speed.py --device cuda --decoders pyav,nvdec --workers 8,15 --batch 8 --model
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch
from torch.utils.data import DataLoader

from i3d_train.data.dataset import VideoDataset, VideoItem
from i3d_train.data.frames import write_frame_folder
from i3d_train.data.samplers import RandomClipSampler
from i3d_train.data.synthetic import SyntheticConfig, render_video
from i3d_train.data.transforms import ClipTransform
from i3d_train.models.i3d import InceptionI3d
from i3d_train.video.decoders import Decoder
from i3d_train.video.reader import probe, read_frames
from i3d_train.video.writer import write_video

FRAMES = 64


def make_videos(
    folder: Path, n: int, seconds: int = 10, fps: int = 25, size: tuple[int, int] = (340, 256)
) -> list[Path]:
    w, h = size
    paths = []
    for i in range(n):
        cfg = SyntheticConfig(num_frames=seconds * fps, height=h, width=w, seed=i)
        path = folder / f"v{i}.mp4"
        write_video(path, render_video(cfg, i % 8, i), fps, crf=23, gop=fps * 2)  # a typical GOP of 2 s
        paths.append(path)
    return paths


def decode_only(paths: list[Path], clips: int, seed: int = 0) -> float:
    """Clips/s decoding 64 consecutive frames per clip with plain PyAV."""
    rng = random.Random(seed)
    t0 = time.perf_counter()
    for c in range(clips):
        path = paths[c % len(paths)]
        with av.open(str(path), metadata_errors="ignore") as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            n = stream.frames
            start = rng.randrange(0, n - FRAMES + 1)
            tb = float(stream.time_base)
            container.seek(int(start / 25 / tb), stream=stream, backward=True)
            got = 0
            for frame in container.decode(stream):
                idx = round(frame.pts * tb * 25)
                if idx < start:
                    continue
                frame.to_ndarray(format="rgb24")
                got += 1
                if got == FRAMES:
                    break
    return clips / (time.perf_counter() - t0)


def loader(
    items: list[VideoItem],
    clips: int,
    workers: int,
    decoder: str = "pyav",
    device: str = "cpu",
    batch: int = 1,
    crop: int = 224,
) -> tuple[float, dict]:
    """Clips/s of the training loader (the project's dataset, ``DataLoader`` options as the datamodule sets
    them: pinned memory on a GPU, ``spawn`` workers for GPU decoding), batches moved to ``device``; and
    the decoder's choices in the main process (workers count their own)."""
    dec = Decoder(decoder, device)
    ds = VideoDataset(items, FRAMES, 25.0, 1, RandomClipSampler(), ClipTransform(256, crop, train=True), decoder=dec)
    sampler = torch.utils.data.RandomSampler(ds, replacement=True, num_samples=clips)
    spawn = workers > 0 and dec.wants_gpu
    dl = DataLoader(
        ds,
        batch_size=batch,
        sampler=sampler,
        num_workers=workers,
        pin_memory=device.startswith("cuda"),
        prefetch_factor=2 if workers else None,
        multiprocessing_context="spawn" if spawn else None,
        persistent_workers=False,
    )
    it = iter(dl)
    next(it)  # workers started, first batch out: not timed
    t0 = time.perf_counter()
    n = 0
    for b in it:
        b["rgb"].to(device, non_blocking=True)
        n += b["rgb"].shape[0]
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0), dec.summary()


def model_training(device: str, batch: int, crop: int = 224, steps: int = 4) -> float:
    """Clips/s of I3D RGB training steps at ``FRAMES x crop x crop`` (bf16 autocast and channels-last on
    a GPU, fp32 on the CPU): what the loader must keep up with."""
    dev = torch.device(device)
    torch.manual_seed(0)
    net = InceptionI3d(400, 3).to(dev)
    if dev.type == "cuda":
        net = net.to(memory_format=torch.channels_last_3d)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    x = torch.rand(batch, 3, FRAMES, crop, crop, device=dev) * 2 - 1
    y = torch.randint(400, (batch,), device=dev)

    def step() -> None:
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - t0)


def jpeg_decoders(folder: Path, n: int = 400) -> dict[str, float]:
    """JPEG frames/s (one core) of the decoders a frame-folder loader could use, on the same files."""
    import cv2

    files = sorted(folder.glob("*.jpg"))[:n]
    out = {}

    def rate(fn) -> float:
        t0 = time.perf_counter()
        for f in files:
            fn(f)
        return len(files) / (time.perf_counter() - t0)

    if hasattr(cv2, "IMREAD_COLOR_RGB"):
        out["opencv imread RGB (the project's)"] = rate(lambda f: cv2.imread(str(f), cv2.IMREAD_COLOR_RGB))
    out["opencv imread + cvtColor"] = rate(lambda f: cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB))
    try:
        from PIL import Image

        out["Pillow"] = rate(lambda f: np.asarray(Image.open(f).convert("RGB")))
    except ImportError:
        pass
    try:
        import simplejpeg

        out["simplejpeg"] = rate(lambda f: simplejpeg.decode_jpeg(Path(f).read_bytes(), colorspace="RGB"))
    except ImportError:
        pass
    return out


def run(args) -> dict:
    """Every figure, printed and returned (``benchmarks/gpu_check.py`` calls this)."""
    torch.set_num_threads(1)
    result: dict = {"device": args.device, "clip": f"{FRAMES}x{args.crop}x{args.crop}", "batch": args.batch}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        paths = make_videos(tmp / "videos", args.videos)
        info = probe(paths[0])
        print(f"{len(paths)} videos, {info.num_frames} frames at {info.fps:g} fps, {info.width}x{info.height} "
              f"({time.perf_counter() - t0:.0f} s to make); 64-frame clips, {args.clips} per measurement")  # fmt: skip
        items = [VideoItem(path, 0, path.name) for path in paths]
        base = decode_only(paths, args.clips)
        result["decode_only"] = round(base, 2)
        print(f"decode only (plain PyAV, 1 process): {base:7.2f} clips/s")
        t0 = time.perf_counter()
        for path in paths:
            probe(path)
        ms = 1000 * (time.perf_counter() - t0) / len(paths)
        # The dataset probes each video once per run (VideoDataset.probes); this is what every other
        # sample of the video no longer pays (it used to open the file twice: probe, then decode).
        print(f"probe (open + header) of one video: {ms:.1f} ms, {ms * base / 10:.1f}% of a clip's decode time")
        if args.model:
            m = model_training(args.device, args.batch, args.crop)
            result["model_training"] = round(m, 2)
            print(f"model: I3D RGB training steps, batch {args.batch}: {m:7.2f} clips/s (what the loader must deliver)")
        rows = result["loader"] = []
        for decoder in args.decoders.split(","):
            for w in (int(x) for x in args.workers.split(",")):
                r, dec = loader(items, args.clips, w, decoder, args.device, args.batch, args.crop)
                rows.append({"storage": "video", "decoder": decoder, "workers": w, "clips_per_s": round(r, 2)})
                vs = f"; {r / result['model_training']:.2f}x the model" if "model_training" in result else ""
                print(f"loader, video files, decoder={decoder}, {w} worker(s):  {r:7.2f} clips/s  "
                      f"({r / base:.2f}x decode only{vs})", flush=True)  # fmt: skip
        for path in paths:  # the same videos as frame folders
            write_frame_folder(tmp / "frames" / path.stem, read_frames(path, np.arange(info.num_frames), None))
        frames = [VideoItem(it.path, 0, it.video_id, frames_dir=tmp / "frames" / it.path.stem) for it in items]
        for w in (int(x) for x in args.workers.split(",")):
            r, _ = loader(frames, args.clips, w, "pyav", args.device, args.batch, args.crop)
            rows.append({"storage": "frames", "decoder": "jpeg", "workers": w, "clips_per_s": round(r, 2)})
            vs = f"; {r / result['model_training']:.2f}x the model" if "model_training" in result else ""
            print(f"loader, frame folders, {w} worker(s): {r:7.2f} clips/s  ({r / base:.2f}x decode only{vs})")
        result["jpeg_frames_per_s"] = {k: round(v, 1) for k, v in jpeg_decoders(tmp / "frames" / paths[0].stem).items()}
        print(
            "JPEG decoders, frames/s on one core: "
            + ", ".join(f"{k} {v:.0f}" for k, v in result["jpeg_frames_per_s"].items())
        )
        print(f"(torch threads 1, {torch.get_num_threads()} per worker; {os.cpu_count()} CPU cores)")
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--videos", type=int, default=8)
    p.add_argument("--clips", type=int, default=48)
    p.add_argument("--workers", default="0,1,2")
    p.add_argument("--device", default="cpu", help="where batches go (cuda: pinned memory; NVDEC possible)")
    p.add_argument("--decoders", default="pyav", help="comma-separated: pyav, auto, nvdec")
    p.add_argument("--batch", type=int, default=1, help="clips per batch")
    p.add_argument("--crop", type=int, default=224)
    p.add_argument("--model", action="store_true", help="also time I3D training steps at the same clip and batch")
    run(p.parse_args())


if __name__ == "__main__":
    main()
