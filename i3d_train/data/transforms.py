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

from i3d_train.video.resize import center_offsets, crop, frames_to_unit, resize_frames


@dataclass
class SpatialParams:
    """One random draw shared by every modality of a sample."""

    top: int
    left: int
    flip: bool


class ClipTransform:
    """Resize, crop (random or center), optional flip, scale to [-1, 1].

    Args:
        resize: the frames' size before cropping: a short side (paper: 256), or an exact
            ``(height, width)`` (C3D: 128 x 171).
        crop_size: square crop (paper: 224).
        train: random crop and flip if True, center crop otherwise.
        flip: allow the random left-right flip in training.
        crops: evaluation crops per clip: 1 (center) or 3 (start, center and end of the long side, the
            usual "3 crops" of "10 clips x 3 crops" testing).
    """

    def __init__(
        self, resize: int | tuple[int, int] | list[int], crop_size: int, train: bool, flip: bool = True, crops: int = 1
    ) -> None:
        resize = int(resize) if isinstance(resize, int) else tuple(int(v) for v in resize)
        if isinstance(resize, tuple) and len(resize) != 2:
            raise ValueError(f"resize must be a short side or (height, width), got {resize}")
        if crop_size > (resize if isinstance(resize, int) else min(resize)):
            raise ValueError(f"crop_size {crop_size} is larger than the resized frames ({resize})")
        if crops not in (1, 3):
            raise ValueError(f"test crops must be 1 or 3, got {crops}")
        self.resize = resize
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
        x = resize_frames(torch.as_tensor(frames), self.resize)
        return self.frames(x, self.draw(x.shape[1], x.shape[2], rng))
