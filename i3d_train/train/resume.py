"""``ckpt_path=last``: find the newest earlier run of the same config and continue it in its own folder."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from omegaconf import DictConfig

from i3d_train.engine.checkpoint_io import check_checkpoint
from i3d_train.errors import ConfigError

log = logging.getLogger(__name__)


def find_resumable(cfg: DictConfig, out_dir: Path, fingerprints: tuple[str, ...]) -> Path | None:
    """``last.ckpt`` of the newest earlier run under the log folder whose fingerprint is one of
    ``fingerprints`` (the config's, and its fingerprint under the old module paths:
    :func:`i3d_train.engine.run_config.fingerprints`)."""
    log_dir = Path(cfg.paths.log_dir) / cfg.get("task_name", "train")
    found = []
    for fp in log_dir.rglob("fingerprint.txt"):
        run = fp.parent
        last = run / "checkpoints" / "last.ckpt"
        if run.resolve() != out_dir.resolve() and last.is_file() and fp.read_text().strip() in fingerprints:
            found.append((last.stat().st_mtime, last))
    return max(found)[1] if found else None


def resolve_ckpt_path(cfg: DictConfig, out_dir: Path, fingerprints: tuple[str, ...]) -> str | None:
    """The checkpoint to start from: ``ckpt_path=<file>``, the newest same-config ``last.ckpt`` for
    ``ckpt_path=last`` (or ``resume=true``), else None."""
    ckpt = cfg.get("ckpt_path")
    if ckpt == "last" or cfg.get("resume"):
        last = find_resumable(cfg, out_dir, fingerprints)
        if last is None:
            log.warning("resume: no earlier run with this config has a last.ckpt; starting from scratch")
            return None
        log.info("resume: continuing from %s", last)
        return str(last)
    if ckpt and not Path(ckpt).is_file():
        raise ConfigError(
            f"ckpt_path={ckpt}: no such checkpoint (use ckpt_path=last to resume the newest same-config run)"
        )
    if ckpt:
        check_checkpoint(ckpt)
    return ckpt


def move_log_file(stub: Path, out_dir: Path) -> None:
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


def remove_stub(stub: Path) -> None:
    """The resumed session's own Hydra folder, once it holds nothing but Hydra's record and empty logs."""
    files = [p for p in stub.rglob("*") if p.is_file()]
    if stub.is_dir() and all(".hydra" in p.relative_to(stub).parts or p.stat().st_size == 0 for p in files):
        shutil.rmtree(stub, ignore_errors=True)
