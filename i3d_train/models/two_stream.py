"""The paper's 2D two-stream models, on Inception-V1 backbones (paper Sec. 2.3 and 2.4).

(c) :class:`TwoStream2D`: one RGB frame through one Inception-V1, a stack of 10 consecutive flow
    frames (x and y of each: 20 input channels) through another; their predictions averaged, and
    trained end to end through the average (``train_on_fusion``: the loss is taken on the fused
    scores). Each stream's own prediction is reported too. At test time, 25 evenly spaced
    frames/stacks per video, averaged (``model.input.test_clips``).
(d) :class:`FusedTwoStream`: Inception-V1 on 5 RGB frames 10 frames apart and on the 5 matching
    10-frame flow stacks; per time step the two 1024 x 7 x 7 maps are concatenated (2048 channels) and
    the 5 steps stacked in time; a 3x3x3 conv with 512 outputs + batch norm + ReLU fuses them, then a
    3x3x3 max pool and a classifier. New layers start from (Gaussian) random weights.

Both read ``{"rgb": (N, 3, S, H, W), "flow": (N, 2, S * L, H, W)}``: S RGB frames and S stacks of L
flow frames (the DataModule cuts them to the model's ``input``).
"""

from __future__ import annotations

import torch
from torch import nn

from i3d_train.models.inception_v1 import InceptionV1
from i3d_train.models.layers import MaxPool3dSame, Unit3D


def stack_flow(flow: torch.Tensor, stacks: int) -> torch.Tensor:
    """``(N, 2, S * L, H, W)`` -> ``(N * S, 2 * L, H, W)``, channels ordered x1, y1, x2, y2, ..."""
    n, c, t, h, w = flow.shape
    if c != 2 or t % stacks:
        raise ValueError(f"flow of shape {tuple(flow.shape)} does not split into {stacks} stacks of x/y frames")
    length = t // stacks
    return flow.view(n, 2, stacks, length, h, w).permute(0, 2, 3, 1, 4, 5).reshape(n * stacks, length * 2, h, w)


def frames_2d(rgb: torch.Tensor) -> torch.Tensor:
    """``(N, 3, S, H, W)`` -> ``(N * S, 3, H, W)``."""
    n, c, s, h, w = rgb.shape
    return rgb.transpose(1, 2).reshape(n * s, c, h, w)


class TwoStream2D(nn.Module):
    """(c) Two-Stream. Args: num_classes; flow_frames (L, paper 10); dropout; bn_momentum."""

    modalities = ("rgb", "flow")
    train_on_fusion = True  # "trained end to end, including the averaging"

    def __init__(self, num_classes: int, flow_frames: int = 10, dropout: float = 0.5, bn_momentum: float = 0.1) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.flow_frames = flow_frames
        self.rgb = InceptionV1(num_classes, 3, dropout, bn_momentum)
        self.flow = InceptionV1(num_classes, 2 * flow_frames, dropout, bn_momentum)

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        rgb, flow = inputs["rgb"], inputs["flow"]
        n = rgb.shape[0]
        stacks = flow.shape[2] // self.flow_frames
        if stacks * self.flow_frames != flow.shape[2]:
            raise ValueError(f"flow clips of {flow.shape[2]} frames; expected multiples of {self.flow_frames}")
        rgb_logits = self.rgb(frames_2d(rgb)).view(n, -1, self.num_classes).mean(1)
        flow_logits = self.flow(stack_flow(flow, stacks)).view(n, -1, self.num_classes).mean(1)
        return {"rgb": rgb_logits, "flow": flow_logits}

    def get_classifier(self) -> nn.ModuleList:
        """Both streams' classifiers (the transfer protocols reset and train them together)."""
        return nn.ModuleList([self.rgb.get_classifier(), self.flow.get_classifier()])

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.rgb.reset_classifier(num_classes)
        self.flow.reset_classifier(num_classes)


class FusedTwoStream(nn.Module):
    """(d) 3D-Fused Two-Stream. Args: num_classes; steps (S, paper 5); flow_frames (L, paper 10);
    fusion_channels (paper 512); dropout; bn_momentum."""

    modalities = ("rgb", "flow")

    def __init__(
        self,
        num_classes: int,
        steps: int = 5,
        flow_frames: int = 10,
        fusion_channels: int = 512,
        dropout: float = 0.5,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.steps = steps
        self.flow_frames = flow_frames
        self.rgb = InceptionV1(0, 3, bn_momentum=bn_momentum)
        self.flow = InceptionV1(0, 2 * flow_frames, bn_momentum=bn_momentum)
        feat = self.rgb.num_features
        self.fusion = Unit3D(2 * feat, fusion_channels, 3, bn_momentum=bn_momentum)
        self.fusion_pool = MaxPool3dSame(3, (1, 2, 2))
        self.dropout = nn.Dropout(dropout)
        self.logits = nn.Linear(fusion_channels, num_classes)
        for m in (self.fusion.conv3d, self.logits):  # new layers: Gaussian initialisation
            nn.init.normal_(m.weight, std=0.01)

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        rgb, flow = inputs["rgb"], inputs["flow"]
        n, s = rgb.shape[0], rgb.shape[2]
        if flow.shape[2] != s * self.flow_frames:
            raise ValueError(
                f"{s} RGB frames need {s * self.flow_frames} flow frames ({self.flow_frames} per frame), "
                f"got {flow.shape[2]}"
            )
        a = self.rgb.forward_features(frames_2d(rgb))  # N*S x 1024 x h x w
        b = self.flow.forward_features(stack_flow(flow, s))
        maps = torch.cat([a, b], dim=1)
        maps = maps.view(n, s, *maps.shape[1:]).transpose(1, 2)  # N x 2048 x S x h x w
        x = self.fusion_pool(self.fusion(maps))
        return self.logits(self.dropout(x.mean(dim=(2, 3, 4))))

    def get_classifier(self) -> nn.Module:
        return self.logits

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.logits = nn.Linear(self.logits.in_features, num_classes)
