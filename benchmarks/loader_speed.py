"""Data loader throughput against the cost of decoding alone.

    python benchmarks/loader_speed.py [--videos 8] [--clips 48] [--workers 0,1,2]

Makes 10-second 25 fps 340x256 H.264 videos (the size UCF-101/Kinetics are usually stored at after
resizing), then measures, for 64-frame training clips:

- decode only: the same 64 consecutive frames per clip decoded with plain PyAV in one process (seek to
  the keyframe before the clip, decode, convert to RGB) - the lower bound of any video loader;
- the project's loader (``VideoDataset`` + ``DataLoader``, random start, short side 256, random
  224x224 crop, flip, [-1, 1] floats) with N workers, and with frame folders (``img_00001.jpg``);
- what a probe of one video costs (the loader probes each video once per run, not once per sample).

Prints clips per second for each and the loader / decode-only ratio.
"""

from __future__ import annotations

import argparse
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


def loader(items: list[VideoItem], clips: int, workers: int) -> float:
    ds = VideoDataset(items, FRAMES, 25.0, 1, RandomClipSampler(), ClipTransform(256, 224, train=True))
    sampler = torch.utils.data.RandomSampler(ds, replacement=True, num_samples=clips)
    dl = DataLoader(ds, batch_size=1, sampler=sampler, num_workers=workers, persistent_workers=False)
    it = iter(dl)
    next(it)  # workers started, first clip out: not timed
    t0 = time.perf_counter()
    n = 0
    for _ in it:
        n += 1
    return n / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--videos", type=int, default=8)
    p.add_argument("--clips", type=int, default=48)
    p.add_argument("--workers", default="0,1,2")
    args = p.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        paths = make_videos(tmp / "videos", args.videos)
        info = probe(paths[0])
        print(f"{len(paths)} videos, {info.num_frames} frames at {info.fps:g} fps, {info.width}x{info.height} "
              f"({time.perf_counter() - t0:.0f} s to make); 64-frame clips, {args.clips} per measurement")  # fmt: skip
        items = [VideoItem(path, 0, path.name) for path in paths]
        base = decode_only(paths, args.clips)
        print(f"decode only (plain PyAV, 1 process): {base:7.2f} clips/s")
        t0 = time.perf_counter()
        for path in paths:
            probe(path)
        ms = 1000 * (time.perf_counter() - t0) / len(paths)
        # The dataset probes each video once per run (VideoDataset.probes); this is what every other
        # sample of the video no longer pays (it used to open the file twice: probe, then decode).
        print(f"probe (open + header) of one video: {ms:.1f} ms, {ms * base / 10:.1f}% of a clip's decode time")
        for w in (int(x) for x in args.workers.split(",")):
            r = loader(items, args.clips, w)
            print(f"loader, video files, {w} worker(s):  {r:7.2f} clips/s  ({r / base:.2f}x decode only)")
        for path in paths:  # the same videos as frame folders
            write_frame_folder(tmp / "frames" / path.stem, read_frames(path, np.arange(info.num_frames), None))
        frames = [VideoItem(it.path, 0, it.video_id, frames_dir=tmp / "frames" / it.path.stem) for it in items]
        for w in (int(x) for x in args.workers.split(",")):
            r = loader(frames, args.clips, w)
            print(f"loader, frame folders, {w} worker(s): {r:7.2f} clips/s  ({r / base:.2f}x decode only)")
        print(f"(torch threads 1, {torch.get_num_threads()} per worker; {__import__('os').cpu_count()} CPU cores)")


if __name__ == "__main__":
    main()
