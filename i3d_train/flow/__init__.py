"""Optical flow: TV-L1 (the paper's) or Farneback extraction, and the JPEG folder storage format."""

from i3d_train.flow.compute import compute_flow
from i3d_train.flow.store import FlowStore, read_flow
from i3d_train.flow.video import extract_video

__all__ = ["FlowStore", "compute_flow", "extract_video", "read_flow"]
