"""ImageNet Inception-V1 weights for inflation: this project's ``InceptionV1`` state dict or torchvision's
GoogLeNet (keys mapped), loaded from a file and inflated into a 3D net (paper Sec. 2.4)."""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from i3d_train.models.loading import WeightsMismatchError
from i3d_train.weights.registry import download_command
from i3d_train.weights.safe_pickle import load_torch_file

# torchvision GoogLeNet module -> this project's Inception-V1 endpoint.
TORCHVISION_BLOCKS = {
    "conv1": "Conv2d_1a_7x7",
    "conv2": "Conv2d_2b_1x1",
    "conv3": "Conv2d_2c_3x3",
    "inception3a": "Mixed_3b",
    "inception3b": "Mixed_3c",
    "inception4a": "Mixed_4b",
    "inception4b": "Mixed_4c",
    "inception4c": "Mixed_4d",
    "inception4d": "Mixed_4e",
    "inception4e": "Mixed_4f",
    "inception5a": "Mixed_5b",
    "inception5b": "Mixed_5c",
}


# torchvision Inception branch (BasicConv2d inside) -> DeepMind's branch name.
TORCHVISION_BRANCHES = {
    "branch1": "b0",
    "branch2.0": "b1a",
    "branch2.1": "b1b",
    "branch3.0": "b2a",
    "branch3.1": "b2b",
    "branch4.1": "b3b",  # branch4.0 is the max pool
}


TORCHVISION_SKIPPED = ("aux1.", "aux2.", "fc.")


_TV_KEY = re.compile(r"^(?P<block>[a-z0-9]+)\.(?:(?P<branch>branch\d(?:\.\d)?)\.)?(?P<layer>conv|bn)\.(?P<p>\w+)$")


class ImageNetWeightsError(ValueError):
    """ImageNet weights that cannot be read or mapped (one line)."""


def from_torchvision(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a torchvision GoogLeNet state dict to :class:`InceptionV1` names (no classifier).

    Every key other than the auxiliary classifiers and ``fc`` must map; the result is checked against
    the model's keys and shapes by the loader.
    """
    out: dict[str, torch.Tensor] = {}
    unmapped: list[str] = []
    for key, value in state_dict.items():
        key = key.removeprefix("module.")
        if key.startswith(TORCHVISION_SKIPPED):
            continue
        m = _TV_KEY.match(key)
        block = TORCHVISION_BLOCKS.get(m["block"]) if m else None
        if m is None or block is None or (m["branch"] is None) != block.startswith("Conv"):
            unmapped.append(key)
            continue
        layer = "conv2d" if m["layer"] == "conv" else "bn"
        if m["branch"] is not None:
            branch = TORCHVISION_BRANCHES.get(m["branch"])
            if branch is None:
                unmapped.append(key)
                continue
            out[f"{block}.{branch}.{layer}.{m['p']}"] = value
        else:
            out[f"{block}.{layer}.{m['p']}"] = value
    if unmapped:
        raise ImageNetWeightsError(f"torchvision GoogLeNet keys without a mapping: {unmapped[:5]}")
    return out


def load_2d(path: str | Path) -> dict[str, torch.Tensor]:
    """A 2D Inception-V1 state dict in this project's names from ``path`` (our format or torchvision's)."""
    path = Path(path)
    if not path.is_file():
        make = download_command(path) or f"python -m i3d_train.weights download googlenet-imagenet --out {path.parent}"
        raise ImageNetWeightsError(f"ImageNet weights {path} not found (model.imagenet_weights; make it: `{make}`)")
    obj = load_torch_file(path)
    if isinstance(obj, dict) and "state_dict" in obj:
        obj = obj["state_dict"]
    keys = list(obj)
    if any(k.removeprefix("module.") == "conv1.conv.weight" for k in keys):
        return from_torchvision(obj)
    # ours, possibly nested in a bigger model (a Lightning checkpoint's "net.", a stream's "rgb.")
    first = next((k for k in keys if k.endswith("Conv2d_1a_7x7.conv2d.weight")), None)
    if first is None:
        raise ImageNetWeightsError(
            f"{path}: not an Inception-V1 state dict (expected 'conv1.conv.weight' as torchvision's GoogLeNet "
            f"or 'Conv2d_1a_7x7.conv2d.weight' as i3d_train.models.inception_v1.InceptionV1)"
        )
    prefix = first[: -len("Conv2d_1a_7x7.conv2d.weight")]
    return {k[len(prefix) :]: v for k, v in obj.items() if k.startswith(prefix)}


def init_from_imagenet(net: nn.Module, path: str | Path | None) -> list[str]:
    """Initialise every part of ``net`` that can take ImageNet Inception-V1 weights from ``path``.

    Returns the names of the parts initialised (an error if ``path`` is given and nothing takes it).
    """
    if not path:
        return []
    sd = load_2d(path)
    done: list[str] = []
    for name, module in net.named_modules():
        loader = getattr(module, "load_imagenet", None)
        if loader is None or any(name.startswith(d + ".") or (d == "" and name) for d in done):
            continue
        try:
            loader(sd)
        except WeightsMismatchError as e:
            raise ImageNetWeightsError(f"{path}: {e}") from None
        done.append(name)
    if not done:
        raise ImageNetWeightsError(
            f"model.imagenet_weights is set but {type(net).__name__} has no ImageNet-initialised part "
            "(C3D trains from scratch, as in the paper)"
        )
    return done
