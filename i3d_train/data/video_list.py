"""Your own videos as a dataset: plain text lists of ``path label`` (``data=list``).

Layout::

    <root>/train.txt     "videos/jump/clip_001.mp4 jump"   (one video per line: its path, then its label)
    <root>/test.txt      the same format
    <root>/val.txt       optional: the validation list (else data.val_fraction of train.txt, per class)
    <root>/classes.txt   optional: one class name per line, in id order

Paths are relative to ``<root>`` (or absolute, inside it: the path relative to the root is the video's
id, which names its frame and flow folders). A label is a class name (no spaces) or a 0-based class
id into ``classes.txt``; separate path and label with a tab when the path has spaces. Without
``classes.txt`` the classes are the sorted names of the training labels. ``split`` picks
``train{N}.txt`` / ``test{N}.txt`` / ``val{N}.txt`` when those exist (several splits), else the plain
names. Every problem is one line naming the file and line.
"""

from __future__ import annotations

import os
from pathlib import Path

from i3d_train.data.dataset import VideoItem
from i3d_train.data.splits import DatasetFormatError, SplitLists, read_lines

LAYOUT = "expected <root>/train.txt and <root>/test.txt of '<path> <label>' lines (optional val.txt, classes.txt)"


def _list_file(root: Path, kind: str, split: int) -> Path:
    numbered = root / f"{kind}{split}.txt"
    return numbered if numbered.is_file() else root / f"{kind}.txt"


def _entries(path: Path) -> list[tuple[int, str, str]]:
    """``(line number, path, label)`` of a list file."""
    out = []
    for lineno, line in read_lines(path, LAYOUT):
        if line.startswith("#"):
            continue
        parts = line.split("\t") if "\t" in line else line.rsplit(maxsplit=1)
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            raise DatasetFormatError(f"{path}:{lineno}: expected '<path> <label>', got {line!r}")
        out.append((lineno, parts[0].strip(), parts[1].strip()))
    return out


def parse_video_list(root: str | Path, split: int = 1) -> SplitLists:
    root = Path(os.path.normpath(Path(root).absolute()))
    if not root.is_dir():
        raise DatasetFormatError(f"dataset root {root} does not exist ({LAYOUT})")
    files = {kind: _list_file(root, kind, split) for kind in ("train", "val", "test")}
    entries = {kind: _entries(f) for kind, f in files.items() if kind != "val" or f.is_file()}
    classes_file = root / "classes.txt"
    if classes_file.is_file():
        classes = [line for _, line in read_lines(classes_file, LAYOUT)]
    else:
        classes = sorted({label for _, _, label in entries["train"]})
    index = {c: i for i, c in enumerate(classes)}

    def items(kind: str) -> list[VideoItem]:
        out = []
        for lineno, path, label in entries[kind]:
            if label in index:
                y = index[label]
            elif label.isdigit() and classes_file.is_file() and int(label) < len(classes):
                y = int(label)
            else:
                known = "classes.txt" if classes_file.is_file() else "the labels of train.txt"
                raise DatasetFormatError(f"{files[kind]}:{lineno}: label {label!r} is not one of {known}")
            video = Path(os.path.normpath(Path(path) if Path(path).is_absolute() else root / path))
            if not video.is_relative_to(root):  # ids name the frame and flow folders, relative to the root
                raise DatasetFormatError(f"{files[kind]}:{lineno}: {path} is outside the dataset root {root}")
            out.append(VideoItem(video, y, video.relative_to(root).as_posix()))
        return out

    return SplitLists(
        classes=classes,
        train=items("train"),
        test=items("test"),
        video_dir=root,
        val=items("val") if "val" in entries else None,
        absent=[] if "val" in entries else [files["val"].name],
    )
