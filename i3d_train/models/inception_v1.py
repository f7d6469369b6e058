"""Inception-V1 (GoogLeNet) with batch norm, in 2D: the ImageNet backbone of the paper's ConvNet+LSTM,
Two-Stream and 3D-Fused Two-Stream models, and the net I3D inflates.

Endpoint names, kernel sizes, strides and TF "SAME" padding are those of the 3D I3D with the time
dimension removed (``Conv2d_1a_7x7`` ... ``Mixed_5c``, branches ``b0 b1a b1b b2a b2b b3b``), so a 2D
state dict inflates to I3D by a rename (``conv2d`` -> ``conv3d``) and a repeat along time
(:mod:`i3d_train.models.inflate`). Batch norm (eps 1e-3) after every conv. Input ``(N, C, H, W)`` in
[-1, 1]; 224x224 gives a 1024x7x7 Mixed_5c map.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from i3d_train.models.i3d import FEATURE_DIM, INCEPTION_CHANNELS
from i3d_train.models.layers import InceptionBlock, MaxPoolSame, Unit2D
from i3d_train.models.loading import fit_first_conv, load_without_classifier

ENDPOINTS_2D = (
    "Conv2d_1a_7x7",
    "MaxPool2d_2a_3x3",
    "Conv2d_2b_1x1",
    "Conv2d_2c_3x3",
    "MaxPool2d_3a_3x3",
    "Mixed_3b",
    "Mixed_3c",
    "MaxPool2d_4a_3x3",
    "Mixed_4b",
    "Mixed_4c",
    "Mixed_4d",
    "Mixed_4e",
    "Mixed_4f",
    "MaxPool2d_5a_2x2",
    "Mixed_5b",
    "Mixed_5c",
)


class InceptionV1(nn.Module):
    """Inception-V1 with batch norm.

    Args:
        num_classes: size of the classifier (0: no classifier, a feature extractor).
        in_channels: 3 for an RGB frame, 2 x L for a stack of L flow frames.
        dropout: dropout before the classifier.
        bn_momentum: PyTorch batch-norm momentum.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, dropout: float = 0.5, bn_momentum: float = 0.1) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.num_features = FEATURE_DIM
        m = bn_momentum
        self.Conv2d_1a_7x7 = Unit2D(in_channels, 64, 7, stride=2, bn_momentum=m)
        self.MaxPool2d_2a_3x3 = MaxPoolSame(3, 2, dims=2)
        self.Conv2d_2b_1x1 = Unit2D(64, 64, 1, bn_momentum=m)
        self.Conv2d_2c_3x3 = Unit2D(64, 192, 3, bn_momentum=m)
        self.MaxPool2d_3a_3x3 = MaxPoolSame(3, 2, dims=2)
        for name in ("Mixed_3b", "Mixed_3c"):
            setattr(self, name, InceptionBlock(*INCEPTION_CHANNELS[name], bn_momentum=m, dims=2))
        self.MaxPool2d_4a_3x3 = MaxPoolSame(3, 2, dims=2)
        for name in ("Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f"):
            setattr(self, name, InceptionBlock(*INCEPTION_CHANNELS[name], bn_momentum=m, dims=2))
        self.MaxPool2d_5a_2x2 = MaxPoolSame(2, 2, dims=2)
        for name in ("Mixed_5b", "Mixed_5c"):
            setattr(self, name, InceptionBlock(*INCEPTION_CHANNELS[name], bn_momentum=m, dims=2))
        self.dropout = nn.Dropout(dropout)
        self.logits = self._classifier(num_classes)

    @staticmethod
    def _classifier(num_classes: int) -> nn.Module | None:
        return Unit2D(FEATURE_DIM, num_classes, 1, use_bn=False, activation=False, bias=True) if num_classes else None

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` -> Mixed_5c map ``(N, 1024, H/32, W/32)``."""
        for name in ENDPOINTS_2D:
            x = getattr(self, name)(x)
        return x

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """The 7x7 average pool (the whole map at 224x224 and below): ``(N, 1024)``."""
        return F.adaptive_avg_pool2d(x, 1).flatten(1)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.pool(x))
        return self.logits(x[:, :, None, None]).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def extract_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.forward_features(x))

    def get_classifier(self) -> nn.Module | None:
        return self.logits

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.logits = self._classifier(num_classes)

    def load_imagenet(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Load a 2D ImageNet state dict (this class's names; see :func:`inflate.load_2d`), all but
        the classifier; a first conv for other than 3 input channels gets the RGB kernel averaged over
        its channels and repeated (cross-modality initialisation)."""
        sd = {k: v for k, v in state_dict.items() if not k.startswith("logits.")}  # ImageNet's classifier
        key = "Conv2d_1a_7x7.conv2d.weight"
        sd[key] = fit_first_conv(sd[key], self.in_channels)
        load_without_classifier(self, sd)
