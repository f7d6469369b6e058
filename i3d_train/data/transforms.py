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
    if h <= w:
        nh, nw = size, max(1, round(w * size / h))
    else:
        nh, nw = max(1, round(h * size / w)), size
    x = clip.permute(1, 0, 2, 3)  # T x C x H x W
    x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=nh < h)
    return x.permute(1, 0, 2, 3)


def resize_to(clip: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize ``(C, T, H, W)`` to exactly ``size = (h, w)`` (bilinear)."""
    if tuple(clip.shape[-2:]) == tuple(size):
        return clip.clone()
    x = F.interpolate(clip.permute(1, 0, 2, 3), size=size, mode="bilinear", align_corners=False)
    return x.permute(1, 0, 2, 3)


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
    """

    def __init__(self, short_side: int, crop_size: int, train: bool, flip: bool = True) -> None:
        if crop_size > short_side:
            raise ValueError(f"crop_size {crop_size} is larger than short_side {short_side}")
        self.short_side = short_side
        self.crop_size = crop_size
        self.train = train
        self.flip = flip

    def draw(self, h: int, w: int, rng: random.Random) -> SpatialParams:
        """Draw crop offsets and flip for a resized frame of size ``h x w``."""
        s = self.crop_size
        if self.train:
            return SpatialParams(rng.randint(0, h - s), rng.randint(0, w - s), self.flip and rng.random() < 0.5)
        top, left = center_offsets(h, w, s)
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

    def resize(self, clip: torch.Tensor) -> torch.Tensor:
        """``(C, T, H, W)`` with its short side resized to ``short_side``."""
        return resize_short_side(clip, self.short_side)

    def __call__(self, frames: np.ndarray, rng: random.Random) -> torch.Tensor:
        """``uint8 (T, H, W, 3)`` -> ``float32 (3, T, crop, crop)`` in [-1, 1]."""
        clip = self.resize(to_float_clip(frames))
        p = self.draw(clip.shape[-2], clip.shape[-1], rng)
        return scale_to_unit(self.apply(clip, p))
