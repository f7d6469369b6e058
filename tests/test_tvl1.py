"""TV-L1 in PyTorch: accuracy against known flow and against OpenCV, batch invariance, OpenCV's building
blocks (median, resize, bicubic warp), no host reads inside the iterations."""

import os
import shlex
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from i3d_train.flow.truth import CASES, epe, natural_pair, synthetic_pair
from i3d_train.flow.tvl1 import TVL1Params, median_blur, resize_linear, tvl1, warp_bicubic


@pytest.fixture(autouse=True)
def _threads():
    cv2.setNumThreads(1)


def _opencv(f0: np.ndarray, f1: np.ndarray) -> np.ndarray:
    return cv2.optflow.DualTVL1OpticalFlow_create().calc(f0, f1, None)


def _torch(f0: np.ndarray, f1: np.ndarray, **kw) -> np.ndarray:
    return tvl1(torch.from_numpy(f0)[None], torch.from_numpy(f1)[None], **kw)[0].permute(1, 2, 0).numpy()


@pytest.mark.parametrize("case", CASES)
def test_known_flow_no_worse_than_opencv(case):
    f0, f1, truth = synthetic_pair(case, 72, 96)
    ours, ref = epe(_torch(f0, f1), truth).mean(), epe(_opencv(f0, f1), truth).mean()
    assert ours <= ref + 0.05, f"{case}: torch EPE {ours:.4f} vs OpenCV {ref:.4f}"
    assert ours < 0.2  # and both actually recover the motion (max displacement 1.5-3 px)


NATURAL = [natural_pair(56, 72, seed=seed, motion=2.5) for seed in range(2)]
# mean EPE of the port against OpenCV on NATURAL, measured: 0.0034 px (0.0058 and 0.0011); the bound
# is about 3x. OpenCV with a median filter of 3 instead of 5 is 0.017 px away, with 3 warps 0.028.
PARITY_EPE = 0.01


def test_agrees_with_opencv_on_natural_frames():
    errs = [epe(_torch(f0, f1), _opencv(f0, f1)).mean() for f0, f1 in NATURAL]
    assert np.mean(errs) <= PARITY_EPE, errs


# Each of OpenCV's defaults, set to another value on OpenCV's side: the port (at TVL1Params' defaults)
# must be further from that than from OpenCV at its defaults, so each default of the port is OpenCV's.
OTHER_SETTINGS = {
    "setMedianFiltering": 3,
    "setWarpingsNumber": 3,
    "setScalesNumber": 3,
    "setTau": 0.15,
    "setLambda": 0.1,
    "setTheta": 0.5,
    "setInnerIterations": 15,  # (outerIterations is left out: on these frames the epsilon test ends the loop first)
    "setScaleStep": 0.6,
    "setEpsilon": 0.05,
}


@pytest.mark.parametrize("setter", sorted(OTHER_SETTINGS))
def test_each_default_is_opencvs(setter):
    errs = []
    for f0, f1 in NATURAL:
        ours = _torch(f0, f1)
        other = cv2.optflow.DualTVL1OpticalFlow_create()
        getattr(other, setter)(OTHER_SETTINGS[setter])
        errs.append((epe(ours, _opencv(f0, f1)).mean(), epe(ours, other.calc(f0, f1, None)).mean()))
    same, changed = np.mean(errs, axis=0)
    assert changed > 2 * max(same, PARITY_EPE / 3), (setter, same, changed)


