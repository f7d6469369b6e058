"""I3D: Inception-V1 inflated to 3D (Carreira & Zisserman, CVPR 2017, Sec. 2.4 and Fig. 3).

Built exactly as DeepMind released it (kinetics-i3d, Sonnet): the endpoint names, kernel sizes and
strides of DeepMind's kinetics-i3d ``i3d.py`` (paper Sec. 2.4, Fig. 3), TF "SAME" padding, batch norm with eps 1e-3 after every conv, a 2x7x7
average pool, dropout, a 1x1x1 classifier conv with bias, and logits averaged over time.

Deviations, on purpose:
- every batch norm keeps a learnable scale (gamma). DeepMind's checkpoints have beta only (converters
  set gamma to 1); 2D ImageNet weights have one. RGB with 400 classes: 12,697,264 parameters
  (DeepMind: 12,689,984 = this minus the 7,280 gammas).
- batch-norm momentum is PyTorch's 0.1, not Sonnet's decay 0.999, so short runs evaluate well.
- the final average pool shrinks to the feature map when it is smaller than 2x7x7, so the net runs on
  small CPU-friendly clips (e.g. 16x112x112).

Module names follow the widely used PyTorch port (``Conv3d_1a_7x7.conv3d``, ``Mixed_4b.b1b.bn``,
``logits.conv3d``), so its checkpoints map by a table.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from i3d_train.models.inflate import inflate
from i3d_train.models.layers import InceptionBlock3d, MaxPool3dSame, Unit3D
from i3d_train.models.loading import load_without_classifier

# (in, c0, c1a, c1b, c2a, c2b, c3) per Inception block: DeepMind's kinetics-i3d i3d.py (paper Fig. 3).
INCEPTION_CHANNELS: dict[str, tuple[int, int, int, int, int, int, int]] = {
    "Mixed_3b": (192, 64, 96, 128, 16, 32, 32),
    "Mixed_3c": (256, 128, 128, 192, 32, 96, 64),
    "Mixed_4b": (480, 192, 96, 208, 16, 48, 64),
    "Mixed_4c": (512, 160, 112, 224, 24, 64, 64),
    "Mixed_4d": (512, 128, 128, 256, 24, 64, 64),
    "Mixed_4e": (512, 112, 144, 288, 32, 64, 64),
    "Mixed_4f": (528, 256, 160, 320, 32, 128, 128),
    "Mixed_5b": (832, 256, 160, 320, 32, 128, 128),
    "Mixed_5c": (832, 384, 192, 384, 48, 128, 128),
}

ENDPOINTS = (
    "Conv3d_1a_7x7",
    "MaxPool3d_2a_3x3",
    "Conv3d_2b_1x1",
    "Conv3d_2c_3x3",
    "MaxPool3d_3a_3x3",
    "Mixed_3b",
    "Mixed_3c",
    "MaxPool3d_4a_3x3",
    "Mixed_4b",
    "Mixed_4c",
    "Mixed_4d",
    "Mixed_4e",
    "Mixed_4f",
    "MaxPool3d_5a_2x2",
    "Mixed_5b",
    "Mixed_5c",
)

FEATURE_DIM = 1024


class InceptionI3d(nn.Module):
    """Inflated Inception-V1.

    Args:
        num_classes: size of the classifier.
        in_channels: 3 for RGB, 2 for optical flow (x, y).
        dropout: dropout probability before the classifier (DeepMind trains with keep-prob 0.5).
        bn_momentum: PyTorch batch-norm momentum.

    Input: ``(N, C, T, H, W)`` in [-1, 1]. Output: time-averaged logits ``(N, num_classes)``.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, dropout: float = 0.5, bn_momentum: float = 0.1) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.num_features = FEATURE_DIM
        m = bn_momentum
        self.Conv3d_1a_7x7 = Unit3D(in_channels, 64, 7, stride=2, bn_momentum=m)
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64, 1, bn_momentum=m)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, 3, bn_momentum=m)
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Mixed_3b = InceptionBlock3d(*INCEPTION_CHANNELS["Mixed_3b"], bn_momentum=m)
        self.Mixed_3c = InceptionBlock3d(*INCEPTION_CHANNELS["Mixed_3c"], bn_momentum=m)
        self.MaxPool3d_4a_3x3 = MaxPool3dSame(3, 2)
        self.Mixed_4b = InceptionBlock3d(*INCEPTION_CHANNELS["Mixed_4b"], bn_momentum=m)
        self.Mixed_4c = InceptionBlock3d(*INCEPTION_CHANNELS["Mixed_4c"], bn_momentum=m)
        self.Mixed_4d = InceptionBlock3d(*INCEPTION_CHANNELS["Mixed_4d"], bn_momentum=m)
        self.Mixed_4e = InceptionBlock3d(*INCEPTION_CHANNELS["Mixed_4e"], bn_momentum=m)
        self.Mixed_4f = InceptionBlock3d(*INCEPTION_CHANNELS["Mixed_4f"], bn_momentum=m)
        self.MaxPool3d_5a_2x2 = MaxPool3dSame(2, 2)
        self.Mixed_5b = InceptionBlock3d(*INCEPTION_CHANNELS["Mixed_5b"], bn_momentum=m)
        self.Mixed_5c = InceptionBlock3d(*INCEPTION_CHANNELS["Mixed_5c"], bn_momentum=m)
        self.dropout = nn.Dropout(dropout)
        self.logits = Unit3D(FEATURE_DIM, num_classes, 1, use_bn=False, activation=False, bias=True)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, T, H, W)`` -> Mixed_5c map ``(N, 1024, T/8, H/32, W/32)`` (8x7x7 for 64x224x224)."""
        for name in ENDPOINTS:
            x = getattr(self, name)(x)
        return x

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """2x7x7 average pool, stride 1, VALID; shrinks to the map when the map is smaller."""
        k = (min(2, x.shape[2]), min(7, x.shape[3]), min(7, x.shape[4]))
        return F.avg_pool3d(x, k, stride=1)  # N x 1024 x T' x H' x W' (7x1x1 for 64x224x224)

    def forward_head(self, x: torch.Tensor, per_time: bool = False) -> torch.Tensor:
        """Mixed_5c map -> logits. ``per_time=True`` returns ``(N, classes, T')`` before the time average."""
        x = self.logits(self.dropout(self.pool(x)))  # N x classes x T' x H' x W'
        x = x.mean(dim=(3, 4))  # N x classes x T' (spatial is 1x1 at 224; mean is exact there)
        return x if per_time else x.mean(dim=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def extract_features(self, x: torch.Tensor) -> torch.Tensor:
        """Mean-pooled Mixed_5c features ``(N, 1024)``, the usual "I3D features" for localization."""
        return self.forward_features(x).mean(dim=(2, 3, 4))

    def get_classifier(self) -> nn.Module:
        return self.logits

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a freshly initialised one for ``num_classes`` classes."""
        self.num_classes = num_classes
        self.logits = Unit3D(FEATURE_DIM, num_classes, 1, use_bn=False, activation=False, bias=True)

    def load_imagenet(self, state_dict_2d: dict[str, torch.Tensor]) -> None:
        """Initialise from a 2D Inception-V1 state dict by inflation (paper Sec. 2.4)."""
        load_without_classifier(self, inflate(state_dict_2d, self))
