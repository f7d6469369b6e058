"""The one frame rule of every decoder: which decoded frame is frame ``i`` of the resampled timeline.

Index ``i`` at target rate ``fps`` is the source frame presented at time ``i / fps`` (the paper's
"25 fps" whatever the file's own rate). Each decoder (PyAV: :mod:`i3d_train.video.reader`,
:mod:`i3d_train.video.stream`; NVDEC: :mod:`i3d_train.video.nvdec`) gives its frames in decoding
order with their presentation timestamps to :func:`indexed`, then to :func:`cover`; nothing else
decides which frame is used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

Raw = TypeVar("Raw")
Img = TypeVar("Img")


def pts_index(pts: int | None, start_pts: int, time_base: float, fps: float, previous: int) -> int:
    """The index in the file's own timeline of a frame presented at ``pts`` (``time_base`` units);
    a frame without a timestamp follows the previous one."""
    if pts is None:
        return previous + 1
    return round((pts - start_pts) * time_base * fps)


def indexed(
    frames: Iterable[Raw], pts_of: Callable[[Raw], int | None], start_pts: int, time_base: float, fps: float
) -> Iterator[tuple[int, Raw]]:
    """``(index, frame)`` for decoded frames in order (the index of :func:`pts_index`)."""
    previous = -1
    for f in frames:
        previous = pts_index(pts_of(f), start_pts, time_base, fps, previous)
        yield previous, f


def cover(
    decoded: Iterable[tuple[int, Raw]], wanted: Sequence[int], convert: Callable[[Raw], Img]
) -> Iterator[tuple[int, Img]]:
    """The frame rule of the project, for every decoder: ``(k, image)`` for each ``k`` of
    ``range(len(wanted))``, in order, where ``wanted`` are nondecreasing source indices and ``decoded``
    the ``(index, frame)`` pairs of a decoder in order. A decoded frame covers every wanted index from its
    own up to the next decoded frame's (a gap in the timestamps: the next frame shown); frames before
    the first wanted index are not converted (``convert``: to RGB, only for frames used). A file that
    ends before the last wanted index (a header that over-reports its length) repeats its last frame.

    Raises :class:`LookupError` if no frame at all was decoded."""
    n, target, last = len(wanted), 0, None
    if n == 0:
        return
    for idx, raw in decoded:
        if idx < wanted[target]:
            continue
        img = convert(raw)
        last = img
        while target < n and wanted[target] <= idx:
            yield target, img
            target += 1
        if target >= n:
            return
    if last is None:
        raise LookupError("no decodable frames")
    while target < n:
        yield target, last
        target += 1
