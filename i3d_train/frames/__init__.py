"""Frame extraction for ``data.storage=frames``: ``python -m i3d_train.frames --src <videos> --dst <frames root>``
writes the folders :mod:`i3d_train.data.frames` reads (:mod:`i3d_train.frames.cli`)."""

from i3d_train.frames.extract import FrameOptions, extract_frames, is_complete

__all__ = ["FrameOptions", "extract_frames", "is_complete"]
