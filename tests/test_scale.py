"""Scale and sweeps: DDP training (2 CPU processes, gloo), exact resume after SIGKILL, multirun
with a failing run, the Optuna search, W&B sweep files, SLURM and DDP configs."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from i3d_train.data.samplers import SeededSampler
from i3d_train.models.inception_v1 import InceptionV1
from tests.conftest import CONF_DIR, compose_train

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled"}


def run_train(args: list[str], cwd: Path, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args], cwd=cwd, env=ENV, capture_output=True, text=True, **kw
    )


def test_seeded_sampler_depends_only_on_seed_and_epoch():
    ds = list(range(10))
    a, b = SeededSampler(ds, seed=3), SeededSampler(ds, seed=3)
    a.set_epoch(2), b.set_epoch(2)
    assert list(a) == list(b)
    b.set_epoch(3)
    assert list(a) != list(b)
    assert sorted(i for i, _ in a) == ds and len({s for _, s in a}) == 10
    r0, r1 = (
        SeededSampler(list(range(5)), 3, num_replicas=2, rank=0),
        SeededSampler(list(range(5)), 3, num_replicas=2, rank=1),
    )
    assert len(list(r0)) == len(list(r1)) == 3  # 5 samples padded to 6 over 2 processes


def test_global_batch_is_split_over_processes(tmp_path):
    cfg = compose_train(tmp_path, ["trainer=ddp", "data.batch_size=12", "trainer.accelerator=cpu"])
    assert cfg.data.global_batch_size == 12 and cfg.trainer.strategy == "ddp"
    from hydra.utils import instantiate

    dm = instantiate(cfg.data, _convert_="object")

    class T:
        world_size, global_rank = 4, 1

    dm.trainer = T()
    assert dm.per_process_batch == 3
    T.world_size = 5
    with pytest.raises(ValueError, match="does not split over 5 processes"):
        _ = dm.per_process_batch


def test_slurm_config_uses_the_submitit_launcher():
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(
            "train", overrides=["trainer=slurm", "trainer.devices=8", "trainer.num_nodes=2"], return_hydra_config=True
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (launcher.nodes, launcher.gpus_per_node, launcher.tasks_per_node) == (2, 8, 8)
    assert cfg.trainer.strategy == "ddp" and cfg.data.global_batch_size == cfg.data.batch_size


@pytest.mark.slow
def test_ddp_training_on_two_cpu_processes_counts_every_video_once(tmp_path):
    """`train.py trainer=ddp` on 2 CPU processes (gloo): Lightning re-runs the command for rank 1 with
    Hydra's run folder fixed, so there is one run folder. 3 validation/test videos, one clip each:
    DistributedSampler pads them to 4, and each video is still counted once."""
    proc = run_train(
        ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32-true",
         "debug=tiny", "data.num_classes=3", "data.test_clips=1", "data.batch_size=2", f"paths.root_dir={tmp_path}",
         "callbacks.progress_bar.refresh_rate=0"],
        tmp_path, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = list((tmp_path / "logs" / "train" / "runs").iterdir())
    assert len(runs) == 1  # not one folder per process
    metrics = json.loads((runs[0] / "metrics.json").read_text())
    assert metrics["val"]["num_videos"] == 3 and metrics["test"]["num_videos"] == 3
    assert Path(metrics["best_ckpt"]).is_file()
    rows = (runs[0] / "predictions.csv").read_text().splitlines()
    assert len(rows) == 1 + 3


def newest_run(root: Path) -> Path:
    return max((root / "logs" / "train" / "runs").iterdir(), key=lambda p: p.stat().st_mtime)


@pytest.mark.slow
def test_resume_after_sigkill_gives_the_same_final_metrics(tmp_path):
    common = ["debug=tiny", "trainer.max_epochs=2", "callbacks.progress_bar.refresh_rate=0", "model.dropout=0.3"]
    a = tmp_path / "a"
    proc = run_train([*common, f"paths.root_dir={a}"], tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    uninterrupted = json.loads((newest_run(a) / "metrics.json").read_text())

    b = tmp_path / "b"
    p = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *common, f"paths.root_dir={b}"], cwd=tmp_path, env=ENV,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.time() + 300
    while time.time() < deadline and not list(b.glob("logs/train/runs/*/checkpoints/last.ckpt")):
        assert p.poll() is None, "the run ended before its first checkpoint"
        time.sleep(0.1)
    p.send_signal(signal.SIGKILL)
    p.wait()
    killed = newest_run(b)
    assert not (killed / "metrics.json").exists()  # it did not finish
    assert torch.load(killed / "checkpoints" / "last.ckpt", weights_only=False)["epoch"] < 1

    time.sleep(1.1)  # a new run folder (timestamped to the second)
    proc = run_train([*common, f"paths.root_dir={b}", "ckpt_path=last"], tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    resumed = json.loads((killed / "metrics.json").read_text())  # it continued in the interrupted run's folder
    assert resumed["resumed_from"] == str(killed / "checkpoints" / "last.ckpt")
    for stage in ("val", "test"):
        for k in ("video_acc_top1", "video_mean_class_acc", "num_videos"):
            assert resumed[stage][k] == uninterrupted[stage][k], (stage, k)
        assert resumed[stage]["loss"] == pytest.approx(uninterrupted[stage]["loss"], abs=1e-5)


@pytest.mark.slow
def test_multirun_goes_on_when_one_run_fails(tmp_path):
    """2x2 grid; c3d with ImageNet weights is an error (C3D trains from scratch): 3 of 4 finish."""
    weights = tmp_path / "inception_v1.pt"
    torch.save(InceptionV1(10).state_dict(), weights)
    proc = run_train(
        ["-m", "debug=tiny", "trainer.fast_dev_run=true", f"paths.root_dir={tmp_path}", "model=i3d,c3d",
         f"model.imagenet_weights=null,{weights}"],
        tmp_path, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    jobs = [d for d in next((tmp_path / "logs" / "train" / "multiruns").iterdir()).iterdir() if d.name.isdigit()]
    assert len(jobs) == 4
    done = [d for d in jobs if (d / "metrics.json").is_file()]
    failed = [d for d in jobs if (d / "error.txt").is_file()]
    assert len(done) == 3 and len(failed) == 1
    assert "C3D trains from scratch" in (failed[0] / "error.txt").read_text()
    assert OmegaConf.load(failed[0] / "config.yaml").model.name == "c3d"


@pytest.mark.slow
def test_optuna_search_runs_two_trials(tmp_path):
    proc = run_train(
        ["hparams_search=synthetic_optuna", "hydra.sweeper.n_trials=2", "debug=tiny", "trainer.fast_dev_run=true",
         f"paths.root_dir={tmp_path}"],
        tmp_path, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    sweep = next((tmp_path / "logs" / "train" / "multiruns").iterdir())
    assert len(list(sweep.glob("*/metrics.json"))) == 2
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["name"] == "optuna" and set(results["best_params"]) == {
        "optimizer.lr", "optimizer.weight_decay", "model.dropout", "data.batch_size"
    }  # fmt: skip


SWEEPS = sorted((ROOT / "sweeps").glob("*.yaml"))


def test_the_wandb_sweep_files_are_in_the_repository():
    assert len(SWEEPS) >= 2  # (a folder named wandb/ would be ignored by git)


@pytest.mark.parametrize("sweep", SWEEPS, ids=lambda p: p.name)
def test_wandb_sweep_parameters_are_config_keys(sweep):
    spec = yaml.safe_load(sweep.read_text())
    assert spec["program"] == "train.py" and "${args_no_hyphens}" in spec["command"]
    groups = {p.name for p in Path(CONF_DIR).iterdir() if p.is_dir()}
    overrides = []
    for name, p in spec["parameters"].items():
        value = p["value"] if "value" in p else p["values"][0] if "values" in p else p.get("min")
        overrides.append(f"{name}={value}")
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=overrides)  # fails on a key the config does not have
    for name in spec["parameters"]:
        if name not in groups:
            assert OmegaConf.select(cfg, name, default="<absent>") != "<absent>", name
