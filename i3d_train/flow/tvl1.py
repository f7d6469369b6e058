"""TV-L1 optical flow in PyTorch, batched over frame pairs, on any device PyTorch runs on.

The duality-based TV-L1 of Zach, Pock & Bischof (2007) with the improvements of Wedel et al. (2009) and
Sánchez, Meinhardt-Llopis & Facciolo (IPOL 2013), made to follow OpenCV's ``DualTVL1OpticalFlow``
(``opencv_contrib/modules/optflow/src/tvl1flow.cpp``) wherever a choice changes the result:

- defaults: tau 0.25, lambda 0.15, theta 0.3, gamma 0, 5 scales, scale step 0.8, 5 warps, epsilon
  0.01, 30 inner and 10 outer iterations, 5x5 median filtering;
- intensities: ``uint8`` frames are used as grey levels, floating frames are taken in [0, 1] and
  multiplied by 255 (as OpenCV does for ``CV_32F`` input), so both give the same flow;
- pyramid: each level a plain bilinear resize of the previous one by 0.8 (``INTER_LINEAR``, no blur,
  size ``round(0.8 n)``, source step exactly 1/0.8), levels under 16 px end it; the flow starts at
  zero on the coarsest level and goes to the next finer one by bilinear resize times 1/0.8;
- per level: centred image gradients of I1 (``0.5 (next - prev)``, one-sided but still halved at the
  borders); the dual variables reset once per level; each warp resamples I1 and its gradients with
  bicubic interpolation (a = -0.75), zero outside the image;
- per outer iteration a 5x5 median (replicated border) of both flow components, then inner iterations
  of: thresholding, divergence of p (backward differences, zero before the edge), flow update,
  forward gradient of the flow (zero on the last row/column), dual update;
- stopping: after each inner iteration the squared change of the flow summed over the image; the
  inner and the outer loop of the warp both stop once it is at most ``epsilon^2 H W``, per pair.

Where this port differs (none changes the flow by more than rounding; see ``tests/test_tvl1.py`` and
``benchmarks/flow_speed.py``):

- the convergence sum is accumulated by PyTorch (pairwise) rather than in a single float running sum,
  so a pair whose change sits right at the threshold may stop one iteration earlier or later;
- the thresholding step uses ``clamp(-rho / |grad I|^2, -lambda theta, lambda theta)``, which equals
  OpenCV's three cases except where ``|grad I|^2`` is below float epsilon (there the step is below
  1e-4 px either way);
- the divergence is added to ``v`` term by term instead of through a separate buffer (float rounding).

Per-pair early stopping: every pair runs OpenCV's schedule on its own; a pair whose warp has converged
stops changing (it is dropped from the working set, or masked where the host has not looked yet), so a
pair's flow does not depend on what else is in the batch. The convergence test runs on the device; the
host reads the per-pair flags every ``sync_every`` inner iterations (every iteration on CPU, where that
costs nothing; every few on a GPU, where each read waits for the queue) to shrink the working set and to
leave the loop once every pair has converged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

FLT_EPSILON = 1.1920928955078125e-07


@dataclass(frozen=True)
class TVL1Params:
    """OpenCV's ``DualTVL1OpticalFlow_create()`` defaults."""

    tau: float = 0.25  # time step of the dual update
    lam: float = 0.15  # weight of the data term (OpenCV's lambda)
    theta: float = 0.3  # coupling of u and v
    nscales: int = 5  # pyramid levels
    scale_step: float = 0.8  # size ratio between levels
    warps: int = 5  # warps per level
    epsilon: float = 0.01  # stopping threshold (per pixel, squared change of u)
    inner_iterations: int = 30
    outer_iterations: int = 10
    median_filtering: int = 5  # median kernel between outer iterations (1: off; 3 or 5)

    def __post_init__(self) -> None:
        if self.median_filtering not in (1, 3, 5):
            raise ValueError(f"median_filtering must be 1 (off), 3 or 5, got {self.median_filtering}")
        if not 0 < self.scale_step < 1:
            raise ValueError(f"scale_step must be in (0, 1), got {self.scale_step}")
        if min(self.nscales, self.warps, self.inner_iterations, self.outer_iterations) < 1:
            raise ValueError("nscales, warps, inner_iterations and outer_iterations must be >= 1")


