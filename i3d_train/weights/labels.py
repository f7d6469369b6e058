"""Which row of a loaded classifier is which of the dataset's classes: matched by name, never assumed.

Converted weights carry their label list beside them (``<weights>.labels.txt``, one name per line in
output order, written by ``python -m i3d_train.weights convert``). Names are compared after
normalising what varies between Kinetics annotation files and label maps: surrounding quotes, ``_``
for spaces, repeated spaces and case (``air_drumming`` = ``"Air drumming"``). The dataset may hold any
subset of the weights' classes in any order; the result lists, for each dataset class in the
dataset's order, the row of the weights' head that scores it.

Without a label file the order cannot be checked: equal counts are accepted with a warning (the
order is assumed to be the dataset's), different counts are an error.
"""

from __future__ import annotations

import difflib
import logging
from pathlib import Path

log = logging.getLogger(__name__)


class ClassMismatchError(ValueError):
    """The weights' classes do not cover the dataset's (one line naming the first differences)."""


def labels_path(weights: str | Path) -> Path:
    """``<weights>.labels.txt``: the label list written beside a converted state dict."""
    weights = Path(weights)
    return weights.with_name(weights.name + ".labels.txt")


def normalise(name: str) -> str:
    """``"Passing_American football (in game)" `` -> ``passing american football (in game)``."""
    name = name.strip().strip("\"'").replace("_", " ")
    return " ".join(name.split()).lower()


def read_labels(path: str | Path) -> list[str]:
    """One class name per non-empty line."""
    return [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def _index(names: list[str], what: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for i, name in enumerate(names):
        key = normalise(name)
        if key in out:
            raise ClassMismatchError(f"{what} names {names[out[key]]!r} and {name!r}, the same class once normalised")
        out[key] = i
    return out


def _short(names: list[str], n: int = 3) -> str:
    return ", ".join(repr(x) for x in names[:n]) + (f" (+{len(names) - n} more)" if len(names) > n else "")


def head_rows(
    weight_labels: list[str] | None, num_outputs: int, classes: list[str], source: str = "the weights"
) -> tuple[list[int], str]:
    """For each of ``classes`` (the dataset's, in its order), the row of the weights' head that scores it.

    Args:
        weight_labels: the weights' class names in output order, or None (no label file).
        num_outputs: rows of the weights' classifier.
        classes: the dataset's class names.
        source: what the weights are called in messages (the label file's path).

    Returns:
        ``(rows, how)`` with ``how`` one of ``"by name"`` and ``"assumed"`` (no label file, equal counts).

    Raises:
        ClassMismatchError: a dataset class that is not among the weights' labels, a label list whose
            length is not the head's, or (without labels) a different number of classes.
    """
    if weight_labels is None:
        if num_outputs != len(classes):
            raise ClassMismatchError(
                f"{source} has {num_outputs} classes and no label file to match by name; the dataset has "
                f"{len(classes)} (first dataset classes: {_short(classes)})"
            )
        log.warning(
            "%s has no label file: assuming its %d outputs are in the dataset's class order (%s)",
            *(source, num_outputs, _short(classes)),
        )
        return list(range(num_outputs)), "assumed"
    if len(weight_labels) != num_outputs:
        raise ClassMismatchError(
            f"{source} lists {len(weight_labels)} labels but the classifier has {num_outputs} rows"
        )
    index = _index(weight_labels, source)
    _index(classes, "the dataset")
    missing = [c for c in classes if normalise(c) not in index]
    if missing:
        wanted = {normalise(c) for c in classes}
        unused = [k for k in index if k not in wanted]
        first = []
        for c in missing[:3]:
            close = difflib.get_close_matches(normalise(c), unused, n=1, cutoff=0.5)
            first.append(f"{c!r}" + (f" (closest label: {weight_labels[index[close[0]]]!r})" if close else ""))
        more = f" (+{len(missing) - 3} more)" if len(missing) > 3 else ""
        raise ClassMismatchError(
            f"{len(missing)} of the dataset's {len(classes)} classes are not among the {len(weight_labels)} labels "
            f"of {source}: {', '.join(first)}{more}"
        )
    rows = [index[normalise(c)] for c in classes]
    if rows != list(range(len(classes))):
        log.info(
            "classes matched by name: %d of the %d rows of %s, in the dataset's order", len(rows), num_outputs, source
        )
    return rows, "by name"
