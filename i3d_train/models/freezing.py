"""Freezing for the Fixed transfer protocol (paper Sec. 4): every parameter but the classifier's off, and
the frozen batch norms held in eval mode, so their running statistics do not move."""

from __future__ import annotations

from torch import nn

# every batch norm of torch.nn (the lazy ones subclass these)
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def freeze_all_but_classifier(net: nn.Module) -> None:
    """Only the classifier (``net.get_classifier()``) keeps training."""
    head = net.get_classifier()
    for p in net.parameters():
        p.requires_grad_(False)
    for p in head.parameters():
        p.requires_grad_(True)


def keep_frozen_batchnorm_in_eval(net: nn.Module) -> None:
    """Batch norms whose parameters are all frozen stay in eval mode: their statistics do not move."""
    for m in net.modules():
        if isinstance(m, BATCH_NORMS):
            params = list(m.parameters())
            if params and not any(p.requires_grad for p in params):
                m.eval()
