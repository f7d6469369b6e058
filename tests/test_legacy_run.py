"""A run folder made before the package moved to its layout by role still evaluates and resumes.

``tests/assets/legacy_run`` was written by ``train.py`` at a3398a3 (the flat layout) and killed as its
second epoch started (its README says how). Its ``config.yaml`` names ``i3d_train.module.VideoClassifier``,
``i3d_train.optim.warmup_cosine`` and ``i3d_train.csv_logger.ResumableCSVLogger``, modules that no longer
exist, and its ``fingerprint.txt`` hashes those names.
"""

from __future__ import annotations

import csv
import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ASSET = ROOT / "tests" / "assets" / "legacy_run"
LEGACY_ROOT = Path("/tmp/i3d_train_legacy")  # the run's paths.root_dir, which its fingerprint hashes
RUN = LEGACY_ROOT / "logs" / "train" / "runs" / "2026-12-06_21-50-00"
ENV = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ASSET}", "WANDB_MODE": "disabled"}
# the command that made the run, as its README gives it, less the crash
TRAIN = [
    "debug=tiny",
    "model.net._target_=tiny_legacy_net.TinyNet",
    "model.channels_last=false",
    f"paths.root_dir={LEGACY_ROOT}",
    "trainer.max_epochs=2",
    "+callbacks.crash._target_=tiny_legacy_net.KillAfterFirstEpoch",
]


@pytest.fixture
def legacy_run():
    """The asset at its own paths; one test at a time on this machine (another checkout's suite may be
    using the same fixed folder), serialised by an exclusive lock beside it."""
    with open(f"{LEGACY_ROOT}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        shutil.rmtree(LEGACY_ROOT, ignore_errors=True)
        shutil.copytree(ASSET / "train", LEGACY_ROOT / "logs" / "train")
        try:
            yield RUN
        finally:
            shutil.rmtree(LEGACY_ROOT, ignore_errors=True)


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)


def test_the_asset_names_the_old_module_paths():
    cfg = yaml.safe_load((ASSET / "train" / "runs" / RUN.name / "config.yaml").read_text())
    assert cfg["module"]["_target_"] == "i3d_train.module.VideoClassifier"
    assert cfg["module"]["scheduler"]["_target_"] == "i3d_train.optim.warmup_cosine"
    assert cfg["logger"]["csv"]["_target_"] == "i3d_train.csv_logger.ResumableCSVLogger"


@pytest.mark.slow
@pytest.mark.parametrize("fast", [False, True])
def test_an_old_run_still_evaluates(legacy_run, tmp_path, fast):
    out = tmp_path / "eval"
    proc = run(
        [sys.executable, str(ROOT / "eval.py"), f"ckpt_path={legacy_run / 'checkpoints' / 'last.ckpt'}",
         f"paths.output_dir={out}", "trainer.accelerator=cpu", f"fast={str(fast).lower()}"],
        tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_videos"] == 8 and metrics["model"] == "i3d" and metrics["fast"] is fast
    with open(out / "predictions.csv") as f:
        assert len(list(csv.DictReader(f))) == 8


@pytest.mark.slow
def test_an_old_run_resumes_in_its_own_folder(legacy_run, tmp_path):
    """``ckpt_path=last`` finds the old run by its fingerprint (of the old module paths) and trains its
    second epoch in its folder: ``metrics.csv`` gets epoch 1 appended to the first session's epoch 0."""
    before = (legacy_run / "fingerprint.txt").read_text()
    proc = run([sys.executable, str(ROOT / "train.py"), *TRAIN, "ckpt_path=last"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"resume: continuing from {legacy_run / 'checkpoints' / 'last.ckpt'}" in proc.stderr + proc.stdout
    metrics = json.loads((legacy_run / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and metrics["resumed_from"] == str(legacy_run / "checkpoints" / "last.ckpt")
    with open(legacy_run / "csv" / "metrics.csv") as f:
        epochs = {int(r["epoch"]) for r in csv.DictReader(f) if r.get("val/loss")}
    assert epochs == {0, 1}
    # the run's record now names the new paths, and its fingerprint is the new layout's
    cfg = yaml.safe_load((legacy_run / "config.yaml").read_text())
    assert cfg["module"]["_target_"] == "i3d_train.engine.classifier.VideoClassifier"
    assert (legacy_run / "fingerprint.txt").read_text() != before


def test_without_the_old_fingerprint_an_old_run_is_not_found(tmp_path):
    """The mapping is what makes the old run match: the new layout's own fingerprint differs from it."""
    from omegaconf import OmegaConf

    from i3d_train.engine.run_config import fingerprints, upgrade

    old = OmegaConf.load(ASSET / "train" / "runs" / RUN.name / "config.yaml")
    new = upgrade(old)
    assert new.module._target_ == "i3d_train.engine.classifier.VideoClassifier"
    ours, as_before = fingerprints(new, RUN)
    assert as_before == (ASSET / "train" / "runs" / RUN.name / "fingerprint.txt").read_text().strip()
    assert ours != as_before
