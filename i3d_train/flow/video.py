"""One video -> one flow folder: decode at the flow rate, grey, flow, store (:mod:`i3d_train.flow.store`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from i3d_train.flow.compute import TORCH_BATCH, compute_flow, resolve_backend, to_gray
from i3d_train.flow.store import FlowFolderWriter, FlowStore
from i3d_train.runtime.atomic import atomic_dir, write_json
from i3d_train.video.reader import probe
from i3d_train.video.stream import iter_frames


@dataclass(frozen=True)
class ExtractOptions:
    """How one video's flow is computed and stored (the flow command's options)."""

    method: str = "tvl1"
    fps: float | None = 25.0
    short_side: int | None = 256
    bound: float = 20.0
    jpeg_quality: int = 95
    backend: str = "auto"  # tvl1: torch | opencv | auto (torch on a GPU; on a CPU, CPU_BACKEND)
    device: str | None = None  # torch backend: cpu, cuda, cuda:1, ...; None: cuda when available
    batch: int | None = None  # torch backend: frame pairs per call (None: TORCH_BATCH for the device)


# frame pairs per compute_flow call of the OpenCV backend (one pair at a time inside): how many grayscale
# frames are held at once; the torch backend takes TORCH_BATCH pairs per call, as before streaming
OPENCV_CHUNK = 16


def extract_video(
    src: str | Path,
    folder: str | Path,
    opts: ExtractOptions = ExtractOptions(),
    progress: Callable[[], None] | None = None,
    threads: int = 0,
) -> dict:
    """Decode ``src`` at ``opts.fps``, compute flow, store it in ``folder``. Returns the metadata.

    Streamed: frames are decoded front to back (:func:`i3d_train.video.stream.iter_frames`, the same
    frames as ``read_frames``), turned grey one by one, and the flow of each chunk of consecutive pairs is
    computed and written before the next is decoded, so memory is flat in the video's length. The folder
    is filled under a temporary name and renamed when complete (``meta.json`` last). ``progress``: called
    after each chunk (a lock's refresh). ``threads``: decoding threads (0: FFmpeg's choice)."""
    src, folder = Path(src), Path(folder)
    info = probe(src)
    n = info.num_frames_at(opts.fps)
    if n < 2:
        raise ValueError(f"{src}: {n} frame(s) at {opts.fps} fps, flow needs at least 2")
    backend, device = resolve_backend(opts.method, opts.backend, opts.device)
    pairs = (opts.batch or TORCH_BATCH.get(torch.device(device).type, 32)) if backend == "torch" else OPENCV_CHUNK
    with atomic_dir(folder) as tmp:
        writer = FlowFolderWriter(tmp, FlowStore(opts.bound, opts.jpeg_quality))
        gray: list[np.ndarray] = []  # the chunk's frames; its last is the next chunk's first
        for i, frame in iter_frames(src, opts.fps, info, threads=threads):
            gray.append(to_gray(frame[None], opts.short_side)[0])
            if len(gray) == pairs + 1 or i == n - 1:
                writer.add(compute_flow(np.stack(gray), opts.method, backend, device, opts.batch))
                gray = gray[-1:]
                if progress is not None:
                    progress()
        h, w = gray[-1].shape
        meta = {
            "source": str(src),
            "fps": opts.fps or info.fps,
            "height": int(h),
            "width": int(w),
            "frames": int(n),
            "flow_frames": writer.count,
            "method": opts.method,
            "backend": backend,
            **{k: v for k, v in asdict(opts).items() if k in ("bound", "jpeg_quality", "short_side")},
        }
        write_json(tmp / "meta.json", meta)  # last: its presence means complete
    return meta
