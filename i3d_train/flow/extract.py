"""Optical flow extraction and storage.

The paper computes TV-L1 flow on grayscale frames at 25 fps, clips it to [-20, 20] and feeds it
rescaled to [-1, 1] (Sec. 2.5). Storage is the format most tools use, one folder per video::

    <dst>/<video name>/flow_x_00001.jpg, flow_y_00001.jpg, ...   8-bit grayscale, [-bound, bound] -> [0, 255]
    <dst>/<video name>/meta.json                                  fps, size, method, bound, frames, source

Flow ``i`` (1-based in file names) is the motion from frame ``i`` to frame ``i + 1``: a video of N
frames has N - 1 flow frames. A folder is written under a temporary name and renamed when complete, so
an interrupted run never leaves a folder that counts as done; ``meta.json`` is written last.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from i3d_train.video.reader import loop, probe, read_frames
from i3d_train.video.resize import resize_short_side, to_float_clip

METHODS = ("tvl1", "farneback")


@dataclass(frozen=True)
class FlowStore:
    """How flow is quantised and stored."""

    bound: float = 20.0  # paper: flow clipped to [-20, 20]
    jpeg_quality: int = 95

    def quantize(self, flow: np.ndarray) -> np.ndarray:
        """float flow -> uint8, [-bound, bound] linearly to [0, 255]."""
        q = (np.clip(flow, -self.bound, self.bound) + self.bound) * (255.0 / (2 * self.bound))
        return np.clip(np.rint(q), 0, 255).astype(np.uint8)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        """uint8 -> float flow in [-bound, bound]."""
        return q.astype(np.float32) * (2 * self.bound / 255.0) - self.bound


BACKENDS = ("auto", "torch", "opencv")
# The TV-L1 backend that `auto` picks on a machine without a GPU: the faster one on this project's 2-core
# machine by `python benchmarks/flow_speed.py` (README, "Optical flow"). On a GPU it is always torch.
CPU_BACKEND = "torch"
TORCH_BATCH = {"cpu": 1, "cuda": 64}  # frame pairs per tvl1() call: 1 was fastest on 2 CPU cores


def resolve_backend(method: str, backend: str = "auto", device: str | None = None) -> tuple[str, str]:
    """``(backend, device)`` that ``compute_flow`` will use: ``auto`` is torch on a GPU and
    :data:`CPU_BACKEND` otherwise; ``device`` None is ``cuda`` when PyTorch sees one, else ``cpu``.
    Farneback only exists in OpenCV."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown flow backend {backend!r}; expected one of {BACKENDS}")
    if method not in METHODS:
        raise ValueError(f"unknown flow method {method!r}; expected one of {METHODS}")
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev_type = torch.device(device).type
    if method == "farneback":
        if backend == "torch":
            raise ValueError("the torch flow backend computes tvl1 only; use --backend opencv for farneback")
        return "opencv", "cpu"
    if backend == "auto":
        backend = "torch" if dev_type != "cpu" else CPU_BACKEND
    if dev_type == "cuda" and backend != "opencv" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: PyTorch sees no CUDA GPU here; use --device cpu")
    if backend == "opencv" and dev_type != "cpu":
        raise ValueError(f"the opencv flow backend runs on the CPU only (device {device!r}); use --backend torch")
    return backend, device if backend == "torch" else "cpu"


def _tvl1_torch(gray: np.ndarray, device: str, batch: int | None) -> np.ndarray:
    """TV-L1 of consecutive pairs in batches of ``batch`` pairs on ``device``."""
    from i3d_train.flow.tvl1 import tvl1

    dev = torch.device(device)
    batch = batch or TORCH_BATCH.get(dev.type, 32)
    frames = torch.from_numpy(np.ascontiguousarray(gray)).to(dev)
    out = np.empty((len(gray) - 1, *gray.shape[1:], 2), dtype=np.float32)
    for s in range(0, len(out), batch):
        e = min(s + batch, len(out))
        out[s:e] = tvl1(frames[s:e], frames[s + 1 : e + 1]).permute(0, 2, 3, 1).cpu().numpy()
    return out


