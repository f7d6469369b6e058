"""A training run's own record: its ``config.yaml``, and the fingerprint that ``ckpt_path=last`` matches.

Runs made before the package moved to its layout by role (``tests/assets/legacy_run``) name the old
module paths in their ``config.yaml`` (``i3d_train.module.VideoClassifier``, ...) and hashed those into
their ``fingerprint.txt``. :func:`load_run_config` maps the old ``_target_`` paths to the new ones, and
:func:`fingerprints` gives a config's fingerprint both ways, so such a run still evaluates and resumes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from i3d_train.errors import ConfigError

# ``_target_`` paths that moved (old -> new): the classes and functions a saved config can name.
MOVED_TARGETS = {
    "i3d_train.module.VideoClassifier": "i3d_train.engine.classifier.VideoClassifier",
    "i3d_train.optim.warmup_cosine": "i3d_train.engine.schedulers.warmup_cosine",
    "i3d_train.csv_logger.ResumableCSVLogger": "i3d_train.engine.loggers.ResumableCSVLogger",
}


def _retarget(node: Any, table: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {
            k: table.get(v, v) if k == "_target_" and isinstance(v, str) else _retarget(v, table)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_retarget(v, table) for v in node]
    return node


# How the work is run, not what is computed: a run resumes whatever these are, and a run made before
# they existed (its config.yaml lacks them) is still "the same config".
NOT_FINGERPRINTED = ("data.decoder", "data.prefetch_factor", "data.pin_memory", "wandb_options", "ddp_global_batch")


def upgrade(cfg: DictConfig) -> DictConfig:
    """``cfg`` with every moved ``_target_`` named by its new path (a no-op on a current config)."""
    return OmegaConf.create(_retarget(OmegaConf.to_container(cfg, resolve=False), MOVED_TARGETS))


def config_fingerprint(cfg: DictConfig, out_dir: Path, targets: dict[str, str] | None = None) -> str:
    """What makes two runs "the same config" for ``ckpt_path=last``: the resolved config without the
    run's own folder and the resume settings (``targets``: ``_target_`` paths renamed first)."""
    c = OmegaConf.to_container(cfg, resolve=True)
    c.pop("ckpt_path", None)
    c.pop("resume", None)
    for key in NOT_FINGERPRINTED:
        *parents, last = key.split(".")
        node = c
        for k in parents:
            node = node.get(k) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    if targets:
        c = _retarget(c, targets)
    text = json.dumps(c, sort_keys=True, default=str).replace(str(out_dir), "<run>")
    return hashlib.sha1(text.encode()).hexdigest()


def fingerprints(cfg: DictConfig, out_dir: Path) -> tuple[str, str]:
    """``(fingerprint, the same config's fingerprint under the old module paths)``: a run made before the
    move matches the second."""
    old = {new: old for old, new in MOVED_TARGETS.items()}
    return config_fingerprint(cfg, out_dir), config_fingerprint(cfg, out_dir, old)


def load_run_config(ckpt_path: str | Path, train_config: str | Path | None = None) -> DictConfig:
    """The ``config.yaml`` a training run saved beside its ``checkpoints/`` folder (moved targets upgraded)."""
    ckpt = Path(ckpt_path)
    if not ckpt.is_file():
        raise ConfigError(f"checkpoint {ckpt} not found")
    candidates = (
        [Path(train_config)] if train_config else [ckpt.parent.parent / "config.yaml", ckpt.parent / "config.yaml"]
    )
    for c in candidates:
        if c.is_file():
            return upgrade(OmegaConf.load(c))
    raise ConfigError(f"no config.yaml for {ckpt} (looked in {', '.join(map(str, candidates))}); set train_config=")


def run_title(cfg: DictConfig) -> str:
    """One line naming a run: model, modality, data, split and protocol."""
    return f"{cfg.model.name} ({cfg.model.modality}) on {cfg.data.name} split {cfg.data.split}, protocol {cfg.protocol.name}"
