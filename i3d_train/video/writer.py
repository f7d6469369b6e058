"""Writing videos: H.264 (yuv420p) with PyAV, bit-exact across runs."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from i3d_train.runtime.atomic import atomic_path


def rgb_to_yuv420p(frame: np.ndarray) -> np.ndarray:
    """RGB ``(H, W, 3)`` -> planar YUV 4:2:0 ``(H * 3 // 2, W)``, BT.601 limited range (what decoders
    assume for untagged H.264). Done here rather than by swscale, whose threaded conversion made the
    encoded bytes vary from run to run."""
    f = frame.astype(np.float32)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
    h, w = y.shape
    u = u.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    v = v.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    planes = np.concatenate([y.ravel(), u.ravel(), v.ravel()])
    return np.clip(np.rint(planes), 0, 255).astype(np.uint8).reshape(h * 3 // 2, w)


def _yuv_frame(frame: np.ndarray) -> av.VideoFrame:
    """A yuv420p ``av.VideoFrame`` whose line padding is zeroed too: the encoder reads past the
    visible width, and uninitialised padding made the encoded bytes vary from run to run."""
    h, w = frame.shape[:2]
    yuv = rgb_to_yuv420p(frame)
    planes = (yuv[:h], yuv[h : h + h // 4].reshape(h // 2, w // 2), yuv[h + h // 4 :].reshape(h // 2, w // 2))
    out = av.VideoFrame(w, h, "yuv420p")
    for plane, data in zip(out.planes, planes, strict=True):
        padded = np.zeros((data.shape[0], plane.line_size), dtype=np.uint8)
        padded[:, : data.shape[1]] = data
        plane.update(padded.tobytes())
    return out


def write_video(path: Path, frames: np.ndarray, fps: int, crf: int = 18, gop: int = 12) -> None:
    """Write ``uint8 (T, H, W, 3)`` frames as H.264 (yuv420p) with PyAV; atomically (temp file + rename)."""
    with atomic_path(path, keep_suffix=True) as tmp, av.open(str(tmp), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1
        # Bit-exact output needs one thread and no macroblock-tree lookahead (seen varying otherwise).
        stream.options = {
            "crf": str(crf),
            "preset": "veryfast",
            "g": str(gop),
            "threads": "1",
            "x264-params": "mbtree=0:rc-lookahead=0",
        }
        for i, f in enumerate(frames):
            frame = _yuv_frame(f)
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
