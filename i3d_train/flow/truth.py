"""Frame pairs with known dense optical flow, for testing and benchmarking flow methods.

Each case renders a continuous texture (a sum of random plane waves, so it can be sampled exactly at any
point) before and after a known motion and returns ``(frame0, frame1, flow)``: ``uint8 (H, W)`` frames
and the true ``float32 (H, W, 2)`` (x, y) flow from frame0 to frame1, in pixels: the point at ``p`` in
frame0 is at ``p + flow[p]`` in frame1. ``natural_pair`` makes camera-like frames instead (blurred noise
at several scales, moved by a smooth random field) where only agreement between methods is measured.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

CASES = ("translate", "rotate", "zoom", "object")


def _waves(rng: np.random.Generator, n: int = 24, wavelengths: tuple[float, float] = (5.0, 24.0)) -> Callable:
    """A random smooth texture ``f(x, y) -> grey level in about [20, 235]``."""
    theta = rng.uniform(0, np.pi, n)
    k = 2 * np.pi / rng.uniform(*wavelengths, n)
    kx, ky, phase = k * np.cos(theta), k * np.sin(theta), rng.uniform(0, 2 * np.pi, n)
    amp = rng.uniform(0.5, 1.0, n)
    scale = 105.0 / np.sqrt(0.5 * (amp**2).sum()) / 2.5  # ~2.5 sigma to the range limits

    def f(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        s = np.zeros(np.broadcast(x, y).shape)
        for i in range(n):
            s += amp[i] * np.sin(kx[i] * x + ky[i] * y + phase[i])
        return 128.0 + scale * s

    return f


def _to_u8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def synthetic_pair(case: str, h: int = 72, w: int = 96, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(frame0, frame1, flow)`` for one of :data:`CASES`:

    - ``translate``: the whole texture moves 1.5 px right;
    - ``rotate``: it turns 3 degrees about the image centre (up to ~3 px at the corners of 96x72);
    - ``zoom``: it grows by 4 % about the centre;
    - ``object``: a textured disc moves (2, 1) px over a still textured background.
    """
    if case not in CASES:
        raise ValueError(f"unknown case {case!r}; expected one of {CASES}")
    rng = np.random.default_rng(seed)
    tex = _waves(rng)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    if case == "translate":
        dx, dy = 1.5, 0.0
        f0, f1 = tex(x, y), tex(x - dx, y - dy)
        flow = np.stack([np.full_like(x, dx), np.full_like(y, dy)], axis=-1)
    elif case in ("rotate", "zoom"):
        if case == "rotate":
            a = np.deg2rad(3.0)
            m = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        else:
            m = np.eye(2) * 1.04
        inv = np.linalg.inv(m)
        rx, ry = x - cx, y - cy
        # frame1 at q shows the texture at m^-1 (q - c) + c
        f0 = tex(x, y)
        f1 = tex(inv[0, 0] * rx + inv[0, 1] * ry + cx, inv[1, 0] * rx + inv[1, 1] * ry + cy)
        flow = np.stack([m[0, 0] * rx + m[0, 1] * ry - rx, m[1, 0] * rx + m[1, 1] * ry - ry], axis=-1)
    else:
        obj = _waves(rng, wavelengths=(4.0, 12.0))
        dx, dy, r = 2.0, 1.0, min(h, w) * 0.25
        ox, oy = cx - 6, cy - 3

        def inside(px: np.ndarray, py: np.ndarray) -> np.ndarray:
            # a soft 1-px edge so the disc is not aliased
            return np.clip(r + 0.5 - np.hypot(px - ox, py - oy), 0.0, 1.0)

        a0, a1 = inside(x, y), inside(x - dx, y - dy)
        f0 = tex(x, y) * (1 - a0) + obj(x, y) * a0
        f1 = tex(x, y) * (1 - a1) + obj(x - dx, y - dy) * a1
        moving = a0 >= 0.5
        flow = np.stack([np.where(moving, dx, 0.0), np.where(moving, dy, 0.0)], axis=-1)
    return _to_u8(f0), _to_u8(f1), flow.astype(np.float32)


def natural_pair(h: int = 72, w: int = 96, seed: int = 0, motion: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Camera-like ``uint8`` frames: blurred noise at three scales plus a little sensor noise, the second
    frame the first moved by a smooth random field of up to about ``motion`` px."""
    rng = np.random.default_rng(seed)
    pad = 8
    big = np.zeros((h + 2 * pad, w + 2 * pad), np.float32)
    for sigma, weight in ((1.0, 0.3), (3.0, 0.5), (8.0, 1.0)):
        layer = cv2.GaussianBlur(rng.standard_normal(big.shape).astype(np.float32), (0, 0), sigma)
        big += weight * layer / layer.std()
    big = 128 + 40 * big / big.std()

    def smooth_field() -> np.ndarray:
        f = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), min(h, w) / 4)
        return motion * f / np.abs(f).max()

    fx, fy = smooth_field(), smooth_field()
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    f0 = big[pad : pad + h, pad : pad + w]
    # backward map: frame1 at q shows frame0's scene at q - field(q)
    f1 = cv2.remap(big, x + pad - fx, y + pad - fy, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    noise = rng.normal(0, 0.7, (2, h, w))
    return _to_u8(f0 + noise[0]), _to_u8(f1 + noise[1])


def epe(flow: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Per-pixel end-point error between ``(..., 2)`` flows."""
    return np.hypot(flow[..., 0] - ref[..., 0], flow[..., 1] - ref[..., 1])
