"""Optical flow: TV-L1 (the paper's) or Farneback extraction, and the JPEG folder storage format."""

from i3d_train.flow.extract import FlowStore, compute_flow, extract_video, read_flow

__all__ = ["FlowStore", "compute_flow", "extract_video", "read_flow"]
