"""Optical flow between consecutive grayscale frames: TV-L1 (the paper's: OpenCV's or this project's
torch port, :mod:`i3d_train.flow.tvl1`) or Farneback.

The paper computes TV-L1 flow on grayscale frames at 25 fps, clips it to [-20, 20] and feeds it
rescaled to [-1, 1] (Sec. 2.5); the clipping and storage are :mod:`i3d_train.flow.store`'s.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from i3d_train.video.resize import resize_short_side, to_float_clip

METHODS = ("tvl1", "farneback")


BACKENDS = ("auto", "torch", "opencv")
# The TV-L1 backend that `auto` picks on a machine without a GPU: the faster one on this project's 2-core
# machine by `python benchmarks/flow_speed.py` (docs/flow.md, docs/results.md). On a GPU it is always torch.
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
