"""Tensor video transforms: resize, crops, flip, range."""

import random

import numpy as np
import torch

from i3d_train.data.transforms import ClipTransform
from i3d_train.video.resize import resize_short_side, to_float_clip


def test_resize_short_side_keeps_aspect():
    clip = torch.rand(3, 4, 240, 320)
    out = resize_short_side(clip, 256)
    assert out.shape == (3, 4, 256, 341)
    assert resize_short_side(torch.rand(3, 2, 320, 240), 128).shape == (3, 2, 171, 128)


def test_center_crop_and_range():
    frames = np.zeros((4, 128, 160, 3), dtype=np.uint8)
    frames[:, 64, 80] = 255  # a white pixel at the centre
    out = ClipTransform(128, 112, train=False)(frames, random.Random(0))
    assert out.shape == (3, 4, 112, 112)
    assert out.min() == -1.0 and out.max() == 1.0
    assert out[0, 0, 64 - 8, 80 - 24] == 1.0  # centre crop offsets (8, 24)


def test_flip_is_consistent_over_time():
    frames = np.random.default_rng(0).integers(0, 255, (6, 64, 64, 3), dtype=np.uint8)
    t = ClipTransform(64, 64, train=True)
    flipped = None
    for seed in range(20):
        rng = random.Random(seed)
        out = t(frames, rng)
        ref = to_float_clip(frames) / 127.5 - 1
        if torch.equal(out, ref.flip(-1)):
            flipped = True
        else:
            assert torch.equal(out, ref)  # full-size crop: either unflipped or flipped, for all frames
    assert flipped


def test_flow_flip_negates_x():
    t = ClipTransform(8, 8, train=True)
    flow = torch.ones(2, 3, 8, 8)
    flow[0] = 0.5  # x
    flow[1] = 0.25  # y
    p = t.draw(8, 8, random.Random(0))
    p.flip = True
    out = t.apply(flow, p, is_flow=True)
    assert torch.all(out[0] == -0.5) and torch.all(out[1] == 0.25)
