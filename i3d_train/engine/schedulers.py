"""Learning-rate schedules.

The paper divides the learning rate by 10 when the validation loss saturates (Sec. 2.5): that is
``torch.optim.lr_scheduler.ReduceLROnPlateau(factor=0.1)``, configured in ``conf/train.yaml``. For short
runs a linear warm-up followed by a cosine decay to zero, stepped per batch, is offered here.
"""

from __future__ import annotations

import math

import torch


def warmup_cosine(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_fraction: float = 0.1
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup_fraction`` of ``total_steps``, then cosine decay to 0."""
    warmup = max(1, int(total_steps * warmup_fraction))
    total = max(total_steps, warmup + 1)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / (total - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
