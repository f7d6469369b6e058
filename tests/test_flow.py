"""Optical flow: known motion recovered after storage, quantisation round trip, resumable extraction."""

import json

import numpy as np
import pytest

from i3d_train.data.synthetic import _smooth_noise
from i3d_train.flow.cli import main as flow_main
from i3d_train.flow.store import FlowStore, read_flow
from i3d_train.flow.video import ExtractOptions, extract_video
from i3d_train.runtime.atomic import temp_path
from i3d_train.video.writer import write_video

SPEED = 2  # px / frame to the right
DEAD_PID = 2**22 + 1  # above Linux's largest pid_max: no such process


def translating_square(n: int = 10, h: int = 96, w: int = 128, size: int = 36) -> tuple[np.ndarray, list]:
    """Static textured background, a textured square moving SPEED px/frame right. Returns frames and
    the square's (top, left) per frame."""
    rng = np.random.default_rng(0)
    bg = (_smooth_noise(rng, h, w, 12) * 160 + 40)[..., None].repeat(3, axis=2)
    tex = (_smooth_noise(rng, size, size, 6) * 200 + 30)[..., None].repeat(3, axis=2)
    tex[..., 1] = 255 - tex[..., 1]
    frames, boxes = [], []
    top, left0 = (h - size) // 2, 20
    for i in range(n):
        f = bg.copy()
        left = left0 + SPEED * i
        f[top : top + size, left : left + size] = tex
        frames.append(f.astype(np.uint8))
        boxes.append((top, left))
    return np.stack(frames), boxes


@pytest.mark.parametrize("method", ["tvl1", "farneback"])
def test_known_translation_is_recovered_after_storage(tmp_path, method):
    frames, boxes = translating_square()
    video = tmp_path / "move.mp4"
    write_video(video, frames, 25, crf=8)
    meta = extract_video(video, tmp_path / "flow" / "move", ExtractOptions(method=method, short_side=None))
    assert meta["flow_frames"] == len(frames) - 1 and meta["method"] == method
    flow = read_flow(tmp_path / "flow" / "move")
    assert flow.shape == (len(frames) - 1, 96, 128, 2)
    inner, bg = [], []
    for i in range(len(flow)):
        top, left = boxes[i]
        # the square's interior (margin 8 px), and background far from it
        inner.append(flow[i, top + 8 : top + 28, left + 8 : left + 28])
        bg.append(flow[i, :, :10])
    inner, bg = np.concatenate(inner), np.concatenate(bg)
    assert abs(inner[..., 0].mean() - SPEED) < 0.5
    assert abs(inner[..., 1].mean()) < 0.5
    assert np.abs(bg).mean() < 0.5


def test_storage_round_trip_and_range(tmp_path):
    from i3d_train.flow.store import write_flow_folder

    rng = np.random.default_rng(1)
    fields = np.stack([(_smooth_noise(rng, 64, 80, 4) - 0.5) * 50 for _ in range(6)])  # 6 x 64 x 80
    smooth = fields.reshape(3, 2, 64, 80).transpose(0, 2, 3, 1)  # 3 flow frames x H x W x (x, y)
    store = FlowStore()
    write_flow_folder(tmp_path / "f", smooth, store, {"flow_frames": 3, "bound": 20.0})
    back = read_flow(tmp_path / "f")
    clipped = np.clip(smooth, -20, 20)
    # 8-bit quantisation alone: at most 20/127.5 per value (half a step in fact).
    assert np.abs(store.dequantize(store.quantize(smooth)) - clipped).max() <= 20 / 127.5
    # Through JPEG (quality 95, the common choice) on smooth flow: within half a pixel, tiny on average.
    err = np.abs(back - clipped)
    assert err.max() < 0.5 and err.mean() < 0.1
    assert back.min() >= -20 and back.max() <= 20
    # files and names of the common format
    assert sorted(p.name for p in (tmp_path / "f").iterdir())[:2] == ["flow_x_00001.jpg", "flow_x_00002.jpg"]
    assert np.array_equal(store.quantize(np.array([-20.0, 0.0, 20.0, 99.0])), [0, 128, 255, 255])


