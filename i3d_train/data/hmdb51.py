"""HMDB-51's official split files -> (path, label) lists.

Layout (the official annotation files as the dataset distributes them; excerpts in ``tests/assets/``)::

    <root>/testTrainMulti_7030_splits/<class>_test_split<N>.txt   "<video>.avi <id> " (trailing space)
    <root>/<class>/<video>.avi        (or <root>/videos/<class>/<video>.avi)

Id 1 = train, 2 = test, 0 = not used in this split. Class ids are the sorted class names (0-based).
Each split: 3,570 train and 1,530 test videos (70 / 30 per class).
"""

from __future__ import annotations

import re
from pathlib import Path

from i3d_train.data.dataset import VideoItem
from i3d_train.data.splits import DatasetFormatError, SplitLists, read_lines

LAYOUT = (
    "expected <root>/testTrainMulti_7030_splits/<class>_test_split{1,2,3}.txt and videos in "
    "<root>/<class>/<video>.avi (or <root>/videos/<class>/)"
)
SPLIT_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<split>[123])\.txt$")


def find_split_dir(root: Path) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DatasetFormatError(f"dataset root {root} does not exist ({LAYOUT})")
    for d in (root / "testTrainMulti_7030_splits", root):
        if d.is_dir() and any(SPLIT_FILE.match(p.name) for p in d.iterdir()):
            return d
    raise DatasetFormatError(f"{root}: no <class>_test_split<N>.txt files ({LAYOUT})")


def parse_hmdb51(root: str | Path, split: int = 1) -> SplitLists:
    """Parse split ``split`` (1, 2 or 3) of an HMDB-51 tree."""
    if split not in (1, 2, 3):
        raise DatasetFormatError(f"HMDB-51 split must be 1, 2 or 3, got {split}")
    root = Path(root)
    ann = find_split_dir(root)
    files = {m["cls"]: p for p in ann.iterdir() if (m := SPLIT_FILE.match(p.name)) and int(m["split"]) == split}
    if not files:
        raise DatasetFormatError(f"{ann}: no *_test_split{split}.txt files ({LAYOUT})")
    classes = sorted(files)
    videos = root / "videos" if (root / "videos").is_dir() else root
    train: list[VideoItem] = []
    test: list[VideoItem] = []
    for label, cls in enumerate(classes):
        path = files[cls]
        for lineno, line in read_lines(path, LAYOUT):
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise DatasetFormatError(f"{path}:{lineno}: expected '<video>.avi <0|1|2>', got {line!r}")
            if parts[1] == "0":
                continue
            rel = f"{cls}/{parts[0]}"
            (train if parts[1] == "1" else test).append(VideoItem(videos / rel, label, rel))
    return SplitLists(classes, train, test, videos)
