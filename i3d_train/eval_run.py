"""``evaluate(cfg)``: test a checkpoint with its run's config, write predictions, fuse two runs.

Output folder (``paths.output_dir``):

- one checkpoint: ``predictions.csv``, ``scores.npy``, ``confusion_matrix.png``,
  ``per_class_accuracy.png``, ``metrics.json`` (video top-1 / top-5 / mean class accuracy,
  number of videos, the checkpoint, model, data, protocol and test protocol);
- with ``fuse_with``: the same for each checkpoint in ``<modality>/`` (``a/`` and ``b/`` when both
  have the same modality) and for their late fusion in ``fused/``; ``metrics.json`` holds all three.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from i3d_train.data.splits import DatasetFormatError
from i3d_train.evaluate import (
    PredictionWriter,
    fuse_predictions,
    metrics_of,
    read_classes,
    read_predictions,
    save_json,
    write_outputs,
)
from i3d_train.inference import fold_batchnorm
from i3d_train.pipeline import ConfigError, _wandb_offline_unless_logged_in, run_title

log = logging.getLogger(__name__)


def load_run_config(ckpt_path: str | Path, train_config: str | Path | None = None) -> DictConfig:
    """The ``config.yaml`` a training run saved beside its ``checkpoints/`` folder."""
    ckpt = Path(ckpt_path)
    if not ckpt.is_file():
        raise ConfigError(f"checkpoint {ckpt} not found")
    candidates = (
        [Path(train_config)] if train_config else [ckpt.parent.parent / "config.yaml", ckpt.parent / "config.yaml"]
    )
    for c in candidates:
        if c.is_file():
            return OmegaConf.load(c)
    raise ConfigError(f"no config.yaml for {ckpt} (looked in {', '.join(map(str, candidates))}); set train_config=")


def evaluate_one(cfg: DictConfig, ckpt_path: str, out_dir: Path, train_config: str | None = None) -> dict[str, Any]:
    """Test ``ckpt_path`` with its run's config (``cfg.data`` overrides applied); write outputs."""
    run = load_run_config(ckpt_path, train_config)
    with open_dict(run):
        for k, v in (cfg.get("data") or {}).items():
            if v is not None:
                run.data[k] = v
    pl.seed_everything(cfg.seed, workers=True)
    try:
        datamodule = hydra.utils.instantiate(run.data, _convert_="object")
        datamodule.setup("test")
    except DatasetFormatError as e:
        raise ConfigError(str(e)) from None
    if cfg.split == "val":  # the validation list, with the test protocol
        datamodule.test_set = datamodule._dataset(
            datamodule.lists.validation, False, datamodule.test_sampler(), datamodule.test_crops
        )
    net = hydra.utils.instantiate(run.model.net)
    module = hydra.utils.instantiate(run.module, net=net)
    title = f"{run_title(run)} ({Path(ckpt_path).name})"
    loggers = []
    if cfg.get("wandb"):
        from pytorch_lightning.loggers import WandbLogger

        _wandb_offline_unless_logged_in()
        loggers.append(
            WandbLogger(
                project="i3d-train",
                name=f"eval-{run.model.name}-{run.data.name}-{run.protocol.name}-split{run.data.split}",
                tags=[*run.get("tags", []), "eval"],
                save_dir=str(out_dir),
                job_type="eval",
            )
        )
    writer = PredictionWriter(out_dir, title)
    trainer = pl.Trainer(
        **OmegaConf.to_container(cfg.trainer),
        logger=loggers or False,
        callbacks=[writer],
        enable_checkpointing=False,
        enable_progress_bar=False,
    )
    if cfg.get("fast"):  # the fast inference path: weights loaded here, batch norm folded, channels_last_3d
        state = torch.load(ckpt_path, map_location="cpu", weights_only=False)["state_dict"]
        module.load_state_dict(state, strict=True)
        module.net = fold_batchnorm(module.net).to(memory_format=torch.channels_last_3d)
        trainer.test(module, datamodule=datamodule, verbose=False)
    else:
        trainer.test(module, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)
    # Metrics are recomputed from the written predictions, so they are the same with ddp_spawn.
    ids, labels, scores = read_predictions(out_dir / "predictions.csv")
    metrics = {
        **metrics_of(labels, scores),
        "checkpoint": str(ckpt_path),
        "model": run.model.name,
        "modality": run.model.modality,
        "data": run.data.name,
        "split": int(run.data.split),
        "protocol": run.protocol.name,
        "eval_split": cfg.split,
        "test_protocol": datamodule.test_protocol,
        "test_clips": datamodule.test_sampler().num_clips,
        "test_crops": datamodule.test_crops,
        "fast": bool(cfg.get("fast")),
        "precision": str(cfg.trainer.precision),
    }
    for lg in loggers:
        lg.experiment.summary.update({f"eval/{k}": v for k, v in metrics.items()})
        lg.experiment.finish()
    return metrics


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    out = Path(cfg.paths.output_dir)
    if not cfg.get("fuse_with"):
        metrics = evaluate_one(cfg, cfg.ckpt_path, out, cfg.get("train_config"))
        save_json(out / "metrics.json", metrics)
        print(f"video-level top-1 {100 * metrics['video_acc_top1']:.2f}% ({int(metrics['num_videos'])} videos): {out}")
        return metrics
    first = load_run_config(cfg.ckpt_path, cfg.get("train_config")).model.modality
    second = load_run_config(cfg.fuse_with).model.modality
    names = (first, second) if first != second else ("a", "b")
    results = {
        names[0]: evaluate_one(cfg, cfg.ckpt_path, out / names[0], cfg.get("train_config")),
        names[1]: evaluate_one(cfg, cfg.fuse_with, out / names[1]),
    }
    ids, labels, fused = fuse_predictions(
        read_predictions(out / names[0] / "predictions.csv"), read_predictions(out / names[1] / "predictions.csv")
    )
    classes = read_classes(out / names[0] / "predictions.csv")
    write_outputs(out / "fused", ids, labels, fused, classes, f"late fusion: {names[0]} + {names[1]}")
    results["fused"] = {**metrics_of(labels, fused), "of": list(names)}
    save_json(out / "metrics.json", results)
    for name, m in results.items():
        print(f"{name:>6}: video-level top-1 {100 * m['video_acc_top1']:.2f}% ({int(m['num_videos'])} videos)")
    print(f"outputs: {out}")
    return results
