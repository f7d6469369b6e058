"""Video-level evaluation outputs: ``predictions.csv``, scores, plots, and late fusion of two runs.

``PredictionWriter`` (a Lightning callback, used by ``train.py`` after testing and by ``eval.py``)
writes, on the main process, once per test run:

- ``predictions.csv``: one row per test video: ``video_id, label, label_name, pred, pred_name,
  correct, score`` (the predicted class's averaged softmax score) and ``top5`` (``name:score`` pairs
  separated by ``|``);
- ``scores.npy``: the averaged softmax scores ``(videos, classes)`` in the rows' order (and
  ``scores_<stream>.npy`` per stream for two-stream models), what fusion reads; ``classes.txt``;
- ``confusion_matrix.png`` and ``per_class_accuracy.png``; with a W&B logger, also the W&B objects of
  :mod:`i3d_train.engine.dashboards` (interactive confusion matrix, tables, clips in ``clips/``).

Video-level scores are the softmax scores of all of a video's clips (x crops) averaged; each video
counts once whatever the number of processes (see ``i3d_train.engine.classifier``).
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch

from i3d_train.engine.dashboards import PREDICTION_COLUMNS, clip_order, log_test_results, prediction_rows, write_clips
from i3d_train.engine.metrics import video_metrics
from i3d_train.runtime.atomic import atomic_path, write_json, write_text

log = logging.getLogger(__name__)


def write_predictions(
    path: Path, video_ids: list[str], labels: np.ndarray, scores: np.ndarray, classes: list[str]
) -> None:
    """``predictions.csv`` (see the module doc) and ``scores.npy`` beside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(PREDICTION_COLUMNS)
        w.writerows(prediction_rows(video_ids, labels, scores, classes))
    save_npy(path.with_name(path.stem.replace("predictions", "scores") + ".npy"), scores.astype(np.float32))
    write_text(path.with_name("classes.txt"), "\n".join(classes) + "\n")


def read_classes(predictions: str | Path) -> list[str]:
    """The class names written beside a ``predictions.csv`` (``classes.txt``, in score order)."""
    return Path(predictions).with_name("classes.txt").read_text().splitlines()


