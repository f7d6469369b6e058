"""What a W&B run holds (issue 29), read back from the offline run folder of real commands: the tables
equal predictions.csv, the confusion matrix counts the test predictions, the clips decode, the best-value
summaries, the grouping and the config a run table groups by; the report from a W&B project (its API
replaced by the runs' own files) equals the report from the folders; the saved report's panels."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from i3d_train.video.reader import probe
from tests.wandb_log import OfflineRun

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "offline", "WANDB_SILENT": "true"}


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    r = subprocess.run(args, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def offline_run(folder: Path) -> OfflineRun:
    found = list((folder / "wandb").glob("offline-run-*"))
    assert len(found) == 1, found
    return OfflineRun(found[0])


def csv_rows(path: Path) -> list[list[str]]:
    with path.open() as f:
        rows = list(csv.reader(f))
    return rows


@pytest.mark.slow
def test_a_wandb_training_run_and_its_evaluation_hold_the_test_results_as_wandb_objects(tmp_path):
    run(
        [
            sys.executable,
            "train.py",
            "debug=tiny",
            "logger=wandb",
            f"paths.root_dir={tmp_path}",
            "wandb_options.clips=5",
        ],
        ROOT,
    )
    (folder,) = (tmp_path / "logs" / "train" / "runs").iterdir()
    wb = offline_run(folder)
    # the run table: grouped and job-typed, the config at the top level (groups by model.name, ...)
    assert (wb.run.run_group, wb.run.job_type) == ("i3d-synthetic", "train")
    assert wb.config["model"]["name"] == "i3d" and wb.config["protocol"]["name"] == "original"
    assert wb.config["data"]["name"] == "synthetic" and wb.config["data"]["split"] == wb.config["split"] == 1
    # best-value summaries: the max of the logged validation accuracies, the min of the losses
    vals = [h["val/video_acc_top1"] for h in wb.history if "val/video_acc_top1" in h]
    losses = [h["val/loss"] for h in wb.history if "val/loss" in h]
    assert vals and wb.summary["val/video_acc_top1"] == {"max": max(vals)}
    assert wb.summary["val/loss"] == {"min": min(losses)}
    assert not [k for h in wb.history for k in h if k.startswith(("gradients/", "parameters/"))]  # watch: off
    # the predictions table is predictions.csv
    rows = csv_rows(folder / "predictions.csv")
    table = wb.table("test/predictions")
    assert table["columns"] == rows[0]
    assert [[str(v) for v in r] for r in table["data"]] == rows[1:]
    # the interactive confusion matrix counts the test predictions
    pairs = Counter((r[2], r[4]) for r in rows[1:])
    cm = wb.table("test/confusion_matrix_table")
    assert cm["columns"] == ["Actual", "Predicted", "nPredictions"]
    assert {(a, p): n for a, p, n in cm["data"]} == dict(pairs)
    assert (
        wb.config["_wandb/visualize/test/confusion_matrix"]["panel_config"]["panelDefId"] == "wandb/confusion_matrix/v1"
    )
    per_class = {r[0]: r[3] for r in wb.table("test/per_class_accuracy_table")["data"]}
    for name in {r[2] for r in rows[1:]}:
        of = [r for r in rows[1:] if r[2] == name]
        assert per_class[name] == pytest.approx(sum(int(r[5]) for r in of) / len(of))
    # clips: 5 of the 8 videos, most confident errors first, each a playable MP4 of the test clip's frames
    clips = wb.table("test/clips")
    assert len(clips["data"]) == 5
    conf = np.load(folder / "scores.npy").max(1)  # exact scores (the CSV's are rounded: ties)
    wrong = sorted((i for i, r in enumerate(rows[1:]) if r[5] == "0"), key=lambda i: -conf[i])
    assert [r[0] for r in clips["data"][: len(wrong[:5])]] == [rows[1 + i][0] for i in wrong[:5]]
    media = wb.logged("test/clip_videos")
    assert media["count"] == 5
    assert [c.split(":")[0] for c in media["captions"]] == [r[0] for r in clips["data"]]
    for v in media["videos"]:
        info = probe(wb.files / v["path"])
        assert (info.num_frames, info.height, info.width) == (16, 56, 56)  # debug=tiny's 16 x 56 x 56 test clip

    # the evaluation of its best checkpoint: its own run, job type eval, the same objects
    metrics = json.loads((folder / "metrics.json").read_text())
    out = tmp_path / "eval"
    run(
        [
            sys.executable,
            "eval.py",
            f"ckpt_path={metrics['best_ckpt']}",
            "wandb=true",
            f"hydra.run.dir={out}",
            "wandb_options.clips=2",
        ],
        ROOT,
    )
    ev = offline_run(out)
    assert (ev.run.run_group, ev.run.job_type) == ("i3d-synthetic", "eval")
    assert ev.config["model"]["name"] == "i3d" and ev.config["checkpoint"] == metrics["best_ckpt"]
    eval_rows = csv_rows(out / "predictions.csv")
    assert [[str(v) for v in r] for r in ev.table("test/predictions")["data"]] == eval_rows[1:]
    assert ev.logged("test/clip_videos")["count"] == 2
    assert ev.summary["eval/video_acc_top1"] == pytest.approx(metrics["test"]["video_acc_top1"])


def test_watch_logs_gradient_histograms_when_switched_on(tmp_path, monkeypatch):
    from i3d_train.train.run import train
    from tests.test_train import compose_train

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = compose_train(
        tmp_path,
        [
            "logger=wandb",
            "trainer.fast_dev_run=true",
            "wandb_options.watch=true",
            "wandb_options.watch_freq=1",
            "wandb_options.watch_log=gradients",
        ],  # fmt: skip
    )
    train(cfg)
    wb = offline_run(tmp_path / "run")
    grads = {k for h in wb.history for k in h if k.startswith("gradients/")}
    assert any("Conv3d_1a_7x7" in k for k in grads), sorted(grads)[:5]


class FakeRun:
    def __init__(self, config: dict, summary: dict, name: str) -> None:
        self.config, self.summary, self.name = config, summary, name


class FakeApi:
    """``wandb.Api`` as :func:`runs_from_wandb` calls it; records the query."""

    def __init__(self, runs: list[FakeRun]) -> None:
        self._runs, self.queries = runs, []

    def runs(self, path: str, filters: dict | None = None):
        self.queries.append((path, filters))
        return iter(self._runs)


def test_report_from_a_wandb_project_equals_the_report_from_the_run_folders(tmp_path):
    """Runs as W&B keeps them (the resolved config, the final/... summary that train.py writes) give the
    same tables as their metrics.json files; evaluations and runs without test metrics are left out."""
    from i3d_train.report.cli import build_report
    from i3d_train.report.wandb_runs import run_filters, runs_from_wandb

    fake = []
    for i, (model, modality, protocol, split, acc) in enumerate(
        [
            ("i3d", "rgb", "original", 1, 0.5),
            ("i3d", "rgb", "original", 2, 0.7),
            ("c3d", "rgb", "original", 1, 0.25),
            ("i3d", "rgb", "fixed", 1, 0.6),
        ]  # fmt: skip
    ):
        config = {"model": {"name": model, "modality": modality, "input": {"num_frames": 64}},
                  "data": {"name": "ucf101", "split": split}, "protocol": {"name": protocol},
                  "optimizer": {"_target_": "torch.optim.SGD", "lr": 0.1}}  # fmt: skip
        metrics = {"model": model, "data": "ucf101", "split": split, "protocol": protocol, "modality": modality,
                   "test": {"video_acc_top1": acc}}  # fmt: skip
        d = tmp_path / "runs" / f"r{i}"
        d.mkdir(parents=True)
        (d / "metrics.json").write_text(json.dumps(metrics))
        fake.append(FakeRun(config, {"final/test/video_acc_top1": acc, "final/val/video_acc_top1": acc}, f"r{i}"))
    fake.append(FakeRun({"model": {"name": "i3d"}, "data": {"name": "ucf101"}}, {"eval/video_acc_top1": 0.9}, "eval"))
    api = FakeApi(fake)
    runs = runs_from_wandb("me/i3d-train", api=api)
    assert api.queries == [("me/i3d-train", run_filters("train"))]
    assert run_filters("train") == {"$and": [{"state": "finished"}, {"jobType": "train"}]}
    assert len(runs) == 4 and runs[0]["recipe"]["optimizer"] == "SGD" and runs[0]["input"] == {"num_frames": 64}
    md_wandb, vals_wandb = build_report("W&B", runs=runs)
    md_local, vals_local = build_report(tmp_path / "runs")
    assert vals_wandb == vals_local
    assert md_wandb.split("\n", 1)[1] == md_local.split("\n", 1)[1]  # all but the title line


def test_the_saved_report_is_built_with_the_papers_panels_without_the_network():
    from i3d_train.report.wandb_runs import build_workspace_report

    report = build_workspace_report("me", "i3d-train")
    assert (report.entity, report.project) == ("me", "i3d-train")
    grids = [b for b in report.blocks if type(b).__name__ == "PanelGrid"]
    assert grids[0].runsets[0].groupby == ["config.model.name", "config.protocol.name", "config.data.name"]
    bars = [p for g in grids for p in g.panels if type(p).__name__ == "BarPlot"]
    assert [(b.metrics, b.groupby) for b in bars] == [
        (["final/test/video_acc_top1"], "config.model.name"),
        (["final/test/video_acc_top1"], "config.protocol.name"),
    ]
    media = [p for g in grids for p in g.panels if type(p).__name__ == "MediaBrowser"]
    assert media[0].media_keys == ["test/clip_videos"]


def test_report_needs_a_folder_or_a_project():
    r = subprocess.run([sys.executable, "-m", "i3d_train.report"], cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip() == "error: give a runs folder or --wandb ENTITY/PROJECT (one of them)"
