"""Video transforms on tensors (no torchvision): the paper's augmentation (Sec. 2.5).

Train: resize the short side (256 in the paper), random crop (224), left-right flip for the whole clip.
Test: resize, center crop. Pixels are scaled to [-1, 1]. One random draw serves every modality of a
sample, so RGB and flow of one sample get the same crop and flip.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

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


def resize_frames(frames: torch.Tensor, size: int) -> torch.Tensor:
    """``uint8 (T, H, W, C)`` frames with the short side resized to ``size``, still ``uint8`` (bilinear,
    antialiased when shrinking). Works on uint8 channels-last data: several times faster than the same
    resize in float, and what the data loader uses for RGB."""
    t, h, w, c = frames.shape
    if min(h, w) == size:
        return frames
    nh, nw = short_side_size(h, w, size)
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


def resize_flow(flow: torch.Tensor, short_side: int | None = None, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Resize ``(2, T, H, W)`` flow to ``size`` (or its short side to ``short_side``), scaling the
    vectors with the image: displacements are in pixels."""
    h, w = flow.shape[-2:]
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


@dataclass
class SpatialParams:
    """One random draw shared by every modality of a sample."""

    top: int
    left: int
    flip: bool


class ClipTransform:
    """Short-side resize, crop (random or center), optional flip, scale to [-1, 1].

    Args:
        short_side: target short side before cropping (paper: 256).
        crop_size: square crop (paper: 224).
        train: random crop and flip if True, center crop otherwise.
        flip: allow the random left-right flip in training.
        crops: evaluation crops per clip: 1 (center) or 3 (start, center and end of the long side, the
            usual "3 crops" of "10 clips x 3 crops" testing).
    """

    def __init__(self, short_side: int, crop_size: int, train: bool, flip: bool = True, crops: int = 1) -> None:
        if crop_size > short_side:
            raise ValueError(f"crop_size {crop_size} is larger than short_side {short_side}")
        if crops not in (1, 3):
            raise ValueError(f"test crops must be 1 or 3, got {crops}")
        self.short_side = short_side
        self.crop_size = crop_size
        self.train = train
        self.flip = flip
        self.crops = 1 if train else crops

    def draw(self, h: int, w: int, rng: random.Random, crop_index: int = 0) -> SpatialParams:
        """Draw crop offsets and flip for a resized frame of size ``h x w`` (``crop_index``: which of
        the evaluation crops)."""
        s = self.crop_size
        if self.train:
            return SpatialParams(rng.randint(0, h - s), rng.randint(0, w - s), self.flip and rng.random() < 0.5)
        top, left = center_offsets(h, w, s)
        if self.crops == 3 and crop_index != 1:  # 0: start of the long side, 1: center, 2: end
            if w >= h:
                left = 0 if crop_index == 0 else w - s
            else:
                top = 0 if crop_index == 0 else h - s
        return SpatialParams(top, left, False)

    def apply(self, clip: torch.Tensor, p: SpatialParams, is_flow: bool = False) -> torch.Tensor:
        """Crop/flip a resized ``(C, T, H, W)`` clip. Flipping flow also negates its x channel."""
        clip = crop(clip, p.top, p.left, self.crop_size)
        if p.flip:
            clip = clip.flip(-1)
            if is_flow:
                clip = clip.clone()
                clip[0] = -clip[0]
        return clip

    def frames(self, frames: torch.Tensor, p: SpatialParams) -> torch.Tensor:
        """Crop/flip resized ``uint8 (T, H, W, C)`` frames, then ``float32 (C, T, s, s)`` in [-1, 1]
        (the fast RGB path: every step but the last on uint8)."""
        s = self.crop_size
        x = frames[:, p.top : p.top + s, p.left : p.left + s]
        if p.flip:
            x = x.flip(2)
        return frames_to_unit(x)

    def __call__(self, frames: np.ndarray, rng: random.Random) -> torch.Tensor:
        """``uint8 (T, H, W, 3)`` -> ``float32 (3, T, crop, crop)`` in [-1, 1] (the loader's RGB path)."""
        x = resize_frames(torch.as_tensor(frames), self.short_side)
        return self.frames(x, self.draw(x.shape[1], x.shape[2], rng))
