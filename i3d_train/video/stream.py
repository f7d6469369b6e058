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
from i3d_train.video.timeline import cover, indexed


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
        pairs = indexed(
            container.decode(stream), lambda f: f.pts, stream.start_time or 0, float(stream.time_base), info.fps
        )
        try:
            yield from cover(pairs, wanted, lambda f: f.to_ndarray(format="rgb24"))
        except av.error.FFmpegError as e:
            raise VideoDecodeError(f"cannot decode {path}: {e}") from e
        except LookupError as e:
            raise VideoDecodeError(f"no decodable frames in {path}") from e
    finally:
        container.close()
