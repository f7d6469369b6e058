"""``evaluate(cfg)``: test a checkpoint with its run's config, or a state dict (released weights) with
named model and data configs; write predictions; fuse two runs.

With ``weights=``, the classifier's rows are matched to the dataset's classes by name
(``<weights>.labels.txt``, see ``i3d_train.labels_map``): the scores' columns are the dataset's classes
in its order, the softmax taken over those classes only.

Output folder (``paths.output_dir``):

- one checkpoint: ``predictions.csv``, ``scores.npy``, ``confusion_matrix.png``,
  ``per_class_accuracy.png``, ``metrics.json`` (video top-1 / top-5 / mean class accuracy,
  number of videos, the checkpoint, model, data, protocol and test protocol);
- with ``fuse_with``: the same for each checkpoint in ``<modality>/`` (``a/`` and ``b/`` when both
  have the same modality) and for their late fusion in ``fused/``; ``metrics.json`` holds all three.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import nn

from i3d_train.data.splits import DatasetFormatError
from i3d_train.distributed import is_rank_zero, quiet_other_ranks
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
from i3d_train.module import VideoClassifier
from i3d_train.pipeline import ConfigError, _wandb_offline_unless_logged_in, run_title
from i3d_train.precision import to_channels_last, trainer_config
from i3d_train.protocols import ProtocolError, load_init_state_dict, load_with_classifier

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


def _datamodule(cfg: DictConfig, data: DictConfig) -> pl.LightningDataModule:
    """The data module of ``data``, set up for testing on ``cfg.split``."""
    pl.seed_everything(cfg.seed, workers=True)
    if cfg.split != "val" and "val_source" in data:
        # the test list is all an evaluation reads: no held-out validation list is needed (a tiny tree
        # or a single group could not give one)
        data = OmegaConf.merge(data, {"val_source": "test"})
    try:
        datamodule = hydra.utils.instantiate(data, _convert_="object")
        datamodule.prepare_data()  # the synthetic set, flow configured to be extracted when missing
        datamodule.setup("test")
    except DatasetFormatError as e:
        raise ConfigError(str(e)) from None
    if cfg.split == "val":  # the validation list, with the test protocol
        datamodule.test_set = datamodule._dataset(
            datamodule.lists.validation, False, datamodule.test_sampler(), datamodule.test_crops
        )
    return datamodule


def _wandb_loggers(cfg: DictConfig, name: str, tags: list[str], out_dir: Path) -> list:
    if not cfg.get("wandb"):
        return []
    from pytorch_lightning.loggers import WandbLogger

    _wandb_offline_unless_logged_in()
    return [WandbLogger(project="i3d-train", name=name, tags=[*tags, "eval"], save_dir=str(out_dir), job_type="eval")]


def _test(
    cfg: DictConfig,
    module: pl.LightningModule,
    datamodule: pl.LightningDataModule,
    out_dir: Path,
    title: str,
    loggers: list,
    ckpt_path: str | None = None,
) -> dict[str, Any]:
    """Test ``module`` (its weights from ``ckpt_path``, or already loaded); write the outputs; the
    metrics recomputed from the written predictions (so they are the same with ddp_spawn)."""
    writer = PredictionWriter(out_dir, title)
    if cfg.get("fast"):  # the fast inference path: weights loaded here, batch norm folded, channels_last_3d
        if ckpt_path:
            state = torch.load(ckpt_path, map_location="cpu", weights_only=False)["state_dict"]
            module.load_state_dict(state, strict=True)
        module.net = to_channels_last(fold_batchnorm(module.net))  # 3D weights only: 2D models too
        module.channels_last = True
    trainer_cfg = trainer_config(cfg.trainer, module.net)  # precision=auto resolved, compile applied
    trainer = pl.Trainer(
        **OmegaConf.to_container(trainer_cfg),
        logger=loggers or False,
        callbacks=[writer],
        enable_checkpointing=False,
        enable_progress_bar=False,
    )
    if cfg.get("fast"):
        trainer.test(module, datamodule=datamodule, verbose=False)
    else:
        trainer.test(module, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)
    if not trainer.is_global_zero:  # rank 0 wrote the predictions; only it reads them and reports
        return {}
    ids, labels, scores = read_predictions(out_dir / "predictions.csv")
    metrics: dict[str, Any] = metrics_of(labels, scores)
    for stream in ("rgb", "flow"):  # two-stream models: each stream's own numbers too
        if (out_dir / f"scores_{stream}.npy").is_file():
            metrics[stream] = metrics_of(labels, np.load(out_dir / f"scores_{stream}.npy"))
    metrics.update(
        {
            "eval_split": cfg.split,
            "test_protocol": datamodule.test_protocol,
            "test_clips": datamodule.test_sampler().num_clips,
            "test_crops": datamodule.test_crops,
            "fast": bool(cfg.get("fast")),
            "precision": str(trainer_cfg.precision),
        }
    )
    return metrics


def evaluate_one(cfg: DictConfig, ckpt_path: str, out_dir: Path, train_config: str | None = None) -> dict[str, Any]:
    """Test ``ckpt_path`` with its run's config (``cfg.data`` overrides applied); write outputs."""
    run = load_run_config(ckpt_path, train_config)
    with open_dict(run):
        for k, v in (cfg.get("data") or {}).items():
            if v is not None:
                run.data[k] = v
    datamodule = _datamodule(cfg, run.data)
    net = hydra.utils.instantiate(run.model.net)
    module = hydra.utils.instantiate(run.module, net=net)
    title = f"{run_title(run)} ({Path(ckpt_path).name})"
    loggers = _wandb_loggers(
        cfg,
        f"eval-{run.model.name}-{run.data.name}-{run.protocol.name}-split{run.data.split}",
        list(run.get("tags", [])),
        out_dir,
    )
    metrics = _test(cfg, module, datamodule, out_dir, title, loggers, ckpt_path)
    if not metrics:  # another rank than 0 under DDP: its loggers are placeholders, rank 0 reports
        return {}
    metrics = {
        **metrics,
        "checkpoint": str(ckpt_path),
        "model": run.model.name,
        "modality": run.model.modality,
        "data": run.data.name,
        "split": int(run.data.split),
        "protocol": run.protocol.name,
    }
    for lg in loggers:
        lg.experiment.summary.update({f"eval/{k}": v for k, v in metrics.items()})
        lg.experiment.finish()
    return metrics


