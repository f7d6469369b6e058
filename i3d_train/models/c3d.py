"""(b) 3D-ConvNet (paper Sec. 2.2): the C3D variant the paper trains from scratch.

8 convolutions (3x3x3, stride 1) with batch norm and ReLU, 5 max pools, 2 fully connected layers of
4096 with batch norm, and a classifier: conv1a 64 | pool1 | conv2a 128 | pool2 | conv3a, conv3b 256 |
pool3 | conv4a, conv4b 512 | pool4 | conv5a, conv5b 512 | pool5 | fc6, fc7 4096 | fc8. Every pool is
2x2x2 with stride 2 (the paper's change to C3D: the first pool has temporal stride 2, C3D's had 1),
pools pad "SAME". A 16x112x112 clip gives a 512x1x4x4 map before fc6 (8,192 inputs); other sizes are
average-pooled to that grid so that fc6 keeps its size. 400 classes: 79.2M parameters (paper: 79M).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from i3d_train.models.layers import MaxPool3dSame, Unit3D

# (name, in, out) of the convolutions; a pool follows the names in POOL_AFTER.
CONVS = (
    ("conv1a", 3, 64),
    ("conv2a", 64, 128),
    ("conv3a", 128, 256),
    ("conv3b", 256, 256),
    ("conv4a", 256, 512),
    ("conv4b", 512, 512),
    ("conv5a", 512, 512),
    ("conv5b", 512, 512),
)
POOL_AFTER = {"conv1a": "pool1", "conv2a": "pool2", "conv3b": "pool3", "conv4b": "pool4", "conv5b": "pool5"}
FC6_GRID = (1, 4, 4)  # the map after pool5 for 16x112x112 clips


class C3D(nn.Module):
    """Args: num_classes; in_channels; dropout after fc6 and fc7; bn_momentum."""

    def __init__(self, num_classes: int, in_channels: int = 3, dropout: float = 0.5, bn_momentum: float = 0.1) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.names: list[str] = []
        for name, cin, cout in CONVS:
            setattr(self, name, Unit3D(in_channels if name == "conv1a" else cin, cout, 3, bn_momentum=bn_momentum))
            self.names.append(name)
            if name in POOL_AFTER:
                setattr(self, POOL_AFTER[name], MaxPool3dSame(2, 2))
                self.names.append(POOL_AFTER[name])
        flat = 512 * FC6_GRID[0] * FC6_GRID[1] * FC6_GRID[2]
        self.fc6 = nn.Sequential(nn.Linear(flat, 4096, bias=False), nn.BatchNorm1d(4096, momentum=bn_momentum))
        self.fc7 = nn.Sequential(nn.Linear(4096, 4096, bias=False), nn.BatchNorm1d(4096, momentum=bn_momentum))
        self.dropout = nn.Dropout(dropout)
        self.fc8 = nn.Linear(4096, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.names:
            x = getattr(self, name)(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_features(x)
        if tuple(x.shape[2:]) != FC6_GRID:
            x = F.adaptive_avg_pool3d(x, FC6_GRID)
        x = self.dropout(F.relu(self.fc6(x.flatten(1))))
        x = self.dropout(F.relu(self.fc7(x)))
        return self.fc8(x)

    def get_classifier(self) -> nn.Module:
        return self.fc8

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.fc8 = nn.Linear(4096, num_classes)
