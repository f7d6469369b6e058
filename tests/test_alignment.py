"""Features and clips that line up: one loop rule for RGB and flow (reader, training, extraction), flow
folders at the wrong rate refused, list inputs named by their relative path, and finished videos
re-extracted when their manifest was made with other settings."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from i3d_train.data.dataset import VideoDataset, VideoItem
from i3d_train.data.samplers import CenterClipSampler
from i3d_train.data.synthetic import SyntheticConfig, render_video
from i3d_train.data.transforms import ClipTransform
from i3d_train.errors import ConfigError
from i3d_train.features.reference import FeatureExtractor
from i3d_train.features.run import list_inputs
from i3d_train.features.snippets import ExtractSettings
from i3d_train.flow.store import FlowStore, write_flow_folder
from i3d_train.flow.video import ExtractOptions, extract_video
from i3d_train.models.i3d import InceptionI3d
from i3d_train.video.reader import loop, probe
from i3d_train.video.writer import write_video

ROOT = Path(__file__).resolve().parents[1]
LEVEL = 20  # gray level step per frame of the "gray index" video


def gray_index_video(path: Path, n: int) -> Path:
    """Frame i is uniformly gray at level LEVEL * i: its index survives any crop and resize."""
    frames = np.stack([np.full((48, 64, 3), LEVEL * i, np.uint8) for i in range(n)])
    write_video(path, frames, 25, crf=0)
    return path


def index_flow_folder(folder: Path, fields: int, h: int = 48, w: int = 64) -> Path:
    """Field i is a uniform flow of i pixels in x (and 0 in y)."""
    flow = np.zeros((fields, h, w, 2), np.float32)
    flow[..., 0] = np.arange(fields, dtype=np.float32)[:, None, None]
    meta = {"fps": 25.0, "frames": fields + 1, "flow_frames": fields, "bound": 20.0, "height": h, "width": w}
    write_flow_folder(folder, flow, FlowStore(20.0), meta)
    return folder


def test_looped_clip_keeps_frame_i_with_field_i(tmp_path):
    """A 10-frame video (9 flow fields) in a 24-frame clip: RGB and flow both loop every 9, so the
    frame and the field at every position of the clip have the same index (before: RGB looped every
    10 and flow every 9, drifting by one per loop)."""
    video = gray_index_video(tmp_path / "v.mp4", 10)
    item = VideoItem(video, 0, "v.mp4", flow_dir=index_flow_folder(tmp_path / "flow" / "v", 9))
    ds = VideoDataset(
        [item], 24, 25.0, 1, CenterClipSampler(), ClipTransform(48, 32, train=False), modalities=("rgb", "flow")
    )
    s = ds[0]
    rgb_index = ((s["rgb"][0].mean((1, 2)) + 1) * 127.5 / LEVEL).round().long().tolist()
    flow_index = (s["flow"][0].mean((1, 2)) * 20).round().long().tolist()
    assert rgb_index == flow_index == [i % 9 for i in range(24)]


def moving_video(path: Path, n: int) -> Path:
    write_video(path, render_video(SyntheticConfig(num_frames=n, height=48, width=64, seed=5), 0, 0), 25, crf=4)
    return path


def test_computed_and_stored_flow_give_the_same_looped_clip(tmp_path):
    """On-the-fly flow of a looped snippet equals the stored flow (up to its 8-bit quantisation); the
    field after the last one is field 0 again, never the jump from the last frame back to the first."""
    video = moving_video(tmp_path / "v.mp4", 6)  # 5 fields; a 16-frame snippet loops 3 times
    extract_video(video, tmp_path / "flow", ExtractOptions(method="farneback", short_side=48))
    idx = loop(np.arange(16), 5)
    info = probe(video)
    s = dict(short_side=48, flow_method="farneback")
    computed = FeatureExtractor({"flow": None}, ExtractSettings(**s))._flow(video, idx, info, None, None)
    from i3d_train.flow.store import read_meta

    meta = read_meta(tmp_path / "flow")
    stored = FeatureExtractor({"flow": None}, ExtractSettings(**s, flow_source="folder"))._flow(
        video, idx, info, tmp_path / "flow", meta
    )
    assert computed.shape == stored.shape == (2, 16, 48, 64)
    assert torch.equal(computed[:, 5:10], computed[:, 0:5])  # the loop repeats the same fields
    assert (computed - stored).abs().mean() < 0.01 and (computed - stored).abs().max() < 0.1
    # every field of a rightward pan moves right, including the ones after each wrap
    assert (computed[0].mean((1, 2)) > 0.02).all()


def test_flow_folder_at_another_rate_is_a_one_line_error(tmp_path):
    video = moving_video(tmp_path / "v.mp4", 8)
    extract_video(video, tmp_path / "flow", ExtractOptions(method="farneback", fps=25, short_side=48))
    ex = FeatureExtractor({"flow": None}, ExtractSettings(fps=30, short_side=48, flow_source="folder"))
    with pytest.raises(ValueError, match=r"flow stored at 25 fps but 30 fps requested") as e:
        ex.extract(video, tmp_path / "flow")
    assert "\n" not in str(e.value)
    # training: the DataModule stops at setup, naming both rates
    from i3d_train.data.datamodule import DatasetFormatError, _check_flow

    item = VideoItem(video, 0, "v.mp4", flow_dir=tmp_path / "flow")
    with pytest.raises(DatasetFormatError, match="flow stored at 25 fps but 12.5 fps requested"):
        _check_flow("x", "train", [item], tmp_path, "hint", 12.5)
    assert _check_flow("x", "train", [item], tmp_path, "hint", 25.0) == [item]


def test_list_inputs_are_named_by_relative_path_and_duplicates_refused(tmp_path):
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "v.mp4").touch()
    (tmp_path / "a" / "v.avi").touch()
    lst = tmp_path / "list.txt"
    lst.write_text(f"a/v.mp4\n\n{tmp_path / 'b' / 'v.mp4'}\n")
    assert list_inputs(lst) == [(tmp_path / "a" / "v.mp4", "a/v"), (tmp_path / "b" / "v.mp4", "b/v")]
    lst.write_text("a/v.mp4\nb/v.mp4\na/v.avi\n")
    with pytest.raises(ConfigError, match=r"a/v.mp4 and .*a/v.avi would both be written as a/v_\*.npy"):
        list_inputs(lst)
    lst.write_text("a/v.mp4\n../elsewhere/v.mp4\n")
    with pytest.raises(ConfigError, match=r"list.txt:2: ../elsewhere/v.mp4 is outside the list's folder"):
        list_inputs(lst)
    with pytest.raises(ConfigError, match=r"a/v.avi and .*a/v.mp4 would both be written as v_\*.npy"):
        list_inputs(tmp_path / "a")  # a folder: same rule


@pytest.mark.slow
def test_extract_py_same_stems_in_two_folders_and_reextraction_on_new_settings(tmp_path):
    torch.manual_seed(0)
    torch.save(InceptionI3d(400).state_dict(), tmp_path / "rgb.pt")
    for d, label in (("a", 0), ("b", 1)):
        frames = render_video(SyntheticConfig(num_frames=20, height=48, width=64), label, label)
        write_video(tmp_path / "videos" / d / "clip.mp4", frames, 25)
    (tmp_path / "videos" / "list.txt").write_text("a/clip.mp4\nb/clip.mp4\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def extract(*extra: str) -> str:
        args = [f"input={tmp_path / 'videos' / 'list.txt'}", f"output_dir={tmp_path / 'f'}",
                f"weights.rgb={tmp_path / 'rgb.pt'}", "short_side=48", "crop_size=48", "inference.precision=fp32",
                f"hydra.run.dir={tmp_path / 'h'}", *extra]  # fmt: skip
        proc = subprocess.run(
            [sys.executable, str(ROOT / "extract.py"), *args], capture_output=True, text=True, env=env
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout

    assert "2 done, 0 skipped (already complete), 0 failed; 0 of the done re-extracted" in extract()
    a, b = np.load(tmp_path / "f" / "a" / "clip_rgb.npy"), np.load(tmp_path / "f" / "b" / "clip_rgb.npy")
    assert a.shape == b.shape == (1, 1024) and not np.allclose(a, b)  # two videos, two outputs
    assert "0 done, 2 skipped" in extract()
    out = extract("step=4")  # other settings: both re-extracted, and the summary says so
    assert "2 done, 0 skipped (already complete), 0 failed; 2 of the done re-extracted" in out
    manifest = json.loads((tmp_path / "f" / "a" / "clip.json").read_text())
    assert manifest["settings"]["common"]["step"] == 4 and manifest["num_snippets"] == 2
    assert "0 done, 2 skipped" in extract("step=4")  # the same settings again: skipped
    torch.save(InceptionI3d(400).state_dict(), tmp_path / "rgb.pt")  # other weights, same path
    assert "2 of the done re-extracted" in extract("step=4")
