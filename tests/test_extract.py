"""Feature extraction for temporal action localization and the fast inference path."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from i3d_train.data.synthetic import SyntheticConfig, render_video
from i3d_train.features.snippets import snippet_starts
from i3d_train.flow.compute import compute_flow, to_gray
from i3d_train.inference.fast import fold_batchnorm, prepare
from i3d_train.models.i3d import InceptionI3d
from i3d_train.video.reader import read_frames
from i3d_train.video.resize import frames_to_unit, resize_frames
from i3d_train.video.writer import write_video
from tests.conftest import assert_same_rows, randomize_batchnorm, sensitive_i3d

ROOT = Path(__file__).resolve().parents[1]


def random_i3d(in_channels: int = 3, seed: int = 0) -> InceptionI3d:
    """Random weights and random batch-norm statistics, so that folding is not trivial."""
    torch.manual_seed(seed)
    return randomize_batchnorm(InceptionI3d(400, in_channels), 0.1)


def test_folded_batchnorm_matches_the_reference_in_fp32():
    m = random_i3d()
    x = torch.rand(2, 3, 16, 64, 64) * 2 - 1
    folded = fold_batchnorm(m)
    assert all(u.bn is None for u in folded.modules() if hasattr(u, "bn"))
    ref = prepare(m, fast=False)(x, "extract_features")
    fast = prepare(m, fast=True, precision="fp32")(x, "extract_features")
    assert (ref - fast).abs().max() <= 1e-4


def test_bf16_fast_path_is_close_to_the_reference():
    m = random_i3d(seed=1)
    x = torch.rand(3, 3, 16, 64, 64) * 2 - 1
    ref = prepare(m, fast=False)(x, "extract_features")
    fast = prepare(m, fast=True, precision="bf16")
    assert fast.dtype == torch.bfloat16 and fast.channels_last
    assert F.cosine_similarity(ref, fast(x, "extract_features"), dim=1).min() >= 0.999


def test_snippet_counts():
    assert len(snippet_starts(250, 16, 16)) == 15 and snippet_starts(250, 16, 16)[-1] == 224
    assert snippet_starts(5, 16, 16) == [0] and snippet_starts(16, 16, 16) == [0]
    assert snippet_starts(40, 16, 8) == [0, 8, 16, 24]


def run_extract(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, str(ROOT / "extract.py"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_extract_py_snippets_rows_and_short_videos(tmp_path):
    model = random_i3d(seed=2)
    torch.save(model.state_dict(), tmp_path / "rgb.pt")
    cfg = SyntheticConfig(num_frames=250, height=64, width=80, seed=3)
    write_video(tmp_path / "videos" / "long.mp4", render_video(cfg, 0, 0), 25)
    write_video(
        tmp_path / "videos" / "short.mp4", render_video(SyntheticConfig(num_frames=5, height=64, width=80), 1, 1), 25
    )
    (tmp_path / "videos" / "broken.mp4").write_bytes(b"not a video")
    common = [f"input={tmp_path / 'videos'}", f"output_dir={tmp_path / 'feats'}", f"weights.rgb={tmp_path / 'rgb.pt'}",
              "short_side=64", "crop_size=56", "batch_size=4", "inference.precision=fp32", f"hydra.run.dir={tmp_path / 'h'}"]  # fmt: skip
    proc = run_extract(common, tmp_path)
    assert proc.returncode == 1  # one video failed, the others were written
    assert "2 done, 0 skipped (already complete), 1 failed" in proc.stdout and "broken.mp4" in proc.stdout

    feats = np.load(tmp_path / "feats" / "long_rgb.npy")
    manifest = json.loads((tmp_path / "feats" / "long.json").read_text())
    assert feats.shape == (15, 1024) and manifest["num_snippets"] == 15
    assert manifest["snippet_start_frames"] == list(range(0, 225, 16)) and manifest["snippet_start_times"][1] == 0.64
    assert manifest["frames"] == 250 and manifest["stack"] == 16 and manifest["step"] == 16
    # each row = the fp32 reference model's mean-pooled Mixed_5c on that snippet (center 56 crop of 64x80)
    frames = resize_frames(torch.from_numpy(read_frames(tmp_path / "videos" / "long.mp4", np.arange(250), 25.0)), 64)
    for i in (0, 7, 14):
        s = manifest["snippet_start_frames"][i]
        clip = frames_to_unit(frames[s : s + 16])[..., 4:60, 12:68]
        with torch.no_grad():
            ref = model.extract_features(clip[None])[0].numpy()
        assert np.abs(feats[i] - ref).max() <= 1e-4

    short = np.load(tmp_path / "feats" / "short_rgb.npy")
    m_short = json.loads((tmp_path / "feats" / "short.json").read_text())
    assert short.shape == (1, 1024) and m_short["looped"] and m_short["frames"] == 5
    small = resize_frames(torch.from_numpy(read_frames(tmp_path / "videos" / "short.mp4", np.arange(16) % 5, 25.0)), 64)
    with torch.no_grad():
        ref = model.extract_features(frames_to_unit(small)[None, ..., 4:60, 12:68])[0].numpy()
    assert np.abs(short[0] - ref).max() <= 1e-4

    again = run_extract([*common, "wandb=true"], tmp_path)  # resumable: finished videos are skipped
    assert "0 done, 2 skipped (already complete), 1 failed" in again.stdout
    # wandb=true: a W&B run of job type extract, with the closing counts and the failure
    from tests.wandb_log import OfflineRun

    (wb_dir,) = (tmp_path / "feats" / "wandb").glob("offline-run-*")
    wb = OfflineRun(wb_dir)
    assert wb.run.job_type == "extract" and wb.run.run_group == "extract-feats"
    assert (wb.summary["done"], wb.summary["skipped"], wb.summary["failed"]) == (0, 2, 1)
    assert [r[0] for r in wb.table("failed")["data"]] == [str(tmp_path / "videos" / "broken.mp4")]


@pytest.mark.slow
def test_ten_crop_and_flow_features(tmp_path):
    rgb_net, flow_net = sensitive_i3d(3, seed=4), sensitive_i3d(2, seed=5)  # rows that differ: a wrong view fails
    torch.save(rgb_net.state_dict(), tmp_path / "rgb.pt")
    torch.save(flow_net.state_dict(), tmp_path / "flow.pt")
    write_video(tmp_path / "v.mp4", render_video(SyntheticConfig(num_frames=40, height=64, width=80), 2, 2), 25)
    (tmp_path / "list.txt").write_text("v.mp4\n")
    proc = run_extract(
        ["input=" + str(tmp_path / "list.txt"), f"output_dir={tmp_path / 'f'}", "modalities=[rgb,flow]",
         f"weights.rgb={tmp_path / 'rgb.pt'}", f"weights.flow={tmp_path / 'flow.pt'}", "flow.method=farneback",
         "short_side=64", "crop_size=56", "crops=ten_crop", "stack=16", "step=8", "inference.precision=fp32",
         f"hydra.run.dir={tmp_path / 'h'}"],
        tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = json.loads((tmp_path / "f" / "v.json").read_text())
    # 40 frames -> 39 flow fields, for both modalities: (39 - 16) // 8 + 1 = 3 snippets
    assert m["frames_used"] == 39 and m["num_snippets"] == 3
    rgb, flow = np.load(tmp_path / "f" / "v_rgb.npy"), np.load(tmp_path / "f" / "v_flow.npy")
    assert rgb.shape == flow.shape == (3, 10, 1024)
    assert not np.allclose(rgb[:, 0], rgb[:, 5])  # a crop and its mirror image differ
    # View 7 of snippet 1 (frames 8-23), recomputed by hand: the mirrored bottom-left 56x56 crop of the
    # 64x80 frames (top 8, left 0), flipped left-right; for flow, also x negated. A wrong corner,
    # a flip of the wrong axis or a flow x left unnegated changes the row.
    frames = read_frames(tmp_path / "v.mp4", np.arange(8, 25), 25.0)
    rgb_view = frames_to_unit(resize_frames(torch.from_numpy(frames[:16]), 64))[:, :, 8:64, 0:56].flip(-1)
    fields = compute_flow(to_gray(frames, 64), "farneback")  # 16 fields from 17 frames, none across a wrap
    flow_clip = (torch.from_numpy(fields).permute(3, 0, 1, 2) / 20).clamp(-1, 1)[:, :, 8:64, 0:56].flip(-1)
    flow_clip[0] = -flow_clip[0]
    with torch.no_grad():
        ref_rgb = rgb_net.extract_features(rgb_view[None])[0].numpy()
        ref_flow = flow_net.extract_features(flow_clip[None])[0].numpy()
    assert_same_rows(rgb[1, 7:8], ref_rgb[None])
    assert_same_rows(flow[1, 7:8], ref_flow[None])
    for other in (rgb[1, 2], rgb[1, 8], rgb[0, 7]):  # another corner, the unflipped view, another snippet
        assert np.abs(other - ref_rgb).max() > 1e-3 * np.abs(ref_rgb).max()
    assert np.abs(flow[1, 2] - ref_flow).max() > 1e-3 * np.abs(ref_flow).max()
    # extracted again, RGB only and another step: the earlier flow file (step 8) goes with its manifest
    # entry (it stayed behind, beside a manifest that no longer described it)
    again = run_extract(
        ["input=" + str(tmp_path / "list.txt"), f"output_dir={tmp_path / 'f'}", "modalities=[rgb]",
         f"weights.rgb={tmp_path / 'rgb.pt'}", "short_side=64", "crop_size=56", "crops=ten_crop", "stack=16", "step=16",
         "inference.precision=fp32", f"hydra.run.dir={tmp_path / 'h2'}"],
        tmp_path,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-2000:]
    assert "1 of the done re-extracted" in again.stdout
    assert json.loads((tmp_path / "f" / "v.json").read_text())["files"] == {"rgb": "v_rgb.npy"}
    assert sorted(p.name for p in (tmp_path / "f").glob("v*")) == ["v.json", "v_rgb.npy"]


@pytest.mark.slow
def test_flow_folders_then_stored_flow_extraction_chain(tmp_path):
    """`python -m i3d_train.flow --src videos --dst flow/tvl1`, then the documented stored-flow extraction
    from a list one folder above the videos: the list names `videos/a/clip`, the flow command `a/clip`,
    and extraction finds each video's flow folder (it failed every video with a raw FileNotFoundError).
    Without `flow` in modalities the flow options are refused in one line (they were ignored)."""
    torch.save(sensitive_i3d(3, seed=6).state_dict(), tmp_path / "rgb.pt")
    torch.save(sensitive_i3d(2, seed=7).state_dict(), tmp_path / "flow.pt")
    for i, name in enumerate(("videos/a/clip.mp4", "videos/b.mp4")):
        write_video(
            tmp_path / name, render_video(SyntheticConfig(num_frames=24, height=48, width=64, seed=i), i, 0), 25
        )
    (tmp_path / "list.txt").write_text("videos/a/clip.mp4\nvideos/b.mp4\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    flow = subprocess.run([sys.executable, "-m", "i3d_train.flow", "--src", "videos", "--dst", "flow/tvl1", "--short-side", "48"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert flow.returncode == 0 and "2 done" in flow.stdout, flow.stdout + flow.stderr
    assert (tmp_path / "flow/tvl1/a/clip/meta.json").is_file()
    documented = ["input=list.txt", "modalities=[rgb,flow]", "crops=ten_crop", "stack=16", "step=8", "flow.source=folder",
                  "flow.root=flow/tvl1"]  # fmt: skip
    small = [f"weights.rgb={tmp_path / 'rgb.pt'}", f"weights.flow={tmp_path / 'flow.pt'}", "short_side=48",
             "crop_size=40", "inference.precision=fp32", f"output_dir={tmp_path / 'feats'}",
             f"hydra.run.dir={tmp_path / 'h'}"]  # fmt: skip
    proc = run_extract([*documented, *small], tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "2 done, 0 skipped (already complete), 0 failed" in proc.stdout
    for name in ("videos/a/clip", "videos/b"):
        m = json.loads((tmp_path / "feats" / f"{name}.json").read_text())
        flow_rows = np.load((tmp_path / "feats" / name).parent / m["files"]["flow"])
        assert flow_rows.shape == (1, 10, 1024) and m["frames_used"] == 23 and np.abs(flow_rows).max() > 0
    refused = run_extract([*[a for a in documented if not a.startswith("modalities")], *small], tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1] == (
        "error: flow.source=folder flow.root=flow/tvl1 reads stored flow, but modalities=['rgb'] has no flow stream: "
        "add modalities=[rgb,flow] (or drop the flow options)"
    )
