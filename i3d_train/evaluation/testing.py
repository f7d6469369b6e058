"""Testing one model on the test (or validation) list and writing its outputs, for every kind of
evaluation: a run's checkpoint (:func:`evaluate_checkpoint`), released weights
(:mod:`i3d_train.evaluation.weights`) and the two runs of a late fusion (:mod:`i3d_train.evaluation.fusion`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
import numpy as np
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf, open_dict

from i3d_train.data.splits import DatasetFormatError
from i3d_train.engine.checkpoint_io import check_checkpoint
from i3d_train.engine.dashboards import flat_config
from i3d_train.engine.predictions import PredictionWriter, metrics_of, read_predictions
from i3d_train.engine.run_config import load_run_config, run_title
from i3d_train.engine.trainer_options import to_channels_last, trainer_config
from i3d_train.errors import ConfigError
from i3d_train.inference.fast import fold_batchnorm
from i3d_train.runtime.wandb_mode import wandb_offline_unless_logged_in
from i3d_train.weights.safe_pickle import load_torch_file


def test_datamodule(cfg: DictConfig, data: DictConfig) -> pl.LightningDataModule:
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
        datamodule.test_set = datamodule.dataset(
            datamodule.lists.validation, False, datamodule.test_sampler(), datamodule.test_crops
        )
    return datamodule


def eval_loggers(
    cfg: DictConfig, name: str, tags: list[str], out_dir: Path, group: str | None = None, config: dict | None = None
) -> list:
    """The W&B logger of an evaluation (``wandb=true``; job type ``eval``, grouped with the training runs
    of the same architecture and dataset), or none."""
    if not cfg.get("wandb"):
        return []
    from pytorch_lightning.loggers import WandbLogger

    wandb_offline_unless_logged_in()
    lg = WandbLogger(
        project="i3d-train", name=name, tags=[*tags, "eval"], save_dir=str(out_dir), job_type="eval", group=group
    )
    if config:
        lg.log_hyperparams(flat_config(config))
    return [lg]


def test_module(
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
    options = cfg.get("wandb_options")
    writer = PredictionWriter(out_dir, title, OmegaConf.to_container(options) if options is not None else None)
    if cfg.get("fast"):  # the fast inference path: weights loaded here, batch norm folded, channels_last_3d
        if ckpt_path:
            state = load_torch_file(ckpt_path)["state_dict"]
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


def evaluate_checkpoint(
    cfg: DictConfig, ckpt_path: str, out_dir: Path, train_config: str | None = None
) -> dict[str, Any]:
    """Test ``ckpt_path`` with its run's config (``cfg.data`` overrides applied); write outputs."""
    run = load_run_config(ckpt_path, train_config)
    check_checkpoint(ckpt_path)  # a file that would run code: one line, before anything is built
    with open_dict(run):
        for k, v in (cfg.get("data") or {}).items():
            if v is not None:
                run.data[k] = v
    datamodule = test_datamodule(cfg, run.data)
    net = hydra.utils.instantiate(run.model.net)
    module = hydra.utils.instantiate(run.module, net=net)
    title = f"{run_title(run)} ({Path(ckpt_path).name})"
    loggers = eval_loggers(
        cfg,
        f"eval-{run.model.name}-{run.data.name}-{run.protocol.name}-split{run.data.split}",
        list(run.get("tags", [])),
        out_dir,
        group=f"{run.model.name}-{run.data.name}",
        config={**OmegaConf.to_container(run, resolve=True), "checkpoint": str(ckpt_path)},
    )
    metrics = test_module(cfg, module, datamodule, out_dir, title, loggers, ckpt_path)
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
