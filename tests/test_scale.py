"""Scale and sweeps: DDP training (2 CPU processes, gloo; launched by Lightning and by torchrun), exact
resume after SIGKILL with the run's history kept, multirun with a failing run, the Optuna search, W&B
sweep files, SLURM and DDP configs."""

import csv
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
from tests.crash import ENV as KILL_ENV

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
    from i3d_train.errors import ConfigError

    with pytest.raises(
        ConfigError, match=r"data.global_batch_size=12 does not split over 5 processes: use a multiple of 5 \(e.g. 10\)"
    ):
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


def assert_no_process_failed(output: str) -> None:
    """Lightning does not look at the exit code of the processes it starts for the other GPUs: their
    tracebacks (in the shared stderr) are the only sign that one of them failed."""
    assert "Traceback" not in output and "Error executing job" not in output, output[-3000:]


def test_eval_runs_where_training_runs():
    """eval.py's default accelerator is training's (`auto`: a GPU when there is one), so the README's
    `eval.py ... trainer.devices=2 trainer.strategy=ddp` uses two GPUs on a GPU machine."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        ev = compose("eval", overrides=["ckpt_path=x.ckpt"])
        tr = compose("train")
    assert ev.trainer.accelerator == tr.trainer.accelerator == "auto"


@pytest.mark.slow
def test_ddp_multirun_on_two_cpu_processes_counts_every_video_once(tmp_path):
    """`train.py -m trainer=ddp` on 2 CPU processes (gloo): Lightning re-runs the command for rank 1,
    which joins rank 0's multirun folder and writes nothing there. 3 validation/test videos, one clip
    each: DistributedSampler pads them to 4, and each video is still counted once."""
    proc = run_train(
        ["-m", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32-true",
         "debug=tiny", "data.num_classes=3", "data.test_clips=1", "data.batch_size=2", f"paths.root_dir={tmp_path}",
         "callbacks.progress_bar.refresh_rate=0"],
        tmp_path, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_no_process_failed(proc.stderr)
    sweeps = list((tmp_path / "logs" / "train" / "multiruns").iterdir())
    assert len(sweeps) == 1 and not list(sweeps[0].rglob("error.txt"))  # not one folder per process
    run = sweeps[0] / "0"
    assert sorted(p.name for p in sweeps[0].iterdir()) == ["0", "multirun.yaml", "summary.txt"]
    assert (sweeps[0] / "summary.txt").read_text() == f"multirun: 1 runs, 1 finished, 0 failed ({sweeps[0]})\n"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["val"]["num_videos"] == 3 and metrics["test"]["num_videos"] == 3
    assert Path(metrics["best_ckpt"]).is_file()
    rows = (run / "predictions.csv").read_text().splitlines()
    assert len(rows) == 1 + 3


@pytest.mark.slow
def test_torchrun_from_an_empty_data_folder_ends_cleanly_in_one_run_folder(tmp_path):
    """The README's torchrun command on 2 CPU processes (gloo), `debug=tiny` from an empty data folder:
    the synthetic set is generated once (prepare_data on local rank 0, then a barrier), both ranks
    write into rank 0's run folder, only rank 0 writes files, and the job exits 0."""
    torchrun = Path(sys.executable).with_name("torchrun")
    proc = subprocess.run(
        [str(torchrun), "--nproc-per-node", "2", str(ROOT / "train.py"), "trainer=ddp", "trainer.accelerator=cpu",
         "trainer.devices=2", "debug=tiny", f"paths.root_dir={tmp_path}", "callbacks.progress_bar.refresh_rate=0"],
        cwd=tmp_path, env={**ENV, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "Traceback" not in out
    tiny = tmp_path / "data" / "synthetic_tiny"
    listed = sum(len(f.read_text().splitlines()) for f in tiny.glob("ucfTrainTestlist/*list01.txt"))
    assert listed >= 24 and len(list((tiny / "UCF-101").rglob("*.mp4"))) == listed  # every listed video, once
    runs = list((tmp_path / "logs" / "train" / "runs").iterdir())
    assert len(runs) == 1 and not (runs[0] / "error.txt").exists()
    metrics = json.loads((runs[0] / "metrics.json").read_text())
    assert metrics["test"]["num_videos"] == 8 and Path(metrics["best_ckpt"]).is_file()
    assert out.count("video-level top-1") == 2  # rank 0's summary (val and test lines), once
    assert (runs[0] / "train.log").read_text().count("data: synthetic at") == 1  # rank 0's log only


def newest_run(root: Path) -> Path:
    return max((root / "logs" / "train" / "runs").iterdir(), key=lambda p: p.stat().st_mtime)


def metric_rows(run: Path) -> list[tuple[str, str, str]]:
    """(epoch, step, metric) of every value in the run's csv/metrics.csv."""
    with open(run / "csv" / "metrics.csv", newline="") as f:
        return [
            (r["epoch"], r["step"], k)
            for r in csv.DictReader(f)
            for k, v in r.items()
            if v and k not in ("epoch", "step")
        ]


@pytest.mark.slow
def test_resume_after_sigkill_gives_the_same_final_metrics_and_keeps_the_history(tmp_path):
    """Killed (SIGKILL) after the second training batch of epoch 1, its rows on disk and its last.ckpt
    epoch 0's (``tests/crash.py``: at a fixed point, not by polling); resumed with ``ckpt_path=last``."""
    common = [
        "debug=tiny", "trainer.max_epochs=2", "callbacks.progress_bar.refresh_rate=0", "model.dropout=0.3",
        "+callbacks.crash._target_=tests.crash.KillAt",
    ]  # fmt: skip
    a = tmp_path / "a"
    proc = run_train([*common, f"paths.root_dir={a}"], tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    uninterrupted = json.loads((newest_run(a) / "metrics.json").read_text())
    # last.ckpt is the last epoch's, whether or not that epoch improved on the best one
    assert torch.load(newest_run(a) / "checkpoints" / "last.ckpt", weights_only=False, mmap=True)["epoch"] == 1

    b = tmp_path / "b"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *common, f"paths.root_dir={b}"], cwd=tmp_path,
        env={**ENV, KILL_ENV: "1:1"}, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    killed = newest_run(b)
    assert not (killed / "metrics.json").exists()  # it did not finish
    assert torch.load(killed / "checkpoints" / "last.ckpt", weights_only=False, mmap=True)["epoch"] == 0
    assert {e for e, _, k in metric_rows(killed) if k == "train/loss"} == {"0", "1"}  # epoch 1 had begun

    time.sleep(1.1)  # a new run folder (timestamped to the second)
    proc = run_train([*common, f"paths.root_dir={b}", "ckpt_path=last"], tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    resumed = json.loads((killed / "metrics.json").read_text())  # it continued in the interrupted run's folder
    assert resumed["resumed_from"] == str(killed / "checkpoints" / "last.ckpt")
    for stage in ("val", "test"):
        for k in ("video_acc_top1", "video_mean_class_acc", "num_videos"):
            assert resumed[stage][k] == uninterrupted[stage][k], (stage, k)
        assert resumed[stage]["loss"] == pytest.approx(uninterrupted[stage]["loss"], abs=1e-5)
    # The history: every epoch's rows once, as in the uninterrupted run (epoch 0's from the killed session).
    assert sorted(metric_rows(killed)) == sorted(metric_rows(newest_run(a)))
    assert {e for e, _, k in metric_rows(killed) if k == "train/loss"} == {"0", "1"}
    # One run folder, whose train.log holds both sessions.
    assert list((b / "logs" / "train" / "runs").iterdir()) == [killed]
    log = (killed / "train.log").read_text()
    assert "data: synthetic" in log and "resume: continuing from" in log


@pytest.mark.slow
def test_multirun_goes_on_when_one_run_fails(tmp_path):
    """Two runs with ImageNet weights; the first, c3d, is an error (C3D trains from scratch), and the
    second (i3d, the weights inflated) still runs and finishes."""
    weights = tmp_path / "inception_v1.pt"
    torch.save(InceptionV1(10).state_dict(), weights)
    proc = run_train(
        ["-m", "debug=tiny", "trainer.fast_dev_run=true", f"paths.root_dir={tmp_path}", "model=c3d,i3d",
         f"model.imagenet_weights={weights}"],
        tmp_path, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-2000:]  # the sweep went on, and says one run failed
    sweep = next((tmp_path / "logs" / "train" / "multiruns").iterdir())
    assert sorted(d.name for d in sweep.iterdir() if d.name.isdigit()) == ["0", "1"]
    assert "C3D trains from scratch" in (sweep / "0" / "error.txt").read_text()
    summary = (sweep / "summary.txt").read_text().splitlines()
    assert summary[0] == f"multirun: 2 runs, 1 finished, 1 failed ({sweep})"
    assert summary[1].startswith("  failed: 0: ") and "C3D trains from scratch" in summary[1] and len(summary) == 2
    assert summary[0] in proc.stdout
    assert OmegaConf.load(sweep / "0" / "config.yaml").model.name == "c3d"
    assert not (sweep / "0" / "metrics.json").exists()
    metrics = json.loads((sweep / "1" / "metrics.json").read_text())  # the run after the failed one
    assert metrics["model"] == "i3d" and not (sweep / "1" / "error.txt").exists()


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
