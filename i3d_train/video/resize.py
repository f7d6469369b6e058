"""Resizing and cropping of frames, clips and flow on tensors (no torchvision), shared by the data
loaders, flow extraction, feature extraction and prediction."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def to_float_clip(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``uint8 (T, H, W, C)`` -> ``float32 (C, T, H, W)`` in [0, 255]."""
    t = torch.as_tensor(frames)
    return t.permute(3, 0, 1, 2).float()


def resize_short_side(clip: torch.Tensor, size: int) -> torch.Tensor:
    """Resize ``(C, T, H, W)`` so that ``min(H, W) == size``, keeping the aspect ratio (bilinear)."""
    h, w = clip.shape[-2:]
    if min(h, w) == size:
        return clip
    nh, nw = short_side_size(h, w, size)
    x = clip.permute(1, 0, 2, 3)  # T x C x H x W
    x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=nh < h)
    return x.permute(1, 0, 2, 3)


def short_side_size(h: int, w: int, size: int) -> tuple[int, int]:
    """``(h, w)`` after resizing the short side to ``size`` (aspect ratio kept)."""
    if h <= w:
        return size, max(1, round(w * size / h))
    return max(1, round(h * size / w)), size


def resized_size(h: int, w: int, resize: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """``(h, w)`` after a resize given as a short side (int) or an exact ``(height, width)``."""
    if isinstance(resize, int):
        return short_side_size(h, w, resize)
    nh, nw = resize
    return int(nh), int(nw)


def resize_frames(frames: torch.Tensor, size: int | tuple[int, int] | list[int]) -> torch.Tensor:
    """``uint8 (T, H, W, C)`` frames resized, still ``uint8`` (bilinear, antialiased when shrinking):
    ``size`` is the short side (aspect ratio kept) or an exact ``(height, width)``. Works on uint8
    channels-last data: several times faster than the same resize in float, and what the data loader
    uses for RGB."""
    t, h, w, c = frames.shape
    nh, nw = resized_size(h, w, size)
    if (nh, nw) == (h, w):
        return frames
    x = frames.permute(0, 3, 1, 2)  # T x C x H x W view, channels-last strides
    x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=nh < h)
    return x.permute(0, 2, 3, 1)


def frames_to_unit(frames: torch.Tensor) -> torch.Tensor:
    """``uint8 (T, H, W, C)`` -> ``float32 (C, T, H, W)`` in [-1, 1], in one pass."""
    # the transposition on uint8 (a quarter of the bytes), the conversion on contiguous data
    return frames.permute(3, 0, 1, 2).contiguous().to(torch.float32).div_(127.5).sub_(1.0)


def resize_to(clip: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize ``(C, T, H, W)`` to exactly ``size = (h, w)`` (bilinear)."""
    if tuple(clip.shape[-2:]) == tuple(size):
        return clip.clone()
    x = F.interpolate(clip.permute(1, 0, 2, 3), size=size, mode="bilinear", align_corners=False)
    return x.permute(1, 0, 2, 3)


def resize_flow(
    flow: torch.Tensor, short_side: int | tuple[int, int] | list[int] | None = None, size: tuple[int, int] | None = None
) -> torch.Tensor:
    """Resize ``(2, T, H, W)`` flow to ``size`` (or as ``short_side`` says: a short side, or an exact
    ``(height, width)``), scaling the vectors with the image: displacements are in pixels."""
    h, w = flow.shape[-2:]
    if size is None and not isinstance(short_side, int):
        size = tuple(short_side)
    out = resize_to(flow, size) if size is not None else resize_short_side(flow, short_side).clone()
    nh, nw = out.shape[-2:]
    out[0] *= nw / w
    out[1] *= nh / h
    return out


def crop(clip: torch.Tensor, top: int, left: int, size: int) -> torch.Tensor:
    return clip[..., top : top + size, left : left + size]


def center_offsets(h: int, w: int, size: int) -> tuple[int, int]:
    return max(0, (h - size) // 2), max(0, (w - size) // 2)


def scale_to_unit(clip: torch.Tensor) -> torch.Tensor:
    """[0, 255] -> [-1, 1], the input range of I3D."""
    return clip / 127.5 - 1.0
