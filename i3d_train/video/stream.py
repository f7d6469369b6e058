"""Decoding a video front to back, one frame at a time: what long videos need.

:func:`i3d_train.video.reader.read_frames` decodes the frames a clip asks for (a seek per call) and
returns them all at once; for a whole video that is the whole video in memory. :func:`iter_frames`
yields the same frames, in order, from one pass of the decoder, so that a caller holding only the few
frames it needs at a time (feature extraction, prediction) uses the same memory for a 1-hour video as
for a 1-minute one. Frame ``i`` is exactly ``read_frames(path, [i], fps)[0]`` (same resampling rule:
index ``i`` at ``fps`` is the source frame shown at time ``i / fps``; a container that over-reports
its length repeats its last decodable frame).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from i3d_train.video.reader import VideoDecodeError, VideoInfo, open_video, probe, source_indices


def iter_frames(
    path: str | Path,
    fps: float | None = 25.0,
    info: VideoInfo | None = None,
    stop: int | None = None,
    threads: int = 0,
) -> Iterator[tuple[int, np.ndarray]]:
    """``(index, uint8 (H, W, 3))`` for every frame ``0 .. stop - 1`` of the video resampled to ``fps``
    (``stop``: default all ``info.num_frames_at(fps)`` frames), decoded in one forward pass
    (``threads``: decoding threads, 0: FFmpeg's choice)."""
    info = info or probe(path)
    n = info.num_frames_at(fps) if stop is None else min(stop, info.num_frames_at(fps))
    if n <= 0:
        return
    # source frame wanted by each target index (nondecreasing)
    wanted = np.minimum(source_indices(np.arange(n), info.fps, fps), info.num_frames - 1)
    container, stream = open_video(path, threads)
    try:
        start_pts = stream.start_time or 0
        tb = float(stream.time_base)
        target, last_idx, last_img = 0, -1, None
        try:
            for frame in container.decode(stream):
                idx = round((frame.pts - start_pts) * tb * info.fps) if frame.pts is not None else last_idx + 1
                last_idx = idx
                if idx < wanted[target]:
                    continue
                img = frame.to_ndarray(format="rgb24")
                last_img = img
                # a frame covers every wanted source index from its own up to the next frame's
                while target < n and wanted[target] <= idx:
                    yield target, img
                    target += 1
                if target >= n:
                    return
        except av.error.FFmpegError as e:
            raise VideoDecodeError(f"cannot decode {path}: {e}") from e
        if last_img is None:
            raise VideoDecodeError(f"no decodable frames in {path}")
        while target < n:  # the container over-reported its length: repeat the last frame
            yield target, last_img
            target += 1
    finally:
        container.close()
