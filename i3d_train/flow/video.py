"""One video -> one flow folder: decode at the flow rate, grey, flow, store (:mod:`i3d_train.flow.store`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from i3d_train.flow.compute import compute_flow, resolve_backend, to_gray
from i3d_train.flow.store import FlowStore, write_flow_folder
from i3d_train.video.reader import probe, read_frames


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


def extract_video(src: str | Path, folder: str | Path, opts: ExtractOptions = ExtractOptions()) -> dict:
    """Decode ``src`` at ``opts.fps``, compute flow, store it in ``folder``. Returns the metadata."""
    src, folder = Path(src), Path(folder)
    info = probe(src)
    n = info.num_frames_at(opts.fps)
    if n < 2:
        raise ValueError(f"{src}: {n} frame(s) at {opts.fps} fps, flow needs at least 2")
    gray = to_gray(read_frames(src, np.arange(n), opts.fps, info), opts.short_side)
    backend, device = resolve_backend(opts.method, opts.backend, opts.device)
    flow = compute_flow(gray, opts.method, backend, device, opts.batch)
    meta = {
        "source": str(src),
        "fps": opts.fps or info.fps,
        "height": int(gray.shape[1]),
        "width": int(gray.shape[2]),
        "frames": int(n),
        "flow_frames": int(len(flow)),
        "method": opts.method,
        "backend": backend,
        **{k: v for k, v in asdict(opts).items() if k in ("bound", "jpeg_quality", "short_side")},
    }
    write_flow_folder(folder, flow, FlowStore(opts.bound, opts.jpeg_quality), meta)
    return meta
