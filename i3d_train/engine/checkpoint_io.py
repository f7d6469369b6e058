"""Checkpoints written atomically: a run killed while saving never leaves a truncated ``last.ckpt``."""

from __future__ import annotations

import os
from typing import Any

from pytorch_lightning.plugins.io import TorchCheckpointIO

from i3d_train.runtime.atomic import atomic_path


class AtomicCheckpointIO(TorchCheckpointIO):
    """Saves under a temporary name and renames it over ``<file>`` (:mod:`i3d_train.runtime.atomic`)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None) -> None:
        with atomic_path(path) as tmp:
            super().save_checkpoint(checkpoint, tmp, storage_options)