def read_predictions(path: str | Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(video_ids, labels, scores)`` from a ``predictions.csv`` and its ``scores.npy``."""
    path = Path(path)
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    scores = np.load(path.with_name(path.stem.replace("predictions", "scores") + ".npy"))
    return [r["video_id"] for r in rows], np.array([int(r["label"]) for r in rows]), scores


def fuse_predictions(
    a: tuple[list[str], np.ndarray, np.ndarray], b: tuple[list[str], np.ndarray, np.ndarray]
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Late fusion of two prediction sets: per video (matched by id), the mean of the two softmax
    score vectors. Videos present in only one set are left out (and logged)."""
    ids_a, labels_a, scores_a = a
    index_b = {v: i for i, v in enumerate(b[0])}
    common = [i for i, v in enumerate(ids_a) if v in index_b]
    if len(common) < max(len(ids_a), len(b[0])):
        log.warning("fusion: %d videos in both prediction sets (%d and %d)", len(common), len(ids_a), len(b[0]))
    rows_b = [index_b[ids_a[i]] for i in common]
    if not np.array_equal(labels_a[common], b[1][rows_b]):
        raise ValueError("fusion: the two prediction sets disagree on labels; were they made on the same split?")
    fused = (scores_a[common] + b[2][rows_b]) / 2
    return [ids_a[i] for i in common], labels_a[common], fused


def metrics_of(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    return video_metrics(torch.from_numpy(scores), torch.from_numpy(labels), scores.shape[1])


def plot_confusion(path: Path, labels: np.ndarray, scores: np.ndarray, classes: list[str], title: str) -> Path:
    """Row-normalised confusion matrix (true classes in rows) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = len(classes)
    cm = np.zeros((c, c))
    np.add.at(cm, (labels, scores.argmax(1)), 1)
    cm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    size = min(4 + 0.25 * c, 40)
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(cm, cmap="Blues", vmin=0, vmax=1)
    if c <= 60:
        ax.set_xticks(range(c), classes, rotation=90, fontsize=7)
        ax.set_yticks(range(c), classes, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    save_figure(fig, path)
    return path


def plot_per_class(path: Path, labels: np.ndarray, scores: np.ndarray, classes: list[str], title: str) -> Path:
    """Per-class video accuracy, sorted, as a bar chart PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pred = scores.argmax(1)
    acc = np.array([(pred[labels == i] == i).mean() if (labels == i).any() else np.nan for i in range(len(classes))])
    order = np.argsort(-np.nan_to_num(acc, nan=-1))
    fig, ax = plt.subplots(figsize=(min(4 + 0.2 * len(classes), 60), 4))
    ax.bar(range(len(classes)), np.nan_to_num(acc[order]), color="tab:blue")
    if len(classes) <= 120:
        ax.set_xticks(range(len(classes)), [classes[i] for i in order], rotation=90, fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_ylabel("video accuracy")
    ax.set_title(title)
    fig.tight_layout()
    save_figure(fig, path)
    return path


def write_outputs(
    out_dir: Path, video_ids: list[str], labels: np.ndarray, scores: np.ndarray, classes: list[str], title: str
) -> list[Path]:
    """predictions.csv + scores.npy + the two plots; returns the PNG paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_predictions(out_dir / "predictions.csv", video_ids, labels, scores, classes)
    return [
        plot_confusion(out_dir / "confusion_matrix.png", labels, scores, classes, title),
        plot_per_class(out_dir / "per_class_accuracy.png", labels, scores, classes, title),
    ]


class PredictionWriter(pl.Callback):
    """Writes the test predictions, scores and plots of a test run into ``out_dir`` (main process), and
    logs them to each W&B logger as W&B objects (:mod:`i3d_train.engine.dashboards`; ``wandb_options``:
    ``clips``, ``clip_frames``, ``clip_size``)."""

    def __init__(self, out_dir: str | Path, title: str = "", wandb_options: dict | None = None) -> None:
        self.out_dir = Path(out_dir)
        self.title = title
        self.written: list[Path] = []
        self.wandb_options = {"clips": 16, "clip_frames": 32, "clip_size": 112, **(wandb_options or {})}
        self.logged: list[str] = []

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        out = getattr(pl_module, "video_outputs", {}).get("test")
        if not trainer.is_global_zero or not out:
            return
        dm = trainer.datamodule
        ids = [dm.test_set.items[i].video_id for i in out["video_index"].tolist()]
        labels = out["label"].cpu().numpy()
        streams = {s: v.cpu().numpy() for s, v in out["scores"].items()}
        main = streams.get("fused", streams.get(""))
        pngs = write_outputs(self.out_dir, ids, labels, main, dm.classes, self.title)
        for s, v in streams.items():
            if s and s != "fused":
                save_npy(self.out_dir / f"scores_{s}.npy", v.astype(np.float32))
        self.written = [self.out_dir / "predictions.csv", *pngs]
        log.info("test predictions: %s", self.out_dir / "predictions.csv")
        wandb_loggers = [lg for lg in trainer.loggers if type(lg).__name__ == "WandbLogger"]
        if not wandb_loggers:
            return
        o = self.wandb_options
        order = clip_order(labels, main)
        vindex = out["video_index"].tolist()
        clips = write_clips(self.out_dir / "clips", dm.test_set, order, vindex, int(o["clips"]), int(o["clip_frames"]),
                            int(o["clip_size"]), float(dm.test_set.fps or 25.0))  # fmt: skip
        for lg in wandb_loggers:
            lg.log_image(key="test/confusion_matrix_png", images=[str(pngs[0])])
            lg.log_image(key="test/per_class_accuracy_png", images=[str(pngs[1])])
            self.logged = log_test_results(lg, "test", ids, labels, main, dm.classes, clips, self.title)


def save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path, keep_suffix=True) as tmp:
        np.save(tmp, array)


def save_figure(fig, path: Path) -> None:
    """A matplotlib figure as PNG, atomically; the figure is closed."""
    import matplotlib.pyplot as plt

    with atomic_path(path, keep_suffix=True) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def save_json(path: Path, obj: dict) -> None:
    write_json(path, obj)
