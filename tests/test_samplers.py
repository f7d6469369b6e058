"""Clip samplers: bounds, determinism, looping of short videos."""

import random

import pytest

from i3d_train.data.samplers import CenterClipSampler, RandomClipSampler, UniformClipSampler, clip_indices


def test_random_start_within_bounds_and_covers_range():
    s = RandomClipSampler()
    rng = random.Random(0)
    starts = {s.start(100, 64, 0, rng) for _ in range(2000)}
    assert min(starts) == 0 and max(starts) == 36
    assert len(starts) == 37


def test_random_is_deterministic_for_a_seed():
    s = RandomClipSampler()
    a = [s.start(300, 64, 0, random.Random(7)) for _ in range(5)]
    b = [s.start(300, 64, 0, random.Random(7)) for _ in range(5)]
    assert a == b


def test_center():
    assert CenterClipSampler().start(100, 64, 0, random.Random()) == 18
    assert CenterClipSampler().start(10, 64, 0, random.Random()) == 0


def test_uniform_first_last_and_spacing():
    s = UniformClipSampler(5)
    starts = [s.start(164, 64, i, random.Random()) for i in range(5)]
    assert starts == [0, 25, 50, 75, 100]
    assert UniformClipSampler(1).start(164, 64, 0, random.Random()) == 50
    with pytest.raises(IndexError):
        s.start(164, 64, 5, random.Random())


def test_short_video_all_starts_zero_and_indices_run_past_end():
    for s in (RandomClipSampler(), CenterClipSampler(), UniformClipSampler(3)):
        assert s.start(10, 16, 0, random.Random(1)) == 0
    # Indices past the end are wrapped by the reader (looping).
    assert clip_indices(0, 16).tolist() == list(range(16))
    assert clip_indices(3, 4, stride=5).tolist() == [3, 8, 13, 18]
