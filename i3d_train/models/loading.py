"""Fitting a state dict to a model: one checked path for every loader (transfer protocols, ImageNet
initialisation, inflation). Every tensor of the source must be used and every shape must match; only
the classifier is left out, since a new dataset gets a new one."""

from __future__ import annotations

import torch
from torch import nn


class WeightsMismatchError(ValueError):
    """A state dict that does not fit the model (one line naming the first offending keys)."""


def classifier_prefixes(net: nn.Module) -> tuple[str, ...]:
    """``("logits.",)`` etc.: the state-dict prefixes of ``net.get_classifier()``, which is one module or,
    for a net with one head per stream (Two-Stream), a ``ModuleList`` of them (empty: no classifier)."""
    head = net.get_classifier() if hasattr(net, "get_classifier") else None
    if head is None:
        return ()
    heads = list(head) if isinstance(head, nn.ModuleList) else [head]
    names = {id(m): n for n, m in net.named_modules()}
    return tuple(names[id(h)] + "." for h in heads if h is not None)


def select_stream(state_dict: dict[str, torch.Tensor], modality: str | None) -> dict[str, torch.Tensor]:
    """One stream of a multi-stream net's state dict (``streams.<modality>.`` keys, prefix removed), or
    the state dict as it is when it is not a multi-stream one."""
    prefix = f"streams.{modality}."
    if modality is None or not any(k.startswith(prefix) for k in state_dict):
        return state_dict
    return {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}


def load_without_classifier(net: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    """Load every tensor but the classifier's into ``net``, after checking keys and shapes both ways.

    ``num_batches_tracked`` buffers absent from the source (older files) keep the model's value.
    """
    prefixes = classifier_prefixes(net)

    def body(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v for k, v in sd.items() if not k.startswith(prefixes)}

    own, src = body(net.state_dict()), body(state_dict)
    for k, v in own.items():
        if k.endswith("num_batches_tracked") and k not in src:
            src[k] = v
    missing, unexpected = sorted(set(own) - set(src)), sorted(set(src) - set(own))
    if missing or unexpected:
        raise WeightsMismatchError(
            f"weights do not fit the model: missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
            f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''}"
        )
    for k, v in own.items():
        if src[k].shape != v.shape:
            raise WeightsMismatchError(
                f"weights do not fit the model: {k} is {tuple(src[k].shape)}, model has {tuple(v.shape)}"
            )
    net.load_state_dict(src, strict=False)  # keys checked above: only the classifier's are absent


def fit_first_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """An RGB first-conv kernel for ``in_channels`` inputs: unchanged for 3, else averaged over its input
    channels and repeated (the usual cross-modality initialisation of flow nets)."""
    if weight.shape[1] == in_channels:
        return weight
    mean = weight.mean(dim=1, keepdim=True)
    return mean.expand(-1, in_channels, *weight.shape[2:]).clone()
