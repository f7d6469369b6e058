"""The synthetic motion set: deterministic, UCF-101 layout, regenerated when its parameters change."""

import json

import numpy as np

from i3d_train.data.synthetic import CLASSES, SyntheticConfig, generate, render_video
from i3d_train.data.ucf101 import parse_ucf101
from i3d_train.video.reader import probe, read_frames

TINY = SyntheticConfig(num_classes=8, train_per_class=2, test_per_class=1, num_frames=10, height=48, width=64)


def test_render_is_deterministic_and_seed_dependent():
    a = render_video(TINY, 3, 7)
    assert a.shape == (10, 48, 64, 3) and a.dtype == np.uint8
    assert np.array_equal(a, render_video(TINY, 3, 7))
    assert not np.array_equal(a, render_video(TINY, 3, 8))


def test_generated_files_are_deterministic(tmp_path):
    """Same seed, same bytes, whether generated in one process or in parallel workers."""
    generate(tmp_path / "a", TINY, workers=1)
    generate(tmp_path / "b", TINY, workers=2)
    s = parse_ucf101(tmp_path / "a", 1)
    for item in s.train[:3] + s.test[:2]:
        other = tmp_path / "b" / item.path.relative_to(tmp_path / "a")
        n = probe(item.path).num_frames
        assert n == 10
        assert item.path.read_bytes() == other.read_bytes()
        assert np.array_equal(read_frames(item.path, range(n)), read_frames(other, range(n)))


def test_layout_is_ucf101(tmp_path):
    root = generate(tmp_path / "syn", TINY, workers=1)
    assert (root / "ucfTrainTestlist" / "classInd.txt").read_bytes().startswith(b"1 MoveRight\r\n")
    s = parse_ucf101(root, 1)
    assert s.classes == list(CLASSES)
    assert len(s.train) == 16 and len(s.test) == 8
    assert all(it.path.is_file() and it.path.suffix == ".mp4" for it in s.train + s.test)
    info = probe(s.train[0].path)
    assert (info.height, info.width, info.fps) == (48, 64, 25.0)


def test_reused_or_regenerated(tmp_path):
    root = generate(tmp_path / "syn", TINY, workers=1)
    video = parse_ucf101(root, 1).train[0].path
    mtime = video.stat().st_mtime_ns
    generate(root, TINY, workers=1)
    assert video.stat().st_mtime_ns == mtime  # same parameters: reused
    bigger = SyntheticConfig(**{**TINY.__dict__, "train_per_class": 3})
    generate(root, bigger, workers=1)
    assert len(parse_ucf101(root, 1).train) == 24
    assert json.loads((root / "synthetic.json").read_text())["params"]["train_per_class"] == 3


def test_single_frames_carry_no_class_information():
    """Mean colour of the first frame does not separate classes: appearance is drawn per video."""
    cfg = SyntheticConfig(num_classes=8, num_frames=4, height=48, width=64)
    means = np.array([[render_video(cfg, c, i)[0].mean() for i in range(6)] for c in range(8)])
    # The spread within a class is of the same order as the spread between class means.
    assert means.std(axis=1).mean() > 0.5 * means.mean(axis=1).std()


def test_generation_says_when_it_starts_and_when_the_set_is_ready(tmp_path, caplog):
    """The set takes a minute or more at the default size: a start line, a progress bar, a closing line
    (there were 85 silent seconds); nothing when an existing set is reused."""
    cfg = SyntheticConfig(num_classes=2, train_per_class=1, test_per_class=1, num_frames=8, height=32, width=40)
    with caplog.at_level("INFO", logger="i3d_train.data.synthetic"):
        generate(tmp_path / "s", cfg, workers=1)
        generate(tmp_path / "s", cfg, workers=1)
    lines = [r.getMessage() for r in caplog.records]
    assert sum(m.startswith("generating 6 synthetic videos into") for m in lines) == 1
    assert sum(m.startswith("synthetic set ready: 6 videos in") for m in lines) == 1
