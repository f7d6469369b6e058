"""ImageNet Inception-V1 weights for every model: 2D as they are, inflated to 3D for I3D (paper Sec. 2.4).

Inflation ("bootstrapping"): each NxN 2D kernel becomes kT x N x N by repeating it kT times along time
and dividing by kT, so a "boring video" (one image repeated in time) gives the 3D net the same
activations as the 2D net on the image. Batch-norm parameters and statistics are copied. A flow input
gets the first conv's RGB kernel averaged over its input channels, repeated for each flow channel.

Sources (:func:`load_2d`):

- this project's :class:`~i3d_train.models.inception_v1.InceptionV1` state dict (or a Lightning
  checkpoint of a model whose ``net`` is one);
- a torchvision-format GoogLeNet state dict (``conv1.conv.weight``, ``inception3a.branch2.1.conv.weight``,
  ...), mapped by an explicit table; its auxiliary classifiers (``aux1.*``, ``aux2.*``) and ImageNet
  classifier (``fc.*``) are skipped by name, every other tensor must be used.

Configured as ``model.imagenet_weights=<file>`` (default none: no ImageNet weights can be downloaded
here); models with ``load_imagenet`` take it, ``init_from_imagenet`` walks multi-stream nets.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from i3d_train.models.loading import WeightsMismatchError, classifier_prefixes, fit_first_conv
from i3d_train.weights.registry import download_command

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
    obj = torch.load(path, map_location="cpu", weights_only=True)
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


def key_2d(key_3d: str) -> str:
    """The 2D Inception-V1 key an I3D key comes from (``Conv3d_1a_7x7.conv3d.weight`` ->
    ``Conv2d_1a_7x7.conv2d.weight``)."""
    return key_3d.replace("Conv3d_", "Conv2d_").replace(".conv3d.", ".conv2d.")


def inflate(state_dict_2d: dict[str, torch.Tensor], net3d: nn.Module) -> dict[str, torch.Tensor]:
    """The I3D state dict (classifier excluded) bootstrapped from a 2D Inception-V1 state dict.

    Each conv kernel ``(O, I, kH, kW)`` becomes ``(O, I, kT, kH, kW)``: repeated ``kT`` times (the 3D
    net's temporal size) and divided by ``kT``. The first conv is fitted to the 3D net's input channels.
    """
    own = net3d.state_dict()
    prefixes = classifier_prefixes(net3d)
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for key, target in own.items():
        if key.startswith(prefixes):
            continue
        src_key = key_2d(key)
        if src_key not in state_dict_2d:
            if key.endswith("num_batches_tracked"):
                continue
            raise WeightsMismatchError(f"2D weights have no {src_key} (for {key})")
        w = state_dict_2d[src_key]
        used.add(src_key)
        if target.dim() == 5:  # conv kernel
            if w.dim() != 4:
                raise WeightsMismatchError(f"{src_key}: expected a 2D kernel, got shape {tuple(w.shape)}")
            w = fit_first_conv(w, target.shape[1])
            kt = target.shape[2]
            w = w.unsqueeze(2).repeat(1, 1, kt, 1, 1) / kt
        if w.shape != target.shape:
            raise WeightsMismatchError(f"{src_key}: shape {tuple(w.shape)} does not inflate to {tuple(target.shape)}")
        out[key] = w
    unused = sorted(k for k in state_dict_2d if k not in used and not k.startswith("logits."))
    if unused:
        raise WeightsMismatchError(f"2D weights not used by the inflation: {unused[:5]}")
    return out


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
