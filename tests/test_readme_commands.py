"""The README's commands, run as a user runs them: subprocesses, exactly as written (plus the options that
point them at tiny inputs made here), with assertions on what they write.

Other files hold the rest: ``eval.py`` (test_eval.py), ``extract.py`` (test_extract.py), ``weights
convert``/``download``/``list`` (test_weights.py, test_download.py), multiruns (test_readme.py,
test_scale.py) and ``torchrun`` (test_scale.py), every model x protocol (test_matrix.py, in-process through the same ``train(cfg)``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from i3d_train.data.synthetic import SyntheticConfig, generate
from i3d_train.models.i3d import InceptionI3d
from i3d_train.video.reader import probe, read_frames
from i3d_train.video.writer import write_video

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "offline", "WANDB_SILENT": "true"}


def run(args: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)


def moving_frames(n: int, h: int = 48, w: int = 64, dx: int = 2, seed: int = 0) -> np.ndarray:
    """A smooth random texture translated by ``dx`` pixels per frame."""
    rng = np.random.default_rng(seed)
    tex = rng.integers(0, 256, (h // 4, (w + n * dx) // 4 + 1, 3)).astype(np.uint8)
    tex = np.kron(tex, np.ones((4, 4, 1), dtype=np.uint8))
    return np.stack([tex[:h, i * dx : i * dx + w] for i in range(n)])


def avi_with_non_utf8_metadata(path: Path, frames: np.ndarray) -> Path:
    """An MPEG-4 AVI whose INFO title holds bytes that are not UTF-8, as many real HMDB-51 clips do."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="avi") as c:
        c.metadata["title"] = "QQQQQQQQ"
        s = c.add_stream("mpeg4", rate=25)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    data = path.read_bytes()
    assert data.count(b"QQQQQQQQ") == 1
    path.write_bytes(data.replace(b"QQQQQQQQ", b"\xd3\xd3QQ\xff\xfeQQ"))
    return path


def test_non_utf8_metadata_avi_opens_everywhere(tmp_path):
    path = avi_with_non_utf8_metadata(tmp_path / "clip.avi", moving_frames(12))
    with pytest.raises(UnicodeDecodeError):  # the bug this guards against: PyAV's default refuses it
        av.open(str(path))
    assert probe(path).num_frames == 12
    assert read_frames(path, np.arange(12), 25.0).shape == (12, 48, 64, 3)


@pytest.mark.slow
def test_data_check_hmdb51_decode_reports_non_utf8_files_readable(tmp_path):
    """`python -m i3d_train.data check hmdb51 --root <path> --decode --json` on HMDB-51-layout files
    whose AVI metadata is not UTF-8: all readable."""
    root = tmp_path / "hmdb51"
    splits = root / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    for k, cls in enumerate(("cartwheel", "brush_hair")):
        lines = []
        for j, split_id in enumerate((1, 2)):
            name = f"{cls}_f_cm_np2_le_med_{j}.avi"
            avi_with_non_utf8_metadata(root / cls / name, moving_frames(12, seed=k * 2 + j))
            lines.append(f"{name} {split_id} ")
        (splits / f"{cls}_test_split1.txt").write_text("\n".join(lines) + "\n")
    proc = run(
        [sys.executable, "-m", "i3d_train.data", "check", "hmdb51", "--root", str(root), "--decode", "--json"], tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert (out["num_classes"], out["train"], out["test"], out["missing"], out["unreadable"]) == (2, 2, 2, 0, 0)
    # a truncated copy (its first 40%: the header still counts every frame) is unreadable, said so; it
    # passed before, its first frames decoding and the rest repeating the last one
    cut = root / "cartwheel" / "cartwheel_f_cm_np2_le_med_0.avi"
    avi_with_non_utf8_metadata(cut, moving_frames(100))
    data = cut.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 5])
    proc = run(
        [sys.executable, "-m", "i3d_train.data", "check", "hmdb51", "--root", str(root), "--decode", "--json"], tmp_path
    )
    out = json.loads(proc.stdout)
    assert out["unreadable"] == 1 and out["unreadable_files"][0]["video"].endswith(cut.name)
    assert out["unreadable_files"][0]["reason"].startswith("truncated: its header says 100 frames")


