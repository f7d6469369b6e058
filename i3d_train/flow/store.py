"""The flow folder format, one folder per video::

    <dst>/<video name>/flow_x_00001.jpg, flow_y_00001.jpg, ...   8-bit grayscale, [-bound, bound] -> [0, 255]
    <dst>/<video name>/meta.json                                  fps, size, method, bound, frames, source

Flow ``i`` (1-based in file names) is the motion from frame ``i`` to frame ``i + 1``: a video of N
frames has N - 1 flow frames. A folder is written under a temporary name and renamed when complete, so
an interrupted run never leaves a folder that counts as done; ``meta.json`` is written last.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from i3d_train.runtime.atomic import atomic_dir, write_json
from i3d_train.video.reader import loop


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


class FlowFolderWriter:
    """Flow fields appended to a (temporary) folder as JPEG pairs as they are computed: a long video is
    never all in memory. ``count``: fields written so far."""

    def __init__(self, folder: Path, store: FlowStore) -> None:
        self.folder, self.store, self.count = Path(folder), store, 0
        self.params = [cv2.IMWRITE_JPEG_QUALITY, store.jpeg_quality]

    def add(self, flow: np.ndarray) -> None:
        """Append ``flow (N, H, W, 2)``."""
        for q in self.store.quantize(flow):
            self.count += 1
            cv2.imwrite(str(self.folder / f"flow_x_{self.count:05d}.jpg"), q[:, :, 0], self.params)
            cv2.imwrite(str(self.folder / f"flow_y_{self.count:05d}.jpg"), q[:, :, 1], self.params)


def write_flow_folder(folder: Path, flow: np.ndarray, store: FlowStore, meta: dict) -> None:
    """Write ``flow (N, H, W, 2)`` as JPEG pairs plus meta.json, atomically (temp folder + rename)."""
    with atomic_dir(folder) as tmp:
        FlowFolderWriter(tmp, store).add(flow)
        write_json(tmp / "meta.json", meta)


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