@pytest.mark.parametrize("workers", ["1", "2"])  # 1: in this process; 2: a spawned pool
def test_cli_resumes_after_interruption_and_reports_failures(tmp_path, capsys, workers):
    frames, _ = translating_square(n=6, h=48, w=64, size=16)
    src = tmp_path / "videos"
    for name in ("a", "b"):
        write_video(src / "cls" / f"{name}.mp4", frames, 25)
    (src / "cls" / "bad.mp4").write_bytes(b"\x00" * 64)
    dst = tmp_path / "flow"
    args = ["--src", str(src), "--dst", str(dst), "--method", "farneback", "--short-side", "0", "--workers", workers]
    assert flow_main(args) == 1  # bad.mp4 failed, the others done
    out = capsys.readouterr().out
    assert "2 done, 0 left to another process, 0 skipped" in out and "1 failed" in out and "bad.mp4" in out
    assert json.loads((dst / "cls" / "a" / "meta.json").read_text())["flow_frames"] == 5
    # Simulate a run killed while writing b: only the temp folder of a process now gone is left.
    left = temp_path(dst / "cls" / "b", pid=DEAD_PID)
    (dst / "cls" / "b").rename(left)
    (left / "meta.json").unlink()
    (src / "cls" / "bad.mp4").unlink()
    assert flow_main(args) == 0
    out = capsys.readouterr().out
    assert "1 done, 0 left to another process, 1 skipped" in out
    assert (dst / "cls" / "b" / "meta.json").is_file() and not left.exists()
    assert sorted(p.name for p in (dst / "cls").iterdir()) == ["a", "b"]
    assert read_flow(dst / "cls" / "b", [0, 5]).shape == (2, 48, 64, 2)  # index 5 wraps to 0


def test_dataset_serves_flow_aligned_with_rgb(tmp_path):
    from i3d_train.data.dataset import VideoDataset, VideoItem
    from i3d_train.data.samplers import CenterClipSampler
    from i3d_train.data.transforms import ClipTransform

    frames, _ = translating_square(n=12)
    video = tmp_path / "v.mp4"
    write_video(video, frames, 25, crf=8)
    extract_video(video, tmp_path / "flow" / "v", ExtractOptions(method="farneback", short_side=None))
    item = VideoItem(video, 1, "v.mp4", flow_dir=tmp_path / "flow" / "v")
    ds = VideoDataset(
        [item], 8, 25.0, 1, CenterClipSampler(), ClipTransform(96, 64, train=False), modalities=("rgb", "flow")
    )
    s = ds[0]
    assert s["rgb"].shape == (3, 8, 64, 64) and s["flow"].shape == (2, 8, 64, 64)
    # 12 frames have 11 flow fields, so clips start among 11 frames: center start (11 - 8) // 2 = 1.
    # Center crop offsets (16, 32): the stored flow, scaled to [-1, 1].
    ref = read_flow(tmp_path / "flow" / "v", np.arange(1, 9))[:, 16:80, 32:96] / 20.0
    assert np.allclose(s["flow"].permute(1, 2, 3, 0).numpy(), ref, atol=1e-6)
    # Flow-only datasets need no decoding; a video without flow is skipped and counted.
    only = VideoDataset(
        [item], 8, 25.0, 1, CenterClipSampler(), ClipTransform(96, 64, train=False), modalities=("flow",)
    )
    assert set(only[0]) == {"flow", "label", "video_index", "clip_index", "skipped"}
    missing = VideoItem(video, 0, "w.mp4", flow_dir=tmp_path / "flow" / "nope")
    mixed = VideoDataset(
        [missing, item], 8, 25.0, 1, CenterClipSampler(), ClipTransform(96, 64, train=False), modalities=("flow",)
    )
    s = mixed[0]
    assert s["skipped"].item() >= 1 and s["video_index"].item() == 1


