"""Kinetics-400's official annotation files -> (path, label) lists.

Layout (the official annotation files as the dataset distributes them; excerpts in ``tests/assets/``)::

    <root>/annotations/{train,val,test}.csv     label,youtube_id,time_start,time_end,split,is_cc
    <root>/<split>/<label>/<youtube_id>_<time_start:06d>_<time_end:06d>.mp4   (per-class folders)
    <root>/<split>/<youtube_id>_<time_start:06d>_<time_end:06d>.mp4           (or flat)

Labels may be quoted and hold spaces and parentheses (``"passing American football (in game)"``).
Class ids follow the Kinetics-400 label map shipped with the package (alphabetical). Each split's
folder is walked once and files are found by their name, whatever the folder layout, label spelling
(``air drumming`` / ``air_drumming``) or container (.mp4, .mkv, .webm, ...). A test file without a
label column gives unlabelled items (label -1).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from i3d_train.data.dataset import VideoItem
from i3d_train.data.splits import DatasetFormatError, SplitLists
from i3d_train.resources import kinetics400_classes
from i3d_train.video.files import is_video

LAYOUT = (
    "expected <root>/annotations/{train,val,test}.csv with the header "
    "label,youtube_id,time_start,time_end,split,is_cc and videos in <root>/<split>/[<label>/]<youtube_id>_<start:06d>_<end:06d>.mp4"
)


def clip_name(youtube_id: str, start: int, end: int) -> str:
    return f"{youtube_id}_{start:06d}_{end:06d}"


def index_videos(folder: Path) -> dict[str, str]:
    """``{file stem: path relative to folder's parent}`` for every video under ``folder`` (one walk)."""
    out: dict[str, str] = {}
    if not folder.is_dir():
        return out
    base = folder.parent
    for dirpath, _, names in os.walk(folder):
        for name in names:
            stem = os.path.splitext(name)[0]
            if is_video(name):
                out.setdefault(stem, os.path.relpath(os.path.join(dirpath, name), base))
    return out


def annotation_file(root: Path, split: str) -> Path:
    for p in (root / "annotations" / f"{split}.csv", root / f"{split}.csv"):
        if p.is_file():
            return p
    raise DatasetFormatError(f"{root / 'annotations' / f'{split}.csv'}: file not found ({LAYOUT})")


def parse_csv(path: Path, split: str, classes: list[str], root: Path) -> list[VideoItem]:
    """One annotation file -> items; missing videos get the per-class path they would have."""
    index = {c: i for i, c in enumerate(classes)}
    found = index_videos(root / split)
    items: list[VideoItem] = []
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        need = {"youtube_id", "time_start", "time_end"}
        if header is None or not need <= set(header):
            raise DatasetFormatError(f"{path}:1: expected a header with {LAYOUT.split('header ')[1].split(' and')[0]}")
        col = {name: i for i, name in enumerate(header)}
        labelled = "label" in col
        for row in reader:
            lineno = reader.line_num
            if not row:
                continue
            if len(row) != len(header):
                raise DatasetFormatError(f"{path}:{lineno}: expected {len(header)} fields, got {len(row)}: {row!r}")
            try:
                start, end = int(float(row[col["time_start"]])), int(float(row[col["time_end"]]))
            except ValueError:
                raise DatasetFormatError(f"{path}:{lineno}: time_start/time_end must be numbers: {row!r}") from None
            label_name = row[col["label"]] if labelled else ""
            if labelled and label_name not in index:
                raise DatasetFormatError(f"{path}:{lineno}: unknown Kinetics-400 label {label_name!r}")
            name = clip_name(row[col["youtube_id"]], start, end)
            rel = found.get(name) or f"{split}/{label_name or '_'}/{name}.mp4"
            items.append(VideoItem(root / rel, index[label_name] if labelled else -1, rel))
    return items


def parse_kinetics400(root: str | Path, split: int = 1, required: tuple[str, ...] = ("train", "val")) -> SplitLists:
    """Parse the train/val/test annotation files of a Kinetics-400 tree (``split`` is unused: one split).

    Files in ``required`` must exist; the others are parsed when present (``SplitLists.absent`` lists
    those that were not). The test list is ``test.csv`` when it exists and is labelled, else the
    validation list (the usual practice, since test labels were long withheld).
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetFormatError(f"dataset root {root} does not exist ({LAYOUT})")
    classes = kinetics400_classes()
    lists: dict[str, list[VideoItem]] = {}
    absent: list[str] = []
    for s in ("train", "val", "test"):
        try:
            path = annotation_file(root, s)
        except DatasetFormatError:
            if s in required:
                raise
            absent.append(f"{s}.csv")
            continue
        lists[s] = parse_csv(path, s, classes, root)
    if not lists:
        raise DatasetFormatError(f"{root}: no annotation files ({LAYOUT})")
    test = lists.get("test")
    if not test or any(it.label < 0 for it in test):
        test = lists.get("val", [])
    return SplitLists(classes, lists.get("train", []), test, root, val=lists.get("val"), absent=absent)
