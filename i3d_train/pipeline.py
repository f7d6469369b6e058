"""``train(cfg)``: instantiate data, model, callbacks and loggers from the config, fit, test, report.

``train.py`` is a thin Hydra entry point around this; tests compose the same config and call it
in-process.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from i3d_train.checkpoint_io import AtomicCheckpointIO
from i3d_train.data.ucf101 import DatasetFormatError
from i3d_train.distributed import is_rank_zero, quiet_other_ranks
from i3d_train.errors import ConfigError  # noqa: F401 - re-exported: `from i3d_train.pipeline import ConfigError`
from i3d_train.evaluate import PredictionWriter
from i3d_train.models.inflate import ImageNetWeightsError, init_from_imagenet
from i3d_train.precision import trainer_config
from i3d_train.protocols import ProtocolError, apply_protocol

log = logging.getLogger(__name__)


def _instantiate_dict(cfg: DictConfig | None) -> list[Any]:
    out: list[Any] = []
    for _, c in (cfg or {}).items():
        if isinstance(c, DictConfig) and "_target_" in c:
            out.append(hydra.utils.instantiate(c))
    return out


def _wandb_offline_unless_logged_in() -> None:
    """W&B must never block on a login prompt or the network: without credentials, log offline."""
    if os.environ.get("WANDB_MODE") or os.environ.get("WANDB_API_KEY"):
        return
    if (Path.home() / ".netrc").is_file() and "api.wandb.ai" in (Path.home() / ".netrc").read_text(errors="ignore"):
        return
    os.environ["WANDB_MODE"] = "offline"
    log.info("W&B: no API key found, logging offline (upload later with `wandb sync`)")


def run_title(cfg: DictConfig) -> str:
    return f"{cfg.model.name} ({cfg.model.modality}) on {cfg.data.name} split {cfg.data.split}, protocol {cfg.protocol.name}"


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


def config_fingerprint(cfg: DictConfig, out_dir: Path) -> str:
    """What makes two runs "the same config" for ``ckpt_path=last``: the resolved config without the
    run's own folder and the resume settings."""
    c = OmegaConf.to_container(cfg, resolve=True)
    c.pop("ckpt_path", None)
    c.pop("resume", None)
    text = json.dumps(c, sort_keys=True, default=str).replace(str(out_dir), "<run>")
    return hashlib.sha1(text.encode()).hexdigest()


def find_resumable(cfg: DictConfig, out_dir: Path, fingerprint: str) -> Path | None:
    """``last.ckpt`` of the newest earlier run with the same config fingerprint under the log folder."""
    log_dir = Path(cfg.paths.log_dir) / cfg.get("task_name", "train")
    found = []
    for fp in log_dir.rglob("fingerprint.txt"):
        run = fp.parent
        last = run / "checkpoints" / "last.ckpt"
        if run.resolve() != out_dir.resolve() and last.is_file() and fp.read_text().strip() == fingerprint:
            found.append((last.stat().st_mtime, last))
    return max(found)[1] if found else None


