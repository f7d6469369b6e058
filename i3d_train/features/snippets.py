"""Which frames make each snippet, the views cut from them, and when each snippet is in the video."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from i3d_train.video.resize import center_offsets


def snippet_starts(num_frames: int, stack: int, step: int) -> list[int]:
    """First frame of every snippet (one snippet, looped, for videos shorter than ``stack``)."""
    if num_frames <= stack:
        return [0]
    return list(range(0, num_frames - stack + 1, step))


def crop_boxes(h: int, w: int, size: int, crops: str) -> list[tuple[int, int, bool]]:
    """``(top, left, flip)`` of each view: ``center`` or ``ten_crop``."""
    top, left = center_offsets(h, w, size)
    if crops == "center":
        return [(top, left, False)]
    if crops != "ten_crop":
        raise ValueError(f"crops must be 'center' or 'ten_crop', got {crops!r}")
    five = [(0, 0), (0, w - size), (h - size, 0), (h - size, w - size), (top, left)]
    return [(t, x, f) for f in (False, True) for t, x in five]


def views(clip: torch.Tensor, size: int, crops: str, is_flow: bool) -> torch.Tensor:
    """``(C, T, H, W)`` -> ``(V, C, T, size, size)``."""
    out = []
    for top, left, flip in crop_boxes(clip.shape[-2], clip.shape[-1], size, crops):
        v = clip[..., top : top + size, left : left + size]
        if flip:
            v = v.flip(-1)
            if is_flow:
                v = v.clone()
                v[0] = -v[0]
        out.append(v)
    return torch.stack(out)


@dataclass
class ExtractSettings:
    fps: float | None = 25.0
    stack: int = 16
    step: int = 16
    short_side: int = 256
    crop_size: int = 224
    crops: str = "center"  # center | ten_crop
    batch_size: int = 8  # snippets per forward pass
    flow_source: str = "compute"  # compute (on the fly) | folder (python -m i3d_train.flow output)
    flow_method: str = "tvl1"
    flow_bound: float = 20.0
    flow_backend: str = "auto"  # tvl1: torch | opencv | auto (torch on a GPU)
    flow_device: str | None = None  # torch backend; None: cuda when available
    flow_batch: int | None = None  # torch backend: frame pairs per call


def snippet_times(starts: list[int], stack: int, fps: float) -> dict[str, list[float]]:
    """Start, end and center of each snippet in seconds: frames ``[s, s + stack)`` at ``fps`` cover
    ``[s / fps, (s + stack) / fps)``, centred at ``(s + stack / 2) / fps``."""
    return {
        "snippet_start_times": [round(s / fps, 4) for s in starts],
        "snippet_end_times": [round((s + stack) / fps, 4) for s in starts],
        "snippet_center_times": [round((s + stack / 2) / fps, 4) for s in starts],
    }


def views_hwc(frame: torch.Tensor, size: int, crops: str) -> torch.Tensor:
    """:func:`views` of one channels-last frame: ``(h, w, 3)`` -> ``(V, size, size, 3)``."""
    out = []
    for top, left, flip in crop_boxes(frame.shape[0], frame.shape[1], size, crops):
        v = frame[top : top + size, left : left + size]
        out.append(v.flip(1) if flip else v)
    return torch.stack(out)


def snippet_manifest(
    video: str | Path,
    fps: float,
    s: ExtractSettings,
    n_frames: int,
    n: int,
    starts: list[int],
    modalities: list[str],
    flow_meta: dict | None = None,
) -> dict:
    """What a video's manifest says of its snippets (both extractors write this): ``n_frames`` frames at
    ``fps``, ``n`` of them used (flow: the number of fields), snippets starting at ``starts``;
    ``flow_meta``: the flow folder's ``meta.json`` when flow was read from one."""
    frame_size = getattr(s, "frame_size", None)
    out = {
        "video": str(video),
        "fps": fps,
        "stack": s.stack,
        "step": s.step,
        "frames": n_frames,
        "frames_used": n,
        "num_snippets": len(starts),
        "snippet_start_frames": starts,
        **snippet_times(starts, s.stack, fps),
        "looped": n < s.stack,
        "crops": s.crops,
        "short_side": None if frame_size else s.short_side,
        "frame_size": list(frame_size) if frame_size else None,
        "crop_size": s.crop_size,
        "modalities": list(modalities),
        "feature": "I3D Mixed_5c averaged over time and space (1024)",
    }
    if "flow" in modalities:
        out["flow"] = {
            "source": s.flow_source,
            "method": (flow_meta or {}).get("method", s.flow_method),
            "bound": (flow_meta or {}).get("bound", s.flow_bound),
        }
    return out
