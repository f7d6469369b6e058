"""What every dataset parser returns, and the one error they raise."""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

from i3d_train.data.dataset import VideoItem


class DatasetFormatError(ValueError):
    """An annotation file that is missing or does not parse; the message names the file and line."""


@dataclass
class SplitLists:
    """A dataset split as parsed from its annotation files.

    ``val`` is None for datasets without a validation split (UCF-101, HMDB-51) until
    :func:`with_validation` holds one out of ``train`` (or, with ``val_source=test``, uses the test
    list). Items without a label (an unlabelled test set) have label -1.
    """

    classes: list[str]
    train: list[VideoItem]
    test: list[VideoItem]
    video_dir: Path  # the folder the items' video ids are relative to
    val: list[VideoItem] | None = None
    absent: list[str] = field(default_factory=list)  # optional annotation files that were not there
    val_source: str = "official"  # official | held_out | test: where ``val`` comes from (with_validation)
    val_rule: str = ""  # how it was formed, in words (the summary and metrics.json say it)

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


# --------------------------------------------------------------------------------------------------
# The validation split: held out from the training list, never the test list (unless asked for)

VAL_SOURCES = ("held_out", "test")
_UCF_GROUP = re.compile(r"_g(\d+)_c\d+\.[^.]+$")


def _rank(key: str) -> str:
    """A fixed pseudo-random order of keys: independent of list order, run, machine and processes."""
    return hashlib.sha1(f"i3d-train-val:{key}".encode()).hexdigest()


def ucf101_group(video_id: str) -> str:
    """The group of a UCF-101 video: ``g08`` for ``.../v_ApplyEyeMakeup_g08_c01.avi`` (the video id
    itself when the name does not follow the pattern)."""
    m = _UCF_GROUP.search(video_id)
    return f"g{int(m[1]):02d}" if m else video_id


def hmdb51_source(video_id: str, classes: list[str], label: int) -> str:
    """The source film of an HMDB-51 clip: ``brush_hair/April_09`` for
    ``brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi`` (clips cut from one film stay together)."""
    cls = classes[label]
    name = video_id.rsplit("/", 1)[-1]
    marker = f"_{cls}_"
    return f"{cls}/{name.split(marker)[0]}" if marker in name else video_id


def pick_groups(sizes: dict[str, int], target: float) -> set[str]:
    """Whole groups, in the fixed order of :func:`_rank`, each taken if it brings the total closer to
    ``target``; at least one group, never all of them."""
    chosen: set[str] = set()
    total = 0
    for g in sorted(sizes, key=_rank):
        if abs(total + sizes[g] - target) < abs(total - target):
            chosen.add(g)
            total += sizes[g]
    if not chosen and target > 0 and len(sizes) > 1:
        chosen.add(min(sizes, key=lambda g: (sizes[g], _rank(g))))
    if len(chosen) == len(sizes) and len(sizes) > 1:
        chosen.discard(max(chosen, key=_rank))
    return chosen


def youtube_id(video_id: str) -> str:
    """A Kinetics clip's YouTube video: ``<class>/<youtube id>_<start>_<end>.mp4`` -> ``<youtube id>``."""
    return re.sub(r"_\d{6}_\d{6}$", "", Path(video_id).stem)


def hold_out(items: list[VideoItem], group_of, fraction: float, per_class: bool) -> set[str]:
    """Video ids of the held-out groups: about ``fraction`` of ``items``, whole groups, either over the
    whole list (UCF-101: group numbers across classes, like the official splits) or within each class."""
    pools: dict[int, list[VideoItem]] = defaultdict(list)
    for it in items:
        pools[it.label if per_class else 0].append(it)
    held: set[str] = set()
    for pool in pools.values():
        sizes: dict[str, int] = defaultdict(int)
        for it in pool:
            sizes[group_of(it)] += 1
        chosen = pick_groups(sizes, fraction * len(pool))
        held |= {it.video_id for it in pool if group_of(it) in chosen}
    return held


def with_validation(lists: SplitLists, dataset: str, source: str = "held_out", fraction: float = 0.1) -> SplitLists:
    """``lists`` with its validation list set, and ``val_source`` / ``val_rule`` saying how.

    ``source=held_out`` (default): the dataset's own validation list when it has one and it is not the
    test list (Kinetics-400's ``val.csv`` beside a labelled ``test.csv``, the synthetic set's
    ``vallist0N.txt``), else about ``fraction`` of the training list, held out and removed from it:
    UCF-101 by whole groups (``gXX``: one actor and scene per group), HMDB-51 per class by whole source
    films, Kinetics-400 (whose test list is then ``val.csv``) per class by whole YouTube videos. Deterministic: the same list whatever the order of the
    annotation files, the run or the number of processes. ``source=test``: the test list (what
    UCF-101 / HMDB-51 papers usually did; model selection then sees the test videos).
    """
    if source not in VAL_SOURCES:
        raise DatasetFormatError(f"data.val_source must be one of {', '.join(VAL_SOURCES)}, got {source!r}")
    if source == "test":
        return replace(lists, val=lists.test, val_source="test", val_rule="the test list")
    tested = {it.video_id for it in lists.test}
    if lists.val is not None and not (tested and {it.video_id for it in lists.val} == tested):
        return replace(lists, val_source="held_out", val_rule=f"the official {dataset} validation list")
    if not 0 < fraction < 1:
        raise DatasetFormatError(f"data.val_fraction must be between 0 and 1, got {fraction}")
    if lists.val is not None:  # its validation list is the test list (Kinetics-400 without a labelled test.csv)
        held = hold_out(lists.train, lambda it: youtube_id(it.video_id), fraction, True)
        rule = f"{fraction:.0%} of each class's training clips, whole YouTube videos (the test list is the validation list)"
    elif dataset == "list":  # your own videos: nothing known about which belong together
        held = hold_out(lists.train, lambda it: it.video_id, fraction, True)
        rule = f"{fraction:.0%} of each class's training videos"
    elif dataset == "hmdb51":
        held = hold_out(lists.train, lambda it: hmdb51_source(it.video_id, lists.classes, it.label), fraction, True)
        rule = f"{fraction:.0%} of each class's training videos, whole source films"
    else:  # UCF-101 layout (ucf101, synthetic without a val list)
        held = hold_out(lists.train, lambda it: ucf101_group(it.video_id), fraction, False)
        rule = f"{fraction:.0%} of the training videos, whole groups (gXX)"
    train = [it for it in lists.train if it.video_id not in held]
    val = [it for it in lists.train if it.video_id in held]
    return replace(lists, train=train, val=val, val_source="held_out", val_rule=f"held out from train: {rule}")


def overlaps(lists: SplitLists) -> dict[str, int]:
    """Videos shared by two lists (all 0: disjoint)."""
    ids = {k: {it.video_id for it in (getattr(lists, k) or [])} for k in ("train", "val", "test")}
    return {
        "train_val": len(ids["train"] & ids["val"]),
        "train_test": len(ids["train"] & ids["test"]),
        "val_test": len(ids["val"] & ids["test"]),
    }
