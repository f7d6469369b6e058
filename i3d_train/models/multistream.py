"""Several networks trained side by side on different modalities of the same clips.

The paper's Two-Stream I3D (Sec. 2.4, model (e)) is an RGB I3D and a flow I3D trained separately and
fused at test time by averaging their softmax scores. :class:`MultiStream` holds the streams in one
module so that one run trains both: the input is a dict ``{modality: clip}``, the output a dict
``{modality: logits}``; the LightningModule gives every stream its own loss (the streams share no
weights, so this is the same as training them apart) and reports each stream and their fusion.
"""

from __future__ import annotations

import torch
from torch import nn


class MultiStream(nn.Module):
    """``MultiStream(rgb=InceptionI3d(..., in_channels=3), flow=InceptionI3d(..., in_channels=2))``.

    Each keyword names the batch key (modality) its network reads.
    """

    def __init__(self, **streams: nn.Module) -> None:
        super().__init__()
        if not streams:
            raise ValueError("MultiStream needs at least one stream, e.g. MultiStream(rgb=..., flow=...)")
        self.streams = nn.ModuleDict(streams)
        classes = {getattr(s, "num_classes", None) for s in streams.values()}
        if len(classes) != 1:
            raise ValueError(f"streams disagree on the number of classes: {sorted(map(str, classes))}")
        self.num_classes = classes.pop()

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.streams.keys())

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        missing = [m for m in self.streams if m not in inputs]
        if missing:
            raise KeyError(f"MultiStream input lacks {missing}; got {sorted(inputs)}")
        return {m: net(inputs[m]) for m, net in self.streams.items()}
