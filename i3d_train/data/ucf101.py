"""UCF-101's official split files -> (path, label) lists.

Layout (the official annotation files as the dataset distributes them; excerpts in ``tests/assets/``)::

    <root>/ucfTrainTestlist/classInd.txt      "1 ApplyEyeMakeup" (1-based ids), CRLF
    <root>/ucfTrainTestlist/trainlist0N.txt   "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"
    <root>/ucfTrainTestlist/testlist0N.txt    "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi" (no label)
    <root>/UCF-101/<Class>/v_<Class>_gXX_cYY.avi

The split-file directory may also sit directly in the root (``<root>/classInd.txt``), and the videos
in ``<root>/<Class>/``, as the synthetic dataset writes them. Class ids here are 0-based.
UCF-101 has no validation list; a ``vallist0N.txt`` (the trainlist format), as the synthetic set
writes, is read as the split's own validation list when it is there.
"""

from __future__ import annotations

from pathlib import Path

from i3d_train.data.dataset import VideoItem
from i3d_train.data.splits import DatasetFormatError, SplitLists, read_lines

__all__ = ["DatasetFormatError", "SplitLists", "parse_ucf101", "LAYOUT"]

LAYOUT = (
    "expected <root>/ucfTrainTestlist/{classInd.txt,trainlist0N.txt,testlist0N.txt} "
    "and videos in <root>/UCF-101/<Class>/<video>.avi (or both directly under <root>)"
)


def _lines(path: Path) -> list[tuple[int, str]]:
    return read_lines(path, LAYOUT)


def find_dirs(root: Path) -> tuple[Path, Path]:
    """(annotation dir, video dir) of a UCF-101 tree, or a one-line error naming the root."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetFormatError(f"dataset root {root} does not exist ({LAYOUT})")
    ann = root / "ucfTrainTestlist" if (root / "ucfTrainTestlist").is_dir() else root
    if not (ann / "classInd.txt").is_file():
        raise DatasetFormatError(f"{root}: no classInd.txt in {root} or {root / 'ucfTrainTestlist'} ({LAYOUT})")
    videos = root / "UCF-101" if (root / "UCF-101").is_dir() else root
    return ann, videos


def parse_class_index(path: Path) -> list[str]:
    """``classInd.txt`` -> class names in id order."""
    entries: dict[int, str] = {}
    for lineno, line in _lines(path):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise DatasetFormatError(f"{path}:{lineno}: expected '<id> <ClassName>', got {line!r}")
        entries[int(parts[0])] = parts[1]
    ids = sorted(entries)
    if ids != list(range(1, len(ids) + 1)):
        raise DatasetFormatError(f"{path}: class ids must be 1..{len(ids)} without gaps")
    return [entries[i] for i in ids]


def parse_list(path: Path, classes: list[str], video_dir: Path, labelled: bool) -> list[VideoItem]:
    """A ``trainlist0N.txt`` / ``testlist0N.txt`` file -> items (label from the class folder, checked
    against the id column when there is one)."""
    index = {name: i for i, name in enumerate(classes)}
    items = []
    for lineno, line in _lines(path):
        parts = line.split()
        rel = parts[0]
        cls = rel.split("/")[0]
        if len(parts) > 2 or "/" not in rel or cls not in index:
            raise DatasetFormatError(
                f"{path}:{lineno}: expected '<Class>/<video>.avi{' <id>' if labelled else ''}', got {line!r}"
            )
        label = index[cls]
        if len(parts) == 2 and (not parts[1].isdigit() or int(parts[1]) - 1 != label):
            raise DatasetFormatError(f"{path}:{lineno}: class id {parts[1]!r} does not match folder {cls!r}")
        items.append(VideoItem(video_dir / rel, label, rel))
    return items


def parse_ucf101(root: str | Path, split: int = 1) -> SplitLists:
    """Parse split ``split`` (1, 2 or 3) of a UCF-101-layout tree."""
    if split not in (1, 2, 3):
        raise DatasetFormatError(f"UCF-101 split must be 1, 2 or 3, got {split}")
    ann, videos = find_dirs(Path(root))
    classes = parse_class_index(ann / "classInd.txt")
    train = parse_list(ann / f"trainlist0{split}.txt", classes, videos, labelled=True)
    test = parse_list(ann / f"testlist0{split}.txt", classes, videos, labelled=False)
    val_file = ann / f"vallist0{split}.txt"
    val = parse_list(val_file, classes, videos, labelled=True) if val_file.is_file() else None
    return SplitLists(classes, train, test, videos, val=val)
