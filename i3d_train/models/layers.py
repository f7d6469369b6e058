"""Building blocks shared by the 2D and 3D models: TF "SAME" padding, conv + batch norm + ReLU units, max pools.

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


def _ntuple(x: int | tuple[int, ...], n: int) -> tuple[int, ...]:
    if isinstance(x, int):
        return (x,) * n
    if len(x) != n:
        raise ValueError(f"expected an int or {n} ints, got {x!r}")
    return tuple(int(v) for v in x)


class UnitND(nn.Module):
    """Conv (SAME, no bias) -> BatchNorm (eps 1e-3) -> ReLU in ``dims`` (2 or 3) dimensions, as Sonnet's
    ``Unit3D`` in I3D; the conv is the attribute ``conv2d`` / ``conv3d``.

    The classifier variant (``use_bn=False, activation=False, bias=True``) is the ``Logits`` conv.
    Batch norm keeps a learnable scale (gamma): DeepMind's release has beta only, so converters set
    gamma to 1; 2D ImageNet weights do have a gamma and the inflation keeps it.
    """

    dims = 3

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, ...] = 1,
        stride: int | tuple[int, ...] = 1,
        use_bn: bool = True,
        activation: bool = True,
        bias: bool = False,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        d = self.dims
        self.kernel_size = _ntuple(kernel_size, d)
        self.stride = _ntuple(stride, d)
        conv = (nn.Conv2d if d == 2 else nn.Conv3d)(in_channels, out_channels, self.kernel_size, self.stride, bias=bias)
        setattr(self, f"conv{d}d", conv)
        # eps 1e-3 as DeepMind's release; momentum 0.1 (PyTorch's default) instead of Sonnet's 0.001
        # so short runs evaluate well with running statistics (Sonnet: DeepMind's kinetics-i3d i3d.py).
        bn = nn.BatchNorm2d if d == 2 else nn.BatchNorm3d
        self.bn = bn(out_channels, eps=1e-3, momentum=bn_momentum) if use_bn else None
        self.activation = activation

    @property
    def conv(self) -> nn.Module:
        return getattr(self, f"conv{self.dims}d")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = same_padding(x.shape[-self.dims :], self.kernel_size, self.stride)
        if any(pad):
            x = F.pad(x, pad)
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.activation:
            x = F.relu(x, inplace=True)
        return x


class Unit3D(UnitND):
    dims = 3


class Unit2D(UnitND):
    dims = 2


class MaxPoolSame(nn.Module):
    """Max pool with TF "SAME" padding in ``dims`` dimensions (padded positions never win: -inf)."""

    def __init__(self, kernel_size: int | tuple[int, ...], stride: int | tuple[int, ...], dims: int = 3) -> None:
        super().__init__()
        self.dims = dims
        self.kernel_size = _ntuple(kernel_size, dims)
        self.stride = _ntuple(stride, dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = same_padding(x.shape[-self.dims :], self.kernel_size, self.stride)
        if any(pad):
            x = F.pad(x, pad, value=float("-inf"))
        pool = F.max_pool2d if self.dims == 2 else F.max_pool3d
        return pool(x, self.kernel_size, self.stride)


class MaxPool3dSame(MaxPoolSame):
    def __init__(self, kernel_size: int | Triple, stride: int | Triple) -> None:
        super().__init__(kernel_size, stride, dims=3)


class InceptionBlock(nn.Module):
    """Inception module with DeepMind's I3D branch names (``b0``, ``b1a``, ``b1b``, ``b2a``, ``b2b``, ``b3b``),
    in ``dims`` (2 or 3) dimensions.

    Branch_0: 1x1; Branch_1: 1x1 -> 3x3; Branch_2: 1x1 -> 3x3; Branch_3: 3x3 max pool (stride 1, SAME)
    -> 1x1. Outputs concatenated in that order.
    """

    def __init__(
        self,
        in_channels: int,
        c0: int,
        c1a: int,
        c1b: int,
        c2a: int,
        c2b: int,
        c3: int,
        bn_momentum: float = 0.1,
        dims: int = 3,
    ) -> None:
        super().__init__()
        m = bn_momentum
        unit = Unit2D if dims == 2 else Unit3D
        self.b0 = unit(in_channels, c0, 1, bn_momentum=m)
        self.b1a = unit(in_channels, c1a, 1, bn_momentum=m)
        self.b1b = unit(c1a, c1b, 3, bn_momentum=m)
        self.b2a = unit(in_channels, c2a, 1, bn_momentum=m)
        self.b2b = unit(c2a, c2b, 3, bn_momentum=m)
        self.b3a = MaxPoolSame(3, 1, dims)
        self.b3b = unit(in_channels, c3, 1, bn_momentum=m)
        self.out_channels = c0 + c1b + c2b + c3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1)


class InceptionBlock3d(InceptionBlock):
    def __init__(self, *channels: int, bn_momentum: float = 0.1) -> None:
        super().__init__(*channels, bn_momentum=bn_momentum, dims=3)
