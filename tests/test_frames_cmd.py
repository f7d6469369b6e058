"""``python -m i3d_train.frames``: frame folders for ``data.storage=frames``, named as each dataset's training
reads them, close to the decoded frames, resumable, safe with several commands on one ``--dst``, atomic
under ``kill -9``, bad videos counted; and the chain frames -> ``train.py data.storage=frames``."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from i3d_train.data.frames import probe_frames, read_frame_folder
from i3d_train.data.hmdb51 import parse_hmdb51
from i3d_train.data.kinetics import parse_kinetics400
from i3d_train.data.synthetic import SyntheticConfig, generate, render_video
from i3d_train.data.ucf101 import parse_ucf101
from i3d_train.frames.cli import main as frames_main
from i3d_train.frames.parallel import list_videos
from i3d_train.video.reader import probe, read_frames
from i3d_train.video.writer import write_video

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "offline", "WANDB_SILENT": "true"}

# The commands of docs/datasets.md, one per dataset (run as written, from a folder holding data/<name>).
COMMANDS = {
    "ucf101": "python -m i3d_train.frames --src data/ucf101/UCF-101 --dst data/ucf101/frames",
    "hmdb51": "python -m i3d_train.frames --src data/hmdb51 --dst data/hmdb51/frames",
    "kinetics400": "python -m i3d_train.frames --src data/kinetics400 --dst data/kinetics400/frames",
}
SRC_FPS = 30  # the test videos' rate: extracted at 25 fps, so the resampling rule is exercised
# Mean absolute error (0-255) of a frame read back against the same frame decoded from the video, at the
# default quality 95, 4:4:4: measured 2.44 on the worst frame of these 80x64 synthetic frames (saturated fine
# texture: harder than camera footage). The bound allows 3x that; swapped colour channels are far above it
# (checked), a frame off by one is caught by matching each frame to its nearest decoded one.
JPEG_ERROR = 2.44
SUMMARY = re.compile(
    r"frames: (\d+) done, (\d+) left to another process, (\d+) skipped \(already complete\), (\d+) failed"
)


def args_of(cmd: str) -> list[str]:
    """A documented command's arguments (after ``python -m i3d_train.frames``)."""
    return shlex.split(cmd)[3:]


def run(args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)


def counts(out: str) -> tuple[int, ...]:
    """``(done, left to another process, skipped, failed)`` of the closing summary, the last line."""
    m = SUMMARY.match(out.strip().splitlines()[-1])
    assert m, out
    return tuple(int(x) for x in m.groups())


def tiny_video(path: Path, label: int = 0, seed: int = 0, frames: int = 10, size: tuple[int, int] = (32, 48)) -> Path:
    cfg = SyntheticConfig(num_frames=frames, fps=SRC_FPS, height=size[0], width=size[1])
    write_video(path, render_video(cfg, label, seed), SRC_FPS)
    return path


def files_and_mtimes(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))}


# --- the documented UCF-101 command on a tiny UCF-101 tree (shared by the tests below) -----------------


@pytest.fixture(scope="module")
def ucf(tmp_path_factory):
    """A tiny UCF-101 tree at ``<here>/data/ucf101`` (3 classes x 2 train + 1 test + 1 val, 15 frames at
    30 fps), and the documented command run once on it from ``<here>``: ``(here, process)``."""
    here = tmp_path_factory.mktemp("frames")
    cfg = SyntheticConfig(
        num_classes=3, train_per_class=2, test_per_class=1, num_frames=15, fps=SRC_FPS, height=64, width=80
    )
    generate(here / "data" / "ucf101", cfg, workers=1)
    proc = run([sys.executable, "-m", "i3d_train.frames", *args_of(COMMANDS["ucf101"])], here)
    return here, proc