def _video_pairs(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    frames = [natural_pair(36, 48, seed=s, motion=1.0 + 0.3 * s) for s in range(n)]
    return torch.from_numpy(np.stack([a for a, _ in frames])), torch.from_numpy(np.stack([b for _, b in frames]))


def test_same_flow_alone_and_in_a_batch_of_8():
    i0, i1 = _video_pairs(8)
    batch = tvl1(i0, i1)
    for k in (0, 5):
        alone = tvl1(i0[k : k + 1], i1[k : k + 1])[0]
        assert (alone - batch[k]).abs().max() <= 1e-5
    # the device path (flags read every few iterations, converged pairs masked meanwhile) gives the same
    masked = tvl1(i0[:3], i1[:3], sync_every=7)
    assert (masked - batch[:3]).abs().max() <= 1e-5


def test_float_input_in_unit_range_equals_uint8():
    f0, f1 = natural_pair(40, 48, seed=4)
    u8 = _torch(f0, f1)
    fl = tvl1(torch.from_numpy(f0).float()[None] / 255, torch.from_numpy(f1).float()[None] / 255)[0]
    assert np.abs(fl.permute(1, 2, 0).numpy() - u8).max() < 1e-3
    assert np.abs(u8).max() > 0.5  # there is motion to get wrong


def test_no_host_reads_inside_the_iterations():
    # The meta device has no data: any .item() / .tolist() / bool() of a tensor raises. With the flag
    # read pushed past the whole schedule, the full solver (pyramid, warps, median, stopping test)
    # must still run there, so its convergence test stays on the device.
    params = TVL1Params(nscales=2, warps=1, inner_iterations=3, outer_iterations=2)
    i0 = torch.empty(2, 40, 48, dtype=torch.uint8, device="meta")
    out = tvl1(i0, i0.clone(), params, sync_every=10**9)
    assert out.shape == (2, 2, 40, 48) and out.device.type == "meta"
    with pytest.raises(Exception, match="meta"):  # and the periodic read is the only one
        tvl1(i0, i0.clone(), params, sync_every=2)


@pytest.mark.parametrize("k", [3, 5])
def test_median_is_exact(k):
    g = torch.Generator().manual_seed(k)
    for x in (torch.randint(0, 4, (3, 11, 13), generator=g).float(), torch.randn(2, 9, 17, generator=g)):
        r = k // 2
        win = F.pad(x[:, None], (r, r, r, r), mode="replicate")[:, 0].unfold(1, k, 1).unfold(2, k, 1)
        ref = win.reshape(*x.shape, k * k).sort(-1).values[..., k * k // 2]
        assert torch.equal(median_blur(x, k), ref)
        assert np.array_equal(median_blur(x, k)[0].numpy(), cv2.medianBlur(x[0].numpy(), k))


def test_resize_and_warp_match_opencv():
    rng = np.random.default_rng(0)
    img = (rng.random((37, 53)) * 255).astype(np.float32)
    down = cv2.resize(img, None, fx=0.8, fy=0.8, interpolation=cv2.INTER_LINEAR)  # 30 x 42
    ours = resize_linear(torch.from_numpy(img), down.shape, (1 / 0.8, 1 / 0.8)).numpy()
    assert np.abs(ours - down).max() < 1e-3
    up = cv2.resize(down, (53, 37), interpolation=cv2.INTER_LINEAR)
    assert np.abs(resize_linear(torch.from_numpy(down), (37, 53)).numpy() - up).max() < 1e-3
    u = (rng.random((2, 37, 53)) * 8 - 4).astype(np.float32)  # reaches outside the image
    y, x = np.mgrid[0:37, 0:53].astype(np.float32)
    ref = cv2.remap(img, x + u[0], y + u[1], cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    ours = warp_bicubic(torch.from_numpy(img)[None, None], torch.from_numpy(u)[None])[0, 0].numpy()
    assert np.abs(ours - ref).max() < 1e-2  # grey levels 0-255


def test_bad_input_says_what_was_expected():
    a = torch.zeros(2, 20, 20, dtype=torch.uint8)
    with pytest.raises(ValueError, match="differ in shape"):
        tvl1(a, a[:1])
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        tvl1(a[None], a[None])
    with pytest.raises(ValueError, match="uint8 or floating"):
        tvl1(a.int(), a.int())
    with pytest.raises(ValueError, match="median_filtering"):
        TVL1Params(median_filtering=4)


# --------------------------------------------------------------------------- the backend switch


def test_compute_flow_torch_backend_batches_consecutive_pairs():
    from i3d_train.flow.compute import compute_flow

    a, b = natural_pair(40, 52, seed=5, motion=1.0)
    gray = np.stack([a, b, a, b])  # 3 pairs: forward, backward, forward
    ours = compute_flow(gray, "tvl1", backend="torch", device="cpu", batch=2)  # batches of 2 and 1
    ref = compute_flow(gray, "tvl1", backend="opencv")
    assert ours.shape == ref.shape == (3, 40, 52, 2)
    for i in (1, 2):  # each pair is the pair's own flow (pair 2 alone in the second batch)
        alone = tvl1(torch.from_numpy(gray[i]), torch.from_numpy(gray[i + 1])).permute(1, 2, 0).numpy()
        assert np.abs(ours[i] - alone).max() <= 1e-5
        assert epe(ours[i], ref[i]).mean() < 0.05
    assert compute_flow(gray[:1], "tvl1", backend="torch").shape == (0, 40, 52, 2)


def test_backend_resolution_and_bad_combinations():
    from i3d_train.flow.compute import CPU_BACKEND, resolve_backend

    assert resolve_backend("tvl1", "auto", "cpu") == (CPU_BACKEND, "cpu")
    assert resolve_backend("tvl1", "torch", "cpu") == ("torch", "cpu")
    assert resolve_backend("farneback", "auto", "cpu") == ("opencv", "cpu")
    with pytest.raises(ValueError, match="tvl1 only"):
        resolve_backend("farneback", "torch", "cpu")
    with pytest.raises(ValueError, match="CPU only"):
        resolve_backend("tvl1", "opencv", "meta")
    with pytest.raises(ValueError, match="expected one of"):
        resolve_backend("tvl1", "tensorflow", "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            resolve_backend("tvl1", "torch", "cuda")


def test_local_rank_from_torchrun_or_slurm():
    from i3d_train.flow.parallel import local_rank

    assert local_rank({}) == 0
    assert local_rank({"SLURM_LOCALID": "3"}) == 3
    assert local_rank({"LOCAL_RANK": "1", "SLURM_LOCALID": "3"}) == 1


def test_one_process_per_gpu(monkeypatch):
    from i3d_train.flow.parallel import plan_workers
    from i3d_train.flow.video import ExtractOptions

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    procs, devices, _ = plan_workers(ExtractOptions(backend="torch", device="cuda"), 1)
    assert procs == 3 and devices == ["cuda:0", "cuda:1", "cuda:2"]
    procs, devices, _ = plan_workers(ExtractOptions(backend="auto", device="cuda:1"), 2)
    assert procs == 2 and devices == ["cuda:1", "cuda:1"]
    procs, devices, threads = plan_workers(ExtractOptions(backend="opencv", device="cpu"), 2)
    assert procs == 2 and devices is None and threads >= 1


# --------------------------------------------------------------------------- the command


ROOT = Path(__file__).resolve().parents[1]


def _flow_cmd(cmd: str, cwd: Path, **env) -> subprocess.CompletedProcess:
    """Run a README command line (``python -m i3d_train.flow ...`` or ``torchrun ... -m i3d_train.flow
    ...``) as written, from ``cwd``, with this checkout's package and this interpreter's environment."""
    argv = shlex.split(cmd)
    if argv[0] == "python":
        argv[0] = sys.executable
    else:
        argv[0] = str(Path(sys.executable).parent / argv[0])
        if not Path(argv[0]).exists():
            pytest.skip(f"{argv[0]} not installed")
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    return subprocess.run(argv, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=900)


def _tiny_videos(root: Path, names: list[str]) -> None:
    from i3d_train.video.writer import write_video

    a, b = natural_pair(48, 64, seed=6, motion=1.5)
    for name in names:  # 3 frames, 2 flow frames (there and back)
        write_video(root / f"{name}.mp4", np.repeat(np.stack([a, b, a])[..., None], 3, axis=-1), 25, crf=4)


@pytest.mark.slow
def test_readme_torch_flow_command_makes_folders_interchangeable_with_opencv(tmp_path):
    from i3d_train.flow.store import read_flow, read_meta
    from i3d_train.flow.video import ExtractOptions, extract_video

    src = tmp_path / "data/ucf101/UCF-101"
    _tiny_videos(src / "Cls", ["v_Cls_g01_c01"])
    r = _flow_cmd(
        "python -m i3d_train.flow --src data/ucf101/UCF-101 --dst data/ucf101/flow/tvl1 --backend torch --batch 4",
        tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert "tvl1 on torch" in r.stdout and "1 done" in r.stdout
    ours = tmp_path / "data/ucf101/flow/tvl1/Cls/v_Cls_g01_c01"
    ref = tmp_path / "opencv/v_Cls_g01_c01"
    extract_video(src / "Cls/v_Cls_g01_c01.mp4", ref, ExtractOptions(backend="opencv"))
    m_ours, m_ref = read_meta(ours), read_meta(ref)
    assert m_ours["backend"] == "torch" and m_ref["backend"] == "opencv"
    same = {k for k in m_ours if k not in ("backend", "source")}
    assert {k: m_ours[k] for k in same} == {k: m_ref[k] for k in same} and len(same) >= 8
    a, b = read_flow(ours), read_flow(ref)
    assert a.shape == b.shape == (2, 256, 341, 2)
    assert np.abs(a - b).mean() < 0.1 and np.abs(b).mean() > 0.3  # same flow, and there is flow
    bad = _flow_cmd("python -m i3d_train.flow --src data --dst out --backend opencv --device cuda", tmp_path)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error:") and len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_readme_torchrun_command_splits_videos_over_ranks(tmp_path):
    from i3d_train.runtime.sharding import shard_of

    names = ["a", "d"]  # one video per rank (shard_of: "Cls/a" -> 1, "Cls/d" -> 0)
    _tiny_videos(tmp_path / "data/ucf101/UCF-101/Cls", names)
    r = _flow_cmd(
        "torchrun --nproc-per-node 2 -m i3d_train.flow --src data/ucf101/UCF-101 --dst data/ucf101/flow/tvl1", tmp_path
    )
    assert r.returncode == 0, r.stderr
    per_rank = [sum(shard_of(f"Cls/{n}", 2) == k for n in names) for k in (0, 1)]
    assert per_rank == [1, 1]
    for k in (0, 1):  # each rank took the videos of its shard, and did each once
        assert f"shard {k}/2 from torchrun (RANK/WORLD_SIZE): {per_rank[k]} videos" in r.stdout
        assert f"flow: {per_rank[k]} done" in r.stdout
    done = sorted(p.parent.name for p in (tmp_path / "data/ucf101/flow/tvl1/Cls").glob("*/meta.json"))
    assert done == names
