"""``python -m i3d_train.data check``: is a dataset complete, and can every file be read?

Reads the annotations with the same parsers as training, looks for every file (or frame folder), and
with ``--decode`` opens every present video and decodes three frames spread over it (start, middle,
end), which catches zero-byte, truncated and non-video files without decoding everything.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from i3d_train.data.dataset import VideoItem
from i3d_train.data.splits import VAL_SOURCES, DatasetFormatError, overlaps, with_validation

DATASETS = ("ucf101", "hmdb51", "kinetics400", "synthetic", "list")


def try_decode(item: VideoItem) -> str | None:
    """None if three frames spread over the video (or frame folder) decode, else the reason."""
    from i3d_train.data.frames import probe_frames, read_frame_folder
    from i3d_train.video.reader import DecodeStats, VideoDecodeError, probe, read_frames

    try:
        if item.frames_dir is not None:
            info = probe_frames(item.frames_dir)
            read_frame_folder(item.frames_dir, [0, info.num_frames // 2, info.num_frames - 1], None, info)
        else:
            info = probe(item.path)
            n = info.num_frames
            read_frames(item.path, np.array([0, n // 2]), None, info)
            # the end on its own: a truncated file decodes up to where it was cut, and training would repeat
            # its last frame (the rule for headers that over-report by a frame or two): here it is an error
            end = DecodeStats()
            try:
                read_frames(item.path, np.array([n - 1]), None, info, stats=end)
            except VideoDecodeError:
                return f"truncated: its header says {n} frames, nothing decodes near the end"
            if end.last_index < n - 1 - max(2, n // 50):
                return f"truncated: its header says {n} frames, the last that decodes is frame {end.last_index + 1}"
        return None
    except VideoDecodeError as e:
        return str(e)
    except Exception as e:  # noqa: BLE001 - anything a broken file makes the decoder raise
        return f"{type(e).__name__}: {e}"


def check(
    name: str,
    root: str | Path,
    split: int = 1,
    decode: bool = False,
    workers: int = 1,
    storage: str = "video",
    frames_root: str | Path | None = None,
    progress: bool = True,
    val_source: str = "held_out",
    val_fraction: float = 0.1,
) -> dict:
    """The report as a dict (see the module doc); raises DatasetFormatError for bad annotations."""
    from i3d_train.data.datamodule import PARSERS, attach_folders, item_exists
    from i3d_train.data.kinetics import parse_kinetics400

    t0 = time.perf_counter()
    root = Path(root)
    lists = parse_kinetics400(root, required=()) if name == "kinetics400" else PARSERS[name](root, split)
    lists = with_validation(lists, name, val_source, val_fraction)
    shared = overlaps(lists)
    frames_root = Path(frames_root) if frames_root else root / "frames"

    unique: dict[str, VideoItem] = {}
    for items in (lists.train, lists.val or [], lists.test):
        for it in items:
            unique.setdefault(it.video_id, attach_folders(it, frames_root if storage == "frames" else None, None))
    missing = sorted(vid for vid, it in unique.items() if not item_exists(it))
    report = {
        "dataset": name,
        "root": str(root),
        "split": split,
        "storage": storage,
        **lists.counts(),
        "val_source": lists.val_source,
        "val_rule": lists.val_rule,
        "overlap": shared,  # videos in two lists at once
        "disjoint": not any(shared.values()),
        "videos": len(unique),
        "missing": len(missing),
        "missing_files": missing[:20],
        "annotations_absent": lists.absent,
        "unreadable": None,
        "unreadable_files": [],
    }
    if decode:
        present = [it for vid, it in sorted(unique.items()) if vid not in set(missing)]
        bad: list[tuple[str, str]] = []
        if workers > 1:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
                results = pool.map(try_decode, present, chunksize=16)
                for it, why in tqdm(
                    zip(present, results, strict=True), total=len(present), desc="decode", disable=not progress
                ):
                    if why:
                        bad.append((it.video_id, why))
        else:
            for it in tqdm(present, desc="decode", unit="video", disable=not progress):
                why = try_decode(it)
                if why:
                    bad.append((it.video_id, why))
        report["unreadable"] = len(bad)
        report["unreadable_files"] = [{"video": v, "reason": r} for v, r in bad[:50]]
    report["seconds"] = round(time.perf_counter() - t0, 2)
    return report


def format_report(r: dict) -> str:
    lines = [
        f"{r['dataset']} at {r['root']} (split {r['split']}, {r['storage']}): {r['num_classes']} classes, "
        f"train {r['train']:,}, val {r['val']:,}, test {r['test']:,} ({r['videos']:,} distinct videos)",
        f"val: {r['val_rule']} ({r['val_source']}); "
        + (
            "train, val and test are disjoint"
            if r["disjoint"]
            else "shared videos: " + ", ".join(f"{k.replace('_', '/')} {v:,}" for k, v in r["overlap"].items() if v)
        ),
        f"missing: {r['missing']:,} of {r['videos']:,}"
        + (f" (e.g. {', '.join(r['missing_files'][:3])})" if r["missing"] else ""),
    ]
    if r["annotations_absent"]:
        lines.append(f"annotation files absent: {', '.join(r['annotations_absent'])}")
    if r["unreadable"] is not None:
        lines.append(f"unreadable: {r['unreadable']:,}")
        lines += [f"  {u['video']}: {u['reason']}" for u in r["unreadable_files"][:10]]
    lines.append(f"({r['seconds']:.1f} s)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m i3d_train.data", description="dataset tools")
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check", help="count, find and (--decode) test-decode every video of a dataset")
    c.add_argument("dataset", choices=DATASETS)
    c.add_argument("--root", required=True, type=Path)
    c.add_argument("--split", type=int, default=1)
    c.add_argument("--decode", action="store_true", help="also decode 3 frames of every present video")
    c.add_argument("--workers", type=int, default=1)
    c.add_argument("--storage", choices=("video", "frames"), default="video")
    c.add_argument("--frames-root", type=Path, default=None, help="frame folders (default <root>/frames)")
    c.add_argument("--val-source", choices=VAL_SOURCES, default="held_out", help="as data.val_source")
    c.add_argument("--val-fraction", type=float, default=0.1, help="as data.val_fraction")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    try:
        r = check(
            args.dataset,
            args.root,
            args.split,
            args.decode,
            args.workers,
            args.storage,
            args.frames_root,
            progress=not args.json,
            val_source=args.val_source,
            val_fraction=args.val_fraction,
        )
    except DatasetFormatError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(r) if args.json else format_report(r))
    return 0
