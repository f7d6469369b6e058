"""``evaluate(cfg)``: test a checkpoint with its run's config, or a state dict (released weights) with
named model and data configs; write predictions; fuse two runs.

With ``weights=``, the classifier's rows are matched to the dataset's classes by name
(``<weights>.labels.txt``, see ``i3d_train.weights.labels``): the scores' columns are the dataset's classes
in its order, the softmax taken over those classes only.

Output folder (``paths.output_dir``):

- one checkpoint: ``predictions.csv``, ``scores.npy``, ``confusion_matrix.png``,
  ``per_class_accuracy.png``, ``metrics.json`` (video top-1 / top-5 / mean class accuracy,
  number of videos, the checkpoint, model, data, protocol and test protocol);
- with ``fuse_with``: the same for each checkpoint in ``<modality>/`` (``a/`` and ``b/`` when both
  have the same modality) and for their late fusion in ``fused/``; ``metrics.json`` holds all three.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from i3d_train.engine.predictions import save_json
from i3d_train.errors import ConfigError
from i3d_train.evaluation.fusion import evaluate_fused
from i3d_train.evaluation.testing import evaluate_checkpoint
from i3d_train.evaluation.weights import evaluate_weights, given_weights
from i3d_train.runtime.distributed import is_rank_zero, quiet_other_ranks


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate ``cfg.ckpt_path`` (and fuse it with ``cfg.fuse_with``); under DDP, every process tests
    its share, rank 0 writes and prints the results (the others return ``{}``)."""
    quiet_other_ranks()
    out = Path(cfg.paths.output_dir)
    weights = given_weights(cfg)
    if weights and cfg.get("ckpt_path"):
        raise ConfigError("give either ckpt_path=<run checkpoint> or weights=<state dict>, not both")
    if weights:
        metrics = evaluate_weights(cfg, weights, out)
        if not is_rank_zero():
            return {}
        save_json(out / "metrics.json", metrics)
        streams = [s for s in ("rgb", "flow") if s in metrics]
        for s in streams:
            m = metrics[s]
            print(f"{s:>6}: video-level top-1 {100 * m['video_acc_top1']:.2f}% ({int(m['num_videos'])} videos)")
        print(
            f"{'fused: ' if streams else ''}video-level top-1 {100 * metrics['video_acc_top1']:.2f}%, top-5 "
            f"{100 * metrics.get('video_acc_top5', float('nan')):.2f}% ({int(metrics['num_videos'])} videos): {out}"
        )
        return metrics
    if not cfg.get("ckpt_path"):
        raise ConfigError(
            "nothing to evaluate: give ckpt_path=<run>/checkpoints/last.ckpt, or "
            "weights=<file.pt> model=<name> data=<name>"
        )
    if not cfg.get("fuse_with"):
        metrics = evaluate_checkpoint(cfg, cfg.ckpt_path, out, cfg.get("train_config"))
        if not is_rank_zero():
            return {}
        save_json(out / "metrics.json", metrics)
        print(f"video-level top-1 {100 * metrics['video_acc_top1']:.2f}% ({int(metrics['num_videos'])} videos): {out}")
        return metrics
    return evaluate_fused(cfg, out)
