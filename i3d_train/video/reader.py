"""Decoding clips with PyAV: only the frames a clip needs, resampled to a target frame rate.

Frame indices here are in the *resampled* timeline: index ``i`` at target rate ``fps`` is the source
frame shown at time ``i / fps`` (the latest frame whose start time is not after it), which is how
"25 fps" is meant in the paper whatever the file's own rate. The reader seeks to the keyframe at or
before the first needed frame and decodes forward only as far as the last one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from i3d_train.video.timeline import cover, indexed


class VideoDecodeError(RuntimeError):
    """A file that cannot be opened or decoded as a video (missing stream, truncated, not a video)."""


@dataclass(frozen=True)
class VideoInfo:
    """What the reader needs to know about a file to sample clips from it."""

    num_frames: int  # frames in the source file
    fps: float  # the file's average frame rate
    height: int
    width: int
    codec: str = ""  # FFmpeg's name of the codec (h264, mpeg4, ...): which decoder can decode it

    def num_frames_at(self, fps: float | None) -> int:
        """Number of frames after resampling to ``fps`` (``None``: the file's own rate)."""
        if fps is None or abs(fps - self.fps) < 1e-6:
            return self.num_frames
        return max(1, math.floor(self.num_frames * fps / self.fps + 1e-6))


def open_video(path: str | Path, threads: int = 0) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    """The container and its first video stream; every video of the project is opened here.
    ``threads``: decoding threads (0: FFmpeg's choice, one per core: right for one decoder per machine,
    too many when each of several worker processes runs one)."""
    try:
        # Real files (HMDB-51's movie clips) carry non-UTF-8 bytes in their metadata: PyAV would refuse
        # to open them; the metadata is never used, the frames decode fine.
        container = av.open(str(path), metadata_errors="ignore")
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise VideoDecodeError(f"cannot open {path}: {e}") from e
    if not container.streams.video:
        container.close()
        raise VideoDecodeError(f"no video stream in {path}")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    if threads > 0:
        stream.codec_context.thread_count = threads
    return container, stream


def _stream_fps(stream: av.video.stream.VideoStream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 25.0


def probe(path: str | Path) -> VideoInfo:
    """Frame count, frame rate and size of a video without decoding it (decodes only if the
    container does not say how many frames it holds)."""
    container, stream = open_video(path)
    try:
        fps = _stream_fps(stream)
        n = stream.frames
        if not n:
            if stream.duration is not None and stream.time_base is not None:
                n = round(float(stream.duration * stream.time_base) * fps)
            elif container.duration is not None:
                n = round(container.duration / av.time_base * fps)
        if not n:
            try:
                n = sum(1 for _ in container.decode(stream))
            except av.error.FFmpegError as e:
                raise VideoDecodeError(f"cannot decode {path}: {e}") from e
        if not n:
            raise VideoDecodeError(f"no frames in {path}")
        return VideoInfo(
            int(n), fps, stream.codec_context.height, stream.codec_context.width, stream.codec_context.name
        )
    finally:
        container.close()


def loop(indices: np.ndarray | list[int], period: int) -> np.ndarray:
    """The one loop rule of the project (paper Sec. 2.5: short videos are looped): index ``i`` past the
    end is ``i mod period``. For RGB alone the period is the number of frames N; with flow it is the
    number of flow fields, N - 1, for RGB *and* flow (field ``i`` is the motion from frame ``i`` to
    ``i + 1``), so that frame ``i`` and field ``i`` stay together on every loop and no field is ever
    computed across the wrap from the last frame to the first. The reader, the frame folders, the
    stored flow, training and feature extraction all loop through here."""
    if period < 1:
        raise ValueError(f"cannot loop a video of {period} frames")
    return np.asarray(indices, dtype=np.int64) % period


def source_indices(indices: np.ndarray, src_fps: float, fps: float | None) -> np.ndarray:
    """Map indices at the target rate to indices of source frames (nearest earlier frame)."""
    indices = np.asarray(indices, dtype=np.int64)
    if fps is None or abs(fps - src_fps) < 1e-6:
        return indices
    return np.floor(indices * (src_fps / fps) + 1e-6).astype(np.int64)


@dataclass
class DecodeStats:
    """How much work a read did: lets tests check that the reader seeks."""

    decoded: int = 0
    seeks: int = 0
    last_index: int = -1  # the index (file's own timeline) of the last frame decoded


def read_frames(
    path: str | Path,
    indices: np.ndarray | list[int],
    fps: float | None = 25.0,
    info: VideoInfo | None = None,
    stats: DecodeStats | None = None,
    threads: int = 0,
) -> np.ndarray:
    """Decode the frames at ``indices`` of the video resampled to ``fps``.

    Indices past the end wrap around (short videos are looped, as in the paper). Repeated indices are
    decoded once.

    Args:
        path: the video file.
        indices: frame indices in the resampled timeline, any order, repeats allowed.
        fps: target frame rate (``None``: the file's own).
        info: the result of :func:`probe`, if already known.
        stats: filled with the number of decoded frames and seeks.
        threads: decoding threads (0: FFmpeg's choice).

    Returns:
        ``uint8`` array ``(len(indices), H, W, 3)``.
    """
    info = info or probe(path)
    n = info.num_frames_at(fps)
    wanted = source_indices(loop(indices, n), info.fps, fps)
    wanted = np.minimum(wanted, info.num_frames - 1)
    needed = sorted(set(wanted.tolist()))
    container, stream = open_video(path, threads)
    try:
        start_pts = stream.start_time or 0
        # Seek to the keyframe at or before the first frame needed (time of that frame, minus half a frame).
        if needed[0] > 0:
            first_t = needed[0] / info.fps
            container.seek(
                start_pts + int(max(first_t - 0.5 / info.fps, 0) / float(stream.time_base)),
                stream=stream,
                backward=True,
            )
            if stats:
                stats.seeks += 1

        def decoded():
            for frame in container.decode(stream):
                if stats:
                    stats.decoded += 1
                yield frame

        def recorded(pairs):
            for idx, frame in pairs:
                if stats:
                    stats.last_index = idx
                yield idx, frame

        pairs = recorded(indexed(decoded(), lambda f: f.pts, start_pts, float(stream.time_base), info.fps))
        try:
            got = [img for _, img in cover(pairs, needed, lambda f: f.to_ndarray(format="rgb24"))]
        except av.error.FFmpegError as e:
            raise VideoDecodeError(f"cannot decode {path}: {e}") from e
        except LookupError as e:
            raise VideoDecodeError(f"no decodable frames in {path}") from e
    finally:
        container.close()
    frames = dict(zip(needed, got, strict=True))
    return np.stack([frames[int(i)] for i in wanted])
