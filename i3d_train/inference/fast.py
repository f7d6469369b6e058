"""A fast inference path for I3D (and any net built from ``Unit3D``), behind one switch.

``prepare(model, fast=True, ...)`` returns a copy ready for inference:

- batch norm folded into the preceding convolutions (``w * gamma / sqrt(var + eps)``, bias
  ``beta - mean * gamma / sqrt(var + eps)``): one op less per layer, same fp32 result to ~1e-6;
- ``channels_last_3d`` memory format (oneDNN / cuDNN's preferred layout for 3D convolutions);
- reduced precision where the hardware has it: bfloat16 autocast on CPUs with AVX512-BF16 or AMX,
  float16 (or bfloat16) on GPUs; ``precision="fp32"`` keeps fp32;
- optional ``torch.compile``.

``run(model, x)`` wraps the forward in ``torch.inference_mode`` and the autocast context.
``fast=False`` is the reference: the fp32 eager model as trained. Extraction, ``predict`` and
evaluation go through here.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from i3d_train.models.layers import UnitND


def cpu_has_bf16() -> bool:
    """True on CPUs with native bfloat16 matrix instructions (AVX512-BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every ``UnitND``'s batch norm folded into its convolution."""
    model = copy.deepcopy(model).eval()
    for unit in model.modules():
        if isinstance(unit, UnitND) and unit.bn is not None:
            conv, bn = unit.conv, unit.bn
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            conv.weight.mul_(scale.view(-1, *([1] * (conv.weight.dim() - 1))))
            bias = bn.bias - bn.running_mean * scale
            if conv.bias is not None:
                bias = bias + conv.bias * scale
            conv.bias = nn.Parameter(bias)
            unit.bn = None
    return model


@dataclass
class InferenceModel:
    """A prepared model and how to call it (see :func:`prepare`)."""

    model: nn.Module
    device: torch.device
    dtype: torch.dtype | None  # autocast dtype, None: fp32
    channels_last: bool

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def __call__(self, x: torch.Tensor, method: str = "forward") -> torch.Tensor:
        """Run ``model.<method>(x)`` (e.g. ``extract_features``) in inference mode; fp32 output."""
        x = x.to(self.device, non_blocking=True)
        if self.channels_last and x.dim() == 5:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        with torch.inference_mode(), self.autocast():
            out = getattr(self.model, method)(x)
        return out.float()


def prepare(
    model: nn.Module,
    fast: bool = True,
    precision: str = "auto",
    compile: bool = False,
    device: str | torch.device | None = None,
) -> InferenceModel:
    """The reference (``fast=False``: fp32, eager, as trained) or the fast inference path.

    Args:
        precision: ``auto`` (bf16 on CPUs that have it, fp16 on GPUs, else fp32), ``fp32``, ``bf16``,
            ``fp16``.
        compile: ``torch.compile`` the prepared model (first call compiles: seconds to minutes).
        device: where to run (default: the model's).
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    if not fast:
        return InferenceModel(copy.deepcopy(model).eval().to(device), device, None, False)
    if precision == "auto":
        precision = "fp16" if device.type == "cuda" else "bf16" if cpu_has_bf16() else "fp32"
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    m = fold_batchnorm(model).to(device).to(memory_format=torch.channels_last_3d)
    if compile:
        m = torch.compile(m)
    return InferenceModel(m, device, dtype, True)
