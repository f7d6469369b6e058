"""Extract the frame folders that ``data.storage=frames`` trains from.

    python -m i3d_train.frames --src <video folder> --dst <frames root> [--fps 25] [--short-side N]
                               [--quality 95] [--chroma 444|420] [--workers N]

A video ``<src>/<a>/<b>.avi`` becomes ``<dst>/<a>/<b>/img_00001.jpg, ...`` plus ``meta.json``: its path
relative to ``--src`` without suffix, the name training looks for under ``data.frames_root`` when
``--src`` is the folder the dataset's video ids are relative to (UCF-101: ``<root>/UCF-101``; HMDB-51:
``<root>``; Kinetics-400: ``<root>``). Frames are taken at ``--fps`` (training's ``data.frames_fps``,
default 25) and kept at the video's size unless ``--short-side`` is given. Complete folders are skipped,
so an interrupted run resumes; several commands may share one ``--dst`` (each video is taken by one of
them, under its lock); a video that fails is reported at the end and does not stop the others. The
options are recorded in ``<dst>/frames.json``; a later run with another ``--fps`` or ``--short-side``
on the same ``--dst`` is refused. Exit status: 0, 1 when a video failed, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from i3d_train.frames.extract import CHROMA, FrameOptions
from i3d_train.frames.parallel import extract_many, plan
from i3d_train.runtime.atomic import write_json

OPTIONS_FILE = "frames.json"  # in --dst: the options its folders were extracted with


class UsageError(ValueError):
    """Bad arguments: one line on stderr, exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage block
        raise UsageError(f"{message} (see python -m i3d_train.frames --help)")


def parse(argv: list[str] | None) -> tuple[argparse.Namespace, FrameOptions]:
    p = Parser(
        prog="python -m i3d_train.frames",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[4:]),
    )
    p.add_argument("--src", required=True, type=Path, help="a video, or a folder of videos (walked recursively)")
    p.add_argument("--dst", required=True, type=Path, help="the frames root (training's data.frames_root)")
    p.add_argument("--fps", type=float, default=25.0, help="frame rate of the frames (data.frames_fps; default 25)")
    p.add_argument("--short-side", type=int, default=0, help="resize so the short side is this (default 0: keep)")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality, 1-100 (default 95)")
    p.add_argument(
        "--chroma", choices=sorted(CHROMA), default="444", help="JPEG chroma sampling (default 444; 420: smaller)"
    )
    p.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    args = p.parse_args(argv)
    if args.fps <= 0:
        p.error(f"--fps must be positive, got {args.fps:g}")
    if args.short_side < 0:
        p.error(f"--short-side must be 0 (keep the size) or positive, got {args.short_side}")
    if not 1 <= args.quality <= 100:
        p.error(f"--quality must be in 1..100, got {args.quality}")
    if args.workers < 1:
        p.error(f"--workers must be at least 1, got {args.workers}")
    return args, FrameOptions(args.fps, args.short_side or None, args.quality, args.chroma)


def check_options(dst: Path, opts: FrameOptions) -> None:
    """Record the options in ``<dst>/frames.json``, or refuse ones that differ from those recorded: a frames
    root holds frames of one rate and size, which training reads as ``data.frames_fps``."""
    path = dst / OPTIONS_FILE
    want = {"fps": opts.fps, "short_side": opts.short_side}
    try:
        have = json.loads(path.read_text())
    except FileNotFoundError:
        write_json(path, {**want, "quality": opts.quality, "chroma": opts.chroma})
        return
    except (json.JSONDecodeError, OSError) as e:
        raise UsageError(f"cannot read {path}: {e}") from None
    have = {k: have.get(k) for k in want}
    if have != want:

        def spell(o: dict) -> str:
            return f"--fps {o['fps']:g} --short-side {o['short_side'] or 0}"

        raise UsageError(
            f"{dst} holds frames extracted with {spell(have)} ({path}), not {spell(want)}: "
            "pass those options, or another --dst"
        )


def main(argv: list[str] | None = None) -> int:
    try:
        args, opts = parse(argv)
        try:
            pairs, clashes = plan(args.src, args.dst)
        except FileNotFoundError as e:
            raise UsageError(f"--src {e}") from None
        check_options(args.dst, opts)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    summary = extract_many(pairs, opts, args.workers)
    summary["failed"] = clashes + summary["failed"]
    for path, why in summary["failed"]:
        print(f"  failed: {path}: {why}")
    print(
        f"frames: {summary['done']} done, {summary['elsewhere']} left to another process, {summary['skipped']} "
        f"skipped (already complete), {len(summary['failed'])} failed; {summary['frames']} frames written, "
        f"{summary['fps_per_worker']:.1f} frames/s per worker"
    )
    return 1 if summary["failed"] else 0