# --------------------------------------------------------------------------- resampling


def _linear_taps(n_in: int, n_out: int, scale: float, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """OpenCV ``INTER_LINEAR`` along one axis: source indices (i0, i1) and the weight of i1.
    ``scale`` is the source step per destination pixel (OpenCV's ``1 / inv_scale``)."""
    d = torch.arange(n_out, dtype=torch.float64)
    c = ((d + 0.5) * scale - 0.5).float()  # OpenCV: (float)((dx + 0.5) * scale_x - 0.5)
    i0 = torch.floor(c)
    w = c - i0
    i0 = i0.long()
    w = torch.where((i0 < 0) | (i0 >= n_in - 1), torch.zeros_like(w), w)
    i0 = i0.clamp(0, n_in - 1)
    i1 = (i0 + 1).clamp(max=n_in - 1)
    return i0.to(device), i1.to(device), w.to(device)


def resize_linear(x: Tensor, size: tuple[int, int], scale: tuple[float, float] | None = None) -> Tensor:
    """Bilinear resize of ``(..., H, W)`` to ``size`` the way ``cv2.resize(..., INTER_LINEAR)`` does it:
    horizontal pass then vertical, no antialiasing, edges clamped. ``scale`` (source pixels per
    destination pixel, (y, x)) defaults to the size ratio; OpenCV uses ``1 / fx`` when called with a
    factor instead of a size."""
    h, w = x.shape[-2:]
    sy, sx = scale if scale is not None else (1.0 / (size[0] / h), 1.0 / (size[1] / w))
    x0, x1, wx = _linear_taps(w, size[1], sx, x.device)
    y0, y1, wy = _linear_taps(h, size[0], sy, x.device)
    wx, wy = wx.to(x.dtype), wy.to(x.dtype)
    rows = x.index_select(-1, x0) * (1 - wx) + x.index_select(-1, x1) * wx
    wy = wy[:, None]
    return rows.index_select(-2, y0) * (1 - wy) + rows.index_select(-2, y1) * wy


def centered_gradient(x: Tensor) -> Tensor:
    """``(N, H, W)`` -> ``(N, 2, H, W)`` (d/dx, d/dy): ``0.5 (next - prev)`` inside, ``0.5 (one-sided
    difference)`` on the border rows/columns (OpenCV's ``centeredGradient``)."""
    g = x.new_empty(x.shape[0], 2, *x.shape[1:])
    gx, gy = g[:, 0], g[:, 1]
    torch.sub(x[..., 2:], x[..., :-2], out=gx[..., 1:-1])
    torch.sub(x[..., 1], x[..., 0], out=gx[..., 0])
    torch.sub(x[..., -1], x[..., -2], out=gx[..., -1])
    torch.sub(x[..., 2:, :], x[..., :-2, :], out=gy[..., 1:-1, :])
    torch.sub(x[..., 1, :], x[..., 0, :], out=gy[..., 0, :])
    torch.sub(x[..., -1, :], x[..., -2, :], out=gy[..., -1, :])
    return g.mul_(0.5)


def warp_bicubic(src: Tensor, u: Tensor) -> Tensor:
    """``src (N, C, H, W)`` sampled at ``(x + u_x, y + u_y)`` with bicubic interpolation (a = -0.75,
    OpenCV's ``INTER_CUBIC``), reading 0 outside the image (``BORDER_CONSTANT``). ``u (N, 2, H, W)``."""
    n, _, h, w = src.shape
    xs = torch.arange(w, device=u.device, dtype=u.dtype)
    ys = torch.arange(h, device=u.device, dtype=u.dtype)
    # align_corners=True: pixel centres at -1 .. 1, so pixel coordinate c maps to c * 2 / (n - 1) - 1
    gx = (u[:, 0] + xs).mul_(2.0 / max(w - 1, 1)).sub_(1.0)
    gy = (u[:, 1] + ys[:, None]).mul_(2.0 / max(h - 1, 1)).sub_(1.0)
    grid = torch.stack((gx, gy), dim=-1)
    return F.grid_sample(src, grid, mode="bicubic", padding_mode="zeros", align_corners=True)


# --------------------------------------------------------------------------- median (selection networks)
# Exact medians from min/max compare-exchanges: no sort, no 25-way stack. For 5x5: sort every vertical run
# of 5 once (shared by the 5 windows that contain it), then each window is a 5x5 matrix sorted down its
# columns; sorting its rows too would keep the columns sorted, and in a matrix sorted both ways the entry
# at (i, j) has (i+1)(j+1) entries <= it and (5-i)(5-j) entries >= it. Only 13 entries can be the 13th of
# 25; 6 are surely below and 6 surely above it, so the median is the 7th of those 13. Per row only a
# partial selection is needed (row 0: its 2 largest, row 1: 3 largest, row 2: middle 3, row 3: 3
# smallest, row 4: 2 smallest), and the 7th of 13 is found by forgetful selection.

_SORT5 = ((0, 3), (1, 4), (0, 2), (1, 3), (0, 1), (2, 4), (1, 2), (3, 4), (2, 3))  # 9 compare-exchanges
_SORT3 = ((0, 1), (1, 2), (0, 1))


class _Selector:
    """Pixelwise min / max of same-shaped tensors, writing into recycled buffers: a selection network makes
    hundreds of short-lived images, and a fresh allocation per op costs more than the op on a CPU. Every
    operation consumes its inputs; inputs that are not this selector's buffers (views) are left alone."""

    def __init__(self, like: Tensor):
        self.like = like
        self.free: list[Tensor] = []
        self.mine: set[int] = set()

    def _new(self) -> Tensor:
        if self.free:
            return self.free.pop()
        t = torch.empty(self.like.shape, dtype=self.like.dtype, device=self.like.device)
        self.mine.add(t.data_ptr())
        return t

    def _owned(self, t: Tensor) -> bool:
        return t.data_ptr() in self.mine and t.is_contiguous() and t.shape == self.like.shape

    def _release(self, t: Tensor) -> None:
        if self._owned(t):
            self.free.append(t)

    def _out(self, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor | None]:
        """A buffer for a result that replaces a and b, and whichever of them is left over."""
        if self._owned(b):
            return b, a
        if self._owned(a):
            return a, b
        return self._new(), None

    def max(self, a: Tensor, b: Tensor) -> Tensor:
        out, other = self._out(a, b)
        torch.maximum(a, b, out=out)
        if other is not None:
            self._release(other)
        return out

    def min(self, a: Tensor, b: Tensor) -> Tensor:
        out, other = self._out(a, b)
        torch.minimum(a, b, out=out)
        if other is not None:
            self._release(other)
        return out

    def minmax(self, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        lo = self._new()
        torch.minimum(a, b, out=lo)
        if self._owned(b):
            torch.maximum(a, b, out=b)
            self._release(a)
            return lo, b
        hi = a if self._owned(a) else self._new()
        torch.maximum(a, b, out=hi)
        return lo, hi

    def sort(self, vals: list[Tensor], network: tuple[tuple[int, int], ...]) -> list[Tensor]:
        vals = list(vals)
        for i, j in network:
            vals[i], vals[j] = self.minmax(vals[i], vals[j])
        return vals

    def drop_min(self, vals: list[Tensor]) -> list[Tensor]:
        """The multiset minus its minimum."""
        cur, out = vals[0], []
        for k, v in enumerate(vals[1:]):
            if k < len(vals) - 2:
                cur, hi = self.minmax(cur, v)
                out.append(hi)
            else:
                out.append(self.max(cur, v))
        return out

    def drop_max(self, vals: list[Tensor]) -> list[Tensor]:
        cur, out = vals[0], []
        for k, v in enumerate(vals[1:]):
            if k < len(vals) - 2:
                lo, cur = self.minmax(cur, v)
                out.append(lo)
            else:
                out.append(self.min(cur, v))
        return out

    def keep_largest(self, vals: list[Tensor], k: int) -> list[Tensor]:
        """The ``k`` largest (a multiset), by extracting maxima or dropping minima, whichever is cheaper."""
        m = len(vals)
        if sum(2 * (m - j) - 3 for j in range(m - k)) <= sum(2 * (m - i - 1) for i in range(k - 1)) + m - k:
            for _ in range(m - k):
                vals = self.drop_min(vals)
            return vals
        out = []
        for _ in range(k - 1):
            cur, rest = vals[0], []
            for v in vals[1:]:
                lo, cur = self.minmax(cur, v)
                rest.append(lo)
            out.append(cur)
            vals = rest
        last = vals[0]
        for v in vals[1:]:
            last = self.max(last, v)
        return [*out, last]

    def keep_smallest(self, vals: list[Tensor], k: int) -> list[Tensor]:
        m = len(vals)
        if sum(2 * (m - j) - 3 for j in range(m - k)) <= sum(2 * (m - i - 1) for i in range(k - 1)) + m - k:
            for _ in range(m - k):
                vals = self.drop_max(vals)
            return vals
        out = []
        for _ in range(k - 1):
            cur, rest = vals[0], []
            for v in vals[1:]:
                cur, hi = self.minmax(cur, v)
                rest.append(hi)
            out.append(cur)
            vals = rest
        last = vals[0]
        for v in vals[1:]:
            last = self.min(last, v)
        return [*out, last]

    def median(self, vals: list[Tensor]) -> Tensor:
        """Median of an odd number of tensors by forgetful selection: hold one more than half, drop the
        min and the max (neither can be the median), take in the next, repeat."""
        if len(vals) % 2 == 0:
            raise ValueError("need an odd count")
        m = (len(vals) + 1) // 2 + 1 if len(vals) > 1 else 1
        cur, unseen = list(vals[:m]), list(vals[m:])
        while len(cur) > 1:
            cur = self.drop_max(self.drop_min(cur))
            if unseen:
                cur.append(unseen.pop(0))
        return cur[0]


def median_blur(x: Tensor, k: int = 5) -> Tensor:
    """Exact ``k x k`` median (k = 3 or 5) of ``(..., H, W)`` with replicated borders, like
    ``cv2.medianBlur`` on float images."""
    if k not in (3, 5):
        raise ValueError(f"median kernel must be 3 or 5, got {k}")
    shape = x.shape
    h, w = shape[-2:]
    r = k // 2
    xp = F.pad(x.reshape(-1, 1, h, w), (r, r, r, r), mode="replicate")[:, 0]
    col = _Selector(xp[:, :h])
    cols = col.sort([xp[:, i : i + h, :] for i in range(k)], _SORT5 if k == 5 else _SORT3)
    rows = [[c[:, :, j : j + w] for j in range(k)] for c in cols]  # rows[i][j]: rank i of column j
    sel = _Selector(rows[0][0])
    if k == 3:  # candidates: the largest of row 0, the middle of row 1, the smallest of row 2
        cand = sel.keep_largest(rows[0], 1) + [sel.median(rows[1])] + sel.keep_smallest(rows[2], 1)
    else:
        cand = (
            sel.keep_largest(rows[0], 2)
            + sel.keep_largest(rows[1], 3)
            + sel.drop_max(sel.drop_min(rows[2]))
            + sel.keep_smallest(rows[3], 3)
            + sel.keep_smallest(rows[4], 2)
        )
    return sel.median(cand).reshape(shape)


# --------------------------------------------------------------------------- the solver


def _pyramid_sizes(h: int, w: int, p: TVL1Params) -> list[tuple[int, int]]:
    sizes = [(h, w)]
    for _ in range(1, p.nscales):
        ph, pw = sizes[-1]
        nh, nw = round(ph * p.scale_step), round(pw * p.scale_step)  # OpenCV: saturate_cast<int> (rounds)
        if nh < 16 or nw < 16:
            break
        sizes.append((nh, nw))
    return sizes


class _Level:
    """The warp-constant terms, state and scratch buffers of one warp for a working set of pairs."""

    def __init__(self, u: Tensor, px: Tensor, py: Tensor, grad_i: Tensor, rho_c: Tensor, neg_inv_g: Tensor):
        self.u, self.px, self.py = u, px, py  # N x 2 x H x W each: flow, dual variables (x and y parts)
        self.grad_i = grad_i  # N x 2 x H x W: gradient of the warped I1
        self.rho_c, self.neg_inv_g = rho_c, neg_inv_g  # N x H x W: constant part of rho, -1 / |grad I1|^2
        self.un = torch.empty_like(u)  # the next u
        self.rho = torch.empty_like(rho_c)
        self.ng = torch.empty_like(u)
        self.ux = torch.zeros_like(u)  # forward differences of u; the last column / row stay zero
        self.uy = torch.zeros_like(u)

    def select(self, keep: Tensor) -> _Level:
        return _Level(
            *(t.index_select(0, keep) for t in (self.u, self.px, self.py, self.grad_i, self.rho_c, self.neg_inv_g))
        )


def _inner_step(s: _Level, p: TVL1Params, mask: Tensor | None) -> Tensor:
    """One inner iteration on the working set, in place; returns the per-pair squared change of u ``(n,)``.
    ``mask (n, 1, 1, 1)``: the pairs still running (None: all); the others keep u and p bit for bit."""
    lt, taut, theta = p.lam * p.theta, p.tau / p.theta, p.theta
    u, un, rho = s.u, s.un, s.rho
    # thresholding (estimateV): v = u + clamp(-rho / |grad I|^2, -lt, lt) grad I
    torch.addcmul(s.rho_c, s.grad_i[:, 0], u[:, 0], out=rho).addcmul_(s.grad_i[:, 1], u[:, 1])
    rho.mul_(s.neg_inv_g).clamp_(-lt, lt)
    torch.addcmul(u, s.grad_i, rho[:, None], out=un)
    # u = v + theta div p; div p: backward differences, zero before the first row / column
    px, py = s.px, s.py
    un.add_(px, alpha=theta)
    un[..., 1:].sub_(px[..., :-1], alpha=theta)
    un.add_(py, alpha=theta)
    un[..., 1:, :].sub_(py[..., :-1, :], alpha=theta)
    if mask is None:
        err = u.sub_(un).square_().sum(dim=(1, 2, 3))  # the old u is not needed any more
        s.u, s.un = un, u
    else:
        err = torch.sub(un, u).square_().sum(dim=(1, 2, 3))
        torch.where(mask, un, u, out=u)
        un = u
    # dual update: p = (p + taut grad u) / (1 + taut |grad u|), grad u: forward differences
    ux, uy, ng = s.ux, s.uy, s.ng
    torch.sub(un[..., 1:], un[..., :-1], out=ux[..., :-1])
    torch.sub(un[..., 1:, :], un[..., :-1, :], out=uy[..., :-1, :])
    if mask is not None:  # stopped pairs: grad 0 and 1 + 0 leave p exactly as it is
        ux.mul_(mask)
        uy.mul_(mask)
    torch.mul(ux, ux, out=ng).addcmul_(uy, uy).sqrt_().mul_(taut).add_(1.0)  # 1 + taut hypot(ux, uy)
    px.add_(ux, alpha=taut).div_(ng)
    py.add_(uy, alpha=taut).div_(ng)
    return err


def _run_warp(s: _Level, p: TVL1Params, eps: float, sync_every: int) -> tuple[Tensor, Tensor, Tensor]:
    """OpenCV's outer/inner loops of one warp, per pair; returns the final (u, px, py) of every pair."""
    n = s.u.shape[0]
    u_out, px_out, py_out = s.u, s.px, s.py  # results land here (pairs are written back as they finish)
    ids = None  # indices of the working set in the full batch; None: all pairs, in order
    active = torch.ones(n, dtype=torch.bool, device=s.u.device)
    all_active = True  # host knowledge: every pair in the working set is still running
    since_sync = 0

    def write_back() -> None:
        if ids is None:
            for dst, src in ((u_out, s.u), (px_out, s.px), (py_out, s.py)):
                if dst is not src:
                    dst.copy_(src)
        else:
            u_out.index_copy_(0, ids, s.u)
            px_out.index_copy_(0, ids, s.px)
            py_out.index_copy_(0, ids, s.py)

    for _ in range(p.outer_iterations):
        if p.median_filtering > 1:
            med = median_blur(s.u, p.median_filtering)
            s.u = med if all_active else torch.where(active[:, None, None, None], med, s.u)
        for _ in range(p.inner_iterations):
            err = _inner_step(s, p, None if all_active else active[:, None, None, None])
            active = active & (err > eps)
            all_active = False
            since_sync += 1
            if since_sync < sync_every:
                continue
            since_sync = 0
            flags = active.tolist()  # the only host read: every sync_every iterations
            if not any(flags):
                write_back()
                return u_out, px_out, py_out
            if not all(flags):  # shrink the working set to the running pairs
                write_back()
                keep = torch.tensor([i for i, f in enumerate(flags) if f], device=s.u.device)
                ids = keep if ids is None else ids.index_select(0, keep)
                s = s.select(keep)
                active = torch.ones(len(keep), dtype=torch.bool, device=s.u.device)
            all_active = True
    write_back()
    return u_out, px_out, py_out


def _solve_level(i0: Tensor, i1: Tensor, u: Tensor, p: TVL1Params, sync_every: int) -> Tensor:
    n, h, w = i0.shape
    eps = float(torch.tensor(p.epsilon * p.epsilon * h * w, dtype=torch.float32))  # OpenCV: float
    src = torch.cat((i1[:, None], centered_gradient(i1)), dim=1)  # N x 3 x H x W: I1, dI1/dx, dI1/dy
    px, py = torch.zeros_like(u), torch.zeros_like(u)  # dual variables: reset once per level
    for _ in range(p.warps):
        warped = warp_bicubic(src, u)
        i1w, grad_i = warped[:, 0], warped[:, 1:].contiguous()
        ix, iy = grad_i[:, 0], grad_i[:, 1]
        g2 = ix * ix + iy * iy
        rho_c = i1w - ix * u[:, 0] - iy * u[:, 1] - i0
        # -1 / |grad I|^2; a zero gradient gives a huge factor that the clamp turns into +-lt, times 0
        neg_inv_g = g2.clamp_(min=1e-30).reciprocal_().neg_()
        s = _Level(u, px, py, grad_i, rho_c, neg_inv_g)
        u, px, py = _run_warp(s, p, eps, sync_every)
    return u


def tvl1(
    i0: Tensor,
    i1: Tensor,
    params: TVL1Params = TVL1Params(),
    sync_every: int | None = None,
) -> Tensor:
    """TV-L1 flow from ``i0`` to ``i1``, batched.

    Args:
        i0, i1: ``(N, H, W)`` grayscale frames, on any device: ``uint8`` grey levels, or floating point
            in [0, 1] (multiplied by 255, like OpenCV does with float input). ``(H, W)`` is taken as N = 1.
        params: the algorithm's parameters (OpenCV's defaults).
        sync_every: inner iterations between host reads of the per-pair convergence flags (None: 1 on
            CPU, 5 elsewhere). Does not change the result, only how soon converged pairs leave the batch.

    Returns:
        ``(N, 2, H, W)`` float32 flow in pixels, (x, y): ``i1[y + v, x + u] ~ i0[y, x]``.
    """
    if i0.shape != i1.shape:
        raise ValueError(f"tvl1: the two frame batches differ in shape: {tuple(i0.shape)} vs {tuple(i1.shape)}")
    squeeze = i0.dim() == 2
    if squeeze:
        i0, i1 = i0[None], i1[None]
    if i0.dim() != 3 or min(i0.shape[-2:]) < 3:
        raise ValueError(f"tvl1: expected grayscale frames (N, H, W) with H, W >= 3, got {tuple(i0.shape)}")
    if i0.dtype != i1.dtype:
        raise ValueError(f"tvl1: the two frame batches differ in dtype: {i0.dtype} vs {i1.dtype}")
    if i0.dtype == torch.uint8:
        i0, i1 = i0.float(), i1.float()
    elif i0.is_floating_point():
        i0, i1 = i0.float() * 255.0, i1.float() * 255.0
    else:
        raise ValueError(f"tvl1: frames must be uint8 or floating point, got {i0.dtype}")
    if sync_every is None:
        sync_every = 1 if i0.device.type == "cpu" else 5
    n, h, w = i0.shape
    if n == 0:
        return i0.new_zeros(0, 2, h, w)
    sizes = _pyramid_sizes(h, w, params)
    step = 1.0 / params.scale_step  # OpenCV resizes by a factor: the source step is exactly 1 / 0.8
    pyr0, pyr1 = [i0], [i1]
    for size in sizes[1:]:
        pyr0.append(resize_linear(pyr0[-1], size, (step, step)))
        pyr1.append(resize_linear(pyr1[-1], size, (step, step)))
    u = i0.new_zeros(n, 2, *sizes[-1])
    with torch.no_grad():
        for lvl in range(len(sizes) - 1, -1, -1):
            u = _solve_level(pyr0[lvl], pyr1[lvl], u, params, sync_every)
            if lvl:
                u = resize_linear(u, sizes[lvl - 1]).mul_(step)
    return u[0] if squeeze else u
