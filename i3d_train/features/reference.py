"""I3D features for temporal action localization: one 1024-d vector per snippet of a video.

A snippet is ``stack`` consecutive frames of the video at ``fps`` (default 16 at 25 fps), and snippets
start every ``step`` frames (default 16): snippet ``i`` covers frames ``[i * step, i * step + stack)``,
so a video of ``N`` frames gives ``(N - stack) // step + 1`` snippets, and one snippet (looped frames)
when ``N < stack``. With flow, ``N`` is the number of flow fields (frames - 1), for both modalities,
and both loop with that period (:func:`i3d_train.video.reader.loop`): field ``i`` is always the motion
from frame ``i`` to ``i + 1``, computed on the fly or read from a flow folder alike (never across the
wrap from the last frame to the first).
A snippet's feature is I3D's Mixed_5c map averaged over time and space (``extract_features``), the
input prepared as in training: short side resized to 256, a 224 center crop (or ten crops: the four
corners and the center, and their mirror images, flow x negated), values in [-1, 1]; flow clipped to
[-20, 20] and divided by 20.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from i3d_train.features.snippets import ExtractSettings, snippet_manifest, snippet_starts, views
from i3d_train.flow.compute import compute_flow, to_gray
from i3d_train.flow.store import check_fps, read_flow, read_meta
from i3d_train.inference.fast import InferenceModel
from i3d_train.video.reader import loop, probe, read_frames
from i3d_train.video.resize import frames_to_unit, resize_flow, resize_frames


class FeatureExtractor:
    """Extract per-snippet features of one video for each modality in ``models``."""

    def __init__(self, models: dict[str, InferenceModel], settings: ExtractSettings) -> None:
        unknown = set(models) - {"rgb", "flow"}
        if unknown or not models:
            raise ValueError(f"modalities must be rgb and/or flow, got {sorted(models)}")
        self.models = models
        self.s = settings

    def _frames(self, path: Path, idx: np.ndarray, info) -> torch.Tensor:
        """RGB frames ``idx`` (wrapping), short side resized: ``uint8 (T, H, W, 3)``."""
        return resize_frames(torch.from_numpy(read_frames(path, idx, self.s.fps, info)), self.s.short_side)

    def _computed_flow(self, path: Path, idx: np.ndarray, info) -> np.ndarray:
        """Fields ``idx`` (already looped, each < frames - 1) computed on the fly: field ``i`` from frames
        ``i`` and ``i + 1``, each contiguous run of fields from one decoded run of frames."""
        fields: dict[int, np.ndarray] = {}
        wanted = np.unique(idx)
        runs = np.split(wanted, np.flatnonzero(np.diff(wanted) != 1) + 1)
        for run in runs:
            frames = read_frames(path, np.arange(run[0], run[-1] + 2), self.s.fps, info)
            flow = compute_flow(
                to_gray(frames, self.s.short_side),
                self.s.flow_method,
                self.s.flow_backend,
                self.s.flow_device,
                self.s.flow_batch,
            )
            fields.update(zip(run.tolist(), flow, strict=True))
        return np.stack([fields[i] for i in idx.tolist()])

    def _flow(self, path: Path, idx: np.ndarray, info, flow_dir: Path | None, meta) -> torch.Tensor:
        """Flow fields ``idx`` as ``(2, T, H, W)`` in [-1, 1], short side resized."""
        if self.s.flow_source == "folder":
            flow = read_flow(flow_dir, idx, meta)
            bound = meta["bound"]
        else:
            flow = self._computed_flow(path, idx, info)
            bound = self.s.flow_bound
        flow = torch.from_numpy(np.ascontiguousarray(flow)).permute(3, 0, 1, 2).float()
        flow = resize_flow(flow, self.s.short_side)
        return (flow / bound).clamp_(-1, 1)

    def extract(self, path: str | Path, flow_dir: str | Path | None = None) -> tuple[dict[str, np.ndarray], dict]:
        """``({modality: features}, manifest)``; features ``(snippets, 1024)`` or ``(snippets, 10, 1024)``."""
        path = Path(path)
        s = self.s
        info = probe(path)
        n_frames = info.num_frames_at(s.fps)
        meta = read_meta(flow_dir) if "flow" in self.models and s.flow_source == "folder" else None
        if meta is not None:
            check_fps(meta, s.fps or info.fps, flow_dir)
        n = n_frames
        if "flow" in self.models:
            n = int(meta["flow_frames"]) if meta is not None else n_frames - 1
            if n < 1:
                raise ValueError(f"{path}: {n_frames} frame(s): flow needs at least 2")
        starts = snippet_starts(n, s.stack, s.step)
        feats: dict[str, list[np.ndarray]] = {m: [] for m in self.models}
        for b in range(0, len(starts), s.batch_size):
            chunk = starts[b : b + s.batch_size]
            lo, hi = chunk[0], chunk[-1] + s.stack
            idx = np.arange(lo, hi)
            for modality, model in self.models.items():
                if modality == "rgb":
                    frames = self._frames(path, loop(idx, n), info)  # T x H x W x 3 uint8
                    clip = frames_to_unit(frames)  # 3 x T x H x W
                else:
                    clip = self._flow(path, loop(idx, n), info, Path(flow_dir) if flow_dir else None, meta)
                batch = torch.stack(
                    [
                        views(clip[:, st - lo : st - lo + s.stack], s.crop_size, s.crops, modality == "flow")
                        for st in chunk
                    ]
                )  # B x V x C x T x h x w
                out = model(batch.flatten(0, 1), "extract_features").view(len(chunk), batch.shape[1], -1)
                feats[modality].append((out[:, 0] if s.crops == "center" else out).cpu().numpy())
        result = {m: np.concatenate(v).astype(np.float32) for m, v in feats.items()}
        manifest = snippet_manifest(path, s.fps or info.fps, s, n_frames, n, starts, list(self.models), meta)
        manifest["shapes"] = {m: list(f.shape) for m, f in result.items()}
        return result, manifest
