"""train(cfg) end to end on the tiny synthetic set, the W&B logger offline, and one-line data errors."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from i3d_train.errors import ConfigError
from i3d_train.train.run import train
from tests.conftest import compose_train

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_fast_dev_run(tmp_path):
    cfg = compose_train(tmp_path, ["trainer.fast_dev_run=true"])
    metrics = train(cfg)
    assert metrics["params_total"] > 12_000_000
    assert set(metrics["val"]) >= {"video_acc_top1", "video_acc_top5", "video_mean_class_acc"}
    assert metrics["test"]["num_videos"] == 2.0  # fast_dev_run: one batch of 4 clips, 2 clips per video
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert written["val"] == metrics["val"]


@pytest.mark.slow
def test_one_epoch_writes_checkpoints_and_metrics(tmp_path, capsys):
    cfg = compose_train(tmp_path)
    metrics = train(cfg)
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert written["val_source"] == "held_out" and "official synthetic" in written["val_rule"]
    assert "val from   held_out: the official synthetic validation list" in capsys.readouterr().out
    run = tmp_path / "run"
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert Path(metrics["best_ckpt"]).is_file()
    assert metrics["val"]["num_videos"] == 8.0 and metrics["test"]["num_videos"] == 8.0
    assert 0.0 <= metrics["test"]["video_acc_top1"] <= 1.0
    assert (run / "csv" / "metrics.csv").read_text().count("val/video_acc_top1") == 1
    assert (run / "config.yaml").is_file()


@pytest.mark.slow
def test_wandb_offline_writes_run_files(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    cfg = compose_train(tmp_path, ["logger=wandb", "trainer.fast_dev_run=true"])
    train(cfg)
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert list(runs[0].glob("run-*.wandb"))  # the binary log that `wandb sync` uploads


def test_missing_root_is_a_config_error(tmp_path):
    cfg = compose_train(tmp_path, ["data=ucf101", f"data.root={tmp_path / 'nowhere'}"])
    with pytest.raises(ConfigError, match=r"nowhere does not exist \(expected <root>/ucfTrainTestlist"):
        train(cfg)


def test_cli_prints_one_line_error_for_bad_root(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    bad = tmp_path / "ucf"
    bad.mkdir()
    (bad / "README").write_text("not a dataset")
    proc = subprocess.run(
        [sys.executable, "train.py", "data=ucf101", f"data.root={bad}", f"paths.root_dir={tmp_path}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    err = [line for line in proc.stderr.splitlines() if line.strip()]
    assert err[-1].startswith("error: ") and "no classInd.txt" in err[-1] and str(bad) in err[-1]
    assert "Traceback" not in proc.stderr


# the default recipe's class structure (motion-only classes) shrunk: 4 classes (the translations), 6
# training videos each, 12 epochs of the flow I3D at a higher learning rate (measured: val 25% until
# epoch 2, 87.5% at epoch 9; test 100%, in 30 s)
LEARN = [
    "debug=tiny", "model=i3d", "model.modality=flow", "data.num_classes=4", "data.synthetic.train_per_class=6",
    "data.synthetic.val_per_class=2", "data.synthetic.test_per_class=2", "data.synthetic.num_frames=24",
    "data.test_clips=2", "trainer.max_epochs=12", "optimizer.lr=1e-3", "callbacks.progress_bar.refresh_rate=0",
]  # fmt: skip


@pytest.mark.slow
def test_a_tiny_run_learns_well_above_chance(tmp_path):
    """`python train.py` on a shrunk copy of the default task (synthetic classes that differ only in
    motion; the flow I3D, which sees the motion): validation and test accuracy far above chance (25%)."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *LEARN, f"paths.root_dir={tmp_path}"], cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled"}, capture_output=True, text=True,
        timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = (tmp_path / "logs" / "train" / "runs").iterdir()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["num_videos"] == 8 and metrics["val"]["num_videos"] == 8
    assert metrics["test"]["video_acc_top1"] >= 0.75 and metrics["val"]["video_acc_top1"] >= 0.75, metrics
    # the same, told from the videos' class folders (not the labels the data pipeline hands the model)
    with open(run / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert all(r["video_id"].split("/")[0] == r["label_name"] for r in rows)
    assert sum(r["video_id"].split("/")[0] == r["pred_name"] for r in rows) >= 6


@pytest.mark.slow
def test_tensorboard_logger_writes_the_runs_scalars(tmp_path):
    """`python train.py debug=tiny logger=tensorboard`: event files in <run>/tensorboard/ whose
    validation and test scalars are the run's metrics.json."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "train.py", "debug=tiny", "logger=tensorboard", f"paths.root_dir={tmp_path}",
         f"hydra.run.dir={run_dir}"],  # fmt: skip
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    scalars = {}
    for events in sorted((run_dir / "tensorboard").glob("events.out.tfevents.*")):
        ea = EventAccumulator(str(events))
        ea.Reload()
        for tag in ea.Tags()["scalars"]:
            scalars[tag] = ea.Scalars(tag)[-1].value
    assert scalars["val/video_acc_top1"] == pytest.approx(metrics["val"]["video_acc_top1"])
    assert scalars["test/video_acc_top1"] == pytest.approx(metrics["test"]["video_acc_top1"])
    assert "train/loss" in scalars
