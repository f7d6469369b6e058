"""Clip samplers: where in a video the clips of a sample start.

A sampler only answers "which start frames" for a video of ``num_frames`` frames (at the target rate)
and a clip spanning ``span`` frames; the dataset turns starts into frame indices. Indices past the end
of a short video wrap around (looping, paper Sec. 2.5).
"""

from __future__ import annotations

import random

import numpy as np
from torch.utils.data import DistributedSampler


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
    """The paper's test protocol: the whole video. By default one clip made of every frame of the video
    (at the model's stride); the model averages its predictions over time. With ``tiles``, the model's
    own clip repeated back to back over the video (``max(1, num_frames // span)`` clips, stacked in one
    sample as ``(K, C, T, H, W)``), for models with a fixed input length (C3D, Two-Stream, 3D-Fused);
    their scores are averaged. Samples differ in length: use batch size 1."""

    whole_video = True

    def __init__(self, tiles: bool = False) -> None:
        self.tiles = tiles

    def tile_starts(self, num_frames: int, span: int) -> list[int]:
        """Starts of the back-to-back clips that cover the video (one, looped, if it is shorter)."""
        return [k * span for k in range(max(1, num_frames // span))]

    def start(self, num_frames: int, span: int, clip_index: int, rng: random.Random) -> int:
        return 0


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A per-sample random seed that depends only on the run's seed, the epoch and the sample."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1, dtype=np.uint64)[0] >> 1)


class SeededSampler(DistributedSampler):
    """Training order and augmentation that depend only on ``(seed, epoch)``: resumable exactly.

    Yields ``(index, sample_seed)`` pairs: the dataset draws the sample's temporal start, crop and flip
    from ``sample_seed``, so a run resumed from a checkpoint at epoch k sees the same clips as an
    uninterrupted one, whatever state the global random generators are in, and whatever worker
    processes load them. A ``DistributedSampler`` (shuffled by ``seed + epoch``, padded to an equal
    share per process), so Lightning keeps it under DDP and calls ``set_epoch``; one process by default.
    """

    def __init__(
        self, dataset, seed: int, shuffle: bool = True, num_replicas: int = 1, rank: int = 0, drop_last: bool = False
    ) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last)

    def __iter__(self):
        for i in super().__iter__():
            yield (i, sample_seed(self.seed, self.epoch, i))


def clip_indices(start: int, num_frames: int, stride: int = 1) -> np.ndarray:
    """Indices of a clip of ``num_frames`` frames taken every ``stride`` frames from ``start``."""
    return start + stride * np.arange(num_frames, dtype=np.int64)
