"""(a) ConvNet+LSTM (paper Sec. 2.1): Inception-V1 on every frame, an LSTM over time.

The 1024-d features after Inception-V1's last average pool, per frame, go through batch normalization
into one LSTM layer with 512 hidden units and a linear classifier. The output has one prediction per
time step, ``(N, T, classes)``: the LightningModule trains on every step and predicts a clip by its
last step, as the paper does (25 frames at 5 fps in training).
"""

from __future__ import annotations

import torch
from torch import nn

from i3d_train.models.inception_v1 import InceptionV1


class ConvNetLSTM(nn.Module):
    """Args: num_classes; in_channels (3: RGB); hidden (LSTM units, paper 512); dropout before the
    classifier; bn_momentum of the backbone."""

    def __init__(
        self, num_classes: int, in_channels: int = 3, hidden: int = 512, dropout: float = 0.5, bn_momentum: float = 0.1
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.backbone = InceptionV1(0, in_channels, bn_momentum=bn_momentum)
        self.feature_bn = nn.BatchNorm1d(self.backbone.num_features, eps=1e-3, momentum=bn_momentum)
        self.lstm = nn.LSTM(self.backbone.num_features, hidden, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, T, H, W)`` -> per-step logits ``(N, T, classes)``."""
        n, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(n * t, c, h, w)
        feats = self.feature_bn(self.backbone.extract_features(frames)).view(n, t, -1)
        out, _ = self.lstm(feats)
        return self.fc(self.dropout(out))

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.fc = nn.Linear(self.fc.in_features, num_classes)
