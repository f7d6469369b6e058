"""Clip samplers: where in a video the clips of a sample start.

A sampler only answers "which start frames" for a video of ``num_frames`` frames (at the target rate)
and a clip spanning ``span`` frames; the dataset turns starts into frame indices. Indices past the end
of a short video wrap around (looping, paper Sec. 2.5).
"""

from __future__ import annotations

import random

import numpy as np


class ClipSampler:
    """Base class. ``num_clips`` clips per video; ``start(num_frames, span, clip_index, rng)``."""

    num_clips: int = 1
    whole_video: bool = False  # the clip is the whole video (its length set by the video, not the model)

    def start(self, num_frames: int, span: int, clip_index: int, rng: random.Random) -> int:
        raise NotImplementedError


class RandomClipSampler(ClipSampler):
    """Training: a random start among those that leave a whole clip (0 if the video is too short)."""

    def start(self, num_frames: int, span: int, clip_index: int, rng: random.Random) -> int:
        return rng.randint(0, max(num_frames - span, 0))


class CenterClipSampler(ClipSampler):
    """Validation: the clip in the middle of the video."""

    def start(self, num_frames: int, span: int, clip_index: int, rng: random.Random) -> int:
        return max(num_frames - span, 0) // 2


class UniformClipSampler(ClipSampler):
    """Test: ``num_clips`` clips with evenly spaced starts from the first to the last valid start."""

    def __init__(self, num_clips: int) -> None:
        if num_clips < 1:
            raise ValueError(f"num_clips must be >= 1, got {num_clips}")
        self.num_clips = num_clips

    def start(self, num_frames: int, span: int, clip_index: int, rng: random.Random) -> int:
        if not 0 <= clip_index < self.num_clips:
            raise IndexError(f"clip_index {clip_index} out of range for {self.num_clips} clips")
        last = max(num_frames - span, 0)
        if self.num_clips == 1:
            return last // 2
        return round(clip_index * last / (self.num_clips - 1))


class WholeVideoSampler(ClipSampler):
    """The paper's test protocol: one clip made of every frame of the video (at the model's stride);
    the model averages its predictions over time. Clips differ in length: use batch size 1."""

    whole_video = True

    def start(self, num_frames: int, span: int, clip_index: int, rng: random.Random) -> int:
        return 0


def clip_indices(start: int, num_frames: int, stride: int = 1) -> np.ndarray:
    """Indices of a clip of ``num_frames`` frames taken every ``stride`` frames from ``start``."""
    return start + stride * np.arange(num_frames, dtype=np.int64)
