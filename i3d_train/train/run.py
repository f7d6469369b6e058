"""``train(cfg)``: instantiate data, model, callbacks and loggers from the config, fit, test, report.

``train.py`` is a thin Hydra entry point around this; tests compose the same config and call it
in-process.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from i3d_train.data.ucf101 import DatasetFormatError
from i3d_train.engine.checkpoint_io import AtomicCheckpointIO
from i3d_train.engine.dashboards import define_best_metrics, flat_config
from i3d_train.engine.loggers import finish_failed_wandb_run, wandb_loggers
from i3d_train.engine.predictions import PredictionWriter
from i3d_train.engine.run_config import fingerprints, run_title
from i3d_train.engine.trainer_options import trainer_config
from i3d_train.errors import ConfigError
from i3d_train.runtime.atomic import atomic_path, write_json, write_text
from i3d_train.runtime.distributed import is_rank_zero, quiet_other_ranks
from i3d_train.runtime.wandb_mode import wandb_offline_unless_logged_in
from i3d_train.train.resume import move_log_file, remove_stub, resolve_ckpt_path
from i3d_train.train.transfer import ProtocolError, apply_protocol
from i3d_train.weights.imagenet import ImageNetWeightsError, init_from_imagenet
from i3d_train.weights.safe_pickle import UnsafePickleError

log = logging.getLogger(__name__)


def _instantiate_dict(cfg: DictConfig | None) -> list[Any]:
    out: list[Any] = []
    for _, c in (cfg or {}).items():
        if isinstance(c, DictConfig) and "_target_" in c:
            out.append(hydra.utils.instantiate(c))
    return out


def count_parameters(module: torch.nn.Module) -> tuple[int, int]:
    """(total, trainable) parameter counts."""
    total = sum(p.numel() for p in module.parameters())
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return total, trainable


def _summary(metrics: dict[str, Any]) -> str:
    lines = [
        "",
        "=" * 64,
        f"  {metrics['model']} on {metrics['data']} (split {metrics['split']}), protocol {metrics['protocol']}",
    ]
    for stage in ("val", "test"):
        m = metrics.get(stage) or {}
        streams = [s for s in ("rgb", "flow", "fused") if f"{s}/video_acc_top1" in m]
        for s in streams or [""]:
            p = f"{s}/" if s else ""
            if f"{p}video_acc_top1" not in m:
                continue
            lines.append(
                f"  {stage:<4} {s:<5} video-level top-1 {100 * m[p + 'video_acc_top1']:6.2f}%   "
                f"top-5 {100 * m.get(p + 'video_acc_top5', float('nan')):6.2f}%   "
                f"mean class {100 * m[p + 'video_mean_class_acc']:6.2f}%   ({int(m[p + 'num_videos'])} videos)"
            )
    if metrics.get("val_source"):
        lines.append(f"  val from   {metrics['val_source']}: {metrics.get('val_rule', '')}")
    lines += [
        f"  parameters {metrics['params_total']:,} ({metrics['params_trainable']:,} trainable)",
        f"  run time {metrics['run_time_s']:.0f} s   best checkpoint {metrics['best_ckpt']}",
        f"  metrics: {metrics['output_dir']}/metrics.json",
        "=" * 64,
    ]
    return "\n".join(lines)


def _stage_metrics(trainer: pl.Trainer, stage: str) -> dict[str, float]:
    """The ``<stage>/...`` metrics Lightning kept (also under ddp_spawn, where the module's are lost)."""
    prefix = f"{stage}/"
    return {k[len(prefix) :]: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(prefix)}


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit, then test the best checkpoint; write ``metrics.json`` into ``cfg.paths.output_dir``.

    The effective config (``config.yaml``) and its fingerprint are written first, so a crashed run
    can be found and resumed (``ckpt_path=last``). Returns the metrics dict that was written.
    """
    start = time.time()
    quiet_other_ranks()
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(cfg.seed, workers=True)
    ours = fingerprints(cfg, out_dir)  # (this layout's, the old flat layout's: runs made before the move)
    fingerprint = ours[0]
    ckpt_path = resolve_ckpt_path(cfg, out_dir, ours)
    if ckpt_path and (cfg.get("ckpt_path") == "last" or cfg.get("resume")):
        # Continue in the interrupted run's folder: its checkpoints, best-checkpoint bookkeeping,
        # metrics.csv (appended) and train.log (this session's log moves there, and this invocation's
        # own Hydra folder is removed at the end).
        stub, out_dir = out_dir, Path(ckpt_path).parent.parent
        with open_dict(cfg):
            cfg.paths.output_dir = str(out_dir)
        log.info("resume: writing into %s", out_dir)
        if is_rank_zero():
            move_log_file(stub, out_dir)
    else:
        stub = None
    if is_rank_zero():
        with atomic_path(out_dir / "config.yaml") as tmp:
            OmegaConf.save(cfg, tmp, resolve=True)
        write_text(out_dir / "fingerprint.txt", fingerprint + "\n")

    if "wandb" in (cfg.get("logger") or {}):
        wandb_offline_unless_logged_in()

    log.info("data: %s at %s", cfg.data.name, cfg.data.root)
    # Lightning calls prepare_data (data generation, flow extraction) in one process per node, then
    # setup in every process, once they are all past a barrier.
    datamodule: pl.LightningDataModule = hydra.utils.instantiate(cfg.data, _convert_="object")

    net = hydra.utils.instantiate(cfg.model.net)
    try:
        if cfg.model.get("imagenet_weights"):
            parts = init_from_imagenet(net, cfg.model.imagenet_weights)
            log.info("ImageNet Inception-V1 weights %s loaded into: %s", cfg.model.imagenet_weights, parts)
        init = cfg.protocol.get("init_weights")
        init = OmegaConf.to_container(init) if isinstance(init, DictConfig) else init
        keep = bool(cfg.protocol.get("keep_classifier", False))
        classes = datamodule.classes if keep else None
        apply_protocol(net, cfg.protocol.name, init, cfg.model.modality, keep, classes, cfg.model.name)
    except (ProtocolError, ImageNetWeightsError, DatasetFormatError, UnsafePickleError) as e:
        raise ConfigError(str(e)) from None
    module: pl.LightningModule = hydra.utils.instantiate(cfg.module, net=net)
    total, trainable = count_parameters(module.net)
    log.info("model: %s, %s parameters (%s trainable)", cfg.model.name, f"{total:,}", f"{trainable:,}")

    callbacks = _instantiate_dict(cfg.get("callbacks"))
    wandb_options = OmegaConf.to_container(cfg.get("wandb_options") or OmegaConf.create({}))
    if cfg.get("test"):  # predictions.csv, scores and plots of the test run in the run folder
        callbacks.append(PredictionWriter(out_dir, run_title(cfg), wandb_options))
    loggers = _instantiate_dict(cfg.get("logger"))
    trainer: pl.Trainer = hydra.utils.instantiate(
        trainer_config(cfg.trainer, module.net),
        callbacks=callbacks,
        logger=loggers or False,
        plugins=[AtomicCheckpointIO()],
    )
    try:
        for lg in loggers:
            if lg in wandb_loggers(loggers):  # the config at the top level: the run table groups by model.name, ...
                lg.log_hyperparams(
                    {
                        **flat_config(OmegaConf.to_container(cfg, resolve=True)),
                        "params_total": total,
                        "params_trainable": trainable,
                    }  # fmt: skip
                )
                if trainer.is_global_zero:
                    define_best_metrics(lg)
                    if wandb_options.get("watch"):  # gradient and parameter histograms (off by default)
                        lg.watch(module.net, log=wandb_options.get("watch_log", "all"),
                                 log_freq=int(wandb_options.get("watch_freq", 100)))  # fmt: skip
                continue
            lg.log_hyperparams(
                {"cfg": OmegaConf.to_container(cfg, resolve=True), "params_total": total, "params_trainable": trainable}
            )
        try:
            metrics = _fit_and_test(cfg, trainer, module, datamodule, ckpt_path, out_dir, start, total, trainable)
        except DatasetFormatError as e:
            raise ConfigError(str(e)) from None
    except BaseException:
        if wandb_loggers(loggers) and trainer.is_global_zero:
            finish_failed_wandb_run()  # a crashed run of a sweep still closes its W&B run (marked failed)
        raise
    if trainer.is_global_zero:  # the other processes' logger experiments are placeholders
        for lg in wandb_loggers(loggers):
            lg.experiment.summary.update({f"final/{k}": v for k, v in metrics.items() if not isinstance(v, dict)})
            for stage in ("val", "test"):
                lg.experiment.summary.update({f"final/{stage}/{k}": v for k, v in metrics[stage].items()})
            lg.experiment.finish()  # each run of a multirun gets its own W&B run
        if stub is not None:
            remove_stub(stub)
    return metrics


def _fit_and_test(cfg, trainer, module, datamodule, ckpt_path, out_dir, start, total, trainable) -> dict[str, Any]:
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    val = _stage_metrics(trainer, "val")
    skipped = max(module.skipped_videos, int(_stage_metrics(trainer, "train").get("skipped_videos", 0)))

    ckpt_cb = trainer.checkpoint_callback
    best = getattr(ckpt_cb, "best_model_path", "") or ""
    test: dict[str, float] = {}
    if cfg.get("test"):
        fast = bool(cfg.trainer.get("fast_dev_run"))
        trainer.test(module, datamodule=datamodule, ckpt_path=None if fast or not best else best)
        test = _stage_metrics(trainer, "test")

    metrics = {
        "model": cfg.model.name,
        "data": cfg.data.name,
        "split": int(cfg.data.split),
        "protocol": cfg.protocol.name,
        "modality": cfg.model.modality,
        "val": val,
        "test": test,
        "best_ckpt": best,
        "last_ckpt": str(out_dir / "checkpoints" / "last.ckpt") if best else "",
        "resumed_from": ckpt_path or "",
        "params_total": total,
        "params_trainable": trainable,
        "epochs": trainer.current_epoch,
        "run_time_s": round(time.time() - start, 1),
        "output_dir": str(out_dir),
        "skipped_videos": skipped,  # whole run (one process); per epoch: train/skipped_videos
        **getattr(datamodule, "val_info", {}),  # val_source (held_out | test) and how val was formed
    }
    if trainer.is_global_zero:
        write_json(out_dir / "metrics.json", metrics)
        print(_summary(metrics))
    return metrics