@pytest.mark.parametrize("backend", ["opencv", "torch"])
def test_streamed_flow_is_the_whole_video_flow_chunk_by_chunk(tmp_path, monkeypatch, backend):
    """40 frames streamed through in chunks (OpenCV: 16 pairs per call; torch: 5 with --batch 5): never
    more than a chunk of frames at once, and the stored fields those of the whole video computed at once
    (bit for bit: the same frames, the same pairs)."""
    import i3d_train.flow.video as flow_video
    from i3d_train.flow.compute import compute_flow, to_gray
    from i3d_train.flow.store import write_flow_folder
    from i3d_train.video.reader import read_frames

    frames, _ = translating_square(40, 48, 128, 20)
    video = tmp_path / "v.mp4"
    write_video(video, frames, 25, crf=10)
    method = "tvl1" if backend == "torch" else "farneback"
    opts = ExtractOptions(method=method, short_side=None, backend=backend, device="cpu", batch=5)
    held = []
    monkeypatch.setattr(flow_video, "compute_flow", lambda gray, *a: held.append(len(gray)) or compute_flow(gray, *a))
    meta = extract_video(video, tmp_path / "streamed", opts)
    assert meta["flow_frames"] == 39 and held == ([17, 17, 8] if backend == "opencv" else [6] * 7 + [5])
    whole = compute_flow(to_gray(read_frames(video, np.arange(40), 25.0), None), method, backend, "cpu", 5)
    write_flow_folder(tmp_path / "whole", whole, FlowStore(), meta)
    assert np.array_equal(read_flow(tmp_path / "streamed"), read_flow(tmp_path / "whole"))


@pytest.mark.slow
def test_three_flow_commands_on_one_folder_take_each_video_once(tmp_path):
    """Three `python -m i3d_train.flow` processes on one --src / --dst (started together behind a
    barrier, just before their work): every video complete, each computed by one of them (the "done"
    counts add up to 6), none failed, the others' videos counted as left to another process."""
    import os
    import re
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    frames, _ = translating_square(30, 48, 128, 20)
    for i in range(6):
        write_video(tmp_path / "videos" / f"c{i % 2}" / f"v{i}.mp4", frames, 25, crf=10)
    (tmp_path / "barrier").mkdir()
    gate = (
        "import pathlib, sys, time\n"
        "import i3d_train.flow.parallel as parallel\n"
        "from i3d_train.flow.cli import main\n"
        "folder = pathlib.Path(sys.argv[1])\n"
        "real = parallel.extract_many\n"
        "def gated(*a, **k):\n"
        "    (folder / str(time.time_ns())).touch()\n"
        "    while len(list(folder.iterdir())) < 3:\n"
        "        time.sleep(0.002)\n"
        "    return real(*a, **k)\n"
        "parallel.extract_many = gated\n"
        "sys.exit(main(sys.argv[2:]))\n"
    )
    args = ["--src", str(tmp_path / "videos"), "--dst", str(tmp_path / "flow"), "--method", "farneback",
            "--short-side", "0", "--workers", "1"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(root)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", gate, str(tmp_path / "barrier"), *args],
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-1500:] for _, err in outs]
    counts = [
        re.search(r"flow: (\d+) done, (\d+) left to another process, (\d+) skipped", out).groups() for out, _ in outs
    ]
    done = [int(d) for d, _, _ in counts]
    assert sum(done) == 6 and all(int(d) + int(e) + int(s) == 6 for d, e, s in counts), counts
    assert sorted(p.relative_to(tmp_path / "flow").as_posix() for p in (tmp_path / "flow").glob("*/*/meta.json")) == [
        f"c{i % 2}/v{i}/meta.json" for i in (0, 2, 4, 1, 3, 5)
    ]
    assert not list((tmp_path / "flow").rglob("*.lock")) and not list((tmp_path / "flow").rglob("*.tmp"))
