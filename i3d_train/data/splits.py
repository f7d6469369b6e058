"""What every dataset parser returns, and the one error they raise."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from i3d_train.data.dataset import VideoItem


class DatasetFormatError(ValueError):
    """An annotation file that is missing or does not parse; the message names the file and line."""


@dataclass
class SplitLists:
    """A dataset split as parsed from its annotation files.

    ``val`` is None for datasets without a validation split (UCF-101, HMDB-51: the test list serves).
    Items without a label (an unlabelled test set) have label -1.
    """

    classes: list[str]
    train: list[VideoItem]
    test: list[VideoItem]
    video_dir: Path  # the folder the items' video ids are relative to
    val: list[VideoItem] | None = None
    absent: list[str] = field(default_factory=list)  # optional annotation files that were not there

    @property
    def validation(self) -> list[VideoItem]:
        return self.val if self.val is not None else self.test

    def counts(self) -> dict[str, int]:
        return {
            "num_classes": len(self.classes),
            "train": len(self.train),
            "val": len(self.validation),
            "test": len(self.test),
        }


def read_lines(path: Path, layout: str) -> list[tuple[int, str]]:
    """Non-empty lines with their 1-based numbers; CRLF and trailing spaces stripped."""
    if not path.is_file():
        raise DatasetFormatError(f"{path}: file not found ({layout})")
    text = path.read_text(encoding="utf-8-sig")
    return [(i, line.strip()) for i, line in enumerate(text.splitlines(), 1) if line.strip()]
