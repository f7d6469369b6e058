"""Video-level metrics: clip scores averaged per video, each (video, view) counted once, and late
fusion of several streams. Shared by the LightningModule and offline evaluation."""

from __future__ import annotations

import torch
from torchmetrics.functional.classification import multiclass_accuracy


def video_level_scores(
    video_index: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, num_videos: int | None = None
):
    """Average clip scores per video.

    Args:
        video_index: ``(M,)`` video of each clip.
        scores: ``(M, C)`` clip scores (softmax probabilities).
        labels: ``(M,)`` label of each clip.
        num_videos: size of the output (default: max index + 1).

    Returns:
        ``(scores (V, C), labels (V,), seen (V,) bool)`` for the videos that had at least one clip.
    """
    n = int(num_videos if num_videos is not None else video_index.max().item() + 1)
    summed = torch.zeros(n, scores.shape[1], dtype=scores.dtype, device=scores.device).index_add_(
        0, video_index, scores
    )
    count = torch.zeros(n, dtype=scores.dtype, device=scores.device).index_add_(
        0, video_index, torch.ones_like(video_index, dtype=scores.dtype)
    )
    vlabels = torch.full((n,), -1, dtype=torch.long, device=scores.device).index_copy_(0, video_index, labels)
    seen = count > 0
    return summed[seen] / count[seen, None], vlabels[seen], seen


MAX_VIEWS = 1 << 20  # more clips x crops per video than anyone evaluates


def first_occurrences(keys: torch.Tensor) -> torch.Tensor:
    """Indices of the first occurrence of each distinct key (in order of first appearance)."""
    uniq, inverse = torch.unique(keys, return_inverse=True)
    pos = torch.arange(len(keys), device=keys.device)
    first = torch.full((len(uniq),), len(keys), dtype=torch.long, device=keys.device)
    first = first.scatter_reduce(0, inverse, pos, reduce="amin")
    return first.sort().values


def video_metrics(scores: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict[str, float]:
    """Top-1, top-5 and mean class accuracy of video-level scores."""
    k5 = min(5, num_classes)
    return {
        "video_acc_top1": multiclass_accuracy(scores, labels, num_classes, average="micro").item(),
        f"video_acc_top{k5}": multiclass_accuracy(scores, labels, num_classes, top_k=k5, average="micro").item(),
        "video_mean_class_acc": multiclass_accuracy(scores, labels, num_classes, average="macro").item(),
        "num_videos": float(len(labels)),
    }


def fuse(outputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """Late fusion of several streams' logits: the mean of their softmax scores."""
    return torch.stack([o.float().softmax(-1) for o in outputs.values()]).mean(0)
