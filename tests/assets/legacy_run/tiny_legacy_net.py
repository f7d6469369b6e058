"""A tiny video classifier for the legacy run-folder asset (the real models' checkpoints are 50+ MB)."""

import torch
from torch import nn


class TinyNet(nn.Module):
    def __init__(self, num_classes: int, in_channels: int = 3, dropout: float = 0.0, bn_momentum: float = 0.1):
        super().__init__()
        self.num_classes = num_classes
        self.conv = nn.Conv3d(in_channels, 8, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm3d(8, momentum=bn_momentum)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3, 4))
        return self.fc(self.dropout(x))

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.fc = nn.Linear(8, num_classes)


class KillAfterFirstEpoch:
    """Stands in for a crash: with LEGACY_KILL=1 the process kills itself (SIGKILL) as the second epoch
    starts, after the first epoch's checkpoints are written."""

    def __new__(cls):
        import os
        import signal

        import pytorch_lightning as pl

        class _Kill(pl.Callback):
            def on_train_epoch_start(self, trainer, pl_module):
                if trainer.current_epoch == 1 and os.environ.get("LEGACY_KILL") == "1":
                    os.kill(os.getpid(), signal.SIGKILL)

        return _Kill()
