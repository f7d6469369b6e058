"""Evaluating a state dict without a run folder (released weights): ``eval.py weights=<file> model=... data=...``."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf
from torch import nn

from i3d_train.engine.checkpoint_io import check_checkpoint
from i3d_train.engine.classifier import VideoClassifier
from i3d_train.errors import ConfigError, ProtocolError
from i3d_train.evaluation.testing import eval_loggers, test_datamodule, test_module
from i3d_train.weights.loading import load_init_state_dict, load_with_classifier
from i3d_train.weights.safe_pickle import UnsafePickleError

log = logging.getLogger(__name__)


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
        except (ProtocolError, UnsafePickleError) as e:
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
    for path in (
        [weights.replace("{modality}", m) for m in ("rgb", "flow")] if isinstance(weights, str) else weights.values()
    ):
        if Path(path).is_file():
            check_checkpoint(path)  # a file that would run code: one line, before the data is read
    datamodule = test_datamodule(cfg, cfg.data)
    net = hydra.utils.instantiate(cfg.model.net)
    loaded = load_weights(net, weights, cfg.model.modality, datamodule.classes)
    module = VideoClassifier(
        net=net, num_classes=int(cfg.data.num_classes), modality=cfg.model.modality, optimizer=None
    )
    files = ", ".join(Path(v["weights"]).name for v in loaded.values())
    title = f"{cfg.model.name} ({cfg.model.modality}) on {cfg.data.name}: {files}"
    loggers = eval_loggers(
        cfg,
        f"eval-{cfg.model.name}-{cfg.data.name}-weights",
        [cfg.model.name, cfg.data.name],
        out_dir,
        group=f"{cfg.model.name}-{cfg.data.name}",
        config={
            "model": {"name": cfg.model.name, "modality": cfg.model.modality},
            "data": {"name": cfg.data.name, "split": int(cfg.data.split)},
            "protocol": {"name": "weights"},
            "weights": OmegaConf.to_container(cfg.weights) if isinstance(cfg.weights, DictConfig) else str(cfg.weights),
        },
    )
    metrics = test_module(cfg, module, datamodule, out_dir, title, loggers)
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
