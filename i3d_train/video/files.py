"""Which files are videos, and how to find them under a folder."""

from __future__ import annotations

from pathlib import Path

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mkv", ".webm", ".mov", ".gif", ".m4v", ".mpg", ".mpeg"})


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def find_videos(src: Path) -> list[tuple[Path, str]]:
    """``(video, name)`` pairs: a file gives its stem; a folder every video under it (recursively, sorted)
    with its path relative to the folder, without suffix, as name."""
    if src.is_file():
        return [(src, src.stem)]
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: no such file or folder")
    vids = sorted(p for p in src.rglob("*") if is_video(p) and p.is_file())
    return [(p, p.relative_to(src).with_suffix("").as_posix()) for p in vids]