def test_documented_command_writes_the_folders_with_the_frames_at_25_fps(ucf):
    here, proc = ucf
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert counts(proc.stdout) == (12, 0, 0, 0)
    root = here / "data" / "ucf101"
    lists = parse_ucf101(root, 1)
    items = lists.train + lists.test + lists.val
    assert lists.video_dir == root / "UCF-101" and len(items) == 12  # ids relative to --src
    frames_root = root / "frames"  # data.frames_root's default, ${data.root}/frames
    made = {p.parent.relative_to(frames_root).as_posix() for p in frames_root.rglob("meta.json")}
    assert made == {Path(it.video_id).with_suffix("").as_posix() for it in items}
    assert not list(frames_root.rglob("*.tmp")) and not list(frames_root.rglob("*.lock"))
    errors, swapped = [], []
    for it in items[:4]:
        folder = frames_root / Path(it.video_id).with_suffix("")
        n = probe(it.path).num_frames_at(25.0)
        assert n == 12 and probe_frames(folder, 25.0).num_frames == n  # 15 frames at 30 fps -> 12 at 25
        meta = json.loads((folder / "meta.json").read_text())
        assert (meta["fps"], meta["frames"], meta["height"], meta["width"]) == (25.0, n, 64, 80)
        assert (here / meta["source"]).resolve() == it.path.resolve()  # as given, relative to where it ran
        ours = read_frame_folder(folder, np.arange(n), 25.0, probe_frames(folder, 25.0)).astype(np.float64)
        ref = read_frames(it.path, np.arange(n), 25.0).astype(np.float64)
        assert ours.shape == ref.shape == (n, 64, 80, 3)
        dist = np.abs(ours[:, None] - ref[None]).mean(axis=(2, 3, 4))  # frame read back x decoded frame
        assert (dist.argmin(axis=1) == np.arange(n)).all(), dist.round(1)  # each closest to its own frame
        errors.append(dist.diagonal().max())
        swapped.append(np.abs(ours[..., ::-1] - ref).mean(axis=(1, 2, 3)).min())  # RGB <-> BGR
    print(f"JPEG error (mean absolute, 0-255) per video, worst frame: {np.round(errors, 3).tolist()}")
    assert max(errors) < 3 * JPEG_ERROR, errors
    assert min(swapped) > 3 * JPEG_ERROR, swapped  # the bound would catch swapped channels


def test_a_second_run_skips_every_video_and_rewrites_nothing(ucf):
    here, first = ucf
    assert first.returncode == 0
    frames_root = here / "data" / "ucf101" / "frames"
    before = files_and_mtimes(frames_root)
    again = run([sys.executable, "-m", "i3d_train.frames", *args_of(COMMANDS["ucf101"])], here)
    assert again.returncode == 0, again.stderr[-2000:]
    assert counts(again.stdout) == (0, 0, 12, 0)
    assert files_and_mtimes(frames_root) == before


@pytest.mark.slow
def test_train_py_trains_and_tests_from_the_extracted_frame_folders(ucf, tmp_path):
    """THE CHAIN: the documented command's folders, under a root without the videos (so nothing can be
    decoded from them), train and test ``python train.py data=ucf101 data.root=<root> data.storage=frames``
    with data.frames_root at its default."""
    here, proc = ucf
    assert proc.returncode == 0
    root = tmp_path / "UCF101"
    shutil.copytree(here / "data" / "ucf101" / "ucfTrainTestlist", root / "ucfTrainTestlist")
    shutil.copytree(here / "data" / "ucf101" / "frames", root / "frames")
    cmd = [
        sys.executable, str(ROOT / "train.py"), "data=ucf101", f"data.root={root}", "data.storage=frames",
        "data.num_classes=3", "data.num_workers=0", "data.batch_size=3", "trainer.fast_dev_run=true",
        f"paths.root_dir={tmp_path}", "callbacks.progress_bar.refresh_rate=0",
        "data.input_override={num_frames: 8, resize: 64, crop_size: 56}", f"hydra.run.dir={tmp_path / 'run'}",
        "data.test_clips=1",  # fast_dev_run tests one batch: one clip of each of the 3 test videos
    ]  # fmt: skip
    trained = run(cmd, tmp_path, timeout=600)
    assert trained.returncode == 0, trained.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["data"] == "ucf101" and metrics["test"]["num_videos"] == 3  # the tree's 3 test videos
    assert metrics["skipped_videos"] == 0  # no frame folder failed to read
    assert "frame folders found" not in (tmp_path / "run" / "train.log").read_text()  # none missing at setup


# --- naming per dataset: the folder each dataset's training looks for ----------------------------------


