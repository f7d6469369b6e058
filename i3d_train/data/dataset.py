"""One map-style video dataset shared by every dataset layout.

Per-dataset code (``ucf101.py``, ...) only turns official split files into :class:`VideoItem` lists;
this class decodes, samples clips and transforms. Item ``i`` is clip ``i % num_clips`` of video
``i // num_clips``, so multi-clip evaluation is a plain index range (deterministic under DDP).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from i3d_train.data.samplers import ClipSampler, clip_indices
from i3d_train.data.transforms import ClipTransform
from i3d_train.data.video import VideoDecodeError, probe, read_frames

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoItem:
    """One video of a split: where it is, its class id, and a stable id (path relative to the root)."""

    path: Path
    label: int
    video_id: str


class VideoDataset(Dataset):
    """Clips from a list of videos, as dicts ``{"rgb", "label", "video_index", "clip_index", "skipped"}``.

    Args:
        items: the videos.
        num_frames: frames per clip (at ``fps``).
        fps: target frame rate (paper: 25); ``None`` keeps each file's own rate.
        frame_stride: take every ``frame_stride``-th frame of the resampled video.
        sampler: where clips start (random / center / uniform).
        transform: spatial transform (resize, crop, flip, scale).
        skip_bad: replace a video that fails to decode by another one (and count it) instead of raising.
        max_retries: how many replacements to try before giving up.
    """

    def __init__(
        self,
        items: list[VideoItem],
        num_frames: int,
        fps: float | None,
        frame_stride: int,
        sampler: ClipSampler,
        transform: ClipTransform,
        skip_bad: bool = True,
        max_retries: int = 20,
    ) -> None:
        self.items = items
        self.num_frames = num_frames
        self.fps = fps
        self.frame_stride = frame_stride
        self.sampler = sampler
        self.transform = transform
        self.skip_bad = skip_bad
        self.max_retries = max_retries

    @property
    def num_clips(self) -> int:
        return self.sampler.num_clips

    def __len__(self) -> int:
        return len(self.items) * self.num_clips

    def load(self, video_index: int, clip_index: int, rng: random.Random) -> dict[str, torch.Tensor]:
        """Decode and transform one clip (raises :class:`VideoDecodeError` for a bad file)."""
        item = self.items[video_index]
        info = probe(item.path)
        n = info.num_frames_at(self.fps)
        span = (self.num_frames - 1) * self.frame_stride + 1
        start = self.sampler.start(n, span, clip_index, rng)
        frames = read_frames(item.path, clip_indices(start, self.num_frames, self.frame_stride), self.fps, info)
        return {
            "rgb": self.transform(frames, rng),
            "label": torch.tensor(item.label, dtype=torch.long),
            "video_index": torch.tensor(video_index, dtype=torch.long),
            "clip_index": torch.tensor(clip_index, dtype=torch.long),
        }

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        video_index, clip_index = divmod(index, self.num_clips)
        # Seeded from torch's generator, which Lightning seeds per worker: reproducible with a fixed seed.
        rng = random.Random(int(torch.randint(0, 2**62, (1,)).item()))
        skipped = 0
        while True:
            try:
                sample = self.load(video_index, clip_index, rng)
                sample["skipped"] = torch.tensor(skipped, dtype=torch.long)
                return sample
            except VideoDecodeError as e:
                if not self.skip_bad or skipped >= self.max_retries:
                    raise
                skipped += 1
                log.debug("skipping unreadable video: %s", e)
                video_index = rng.randrange(len(self.items))
