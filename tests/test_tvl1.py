"""TV-L1 in PyTorch: accuracy against known flow and against OpenCV, batch invariance, OpenCV's building
blocks (median, resize, bicubic warp), no host reads inside the iterations."""

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


def test_agrees_with_opencv_on_natural_frames():
    errs = []
    for seed in range(3):
        f0, f1 = natural_pair(64, 80, seed=seed, motion=2.5)
        errs.append(epe(_torch(f0, f1), _opencv(f0, f1)).mean())
    assert max(errs) <= 0.5, errs
    assert np.mean(errs) < 0.05, errs  # in practice ~1e-4: same algorithm, same choices


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
    masked = tvl1(i0[:4], i1[:4], sync_every=7)
    assert (masked - batch[:4]).abs().max() <= 1e-5


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