def resolve_ckpt_path(cfg: DictConfig, out_dir: Path, fingerprint: str) -> str | None:
    ckpt = cfg.get("ckpt_path")
    if ckpt == "last" or cfg.get("resume"):
        last = find_resumable(cfg, out_dir, fingerprint)
        if last is None:
            log.warning("resume: no earlier run with this config has a last.ckpt; starting from scratch")
            return None
        log.info("resume: continuing from %s", last)
        return str(last)
    if ckpt and not Path(ckpt).is_file():
        raise ConfigError(
            f"ckpt_path={ckpt}: no such checkpoint (use ckpt_path=last to resume the newest same-config run)"
        )
    return ckpt


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
    fingerprint = config_fingerprint(cfg, out_dir)
    ckpt_path = resolve_ckpt_path(cfg, out_dir, fingerprint)
    if ckpt_path and (cfg.get("ckpt_path") == "last" or cfg.get("resume")):
        # Continue in the interrupted run's folder: its checkpoints, best-checkpoint bookkeeping,
        # metrics.csv (appended) and train.log (this session's log moves there, and this invocation's
        # own Hydra folder is removed at the end).
        stub, out_dir = out_dir, Path(ckpt_path).parent.parent
        with open_dict(cfg):
            cfg.paths.output_dir = str(out_dir)
        log.info("resume: writing into %s", out_dir)
        if is_rank_zero():
            _move_log_file(stub, out_dir)
    else:
        stub = None
    if is_rank_zero():
        OmegaConf.save(cfg, out_dir / "config.yaml", resolve=True)
        (out_dir / "fingerprint.txt").write_text(fingerprint + "\n")

    if "wandb" in (cfg.get("logger") or {}):
        _wandb_offline_unless_logged_in()

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
    except (ProtocolError, ImageNetWeightsError, DatasetFormatError) as e:
        raise ConfigError(str(e)) from None
    module: pl.LightningModule = hydra.utils.instantiate(cfg.module, net=net)
    total, trainable = count_parameters(module.net)
    log.info("model: %s, %s parameters (%s trainable)", cfg.model.name, f"{total:,}", f"{trainable:,}")

    callbacks = _instantiate_dict(cfg.get("callbacks"))
    if cfg.get("test"):  # predictions.csv, scores and plots of the test run in the run folder
        callbacks.append(PredictionWriter(out_dir, run_title(cfg)))
    loggers = _instantiate_dict(cfg.get("logger"))
    trainer: pl.Trainer = hydra.utils.instantiate(
        trainer_config(cfg.trainer, module.net),
        callbacks=callbacks,
        logger=loggers or False,
        plugins=[AtomicCheckpointIO()],
    )
    try:
        for lg in loggers:
            lg.log_hyperparams(
                {"cfg": OmegaConf.to_container(cfg, resolve=True), "params_total": total, "params_trainable": trainable}
            )
        try:
            metrics = _fit_and_test(cfg, trainer, module, datamodule, ckpt_path, out_dir, start, total, trainable)
        except DatasetFormatError as e:
            raise ConfigError(str(e)) from None
    except BaseException:
        for lg in _wandb_loggers(loggers):  # a crashed run of a sweep still closes its W&B run (marked failed)
            if lg._experiment is not None and trainer.is_global_zero:
                lg.experiment.finish(exit_code=1)
        raise
    if trainer.is_global_zero:  # the other processes' logger experiments are placeholders
        for lg in _wandb_loggers(loggers):
            lg.experiment.summary.update({f"final/{k}": v for k, v in metrics.items() if not isinstance(v, dict)})
            for stage in ("val", "test"):
                lg.experiment.summary.update({f"final/{stage}/{k}": v for k, v in metrics[stage].items()})
            lg.experiment.finish()  # each run of a multirun gets its own W&B run
        if stub is not None:
            _remove_stub(stub)
    return metrics


def _wandb_loggers(loggers: list[Any]) -> list[Any]:
    from pytorch_lightning.loggers import WandbLogger

    return [lg for lg in loggers if isinstance(lg, WandbLogger)]


def _move_log_file(stub: Path, out_dir: Path) -> None:
    """A resumed session logs into the interrupted run's log file (appended), not its own folder's."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if isinstance(h, logging.FileHandler) and Path(h.baseFilename).parent == stub.resolve():
            old = Path(h.baseFilename)
            root.removeHandler(h)
            h.close()
            target = out_dir / old.name
            with open(target, "a") as f:
                f.write(old.read_text() if old.is_file() else "")
            old.unlink(missing_ok=True)
            moved = logging.FileHandler(target, mode="a")
            moved.setFormatter(h.formatter)
            moved.setLevel(h.level)
            root.addHandler(moved)
            log.info("resume: this session's log continues %s (its own folder was %s)", target, stub)


def _remove_stub(stub: Path) -> None:
    """The resumed session's own Hydra folder, once it holds nothing but Hydra's record and empty logs."""
    files = [p for p in stub.rglob("*") if p.is_file()]
    if stub.is_dir() and all(".hydra" in p.relative_to(stub).parts or p.stat().st_size == 0 for p in files):
        shutil.rmtree(stub, ignore_errors=True)


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
        (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
        print(_summary(metrics))
    return metrics
