"""Evaluation: predictions.csv, test protocols, eval.py (also under 2-process DDP), late fusion of
separate runs, and the results report."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from i3d_train.data.samplers import WholeVideoSampler
from i3d_train.engine.metrics import first_occurrences, video_level_scores
from i3d_train.engine.predictions import fuse_predictions, metrics_of, read_predictions
from i3d_train.report.cli import main as report_main
from i3d_train.train.run import train
from tests.conftest import compose_train, sensitive_i3d

ROOT = Path(__file__).resolve().parents[1]


def test_eval_accepts_every_key_of_every_data_config():
    """conf/eval.yaml's data block names every key the data configs have, so that `eval.py ckpt_path=...
    data.<key>=...` never fails with "Key ... is not in struct"."""
    from omegaconf import OmegaConf

    eval_keys = set(OmegaConf.load(ROOT / "conf" / "eval.yaml").data)
    for f in sorted((ROOT / "conf" / "data").glob("*.yaml")):
        c = OmegaConf.load(f)
        keys = set(c.data if "data" in c and "_target_" not in c else c) - {"_target_", "defaults"}
        assert keys <= eval_keys, f"{f.name}: {sorted(keys - eval_keys)} missing from conf/eval.yaml's data block"


def test_fusion_is_the_mean_of_the_softmax_scores():
    rng = np.random.default_rng(0)
    a = rng.dirichlet(np.ones(5), size=4)
    b = rng.dirichlet(np.ones(5), size=3)
    ids_a, ids_b = ["v0", "v1", "v2", "v3"], ["v2", "v0", "v1"]  # other order, v3 only in a
    labels = np.array([0, 1, 2, 3])
    ids, lab, fused = fuse_predictions((ids_a, labels, a), (ids_b, labels[[2, 0, 1]], b))
    assert ids == ["v0", "v1", "v2"] and lab.tolist() == [0, 1, 2]
    assert np.allclose(fused, (a[:3] + b[[1, 2, 0]]) / 2)
    with pytest.raises(ValueError, match="disagree on labels"):
        fuse_predictions((ids_a, labels, a), (ids_b, np.array([9, 9, 9]), b))


def test_padded_duplicates_are_dropped_before_averaging():
    """DistributedSampler repeats samples to even out processes: each (video, view) counts once."""
    idx = torch.tensor([0, 0, 1, 0])  # the last is a padded copy of the first
    views = torch.tensor([0, 1, 0, 0])
    keep = first_occurrences(idx * 100 + views)
    assert keep.tolist() == [0, 1, 2]
    scores = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    v, _, _ = video_level_scores(idx[keep], scores[keep], torch.tensor([0, 0, 1, 0])[keep])
    assert torch.allclose(v[0], torch.tensor([0.5, 0.5]))  # not 2/3 : 1/3 as with the copy


def recompute_top1(path: Path) -> tuple[float, int]:
    rows = list(csv.DictReader(path.open()))
    return sum(int(r["pred"]) == int(r["label"]) for r in rows) / len(rows), len(rows)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny RGB run and a tiny flow run on the same 3-class synthetic set (3 test videos: odd)."""
    out = {}
    base = tmp_path_factory.mktemp("runs")
    for modality in ("rgb", "flow"):
        tmp = base / modality
        cfg = compose_train(
            tmp, [f"model.modality={modality}", "data.num_classes=3", f"paths.data_dir={base / 'data'}"]
        )
        out[modality] = (train(cfg), tmp / "run")
    return out


@pytest.mark.slow
def test_training_writes_predictions_that_give_the_reported_accuracy(trained):
    metrics, run = trained["rgb"]
    acc, rows = recompute_top1(run / "predictions.csv")
    assert rows == 3 == metrics["test"]["num_videos"]
    assert acc == pytest.approx(metrics["test"]["video_acc_top1"])
    ids, labels, scores = read_predictions(run / "predictions.csv")
    assert scores.shape == (3, 3) and np.allclose(scores.sum(1), 1, atol=1e-5)
    assert metrics_of(labels, scores)["video_acc_top1"] == pytest.approx(acc)
    assert (run / "confusion_matrix.png").stat().st_size > 1000 and (run / "per_class_accuracy.png").is_file()
    top5 = next(csv.DictReader((run / "predictions.csv").open()))["top5"].split("|")
    assert len(top5) == 3 and all(":" in t for t in top5)


def run_eval(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, str(ROOT / "eval.py"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_eval_fuses_two_separately_trained_streams(trained, tmp_path):
    (_, rgb_run), (_, flow_run) = trained["rgb"], trained["flow"]
    out = tmp_path / "fusion"
    proc = run_eval(
        [f"ckpt_path={rgb_run / 'checkpoints' / 'last.ckpt'}", f"fuse_with={flow_run / 'checkpoints' / 'last.ckpt'}",
         f"hydra.run.dir={out}", "data.test_crops=3", "wandb=true"],
        tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = json.loads((out / "metrics.json").read_text())
    # wandb=true: the fusion is a W&B run of its own, with its predictions table and confusion matrix
    from tests.wandb_log import OfflineRun

    (fused_run,) = (out / "fused" / "wandb").glob("offline-run-*")
    wb = OfflineRun(fused_run)
    rows = (out / "fused" / "predictions.csv").read_text().splitlines()[1:]
    assert len(wb.table("fused/predictions")["data"]) == len(rows)
    assert sum(n for _, _, n in wb.table("fused/confusion_matrix_table")["data"]) == len(rows)
    assert wb.summary["eval/fused/video_acc_top1"] == pytest.approx(m["fused"]["video_acc_top1"])
    assert set(m) == {"rgb", "flow", "fused"} and m["rgb"]["test_crops"] == 3
    a, b, f = (read_predictions(out / d / "predictions.csv") for d in ("rgb", "flow", "fused"))
    assert a[0] == b[0] == f[0]  # same videos, same order
    assert np.allclose(f[2], (a[2] + b[2]) / 2, atol=1e-6)
    assert m["fused"]["video_acc_top1"] == pytest.approx(recompute_top1(out / "fused" / "predictions.csv")[0])
    assert "fused: video-level top-1" in proc.stdout.replace("  ", " ")


@pytest.mark.slow
def test_eval_fast_path_gives_the_reference_predictions(trained, tmp_path):
    _, run = trained["rgb"]
    ckpt = run / "checkpoints" / "last.ckpt"
    ref, fast = tmp_path / "ref", tmp_path / "fast"
    # any data.* key of the data config is accepted (data.decoder, data.storage, ... were "not in struct")
    for out, extra in ((ref, []), (fast, ["fast=true", "data.decoder=pyav", "data.prefetch_factor=2"])):
        proc = run_eval([f"ckpt_path={ckpt}", f"hydra.run.dir={out}", *extra], tmp_path)
        assert proc.returncode == 0, proc.stderr[-2000:]
    a, b = read_predictions(ref / "predictions.csv"), read_predictions(fast / "predictions.csv")
    assert a[0] == b[0] and np.abs(a[2] - b[2]).max() < 1e-4
    assert json.loads((fast / "metrics.json").read_text())["fast"] is True


@pytest.mark.slow
def test_eval_under_two_process_ddp_counts_every_video_once(trained, tmp_path):
    """3 test videos x 3 clips over 2 processes: DistributedSampler pads 9 samples to 10, the copy of
    (video 0, clip 0) lands in another video's batch position. The DDP scores must equal the
    single-process ones within 1e-6 (measured: 6e-8; a dropped-by-video instead of by-(video, clip)
    de-duplication, or a padded copy averaged in, changes them by more than 1e-3: the checkpoint's net
    is ``sensitive_i3d``, whose clips score differently). The DDP run is the README's
    `trainer.strategy=ddp` with W&B: Lightning starts rank 1 itself and ignores its exit code, so a
    traceback in the shared stderr is the sign that it failed."""
    _, run = trained["rgb"]
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    sensitive = sensitive_i3d(3, 7, num_classes=3)
    sensitive.logits.conv3d.weight.data *= 0.1  # logits of a few units: softmax scores far from 0 and 1
    net = {f"net.{k}": v for k, v in sensitive.state_dict().items()}
    assert net.keys() <= ckpt["state_dict"].keys()
    ckpt["state_dict"].update(net)
    torch.save(ckpt, run / "checkpoints" / "sensitive.ckpt")
    # 4-frame clips of the 12-frame videos: the 3 clips start at 0, 4 and 8, so they differ
    common = [f"ckpt_path={run / 'checkpoints' / 'sensitive.ckpt'}", "data.test_clips=3", "data.batch_size=2",
              "+data.input_override={num_frames: 4}"]  # fmt: skip
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    two = ["trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp", "wandb=true"]
    for out, extra in ((single, []), (ddp, two)):
        proc = run_eval([*common, f"hydra.run.dir={out}", *extra], tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
        assert proc.stdout.count("video-level top-1") == 1  # rank 0 reports
    acc, rows = recompute_top1(ddp / "predictions.csv")
    assert rows == 3
    m = json.loads((ddp / "metrics.json").read_text())
    assert m["num_videos"] == 3 and m["video_acc_top1"] == pytest.approx(acc)
    a, b = read_predictions(single / "predictions.csv"), read_predictions(ddp / "predictions.csv")
    assert a[0] == b[0]
    scores = np.load(single / "scores.npy")
    assert np.abs(scores - np.load(ddp / "scores.npy")).max() <= 1e-6
    # the clips' scores differ: a padded copy averaged in would move video 0's scores far above 1e-6
    assert np.abs(scores[:, None] - scores[None]).max() > 1e-2


def test_whole_video_protocol_and_three_crops(tmp_path):
    from i3d_train.data.dataset import VideoDataset, VideoItem
    from i3d_train.data.transforms import ClipTransform
    from i3d_train.video.writer import write_video
    from tests.conftest import index_frames

    write_video(tmp_path / "v.mp4", index_frames(30, height=64), 25, crf=10)
    item = VideoItem(tmp_path / "v.mp4", 0, "v.mp4")
    ds = VideoDataset([item], 8, 25.0, 1, WholeVideoSampler(), ClipTransform(64, 64, train=False, crops=3))
    assert len(ds) == 3  # one whole-video clip x 3 crops
    views = [ds[i] for i in range(3)]
    assert all(v["rgb"].shape == (3, 30, 64, 64) for v in views)  # every frame, whatever num_frames says
    assert [v["clip_index"].item() for v in views] == [0, 1, 2]
    left, center, right = (v["rgb"][:, 0] for v in views)  # 128-wide frames: crops at x = 0, 32, 64
    assert torch.equal(left[..., 32:], center[..., :32]) and torch.equal(center[..., 32:], right[..., :32])


def write_run(folder: Path, model: str, data: str, protocol: str, split: int, modality: str, test: dict) -> None:
    folder.mkdir(parents=True)
    m = {"model": model, "data": data, "protocol": protocol, "split": split, "modality": modality, "test": test}
    (folder / "metrics.json").write_text(json.dumps(m))


def test_report_tables_from_metrics_files(tmp_path, capsys):
    runs = tmp_path / "multirun"
    write_run(runs / "0", "i3d", "ucf101", "original", 1, "rgb", {"video_acc_top1": 0.80})
    write_run(runs / "1", "i3d", "ucf101", "original", 2, "rgb", {"video_acc_top1": 0.90})
    write_run(runs / "2", "i3d", "ucf101", "original", 1, "flow", {"video_acc_top1": 0.70})
    two = {"rgb/video_acc_top1": 0.5, "flow/video_acc_top1": 0.6, "fused/video_acc_top1": 0.75, "video_acc_top1": 0.75}
    write_run(runs / "3", "i3d_two_stream", "hmdb51", "original", 1, "rgb+flow", two)
    write_run(runs / "4", "c3d", "ucf101", "original", 1, "rgb", {"video_acc_top1": 0.4})
    write_run(runs / "5", "i3d", "ucf101", "full_ft", 1, "rgb", {"video_acc_top1": 0.95})
    write_run(runs / "6", "i3d", "ucf101", "fixed", 1, "rgb", {"video_acc_top1": 0.60})
    (runs / "7").mkdir()
    (runs / "7" / "metrics.json").write_text("{broken")  # a crashed run: skipped
    out = tmp_path / "report.md"
    assert report_main([str(runs), "--out", str(out)]) == 0
    md = out.read_text()
    t2 = md.split("## Table 2")[1].split("## Table 4")[0]
    assert "| hmdb51 RGB | hmdb51 Flow | hmdb51 RGB+Flow | ucf101 RGB | ucf101 Flow | ucf101 RGB+Flow |" in t2
    i3d = next(line for line in t2.splitlines() if "(`i3d`)" in line).split("|")[2:-1]
    assert [c.strip() for c in i3d] == ["", "", "", "85.0 (2 splits)", "70.0", ""]  # mean over splits 1 and 2
    two_row = next(line for line in t2.splitlines() if "`i3d_two_stream`" in line).split("|")[2:5]
    assert [c.strip() for c in two_row] == ["50.0", "60.0", "75.0"]
    assert t2.index("`c3d`") < t2.index("`i3d_two_stream`") < t2.index("(`i3d`)")  # the paper's row order
    t4 = md.split("## Table 4")[1]
    row = next(line for line in t4.splitlines() if "(`i3d`) | RGB" in line).split("|")[3:-1]
    assert [c.strip() for c in row][3:] == ["85.0 (2 splits)", "60.0", "95.0"]  # ucf101 Original, Fixed, Full-FT
    assert out.with_suffix(".png").stat().st_size > 1000
    assert report_main([str(tmp_path / "empty")]) == 2


def test_report_keeps_runs_of_other_recipes_apart_and_never_renders_empty_tables(tmp_path):
    """The quick start's run and three `debug=tiny` runs, all split 1 (reported as one cell, "34.0 (n=4)",
    before): two I3D rows, one per recipe, the tiny one saying its split has 3 runs; a folder without
    `original` runs says so instead of a broken table."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf, open_dict

    def run_with(folder: Path, overrides: list[str], acc: float, protocol: str = "original") -> None:
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            cfg = compose("train", overrides=[*overrides, f"paths.root_dir={tmp_path}"])
        write_run(folder, "i3d", "synthetic", protocol, 1, "rgb", {"video_acc_top1": acc})
        with open_dict(cfg):
            cfg.paths.output_dir = str(folder)  # what Hydra sets in a real run
        OmegaConf.save(cfg, folder / "config.yaml", resolve=True)  # as train.py saves it

    runs = tmp_path / "logs"
    run_with(runs / "quick", [], 0.98)
    for i, acc in enumerate((0.125, 0.25, 0.125)):
        run_with(runs / f"tiny{i}", ["debug=tiny"], acc)
    from i3d_train.report.cli import build_report

    md, _ = build_report(runs)
    t2 = md.split("## Table 2")[1].split("## Table 4")[0]
    rows = [line for line in t2.splitlines() if "(`i3d`)" in line]
    assert len(rows) == 2, t2
    quick = next(r for r in rows if "18 epochs" in r)
    tiny = next(r for r in rows if "1 epoch," in r)
    assert "AdamW lr 0.0003" in quick and "batch 8" in quick
    assert [c.strip() for c in quick.split("|")[2:5]] == ["98.0", "", ""]
    assert [c.strip() for c in tiny.split("|")[2:5]] == ["16.7 (split 1: 3 runs)", "", ""]
    fixed = tmp_path / "fixed_only"
    run_with(fixed / "a", ["debug=tiny", "protocol=fixed"], 0.5, protocol="fixed")
    md, _ = build_report(fixed)
    t2 = md.split("## Table 2")[1].split("## Table 4")[0]
    assert "No runs with protocol `original`" in t2 and "|---|" not in t2


def test_the_documented_quoting_of_modality_in_weights():
    """docs/evaluation.md: `'weights="weights/i3d_kinetics400_{modality}.pt"'` (the shell removes the
    outer quotes): Hydra reads the path with its braces; unquoted, it refuses the override."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import OverrideParseException

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            "eval",
            overrides=['weights="weights/i3d_kinetics400_{modality}.pt"', "model=i3d_two_stream", "data=synthetic"],
        )
        assert cfg.weights == "weights/i3d_kinetics400_{modality}.pt"
        with pytest.raises(OverrideParseException):
            compose("eval", overrides=["weights=weights/i3d_kinetics400_{modality}.pt"])
