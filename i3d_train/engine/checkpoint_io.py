"""Checkpoints written atomically (a run killed while saving never leaves a truncated ``last.ckpt``), and
checked before they are loaded (a checkpoint from elsewhere runs nothing)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pytorch_lightning.plugins.io import TorchCheckpointIO

from i3d_train.errors import ConfigError
from i3d_train.runtime.atomic import atomic_path
from i3d_train.weights.safe_pickle import UnsafePickleError, load_torch_file


class AtomicCheckpointIO(TorchCheckpointIO):
    """Saves under a temporary name and renames it over ``<file>`` (:mod:`i3d_train.runtime.atomic`)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None) -> None:
        with atomic_path(path) as tmp:
            super().save_checkpoint(checkpoint, tmp, storage_options)


def check_checkpoint(path: str | Path) -> None:
    """A checkpoint someone else made holds only what a weights-only load allows (nothing in it runs), as
    Lightning's own load of it will check: refused in one line (ConfigError) before Lightning loads it."""
    try:
        load_torch_file(path)
    except UnsafePickleError as e:
        raise ConfigError(str(e)) from None