def make_tree(name: str, data: Path) -> Path:
    """A tiny tree of dataset ``name`` in its official layout at ``data/<name>``, with real tiny videos."""
    root = data / name
    if name == "ucf101":
        (root / "ucfTrainTestlist").mkdir(parents=True)
        (root / "ucfTrainTestlist" / "classInd.txt").write_text("1 ApplyLipstick\r\n2 Archery\r\n")
        (root / "ucfTrainTestlist" / "trainlist01.txt").write_text(
            "ApplyLipstick/v_ApplyLipstick_g08_c01.avi 1\r\nArchery/v_Archery_g08_c01.avi 2\r\n"
        )
        (root / "ucfTrainTestlist" / "testlist01.txt").write_text("Archery/v_Archery_g01_c01.avi\r\n")
        for rel in ("ApplyLipstick/v_ApplyLipstick_g08_c01", "Archery/v_Archery_g08_c01", "Archery/v_Archery_g01_c01"):
            tiny_video(root / "UCF-101" / f"{rel}.avi")
    elif name == "hmdb51":
        (root / "testTrainMulti_7030_splits").mkdir(parents=True)
        for cls in ("brush_hair", "sword_exercise"):
            lines = "".join(f"{cls}_v{i}.avi {1 + i % 2} \n" for i in range(2))
            (root / "testTrainMulti_7030_splits" / f"{cls}_test_split1.txt").write_text(lines)
            for i in range(2):
                tiny_video(root / cls / f"{cls}_v{i}.avi")
    else:  # kinetics400: train in per-class folders (a label with spaces), val flat
        (root / "annotations").mkdir(parents=True)
        head = "label,youtube_id,time_start,time_end,split,is_cc\n"
        (root / "annotations" / "train.csv").write_text(
            head + "abseiling,aaaaaaaaaaa,10,20,train,0\n" + '"air drumming",-bbbbbbbbb_,0,10,train,0\n'
        )
        (root / "annotations" / "val.csv").write_text(head + "abseiling,ccccccccccc,1,11,val,0\n")
        tiny_video(root / "train" / "abseiling" / "aaaaaaaaaaa_000010_000020.mp4")
        tiny_video(root / "train" / "air drumming" / "-bbbbbbbbb__000000_000010.mp4")
        tiny_video(root / "val" / "ccccccccccc_000001_000011.mp4")
    return root


