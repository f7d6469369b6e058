"""What a loader needs to know about each video (frame count, fps, size), probed once per run.

A sample used to open its video twice: once to probe it, once to decode the clip. The probe results
live here instead, in a table in shared memory (``torch.Tensor.share_memory_``) owned by the dataset:
every DataLoader worker reads and fills the same table, and it outlives the workers, so a video is
probed once per run whatever the number of workers and epochs (workers are not persistent). Rows are
indexed by the dataset's video index; the item list never changes after the dataset is built.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from i3d_train.video.reader import VideoInfo

# codecs the table can name (its codec column is an index here, -1: another one, told as "")
CODECS = ("h264", "hevc", "vp9", "av1", "mpeg4", "msmpeg4v3", "mpeg2video", "mpeg1video", "vp8", "mjpeg", "gif")


class ProbeCache:
    """``get(i, probe)``: the :class:`VideoInfo` of video ``i``, from ``probe()`` the first time only."""

    def __init__(self, num_videos: int) -> None:
        # columns: num_frames (-1: not probed yet), fps, height, width, codec (index in CODECS); float64
        # holds all of them exactly
        self.table = torch.full((num_videos, 5), -1.0, dtype=torch.float64).share_memory_()

    def get(self, index: int, probe: Callable[[], VideoInfo]) -> VideoInfo:
        row = self.table[index]
        if row[0] >= 0:
            n, fps, h, w, c = row.tolist()
            return VideoInfo(int(n), fps, int(h), int(w), CODECS[int(c)] if c >= 0 else "")
        info = probe()  # a failure (VideoDecodeError) is not cached: the next sample of it tries again
        # The frame count, which marks the row as filled, is written last. Two workers that probe the
        # same video at once write the same values.
        codec = CODECS.index(info.codec) if info.codec in CODECS else -1
        row[1:] = torch.tensor([info.fps, info.height, info.width, codec], dtype=torch.float64)
        row[0] = info.num_frames
        return info

    def __len__(self) -> int:
        return int((self.table[:, 0] >= 0).sum())
