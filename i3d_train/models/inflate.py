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

import torch
from torch import nn

from i3d_train.models.loading import WeightsMismatchError, classifier_prefixes, fit_first_conv


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
