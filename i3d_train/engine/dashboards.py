"""What a W&B run holds beyond the scalars: test results as W&B objects, and the run's metadata.

After a test (``train.py ... logger=wandb``, ``eval.py ... wandb=true``, fused and released-weights
evaluations too), :func:`log_test_results` logs, under ``<stage>/``:

- ``confusion_matrix``: W&B's interactive confusion matrix (its ``wandb/confusion_matrix/v1`` chart,
  the one ``wandb.plot.confusion_matrix`` draws) on a table of the non-zero cells only (``Actual``,
  ``Predicted``, ``nPredictions``; UCF-101's 101 x 101 full grid would pass W&B's 10,000-row limit);
- ``per_class_accuracy``: a table (class, videos, correct, accuracy) and its bar chart;
- ``predictions``: one row per video, the columns of ``predictions.csv`` (video, true class, predicted
  class, right or not, score, top-5 with scores); over 10,000 videos (Kinetics-400) it goes into a run
  artifact ``predictions-<run>`` instead, which has no such limit;
- ``clips``: for ``wandb_options.clips`` videos, the most confident errors first (then the least
  confident right answers), a playable MP4 of the frames the model saw (the first test view, reduced
  to ``clip_size`` pixels, at most ``clip_frames`` frames), with the video's row; and
  ``clip_videos``: the same clips as a media panel (captions: video, true -> predicted class, score).

The PNGs (``confusion_matrix.png``, ``per_class_accuracy.png``) are still written to the run folder and
logged as images. All of it is logged once, after the test: nothing per step.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from i3d_train.video.writer import write_video

log = logging.getLogger(__name__)

PREDICTION_COLUMNS = ["video_id", "label", "label_name", "pred", "pred_name", "correct", "score", "top5"]
# best-value summaries of the run table and sweeps (W&B's define_metric)
BEST = {"val/video_acc_top1": "max", "val/acc_top1": "max", "val/loss": "min", "train/loss": "min"}


def prediction_rows(video_ids: list[str], labels: np.ndarray, scores: np.ndarray, classes: list[str]) -> list[list]:
    """The rows of ``predictions.csv`` (same values, same rounding of the scores)."""
    k = min(5, scores.shape[1])
    top = np.argsort(-scores, axis=1)[:, :k]
    rows = []
    for vid, y, s, t in zip(video_ids, labels.tolist(), scores, top, strict=True):
        pred = int(t[0])
        rows.append(
            [
                vid,
                int(y),
                classes[y] if y >= 0 else "",
                pred,
                classes[pred],
                int(pred == y),
                f"{s[pred]:.6f}",
                "|".join(f"{classes[c]}:{s[c]:.6f}" for c in t),
            ]
        )
    return rows


def confusion_cells(labels: np.ndarray, preds: np.ndarray, classes: list[str]) -> list[list]:
    """``[true class, predicted class, count]`` for every non-zero cell, in class order."""
    n = len(classes)
    counts = np.zeros((n, n), dtype=np.int64)
    np.add.at(counts, (labels, preds), 1)
    return [[classes[i], classes[j], int(counts[i, j])] for i, j in zip(*np.nonzero(counts), strict=True)]


def per_class_rows(labels: np.ndarray, preds: np.ndarray, classes: list[str]) -> list[list]:
    """``[class, videos, correct, accuracy]`` for every class with test videos."""
    rows = []
    for c, name in enumerate(classes):
        mask = labels == c
        if mask.any():
            right = int((preds[mask] == c).sum())
            rows.append([name, int(mask.sum()), right, round(right / int(mask.sum()), 6)])
    return rows


def clip_order(labels: np.ndarray, scores: np.ndarray) -> list[int]:
    """Row indices for the clips table: errors by decreasing confidence, then right answers by
    increasing confidence (the near misses)."""
    preds = scores.argmax(1)
    conf = scores[np.arange(len(preds)), preds]
    wrong = [int(i) for i in np.argsort(-conf, kind="stable") if preds[i] != labels[i]]
    right = [int(i) for i in np.argsort(conf, kind="stable") if preds[i] == labels[i]]
    return wrong + right


def clip_frames(sample: dict[str, torch.Tensor], max_frames: int, size: int) -> np.ndarray:
    """``uint8 (T, h, w, 3)`` of what the model saw: the RGB input (``[-1, 1]``), or flow drawn as an
    image (x in red, y in green, around grey), first view, reduced to ``size`` pixels on its long side."""
    if "rgb" in sample:
        x = sample["rgb"]
    else:
        f = sample["flow"]
        x = torch.cat([f, torch.zeros_like(f[:1])], 0)  # 2 channels -> 3
    if x.dim() == 5:  # (K, C, T, H, W): several clips of one video, the first
        x = x[0]
    x = x[:, :max_frames].float()  # C, T, H, W
    c, t, h, w = x.shape
    scale = size / max(h, w)
    if scale < 1:
        hw = (max(2, round(h * scale) // 2 * 2), max(2, round(w * scale) // 2 * 2))
        x = torch.nn.functional.interpolate(x.permute(1, 0, 2, 3), size=hw, mode="area").permute(1, 0, 2, 3)
    img = ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 3, 0).contiguous()  # T, h, w, 3
    h2, w2 = img.shape[1] // 2 * 2, img.shape[2] // 2 * 2  # H.264 wants even sizes
    return img[:, :h2, :w2].numpy()


def safe_name(video_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(Path(video_id).with_suffix("")))[-120:]


def write_clips(
    folder: Path, dataset, order: list[int], video_index: list[int], count: int, frames: int, size: int, fps: float
) -> dict[int, Path]:
    """MP4 clips of the first ``count`` rows of ``order`` (row -> file), from ``dataset`` (a
    :class:`i3d_train.data.dataset.VideoDataset`); a video that no longer decodes is left out."""
    import random

    out: dict[int, Path] = {}
    for row in order[:count]:
        vi = video_index[row]
        try:
            sample = dataset.load(vi, 0, random.Random(0))
        except Exception as e:  # noqa: BLE001 - one unreadable video leaves its row without a clip
            log.warning("no clip for %s: %s", dataset.items[vi].video_id, e)
            continue
        path = folder / f"{len(out):03d}_{safe_name(dataset.items[vi].video_id)}.mp4"
        write_video(path, clip_frames(sample, frames, size), max(1, round(fps)))
        out[row] = path
    return out


def log_test_results(
    logger: Any,
    stage: str,
    video_ids: list[str],
    labels: np.ndarray,
    scores: np.ndarray,
    classes: list[str],
    clips: dict[int, Path] | None = None,
    title: str = "",
) -> list[str]:
    """Log the test results of one run to a Lightning ``WandbLogger``'s run; returns the keys logged."""
    import wandb

    run = logger.experiment
    preds = scores.argmax(1)
    cm = wandb.Table(columns=["Actual", "Predicted", "nPredictions"], data=confusion_cells(labels, preds, classes))
    per_class = wandb.Table(
        columns=["class", "videos", "correct", "accuracy"], data=per_class_rows(labels, preds, classes)
    )
    rows = prediction_rows(video_ids, labels, scores, classes)
    logged = {
        f"{stage}/confusion_matrix": wandb.plot.plot_table(
            "wandb/confusion_matrix/v1",
            cm,
            {"Actual": "Actual", "Predicted": "Predicted", "nPredictions": "nPredictions"},
            {"title": f"Confusion matrix {title}".strip()},
        ),
        f"{stage}/per_class_accuracy": wandb.plot.bar(
            per_class, "class", "accuracy", title=f"Per-class accuracy {title}".strip()
        ),
    }
    table = wandb.Table(columns=PREDICTION_COLUMNS, data=rows)
    if len(rows) <= wandb.Table.MAX_ROWS:
        logged[f"{stage}/predictions"] = table
    else:  # a run table would be cut at MAX_ROWS rows: an artifact holds them all
        art = wandb.Artifact(f"predictions-{run.id}", type="predictions")
        art.add(table, f"{stage}_predictions")
        run.log_artifact(art)
    if clips:
        t = wandb.Table(columns=[*PREDICTION_COLUMNS, "clip"])
        videos = []
        for row, path in clips.items():
            t.add_data(*rows[row], wandb.Video(str(path), format="mp4"))
            vid, _, name, _, pred, right, score, _ = rows[row]
            caption = f"{vid}: {name} -> {pred} ({score}){'' if right else ', wrong'}"
            videos.append(wandb.Video(str(path), caption=caption, format="mp4"))
        logged[f"{stage}/clips"] = t  # the table with a clip column (its media live in the run's table artifact)
        logged[f"{stage}/clip_videos"] = videos  # the same clips as a media panel, in the table's order
    run.log(logged)
    return list(logged)


def define_best_metrics(logger: Any) -> None:
    """Best-value summaries (max val accuracy, min val loss) in the run table and sweep views."""
    run = logger.experiment
    for key, how in BEST.items():
        run.define_metric(key, summary=how)


def flat_config(cfg: dict) -> dict:
    """The run's config as W&B gets it: the resolved config at the top level (so the run table groups by
    ``model.name``, ``protocol.name``, ``data.name``, ``data.split``), plus ``split`` and ``job``."""
    out = dict(cfg)
    out["split"] = (cfg.get("data") or {}).get("split")
    return out
