"""Building blocks shared by the 3D models: TF "SAME" padding, conv + batch norm + ReLU units, max pools.

DeepMind's I3D (Sonnet/TF) pads every conv and max pool with "SAME": the output size is
``ceil(in / stride)`` and the total padding ``max((out - 1) * stride + k - in, 0)`` is split with the
extra element at the end. PyTorch's symmetric ``padding=`` cannot express that for even totals, so the
padding is computed from the input size in ``forward``; this also lets the net run on any input size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

Triple = tuple[int, int, int]


def _triple(x: int | tuple[int, ...]) -> Triple:
    if isinstance(x, int):
        return (x, x, x)
    if len(x) != 3:
        raise ValueError(f"expected an int or 3 ints, got {x!r}")
    return (int(x[0]), int(x[1]), int(x[2]))


def same_padding(size: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...]) -> list[int]:
    """Padding for ``F.pad`` that reproduces TF "SAME" for the trailing dims of a tensor.

    Args:
        size: spatial sizes, e.g. ``(T, H, W)``.
        kernel: kernel size per dim.
        stride: stride per dim.

    Returns:
        ``[w_before, w_after, h_before, h_after, t_before, t_after]`` (F.pad order: last dim first).
    """
    pads: list[int] = []
    for n, k, s in reversed(list(zip(size, kernel, stride, strict=True))):
        out = math.ceil(n / s)
        total = max((out - 1) * s + k - n, 0)
        pads += [total // 2, total - total // 2]
    return pads


class Unit3D(nn.Module):
    """Conv3d (SAME, no bias) -> BatchNorm3d (eps 1e-3) -> ReLU, as Sonnet's ``Unit3D`` in I3D.

    The classifier variant (``use_bn=False, activation=False, bias=True``) is the ``Logits`` conv.
    Batch norm keeps a learnable scale (gamma): DeepMind's release has beta only, so converters set
    gamma to 1; 2D ImageNet weights do have a gamma and the inflation keeps it.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Triple = 1,
        stride: int | Triple = 1,
        use_bn: bool = True,
        activation: bool = True,
        bias: bool = False,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        self.kernel_size = _triple(kernel_size)
        self.stride = _triple(stride)
        self.conv3d = nn.Conv3d(in_channels, out_channels, self.kernel_size, self.stride, bias=bias)
        # eps 1e-3 as DeepMind's release; momentum 0.1 (PyTorch's default) instead of Sonnet's 0.001
        # so short runs evaluate well with running statistics (PAPER_FACTS section 3).
        self.bn = nn.BatchNorm3d(out_channels, eps=1e-3, momentum=bn_momentum) if use_bn else None
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = same_padding(x.shape[-3:], self.kernel_size, self.stride)
        if any(pad):
            x = F.pad(x, pad)
        x = self.conv3d(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.activation:
            x = F.relu(x, inplace=True)
        return x


class MaxPool3dSame(nn.Module):
    """Max pool with TF "SAME" padding (padded positions never win: they are -inf)."""

    def __init__(self, kernel_size: int | Triple, stride: int | Triple) -> None:
        super().__init__()
        self.kernel_size = _triple(kernel_size)
        self.stride = _triple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = same_padding(x.shape[-3:], self.kernel_size, self.stride)
        if any(pad):
            x = F.pad(x, pad, value=float("-inf"))
        return F.max_pool3d(x, self.kernel_size, self.stride)


class InceptionBlock3d(nn.Module):
    """Inception module with DeepMind's I3D branch names (``b0``, ``b1a``, ``b1b``, ``b2a``, ``b2b``, ``b3b``).

    Branch_0: 1x1x1; Branch_1: 1x1x1 -> 3x3x3; Branch_2: 1x1x1 -> 3x3x3;
    Branch_3: 3x3x3 max pool (stride 1, SAME) -> 1x1x1. Outputs concatenated in that order.
    """

    def __init__(
        self, in_channels: int, c0: int, c1a: int, c1b: int, c2a: int, c2b: int, c3: int, bn_momentum: float = 0.1
    ) -> None:
        super().__init__()
        m = bn_momentum
        self.b0 = Unit3D(in_channels, c0, 1, bn_momentum=m)
        self.b1a = Unit3D(in_channels, c1a, 1, bn_momentum=m)
        self.b1b = Unit3D(c1a, c1b, 3, bn_momentum=m)
        self.b2a = Unit3D(in_channels, c2a, 1, bn_momentum=m)
        self.b2b = Unit3D(c2a, c2b, 3, bn_momentum=m)
        self.b3a = MaxPool3dSame(3, 1)
        self.b3b = Unit3D(in_channels, c3, 1, bn_momentum=m)
        self.out_channels = c0 + c1b + c2b + c3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1)