PARSERS = {"ucf101": parse_ucf101, "hmdb51": parse_hmdb51, "kinetics400": parse_kinetics400}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_documented_command_names_folders_as_the_datasets_training_reads_them(tmp_path, monkeypatch, capsys, name):
    """Each dataset's documented ``--src`` is the folder its video ids are relative to, so every item's
    frame folder (as the datamodule sets it: ``attach_folders``) is there and complete after the command."""
    from i3d_train.data.datamodule import attach_folders, item_exists

    root = make_tree(name, tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    args = args_of(COMMANDS[name])
    assert frames_main(args) == 0, capsys.readouterr()
    lists = PARSERS[name](root)
    assert lists.video_dir.resolve() == Path(args[args.index("--src") + 1]).resolve()
    frames_root = root / "frames"  # data.frames_root's default
    items = [attach_folders(it, frames_root, None) for it in lists.train + lists.test]
    assert len(items) >= 3 and all(item_exists(it) for it in items), [str(it.frames_dir) for it in items]
    assert all(probe_frames(it.frames_dir, 25.0).num_frames == 8 for it in items)  # 10 frames at 30 fps
    # the frames root inside --src (HMDB-51, Kinetics) is not walked: a stray video there is not a video of --src
    tiny_video(frames_root / "stray.mp4", frames=2)
    assert all(not video_name.startswith("frames") for _, video_name in list_videos(root, frames_root))


# --- several commands at once, kill -9, bad videos, bad arguments -----------------------------------------

# python -c GATE <barrier folder> <frames args>: the command, held just before its work until three have arrived
GATE = """\
import pathlib, sys, time
import i3d_train.frames.cli as cli
folder = pathlib.Path(sys.argv[1])
real = cli.extract_many
def gated(*a, **k):
    (folder / str(time.time_ns())).touch()
    while len(list(folder.iterdir())) < 3:
        time.sleep(0.002)
    return real(*a, **k)
cli.extract_many = gated
sys.exit(cli.main(sys.argv[2:]))
"""

# python -c KILL <n> <frames args>: the command, killed (SIGKILL: no clean-up) as it writes its n-th frame
KILL = """\
import os, signal, sys
import i3d_train.frames.extract as extract
left = [int(sys.argv[1])]
real = extract.write_jpeg
def dying(*a, **k):
    left[0] -= 1
    if left[0] == 0:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*a, **k)
extract.write_jpeg = dying
from i3d_train.frames.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.slow
def test_three_commands_on_one_folder_take_each_video_once(tmp_path):
    """Three commands on one --src / --dst, started together behind a barrier: every video extracted by
    exactly one of them (the "done" counts add up to 6), none failed, the rest left to another process."""
    for i in range(6):
        tiny_video(tmp_path / "videos" / f"c{i % 2}" / f"v{i}.mp4", i % 2, i, frames=60)
    (tmp_path / "barrier").mkdir()
    args = ["--src", str(tmp_path / "videos"), "--dst", str(tmp_path / "frames")]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", GATE, str(tmp_path / "barrier"), *args],
            env=ENV,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-1500:] for _, err in outs]
    got = [counts(out) for out, _ in outs]
    assert sum(done for done, *_ in got) == 6 and all(sum(c) == 6 and c[3] == 0 for c in got), got
    metas = sorted(
        p.parent.relative_to(tmp_path / "frames").as_posix() for p in (tmp_path / "frames").rglob("meta.json")
    )
    assert metas == [f"c{i % 2}/v{i}" for i in (0, 2, 4, 1, 3, 5)]
    assert all(probe_frames(tmp_path / "frames" / m, 25.0).num_frames == 50 for m in metas)
    assert not list((tmp_path / "frames").rglob("*.lock")) and not list((tmp_path / "frames").rglob("*.tmp"))


@pytest.mark.slow
def test_a_run_killed_midway_leaves_no_complete_looking_folder_and_the_next_run_finishes(tmp_path):
    for i in range(3):
        tiny_video(tmp_path / "videos" / "cls" / f"a{i}.mp4", 0, i)  # 8 frames each at 25 fps
    args = ["--src", str(tmp_path / "videos"), "--dst", str(tmp_path / "frames")]
    dst = tmp_path / "frames" / "cls"
    killed = run([sys.executable, "-c", KILL, "11", *args], tmp_path)  # a0 done, 2 frames of a1 written
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert sorted(p.name for p in dst.iterdir() if not p.name.startswith(".")) == ["a0", "a1.lock"]
    assert (dst / "a0" / "meta.json").is_file() and not (dst / "a1").exists()  # a1: nothing under its name
    (left,) = dst.glob(".a1.*.tmp")
    assert sorted(p.name for p in left.iterdir()) == ["img_00001.jpg", "img_00002.jpg"]  # no meta.json
    again = run([sys.executable, "-m", "i3d_train.frames", *args], tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert counts(again.stdout) == (2, 0, 1, 0)  # the dead run's lock taken over, its folder finished
    assert sorted(p.name for p in dst.iterdir()) == ["a0", "a1", "a2"]  # its temporary folder removed
    assert [probe_frames(dst / f"a{i}", 25.0).num_frames for i in range(3)] == [8, 8, 8]


def test_a_corrupt_video_is_counted_failed_and_the_others_done(tmp_path, capsys):
    for i in range(2):
        tiny_video(tmp_path / "videos" / "cls" / f"ok{i}.avi", 0, i)
    (tmp_path / "videos" / "cls" / "bad.avi").write_bytes(b"not a video" * 20)
    dst = tmp_path / "frames"
    assert (
        frames_main(["--src", str(tmp_path / "videos"), "--dst", str(dst), "--workers", "2", "--short-side", "16"]) == 1
    )
    out = capsys.readouterr().out
    assert counts(out) == (2, 0, 0, 1) and re.search(r"failed: .*bad\.avi: VideoDecodeError", out), out
    assert sorted(p.name for p in (dst / "cls").iterdir()) == ["ok0", "ok1"]  # no folder, lock or temp of bad
    for i in range(2):  # 48x32 videos, short side resized to 16
        folder = dst / "cls" / f"ok{i}"
        meta = json.loads((folder / "meta.json").read_text())
        assert (meta["frames"], meta["height"], meta["width"]) == (8, 16, 24)
        assert read_frame_folder(folder, [0, 7], 25.0, probe_frames(folder, 25.0)).shape == (2, 16, 24, 3)


def test_bad_arguments_are_one_line_on_stderr_and_exit_2(tmp_path, capsys):
    tiny_video(tmp_path / "videos" / "a.mp4", frames=2)
    dst = str(tmp_path / "frames")
    cases = {
        "the following arguments are required: --src": ["--dst", dst],
        "--src nowhere: no such file or folder": ["--src", "nowhere", "--dst", dst],
        "--quality must be in 1..100": ["--src", str(tmp_path / "videos"), "--dst", dst, "--quality", "0"],
    }
    for expected, argv in cases.items():
        assert frames_main(argv) == 2, argv
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and err.startswith("error: ") and expected in err, err
    assert not (tmp_path / "frames").exists()  # nothing written on bad arguments
    # a frames root holds one rate and size (training reads it at data.frames_fps): others are refused
    assert frames_main(["--src", str(tmp_path / "videos"), "--dst", dst]) == 0
    capsys.readouterr()
    assert frames_main(["--src", str(tmp_path / "videos"), "--dst", dst, "--fps", "30"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "extracted with --fps 25 --short-side 0" in err, err
