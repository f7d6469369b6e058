"""One video -> one frame folder, the format :mod:`i3d_train.data.frames` reads::

    <dst>/<video name>/img_00001.jpg, img_00002.jpg, ...   RGB JPEG (4:4:4), 1-based, at the extraction fps
    <dst>/<video name>/meta.json                           fps, frames, size, source video and options

Frame ``i`` is frame ``i`` of the video resampled to ``fps`` (:func:`i3d_train.video.stream.iter_frames`:
the source frame shown at time ``i / fps``, the rule every reader of the project uses). The folder is
filled under a temporary name (:func:`i3d_train.runtime.atomic.atomic_dir`) and renamed when complete,
``meta.json`` written last: whatever exists under the final name is complete, a killed run leaves at
most a hidden ``.<name>.<host>.<pid>.<token>.tmp`` folder, which the next writer of that video removes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from i3d_train.data.frames import frame_path
from i3d_train.runtime.atomic import atomic_dir, write_json
from i3d_train.video.reader import VideoDecodeError, probe
from i3d_train.video.stream import iter_frames

META = "meta.json"
PROGRESS_EVERY = 50  # frames between two calls of ``progress`` (a lock's refresh)


@dataclass(frozen=True)
class FrameOptions:
    """How the frames of a video are extracted (the command's options)."""

    fps: float = 25.0  # the rate of the frames (training reads them at data.frames_fps)
    short_side: int | None = None  # resize so the short side is this; None: the video's own size
    quality: int = 95  # JPEG quality
    chroma: str = "444"  # JPEG chroma sampling: 444 (full) or 420 (a third smaller files, see CHROMA)


# The video's colour is already subsampled (4:2:0); a 4:2:0 JPEG subsamples it again on another grid, which
# on saturated fine texture (the synthetic set) triples the error: mean absolute 9 against 2.7 for 4:4:4 at
# quality 95 (0-255 scale); on camera footage the difference is smaller.
CHROMA = {"444": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444, "420": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420}


def target_size(h: int, w: int, short_side: int | None) -> tuple[int, int]:
    """``(h, w)`` with the short side ``short_side``, aspect ratio kept (the rule of
    ``i3d_train.video.resize.short_side_size``, not imported: it would load torch into every worker)."""
    if not short_side:
        return h, w
    if h <= w:
        return short_side, max(1, round(w * short_side / h))
    return max(1, round(h * short_side / w)), short_side


def resize(frame: np.ndarray, short_side: int | None) -> np.ndarray:
    """``uint8 (H, W, 3)`` with its short side resized (area filter when shrinking, bilinear when growing)."""
    h, w = frame.shape[:2]
    nh, nw = target_size(h, w, short_side)
    if (nh, nw) == (h, w):
        return frame
    return cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_AREA if nh < h else cv2.INTER_LINEAR)


def jpeg_params(opts: FrameOptions) -> list[int]:
    return [cv2.IMWRITE_JPEG_QUALITY, opts.quality, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, CHROMA[opts.chroma]]


def write_jpeg(path: Path, frame: np.ndarray, params: list[int]) -> None:
    """One ``uint8 (H, W, 3)`` RGB frame as a JPEG, ``params`` from :func:`jpeg_params`."""
    if not cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), params):
        raise OSError(f"cannot write {path}")


def is_complete(folder: str | Path) -> bool:
    """Whether ``folder`` is a finished frame folder of this command (its ``meta.json`` is there)."""
    return (Path(folder) / META).is_file()


def read_meta(folder: str | Path) -> dict:
    return json.loads((Path(folder) / META).read_text())


def extract_frames(
    src: str | Path,
    folder: str | Path,
    opts: FrameOptions = FrameOptions(),
    progress: Callable[[], None] | None = None,
    threads: int = 0,
) -> dict:
    """Decode ``src`` at ``opts.fps`` front to back and write its frames into ``folder`` (atomically, see the
    module doc). Memory holds one frame at a time, whatever the video's length. ``progress``: called every
    ``PROGRESS_EVERY`` frames; ``threads``: decoding threads (0: FFmpeg's choice). Returns ``meta.json``."""
    src, folder = Path(src), Path(folder)
    info = probe(src)
    n = info.num_frames_at(opts.fps)
    if n < 1:
        raise VideoDecodeError(f"{src}: no frames")
    params = jpeg_params(opts)
    with atomic_dir(folder) as tmp:
        count, size = 0, (0, 0)
        for i, frame in iter_frames(src, opts.fps, info, threads=threads):
            frame = resize(frame, opts.short_side)
            write_jpeg(frame_path(tmp, i), frame, params)
            count, size = count + 1, frame.shape[:2]
            if progress is not None and count % PROGRESS_EVERY == 0:
                progress()
        if count != n:
            raise VideoDecodeError(f"{src}: decoded {count} of its {n} frames at {opts.fps:g} fps")
        meta = {
            "source": str(src),
            "fps": opts.fps,
            "frames": count,
            "height": int(size[0]),
            "width": int(size[1]),
            "source_fps": info.fps,
            "source_frames": info.num_frames,
            "short_side": opts.short_side,
            "quality": opts.quality,
            "chroma": opts.chroma,
        }
        write_json(tmp / META, meta)  # last: its presence means complete
    return meta