def given_weights(cfg: DictConfig) -> str | dict[str, str] | None:
    """``weights=<file>``, or ``{stream: file}`` from ``weights.rgb=`` / ``weights.flow=``; None if unset."""
    w = cfg.get("weights")
    if isinstance(w, DictConfig):
        w = {k: str(v) for k, v in w.items() if v}
    return w or None


def stream_nets(net: nn.Module, modality: str) -> dict[str, nn.Module]:
    """``{modality: net}`` of a single-stream net, or a multi-stream net's streams."""
    streams = getattr(net, "streams", None)
    return dict(streams.items()) if isinstance(streams, nn.ModuleDict) else {modality: net}


def load_weights(
    net: nn.Module, weights: str | dict[str, str], modality: str, classes: list[str]
) -> dict[str, dict[str, str]]:
    """Load ``weights`` into ``net`` (each stream its own file), classifiers matched to ``classes``.

    Returns ``{stream: {"weights": file, "classes": "by name" | "assumed"}}``.
    """
    loaded = {}
    streams = stream_nets(net, modality)
    for m, stream in streams.items():
        if isinstance(weights, str):
            path = weights.replace("{modality}", m)
        elif m in weights:
            path = weights[m]
        else:
            raise ConfigError(
                f"weights.{m}= is not set: the model's streams are {', '.join(streams)}, the weights name "
                f"{', '.join(weights)}"
            )
        try:  # a missing file: the error names the `download` command that makes it
            how = load_with_classifier(stream, load_init_state_dict(path, m or None), classes, path)
        except ProtocolError as e:
            raise ConfigError(str(e)) from None
        except (pickle.UnpicklingError, RuntimeError, EOFError) as e:
            raise ConfigError(f"weights {path}: not a state dict or checkpoint torch can load ({e})") from None
        log.info("%s: %s weights %s, classes %s", m, type(stream).__name__, path, how)
        loaded[m] = {"weights": str(path), "classes": how}
    return loaded


def evaluate_weights(cfg: DictConfig, weights: str | dict[str, str], out_dir: Path) -> dict[str, Any]:
    """Test a state dict without a run folder: ``cfg.model`` and ``cfg.data`` are the named configs."""
    if cfg.get("model") is None or cfg.data.get("_target_") is None:
        raise ConfigError(
            "weights= needs the model and the data it is evaluated on: "
            "python eval.py weights=<file.pt> model=<name> data=<name> [data.root=<folder>]"
        )
    if cfg.get("fuse_with"):
        raise ConfigError(
            "fuse_with= fuses two training runs (ckpt_path=); for two streams of weights use model=i3d_two_stream weights.rgb=... weights.flow=..."
        )
    datamodule = _datamodule(cfg, cfg.data)
    net = hydra.utils.instantiate(cfg.model.net)
    loaded = load_weights(net, weights, cfg.model.modality, datamodule.classes)
    module = VideoClassifier(
        net=net, num_classes=int(cfg.data.num_classes), modality=cfg.model.modality, optimizer=None
    )
    files = ", ".join(Path(v["weights"]).name for v in loaded.values())
    title = f"{cfg.model.name} ({cfg.model.modality}) on {cfg.data.name}: {files}"
    loggers = _wandb_loggers(
        cfg, f"eval-{cfg.model.name}-{cfg.data.name}-weights", [cfg.model.name, cfg.data.name], out_dir
    )
    metrics = _test(cfg, module, datamodule, out_dir, title, loggers)
    if not metrics:  # another rank than 0 under DDP: its loggers are placeholders, rank 0 reports
        return {}
    metrics = {
        **metrics,
        "weights": {m: v["weights"] for m, v in loaded.items()},
        "class_match": {m: v["classes"] for m, v in loaded.items()},
        "model": cfg.model.name,
        "modality": cfg.model.modality,
        "data": cfg.data.name,
        "data_root": str(cfg.data.root),
        "split": int(cfg.data.split),
        "protocol": "weights",
    }
    for lg in loggers:
        lg.experiment.summary.update({f"eval/{k}": v for k, v in metrics.items()})
        lg.experiment.finish()
    return metrics


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
        metrics = evaluate_one(cfg, cfg.ckpt_path, out, cfg.get("train_config"))
        if not is_rank_zero():
            return {}
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
    if not is_rank_zero():
        return {}
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
