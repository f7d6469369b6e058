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

import numpy as np
import torch
from torch.utils.data import Dataset

from i3d_train.data.frames import probe_frames, read_frame_folder
from i3d_train.data.probe_cache import ProbeCache
from i3d_train.data.samplers import ClipSampler, clip_indices
from i3d_train.data.transforms import ClipTransform
from i3d_train.flow.store import is_complete, read_flow, read_meta
from i3d_train.runtime.cores import worker_threads
from i3d_train.video.decoders import Decoder
from i3d_train.video.reader import VideoDecodeError, loop, probe
from i3d_train.video.resize import resize_flow, resize_frames

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoItem:
    """One video of a split: where it is, its class id, and a stable id (path relative to the root)."""

    path: Path
    label: int
    video_id: str
    flow_dir: Path | None = None  # stored flow of this video (python -m i3d_train.flow), if any
    frames_dir: Path | None = None  # pre-extracted frames (img_00001.jpg, ...), read instead of the file


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
        modalities: what each sample holds: ``rgb``, ``flow`` or both.
        flow_frames: flow frames per clip (default ``num_frames``); both modalities start at the same
            frame, e.g. Two-Stream's 1 RGB frame and the 10 flow frames from it.
        flow_stride: step between flow frames (default ``frame_stride``).
        frames_fps: frame rate of the items' frame folders (``VideoItem.frames_dir``).
        flow_method: the flow method stored flow must have been computed with (``meta.json``), if set.
        decoder: who decodes the video files (:class:`i3d_train.video.decoders.Decoder`: PyAV, or NVDEC
            per video); default PyAV. Each decoder runs with this worker's share of the CPU's cores.
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
        modalities: tuple[str, ...] = ("rgb",),
        flow_frames: int | None = None,
        flow_stride: int | None = None,
        frames_fps: float = 25.0,
        flow_method: str | None = None,
        decoder: Decoder | None = None,
    ) -> None:
        self.items = items
        self.decoder = decoder or Decoder("pyav")
        self.warned: set[str] = set()  # unreadable videos already named in the log
        self.flow_method = flow_method
        self.num_frames = num_frames
        self.fps = fps
        self.frame_stride = frame_stride
        self.sampler = sampler
        self.transform = transform
        self.skip_bad = skip_bad
        self.max_retries = max_retries
        unknown = set(modalities) - {"rgb", "flow"}
        if unknown or not modalities:
            raise ValueError(f"modalities must be a non-empty subset of ('rgb', 'flow'), got {modalities}")
        self.modalities = tuple(modalities)
        self.frames_fps = frames_fps
        self.probes = ProbeCache(len(items))  # each video probed once per run, shared by the workers
        self.frames = {  # (frames, stride) per modality
            "rgb": (num_frames, frame_stride),
            "flow": (flow_frames or num_frames, flow_stride or frame_stride),
        }

    @property
    def num_clips(self) -> int:
        """Views per video: temporal clips x spatial crops."""
        return self.sampler.num_clips * self.transform.crops

    def __len__(self) -> int:
        return len(self.items) * self.num_clips

    def _flow_meta(self, item: VideoItem) -> dict:
        """The flow folder's metadata; a video without complete flow counts as unreadable, flow of
        another method than ``flow_method`` is an error (FlowMethodError)."""
        if item.flow_dir is None or not is_complete(item.flow_dir):
            raise VideoDecodeError(f"no complete flow folder for {item.video_id} ({item.flow_dir})")
        return read_meta(item.flow_dir, self.flow_method)

    def _flow(self, item: VideoItem, meta: dict, indices, size: tuple[int, int] | None) -> torch.Tensor:
        """Stored flow for ``indices`` as ``(2, T, h, w)``, resized like the frames (vectors scaled
        with the image)."""
        flow = torch.from_numpy(read_flow(item.flow_dir, indices, meta)).permute(3, 0, 1, 2)  # 2 x T x H x W
        return resize_flow(flow, self.transform.resize, size)

    def _note_fallback(self) -> None:
        """Log each reason for decoding with PyAV instead of NVDEC once per process."""
        reason = self.decoder.last[1]
        if reason is not None and self.decoder.fallbacks[reason] == 1:
            log.warning("decoding with PyAV instead of NVDEC: %s (first: %s)", reason, self.decoder.last_path)

    def load(self, video_index: int, clip_index: int, rng: random.Random) -> dict[str, torch.Tensor]:
        """Decode and transform one clip (raises :class:`VideoDecodeError` for a bad file)."""
        item = self.items[video_index]
        clip_index, crop_index = divmod(clip_index, self.transform.crops)
        frames_of = dict(self.frames)
        meta = self._flow_meta(item) if "flow" in self.modalities else None
        # N frames have N - 1 flow fields: with flow, clips start where both modalities have data, and
        # both loop with that period (video.reader.loop), so frame i and field i stay together.
        n = int(meta["flow_frames"]) if meta is not None else None
        if "rgb" in self.modalities:
            frames_dir = item.frames_dir
            info = self.probes.get(
                video_index, lambda: probe_frames(frames_dir, self.frames_fps) if frames_dir else probe(item.path)
            )
            n = min(info.num_frames_at(self.fps), n or 1 << 62)
        tiles = getattr(self.sampler, "tiles", False)
        if self.sampler.whole_video and not tiles:  # every frame (at the stride): the paper's test protocol
            frames_of = {m: (max(1, -(-n // stride)), stride) for m, (_, stride) in frames_of.items()}
        span = max((t - 1) * stride + 1 for m, (t, stride) in frames_of.items() if m in self.modalities)
        # one clip, or (the paper's test input of fixed-length models) clips back to back over the video
        starts = self.sampler.tile_starts(n, span) if tiles else [self.sampler.start(n, span, clip_index, rng)]

        def indices_of(m: str) -> np.ndarray:  # one loop period for both modalities (video.reader.loop)
            return loop(np.concatenate([clip_indices(start, *frames_of[m]) for start in starts]), n)

        clips: dict[str, torch.Tensor] = {}
        if "rgb" in self.modalities:
            indices = indices_of("rgb")
            if frames_dir:
                frames = read_frame_folder(frames_dir, indices, self.fps, info)
            else:
                frames = self.decoder.read_frames(item.path, indices, self.fps, info, threads=worker_threads())
                self._note_fallback()
            clips["rgb"] = resize_frames(torch.from_numpy(frames), self.transform.resize)  # T x H x W x 3
        size = tuple(clips["rgb"].shape[1:3]) if "rgb" in clips else None
        if meta is not None:
            clips["flow"] = self._flow(item, meta, indices_of("flow"), size)
            size = size or tuple(clips["flow"].shape[-2:])
        p = self.transform.draw(*size, rng, crop_index)  # one crop and flip for every modality
        sample = {
            "label": torch.tensor(item.label, dtype=torch.long),
            "video_index": torch.tensor(video_index, dtype=torch.long),
            "clip_index": torch.tensor(clip_index * self.transform.crops + crop_index, dtype=torch.long),  # view
        }
        if self.decoder.wants_gpu:  # clips decoded with PyAV although NVDEC was possible (train/decoder_fallbacks)
            fell_back = "rgb" in clips and not frames_dir and self.decoder.last[1] is not None
            sample["decoder_fallback"] = torch.tensor(int(fell_back), dtype=torch.long)
        if "rgb" in clips:
            sample["rgb"] = self.transform.frames(clips["rgb"], p)
        if "flow" in clips:
            sample["flow"] = (self.transform.apply(clips["flow"], p, is_flow=True) / meta["bound"]).clamp(-1, 1)
        if tiles:  # (C, K*T, H, W) -> (K, C, T, H, W): K clips of one video, averaged by the module
            for m in self.modalities:
                c, kt, h, w = sample[m].shape
                sample[m] = sample[m].view(c, len(starts), kt // len(starts), h, w).transpose(0, 1).contiguous()
        return sample

    def __getitem__(self, index: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        """Sample ``index``; ``(index, seed)`` (from :class:`SeededSampler`) also sets its random draws
        (start, crop, flip, replacement of a bad video), else they are seeded by the index."""
        index, seed = index if isinstance(index, tuple) else (index, index)
        video_index, clip_index = divmod(index, self.num_clips)
        rng = random.Random(seed)  # never the global generators: resumed runs draw the same
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
                item = self.items[video_index]
                if item.video_id not in self.warned:  # each bad video named once per worker (train.log)
                    self.warned.add(item.video_id)
                    log.warning("skipped unreadable video %s (replaced by another): %s", item.video_id, e)
                video_index = rng.randrange(len(self.items))
