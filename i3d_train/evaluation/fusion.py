"""Late fusion of two separately trained runs (``eval.py ckpt_path=<a> fuse_with=<b>``), as the paper
fuses its two streams: each run tested, then their softmax scores averaged per video.

Outputs: each run's in ``<modality>/`` (``a/`` and ``b/`` when both have the same modality), the
fusion's in ``fused/``, and ``metrics.json`` with all three.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from i3d_train.engine.dashboards import log_test_results
from i3d_train.engine.predictions import (
    fuse_predictions,
    metrics_of,
    read_classes,
    read_predictions,
    save_json,
    write_outputs,
)
from i3d_train.engine.run_config import load_run_config
from i3d_train.evaluation.testing import eval_loggers, evaluate_checkpoint
from i3d_train.runtime.distributed import is_rank_zero


def evaluate_fused(cfg: DictConfig, out: Path) -> dict[str, Any]:
    """Test ``cfg.ckpt_path`` and ``cfg.fuse_with``, fuse them; rank 0 writes and prints (others: ``{}``)."""
    first = load_run_config(cfg.ckpt_path, cfg.get("train_config")).model.modality
    second = load_run_config(cfg.fuse_with).model.modality
    names = (first, second) if first != second else ("a", "b")
    results = {
        names[0]: evaluate_checkpoint(cfg, cfg.ckpt_path, out / names[0], cfg.get("train_config")),
        names[1]: evaluate_checkpoint(cfg, cfg.fuse_with, out / names[1]),
    }
    if not is_rank_zero():
        return {}
    ids, labels, fused = fuse_predictions(
        read_predictions(out / names[0] / "predictions.csv"), read_predictions(out / names[1] / "predictions.csv")
    )
    classes = read_classes(out / names[0] / "predictions.csv")
    write_outputs(out / "fused", ids, labels, fused, classes, f"late fusion: {names[0]} + {names[1]}")
    results["fused"] = {**metrics_of(labels, fused), "of": list(names)}
    save_json(out / "metrics.json", results)
    for lg in eval_loggers(  # wandb=true: the fusion as a W&B run of its own, beside the two runs' own
        cfg,
        f"eval-fused-{names[0]}-{names[1]}",
        ["fused"],
        out / "fused",
        config={"fused": {"of": [str(cfg.ckpt_path), str(cfg.fuse_with)]}},
    ):
        log_test_results(lg, "fused", ids, labels, fused, classes, None, f"late fusion: {names[0]} + {names[1]}")
        lg.experiment.summary.update({f"eval/fused/{k}": v for k, v in results["fused"].items() if k != "of"})
        lg.experiment.finish()
    for name, m in results.items():
        print(f"{name:>6}: video-level top-1 {100 * m['video_acc_top1']:.2f}% ({int(m['num_videos'])} videos)")
    print(f"outputs: {out}")
    return results
