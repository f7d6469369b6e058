"""The shared video dataset: sample dicts shaped as the model asks, clips per video, bad files skipped."""

import numpy as np
import torch

from i3d_train.data.dataset import VideoDataset, VideoItem
from i3d_train.data.samplers import CenterClipSampler, RandomClipSampler, UniformClipSampler
from i3d_train.data.transforms import ClipTransform
from tests.conftest import decode_index


def make_ds(items, sampler, num_frames=8, stride=1, train=False):
    return VideoDataset(items, num_frames, 25.0, stride, sampler, ClipTransform(64, 64, train=train))


def test_sample_dict_and_clip_content(index_video):
    path = index_video(n=40)
    ds = make_ds([VideoItem(path, 3, "a")], CenterClipSampler(), num_frames=8, stride=2)
    s = ds[0]
    assert set(s) == {"rgb", "label", "video_index", "clip_index", "skipped"}
    assert s["rgb"].shape == (3, 8, 64, 64) and s["rgb"].dtype == torch.float32
    assert s["label"].item() == 3 and s["skipped"].item() == 0
    # Center start for span (8-1)*2+1 = 15 in 40 frames: 12; frames 12, 14, ..., 26.
    frames = ((s["rgb"].permute(1, 2, 3, 0) + 1) * 127.5).round().clamp(0, 255).byte().numpy()
    # The 64x64 center crop of a 128-wide frame keeps stripes 2..5 only: compare those bits.
    got = [decode_index(np.pad(f, ((0, 0), (32, 32), (0, 0)))) & 0b00111100 for f in frames]
    assert got == [i & 0b00111100 for i in range(12, 27, 2)]


def test_uniform_clips_enumerate_videos(index_video):
    items = [VideoItem(index_video(n=30, name=f"v{i}.mp4"), i, f"v{i}") for i in range(2)]
    ds = make_ds(items, UniformClipSampler(3))
    assert len(ds) == 6
    assert [(ds[i]["video_index"].item(), ds[i]["clip_index"].item()) for i in range(6)] == [
        (0, 0),
        (0, 1),
        (0, 2),
        (1, 0),
        (1, 1),
        (1, 2),
    ]


def test_bad_file_is_replaced_counted_and_named_once(index_video, tmp_path, caplog):
    good = VideoItem(index_video(n=20), 0, "good")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 100)
    ds = make_ds([VideoItem(bad, 1, "bad"), good], RandomClipSampler(), train=True)
    torch.manual_seed(0)
    with caplog.at_level("WARNING", logger="i3d_train.data.dataset"):
        s = ds[0]
        ds[0]
    assert s["skipped"].item() >= 1
    assert s["video_index"].item() == 1 and s["label"].item() == 0
    named = [r.getMessage() for r in caplog.records if "skipped unreadable video" in r.getMessage()]
    assert len(named) == 1 and named[0].startswith("skipped unreadable video bad (replaced by another): ")


def test_random_clips_reproducible_with_torch_seed(index_video):
    ds = make_ds([VideoItem(index_video(n=60), 0, "a")], RandomClipSampler(), train=True)
    torch.manual_seed(5)
    a = ds[0]["rgb"]
    torch.manual_seed(5)
    assert torch.equal(a, ds[0]["rgb"])
