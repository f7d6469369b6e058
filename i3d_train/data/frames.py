"""Pre-extracted frame folders, the other way users keep video datasets.

One folder per video with ``img_00001.jpg``, ``img_00002.jpg``, ... (1-based, as most extraction
scripts write them), extracted at a known frame rate (``data.frames_fps``, default 25). Reading
returns the same thing as decoding the video: ``uint8 (T, H, W, 3)`` RGB, indices in the timeline
resampled to the target fps, looping past the end.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from i3d_train.video.reader import VideoDecodeError, VideoInfo, loop, source_indices

FRAME_PREFIX, FRAME_SUFFIX = "img_", ".jpg"


def frame_path(folder: Path, index: int) -> Path:
    """The file of 0-based frame ``index``."""
    return folder / f"{FRAME_PREFIX}{index + 1:05d}{FRAME_SUFFIX}"


def probe_frames(folder: str | Path, fps: float = 25.0) -> VideoInfo:
    """Number of frames in a frame folder (one directory listing; size unknown: 0)."""
    try:
        with os.scandir(folder) as it:
            n = sum(1 for e in it if e.name.startswith(FRAME_PREFIX) and e.name.endswith(FRAME_SUFFIX))
    except OSError as e:
        raise VideoDecodeError(f"cannot list frame folder {folder}: {e}") from e
    if n == 0:
        raise VideoDecodeError(f"no {FRAME_PREFIX}00001{FRAME_SUFFIX}... frames in {folder}")
    return VideoInfo(num_frames=n, fps=fps, height=0, width=0)


def read_jpeg(path: Path) -> np.ndarray | None:
    """One frame as ``uint8 (H, W, 3)`` RGB (None: unreadable). OpenCV's libjpeg-turbo, decoding straight
    to RGB where OpenCV can (4.10+): as fast as the fastest JPEG decoders on PyPI (simplejpeg), bit for
    bit the same pixels, 1.9x Pillow (``benchmarks/loader_speed.py`` prints the comparison)."""
    if _RGB is not None:
        return cv2.imread(str(path), _RGB)
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if img is None else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


_RGB = getattr(cv2, "IMREAD_COLOR_RGB", None)


def read_frame_folder(
    folder: str | Path, indices: np.ndarray | list[int], fps: float | None, info: VideoInfo
) -> np.ndarray:
    """Frames ``indices`` (target-fps timeline, wrapping) of a frame folder as ``uint8 (T, H, W, 3)`` RGB."""
    folder = Path(folder)
    n = info.num_frames_at(fps)
    wanted = np.minimum(source_indices(loop(indices, n), info.fps, fps), info.num_frames - 1)
    cache: dict[int, np.ndarray] = {}
    for i in set(wanted.tolist()):
        img = read_jpeg(frame_path(folder, i))
        if img is None:
            raise VideoDecodeError(f"cannot read {frame_path(folder, i)}")
        cache[i] = img
    try:
        return np.stack([cache[i] for i in wanted.tolist()])
    except ValueError as e:  # frames of different sizes
        raise VideoDecodeError(f"{folder}: frames differ in size") from e


def write_frame_folder(folder: str | Path, frames: np.ndarray, quality: int = 95) -> None:
    """Write ``uint8 (T, H, W, 3)`` RGB frames as ``img_00001.jpg``, ... (tests, conversion scripts)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        cv2.imwrite(str(frame_path(folder, i)), cv2.cvtColor(f, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