@pytest.mark.slow
@pytest.mark.parametrize("method", ["tvl1", "farneback"])
def test_flow_command_with_two_workers(tmp_path, method):
    """`python -m i3d_train.flow --src <folder> --dst <out> --workers 2`: the spawn pool must import its
    worker (it failed for every video when the worker lived in __main__.py)."""
    src = tmp_path / "videos"
    for i, name in enumerate(("a.mp4", "sub/b.mp4", "c.avi")):
        frames = moving_frames(6, seed=i)
        if name.endswith(".avi"):
            avi_with_non_utf8_metadata(src / name, frames)
        else:
            write_video(src / name, frames, 25)
    dst = tmp_path / "flow"
    args = [sys.executable, "-m", "i3d_train.flow", "--src", str(src), "--dst", str(dst), "--workers", "2"]
    proc = run([*args, "--method", method, "--short-side", "0"], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 done, 0 left to another process, 0 skipped" in proc.stdout and "failed:" not in proc.stdout
    for name in ("a", "sub/b", "c"):
        meta = json.loads((dst / name / "meta.json").read_text())
        assert (meta["method"], meta["frames"], meta["flow_frames"]) == (method, 6, 5)
        assert len(list((dst / name).glob("flow_x_*.jpg"))) == 5 == len(list((dst / name).glob("flow_y_*.jpg")))
    assert not list(dst.rglob("*.tmp"))
    again = run([*args, "--method", method, "--short-side", "0"], tmp_path)
    assert again.returncode == 0 and "0 done, 0 left to another process, 3 skipped" in again.stdout


@pytest.mark.slow
def test_predict_command_json(tmp_path, capsys):
    """`python -m i3d_train.predict my_video.mp4 --weights <w> --top 5 --json`."""
    torch.manual_seed(0)
    weights = tmp_path / "w.pt"
    torch.save(InceptionI3d(400).state_dict(), weights)
    video = tmp_path / "my_video.mp4"
    write_video(video, moving_frames(20, h=128, w=160), 25)
    cmd = [
        sys.executable,
        "-m",
        "i3d_train.predict",
        str(video),
        "--weights",
        str(weights),
        "--top",
        "5",
        "--json",
    ]
    proc = run(cmd, tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["frames"] == 20 and len(out["top"]) == 5
    probs = [r["probability"] for r in out["top"]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001

    # `python -m i3d_train.predict my_videos/ --weights ... --csv predictions.csv`: every video under the
    # folder, a row each, the same figures as one video at a time; a broken file is skipped and counted.
    # Weights whose outputs depend on the input (a random I3D scores every video alike): a row given to
    # the wrong video would differ from that video's own prediction.
    from tests.conftest import sensitive_i3d

    net = sensitive_i3d(seed=3)
    with torch.no_grad():  # logits of a few units (its own reach tens of thousands: one-hot softmax)
        net.logits.conv3d.weight.mul_(1e-3)
    torch.save(net.state_dict(), weights)
    folder = tmp_path / "my_videos"
    (folder / "sub").mkdir(parents=True)
    write_video(folder / "a.mp4", moving_frames(20, h=128, w=160), 25)
    write_video(folder / "sub" / "b.mp4", moving_frames(12, h=128, w=160, seed=3), 25)
    (folder / "broken.mp4").write_bytes(b"not a video")
    csv_out = tmp_path / "predictions.csv"
    proc = run(
        [sys.executable, "-m", "i3d_train.predict", str(folder), "--weights", str(weights), "--csv", str(csv_out)],
        tmp_path,
    )
    assert proc.returncode == 1, proc.stderr  # one video failed, the others predicted
    assert f"predict: 2 predicted, 1 failed -> {csv_out}" in proc.stdout and "broken.mp4" in proc.stdout
    rows = csv_out.read_text().splitlines()
    assert rows[0] == "video,frames,class,probability,top"
    by_video = {r.split(",")[0]: r.split(",") for r in rows[1:]}
    assert set(by_video) == {str(folder / "a.mp4"), str(folder / "sub" / "b.mp4")}
    from i3d_train.inference.predict import main as predict

    for name, frames in (("a.mp4", "20"), ("sub/b.mp4", "12")):
        capsys.readouterr()
        assert predict([str(folder / name), *cmd[4:]]) == 0  # one video alone (in process: the same code)
        one = json.loads(capsys.readouterr().out)["top"]
        row = by_video[str(folder / name)]
        assert (row[1], row[2], float(row[3])) == (
            frames,
            one[0]["class"],
            pytest.approx(one[0]["probability"], abs=2e-6),
        )
        assert row[4] == "|".join(f"{t['class']}:{t['probability']:.6f}" for t in one)
    assert by_video[str(folder / "a.mp4")][4] != by_video[str(folder / "sub" / "b.mp4")][4]  # the videos differ


@pytest.fixture(scope="module")
def ucf_tree(tmp_path_factory):
    """A tiny set in UCF-101's layout (the synthetic generator writes exactly that layout)."""
    root = tmp_path_factory.mktemp("ucf") / "UCF101"
    cfg = SyntheticConfig(num_classes=3, train_per_class=2, test_per_class=1, num_frames=12, height=64, width=80)
    generate(root, cfg, workers=1)
    return root


@pytest.mark.slow
def test_train_on_a_ucf101_tree_with_a_smaller_clip(tmp_path, ucf_tree):
    """`python train.py data=ucf101 data.root=... data.input_override='{num_frames: 16, crop_size: 112}'`
    (the README's spelling; the shell removes the quotes), here with a clip that fits the tiny videos."""
    common = [
        sys.executable, str(ROOT / "train.py"), "data=ucf101", f"data.root={ucf_tree}", "data.num_classes=3",
        "data.num_workers=0", "data.batch_size=3", "trainer.fast_dev_run=true", f"paths.root_dir={tmp_path}",
        "callbacks.progress_bar.refresh_rate=0",
    ]  # fmt: skip
    run_dir = tmp_path / "run"
    ok = run(
        [*common, "data.input_override={num_frames: 8, resize: 64, crop_size: 56}", f"hydra.run.dir={run_dir}"],
        tmp_path,
    )
    assert ok.returncode == 0, ok.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["data"] == "ucf101" and metrics["test"]["num_videos"] >= 1
    # The override reaches the DataModule: a crop larger than its resize is refused, naming both.
    bad = run(
        [*common, "data.input_override={resize: 64, crop_size: 112}", f"hydra.run.dir={tmp_path / 'bad'}"], tmp_path
    )
    assert bad.returncode != 0 and "crop_size 112 is larger than the resized frames (64)" in bad.stderr


@pytest.mark.slow
def test_flow_then_two_stream_training_chain(tmp_path):
    """The flow section's command, then two-stream training with the defaults: `--dst` is the folder
    training reads (data.flow_root = <data.root>/flow/<method>). Flow written one folder off is named in
    the training's error with the data.flow_root to set."""
    root = tmp_path / "data" / "ucf101"
    generate(
        root,
        SyntheticConfig(num_classes=3, train_per_class=1, test_per_class=1, num_frames=12, height=64, width=80),
        workers=1,
    )
    flow = [sys.executable, "-m", "i3d_train.flow", "--src", "data/ucf101/UCF-101", "--method", "farneback"]
    train = [
        sys.executable, str(ROOT / "train.py"), "model=i3d_two_stream", "data=ucf101", "data.flow_method=farneback",
        f"paths.root_dir={tmp_path}", "data.num_classes=3", "data.num_workers=0", "data.batch_size=3",
        "trainer.fast_dev_run=true", "data.input_override={num_frames: 8, resize: 64, crop_size: 56}",
        "callbacks.progress_bar.refresh_rate=0", "data.test_clips=1",
    ]  # fmt: skip
    off = run([*flow, "--dst", "data/ucf101/flow"], tmp_path)  # one folder too high
    assert off.returncode == 0, off.stderr
    bad = run([*train, f"hydra.run.dir={tmp_path / 'bad'}"], tmp_path)
    assert bad.returncode != 0
    assert f"no flow folders in {root / 'flow' / 'farneback'}" in bad.stderr
    assert f"but {root / 'flow'} holds them: set data.flow_root={root / 'flow'}" in bad.stderr
    ok = run([*flow, "--dst", "data/ucf101/flow/farneback"], tmp_path)  # as the docs write it
    assert ok.returncode == 0 and "9 done" in ok.stdout, ok.stdout + ok.stderr  # train, validation and test
    trained = run([*train, f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["model"] == "i3d_two_stream" and metrics["test"]["num_videos"] == 3
    assert {"rgb/video_acc_top1", "flow/video_acc_top1", "fused/video_acc_top1"} <= set(metrics["test"])


@pytest.mark.slow
def test_report_command(tmp_path):
    """`python -m i3d_train.report logs/ --out report.md` over metrics.json files of runs."""
    for i, (model, protocol, top1) in enumerate(
        (("i3d", "original", 0.5), ("i3d", "fixed", 0.75), ("c3d", "original", 0.25))
    ):
        run_dir = tmp_path / "logs" / f"run{i}"
        run_dir.mkdir(parents=True)
        metrics = {
            "model": model, "modality": "rgb", "data": "ucf101", "split": 1, "protocol": protocol,
            "test": {"video_acc_top1": top1, "num_videos": 10.0},
        }  # fmt: skip
        (run_dir / "metrics.json").write_text(json.dumps(metrics))
    proc = run([sys.executable, "-m", "i3d_train.report", "logs/", "--out", "report.md"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "report.md").read_text()
    t4 = md.split("## Table 4")[1]
    i3d = next(line for line in t4.splitlines() if "(`i3d`) | RGB" in line).split("|")[3:-1]
    assert [c.strip() for c in i3d] == ["50.0", "75.0", ""]  # ucf101 Original, Fixed, Full-FT
    c3d = next(line for line in t4.splitlines() if "(`c3d`) | RGB" in line).split("|")[3:-1]
    assert [c.strip() for c in c3d] == ["25.0", "", ""]
    assert (tmp_path / "report.png").stat().st_size > 1000
