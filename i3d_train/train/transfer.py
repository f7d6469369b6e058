"""The transfer protocols of the paper's Table 4, applied to a freshly built net.

- ``original``: the net as built (its own initialisation), everything trained.
- ``fixed``: initial weights loaded (Kinetics), classifier reset to the target classes, every other
  parameter frozen and its batch norms kept in eval mode (running statistics do not move:
  :mod:`i3d_train.models.freezing`).
- ``full_ft``: initial weights loaded, classifier reset, everything trained.

With ``protocol.keep_classifier=true`` the loaded classifier is kept instead of reset, its rows
matched to the dataset's classes by name (:mod:`i3d_train.weights.labels`: ``<weights>.labels.txt`` against
the dataset's class list; a class the weights do not know is an error): for continuing Kinetics
training from the released weights, or evaluating them under ``original``.

Initial weights come from ``protocol.init_weights``: a state dict written by
``python -m i3d_train.weights convert``, a PyTorch-port I3D checkpoint, or a Lightning checkpoint of
this project (its ``net.`` weights). ``{modality}`` in the path is replaced by the stream's modality
(``rgb``/``flow``), so one setting serves an RGB net, a flow net and both streams of a two-stream
net; a mapping ``{rgb: path, flow: path}`` names each stream's file explicitly.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from torch import nn

from i3d_train.errors import ProtocolError
from i3d_train.models.freezing import freeze_all_but_classifier
from i3d_train.models.i3d import InceptionI3d
from i3d_train.weights.loading import load_backbone, load_init_state_dict, load_with_classifier

__all__ = ["ProtocolError", "apply_protocol", "no_released_weights", "weights_for"]

log = logging.getLogger(__name__)


def weights_for(init_weights: str | Mapping[str, str] | None, modality: str) -> str | None:
    """The initial-weights file of one stream: ``{modality}`` filled in, or the mapping's entry."""
    if init_weights is None or isinstance(init_weights, str):
        return init_weights.replace("{modality}", modality) if init_weights else init_weights
    if modality not in init_weights:
        raise ProtocolError(f"protocol.init_weights names streams {sorted(init_weights)}, not {modality!r}")
    return init_weights[modality]


def no_released_weights(path: str | Path, model_name: str) -> ProtocolError:
    """The error for a missing weights file of an architecture whose Kinetics weights were never released."""
    return ProtocolError(
        f"initial weights {path} not found: no Kinetics-400 weights were released for {model_name} (only I3D's "
        f"were); make them by training it on Kinetics with this project (`python train.py model={model_name} "
        f"data=kinetics400`) and give that run's checkpoint: protocol.init_weights=<run>/checkpoints/<best>.ckpt "
        f"(or copy it to {path})"
    )


def apply_protocol(
    net: nn.Module,
    name: str,
    init_weights: str | Mapping[str, str] | None,
    modality: str = "rgb",
    keep_classifier: bool = False,
    classes: list[str] | None = None,
    model_name: str | None = None,
) -> nn.Module:
    """Apply protocol ``name`` (original / fixed / full_ft) to ``net`` in place and return it.

    A multi-stream net (``net.streams``) gets the protocol applied to each stream with that stream's
    weights; ``modality`` is the input of a single-stream net. ``keep_classifier``: keep the loaded
    classifier, its rows matched to ``classes`` (the dataset's) by name, instead of a new one.
    ``model_name`` (the config's ``model.name``) names the architecture in errors.
    """
    if name not in ("original", "fixed", "full_ft"):
        raise ProtocolError(f"unknown protocol {name!r}; expected original, fixed or full_ft")
    streams = getattr(net, "streams", None)
    if isinstance(streams, nn.ModuleDict):
        for m, stream in streams.items():
            apply_protocol(stream, name, init_weights, m, keep_classifier, classes, model_name)
        return net
    init_weights = weights_for(init_weights, modality)
    if name != "original" and not init_weights:
        raise ProtocolError(f"protocol {name} needs initial weights: set protocol.init_weights=<file.pt>")
    if keep_classifier and not init_weights:
        raise ProtocolError("protocol.keep_classifier=true needs initial weights: set protocol.init_weights=<file.pt>")
    if not init_weights:
        return net
    if not Path(init_weights).is_file() and not isinstance(net, InceptionI3d):
        raise no_released_weights(init_weights, model_name or type(net).__name__)
    if keep_classifier:
        if classes is None:
            raise ProtocolError("protocol.keep_classifier=true needs the dataset's class names")
        how = load_with_classifier(net, load_init_state_dict(init_weights, modality), classes, init_weights)
        log.info("protocol %s: loaded %s with its classifier (%d classes, %s)", name, init_weights, len(classes), how)
    else:
        load_backbone(net, load_init_state_dict(init_weights, modality))
        log.info("protocol %s: loaded %s, classifier reset to %d classes", name, init_weights, net.num_classes)
    if name == "fixed":
        freeze_all_but_classifier(net)
    return net
