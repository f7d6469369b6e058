"""Decoding on the GPU's video engines (NVDEC) through PyNvVideoCodec (``pip install -e ".[gpu]"``).

PyNvVideoCodec bundles its own demuxer (libavformat) and needs only the driver's ``libnvcuvid``; it
decodes into GPU memory and converts to interleaved RGB there (``OutputColorType.RGB``), and the frame
reaches torch through DLPack. Which frame is frame ``i`` is decided by the project's rule
(:func:`i3d_train.video.timeline.cover`) from each frame's presentation timestamp, exactly as for PyAV;
the stream's start time and time base come from the container (read by PyAV, nothing decoded).

Frames are handed back as ``uint8 (H, W, 3)`` host arrays (the callers resize and crop them like PyAV's):
the decoding, the expensive part, is off the CPU. Use through :class:`i3d_train.video.decoders.Decoder`,
which picks this module per video and falls back to PyAV where it cannot decode.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from i3d_train.video.reader import VideoDecodeError, VideoInfo, loop, open_video, source_indices
from i3d_train.video.timeline import cover, indexed

BATCH = 16  # frames asked of the decoder at a time


def _open(path: str | Path, gpu: int):
    import PyNvVideoCodec as nvc  # noqa: N813

    return nvc.SimpleDecoder(str(path), gpu_id=gpu, use_device_memory=True, output_color_type=nvc.OutputColorType.RGB)


def _timing(path: str | Path) -> tuple[int, float]:
    """The video stream's start time and time base (what its frames' timestamps count in)."""
    container, stream = open_video(path)
    try:
        return stream.start_time or 0, float(stream.time_base)
    finally:
        container.close()


def _decoded(decoder) -> Iterator:
    while True:
        batch = decoder.get_batch_frames(BATCH)
        if not batch:
            return
        yield from batch


def _pts(frame) -> int | None:
    get = getattr(frame, "getPTS", None)
    pts = get() if get is not None else getattr(frame, "timestamp", None)
    return None if pts is None or pts < 0 else int(pts)


def _rgb(frame) -> np.ndarray:
    import torch

    # a host copy: the decoder reuses its GPU surfaces for the next frames
    return torch.from_dlpack(frame).cpu().numpy()


def iter_frames(
    path: str | Path, fps: float | None, info: VideoInfo, stop: int | None, gpu: int
) -> Iterator[tuple[int, np.ndarray]]:
    """As :func:`i3d_train.video.stream.iter_frames`, decoded by NVDEC on GPU ``gpu``. The decoder is
    created before the first frame is asked for, so that a file it refuses fails at once (the caller
    then falls back to PyAV)."""
    n = info.num_frames_at(fps) if stop is None else min(stop, info.num_frames_at(fps))
    decoder = _open(path, gpu)
    start_pts, time_base = _timing(path)

    def frames() -> Iterator[tuple[int, np.ndarray]]:
        if n <= 0:
            return
        wanted = np.minimum(source_indices(np.arange(n), info.fps, fps), info.num_frames - 1)
        try:
            yield from cover(indexed(_decoded(decoder), _pts, start_pts, time_base, info.fps), wanted, _rgb)
        except LookupError as e:
            raise VideoDecodeError(f"no decodable frames in {path}") from e

    return frames()


def read_frames(path: str | Path, indices, fps: float | None, info: VideoInfo, gpu: int) -> np.ndarray:
    """As :func:`i3d_train.video.reader.read_frames`, decoded by NVDEC: seeks near the first frame
    needed (decoding again from the start if the seek went past it), decodes forward to the last."""
    n = info.num_frames_at(fps)
    wanted = np.minimum(source_indices(loop(indices, n), info.fps, fps), info.num_frames - 1)
    needed = sorted(set(wanted.tolist()))
    decoder = _open(path, gpu)
    start_pts, time_base = _timing(path)
    start = max(0, needed[0] - 2)
    for attempt in (start, 0):
        if attempt:
            decoder.seek_to_index(attempt)
        elif start:
            decoder.seek_to_index(0)
        pairs = indexed(_decoded(decoder), _pts, start_pts, time_base, info.fps)
        first = next(pairs, None)
        if first is None:
            raise VideoDecodeError(f"no decodable frames in {path}")
        if first[0] <= needed[0] or attempt == 0:
            break

    def again():
        yield first
        yield from pairs

    got = [img for _, img in cover(again(), needed, _rgb)]
    frames = dict(zip(needed, got, strict=True))
    return np.stack([frames[int(i)] for i in wanted])
