"""The PyAV reader: exact frames, seeking, resampling to a target fps, looping."""

import numpy as np
import pytest

from i3d_train.video.reader import DecodeStats, VideoDecodeError, probe, read_frames, source_indices
from tests.conftest import decode_index


def indices_of(frames: np.ndarray) -> list[int]:
    return [decode_index(f) for f in frames]


def test_probe(index_video):
    info = probe(index_video(n=60, fps=25))
    assert (info.num_frames, info.fps, info.height, info.width) == (60, 25.0, 64, 128)
    assert info.num_frames_at(12.5) == 30


def test_reads_exactly_the_requested_frames(index_video):
    path = index_video(n=100)
    for wanted in ([0, 1, 2, 3], [37, 38, 39, 40, 41], [99], [10, 5, 10, 70]):
        assert indices_of(read_frames(path, wanted, fps=25)) == wanted


def test_seeks_instead_of_decoding_from_start(index_video):
    path = index_video(n=200, gop=10)
    stats = DecodeStats()
    frames = read_frames(path, list(range(160, 168)), fps=25, stats=stats)
    assert indices_of(frames) == list(range(160, 168))
    assert stats.seeks == 1
    # From the keyframe at 160 (at most one GOP before it) to 167: far fewer than the 168 from the start.
    assert stats.decoded <= 8 + 10 + 2


def test_resamples_to_target_fps(index_video):
    path = index_video(n=100, fps=50)
    # At 25 fps, frame i is source frame 2i.
    assert indices_of(read_frames(path, [0, 1, 2, 10, 20], fps=25)) == [0, 2, 4, 20, 40]
    # Upsampling repeats frames: at 100 fps, frames 0..3 are source 0, 0, 1, 1.
    assert indices_of(read_frames(path, [0, 1, 2, 3], fps=100)) == [0, 0, 1, 1]
    # fps=None keeps the file's own rate.
    assert indices_of(read_frames(path, [7], fps=None)) == [7]


def test_short_video_loops(index_video):
    path = index_video(n=5)
    assert indices_of(read_frames(path, list(range(12)), fps=25)) == [i % 5 for i in range(12)]


def test_source_indices_30_to_25():
    # 30 fps source at 25 fps: t = i/25 s -> source floor(i * 30 / 25).
    assert source_indices(np.arange(6), 30.0, 25.0).tolist() == [0, 1, 2, 3, 4, 6]


def test_bad_files_raise_decode_error(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "text.mp4"
    text.write_text("not a video at all\n" * 100)
    for path in (empty, text, tmp_path / "missing.mp4"):
        with pytest.raises(VideoDecodeError):
            read_frames(path, [0], fps=25)