def compute_flow(
    gray: np.ndarray, method: str = "tvl1", backend: str = "auto", device: str | None = None, batch: int | None = None
) -> np.ndarray:
    """Flow between consecutive grayscale frames ``uint8 (N, H, W)`` -> ``float32 (N - 1, H, W, 2)`` (x, y).

    ``backend`` (tvl1): ``opencv`` (``cv2.optflow.DualTVL1OpticalFlow``, one pair at a time), ``torch``
    (:func:`i3d_train.flow.tvl1.tvl1` on ``device``, ``batch`` consecutive pairs per call) or ``auto``
    (see :func:`resolve_backend`). Both give the same flow up to a few hundredths of a pixel."""
    backend, device = resolve_backend(method, backend, device)
    if len(gray) < 2:
        return np.empty((0, *gray.shape[1:], 2), dtype=np.float32)
    if backend == "torch":
        return _tvl1_torch(gray, device, batch)
    out = np.empty((len(gray) - 1, *gray.shape[1:], 2), dtype=np.float32)
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create() if method == "tvl1" else None
    for i in range(len(gray) - 1):
        if tvl1 is not None:
            out[i] = tvl1.calc(gray[i], gray[i + 1], None)
        else:
            # OpenCV's usual settings: pyramid 0.5, 3 levels, window 15, 3 iterations, poly 5 / 1.2.
            out[i] = cv2.calcOpticalFlowFarneback(gray[i], gray[i + 1], None, 0.5, 3, 15, 3, 5, 1.2, 0)
    return out


def to_gray(frames: np.ndarray, short_side: int | None) -> np.ndarray:
    """``uint8 (N, H, W, 3)`` RGB -> ``uint8 (N, h, w)`` grayscale, short side resized when given."""
    if short_side and min(frames.shape[1:3]) != short_side:
        clip = resize_short_side(to_float_clip(frames), short_side)  # 3 x N x h x w
        frames = clip.permute(1, 2, 3, 0).round().clamp(0, 255).byte().numpy()
    return np.stack([cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in frames])


def write_flow_folder(folder: Path, flow: np.ndarray, store: FlowStore, meta: dict) -> None:
    """Write ``flow (N, H, W, 2)`` as JPEG pairs plus meta.json, atomically (temp folder + rename)."""
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    q = store.quantize(flow)
    params = [cv2.IMWRITE_JPEG_QUALITY, store.jpeg_quality]
    for i in range(len(q)):
        cv2.imwrite(str(tmp / f"flow_x_{i + 1:05d}.jpg"), q[i, :, :, 0], params)
        cv2.imwrite(str(tmp / f"flow_y_{i + 1:05d}.jpg"), q[i, :, :, 1], params)
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def is_complete(folder: Path) -> bool:
    return (folder / "meta.json").is_file()


class FlowMethodError(ValueError):
    """A flow folder computed with another method than the one asked for (one line for the user)."""


def read_meta(folder: str | Path, method: str | None = None) -> dict:
    """The folder's ``meta.json``; with ``method``, checked to be flow of that method."""
    meta = json.loads((Path(folder) / "meta.json").read_text())
    if method is not None and meta.get("method") != method:
        raise FlowMethodError(
            f"{folder}: holds {meta.get('method')} flow, expected {method} (meta.json 'method'; "
            f"set data.flow_method={meta.get('method')} to use it, or point data.flow_root to {method} flow)"
        )
    return meta


def check_fps(meta: dict, fps: float | None, folder: str | Path) -> None:
    """A flow folder stored at another rate than the one asked for cannot be used: one-line error."""
    if fps is not None and abs(float(meta["fps"]) - float(fps)) > 1e-3:
        raise ValueError(
            f"{folder}: flow stored at {float(meta['fps']):g} fps but {float(fps):g} fps requested "
            f"(re-extract it with --fps {float(fps):g})"
        )


def read_flow(
    folder: str | Path, indices: np.ndarray | list[int] | None = None, meta: dict | None = None
) -> np.ndarray:
    """Stored flow frames ``indices`` (0-based; past the end wraps, like looping videos) ->
    ``float32 (len(indices), H, W, 2)`` in [-bound, bound]. ``meta``: the folder's meta.json, if
    already read."""
    folder = Path(folder)
    meta = meta or read_meta(folder)
    n = meta["flow_frames"]
    store = FlowStore(bound=meta["bound"])
    idx = np.arange(n) if indices is None else loop(indices, n)
    out = []
    for i in idx:
        x = cv2.imread(str(folder / f"flow_x_{i + 1:05d}.jpg"), cv2.IMREAD_GRAYSCALE)
        y = cv2.imread(str(folder / f"flow_y_{i + 1:05d}.jpg"), cv2.IMREAD_GRAYSCALE)
        if x is None or y is None:
            raise FileNotFoundError(f"{folder}: flow frame {i + 1} missing")
        out.append(np.stack([x, y], axis=-1))
    return store.dequantize(np.stack(out))


@dataclass(frozen=True)
class ExtractOptions:
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
