"""HMDB-51 and Kinetics-400 parsers (official layouts, real excerpts), frame folders, the data check
command, and training that survives broken files."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from i3d_train.data.check import check
from i3d_train.data.check import main as check_main
from i3d_train.data.datamodule import VideoDataModule
from i3d_train.data.dataset import VideoDataset, VideoItem
from i3d_train.data.frames import probe_frames, read_frame_folder, write_frame_folder
from i3d_train.data.hmdb51 import parse_hmdb51
from i3d_train.data.kinetics import parse_kinetics400
from i3d_train.data.samplers import CenterClipSampler
from i3d_train.data.splits import DatasetFormatError
from i3d_train.data.synthetic import SyntheticConfig, generate
from i3d_train.data.transforms import ClipTransform
from i3d_train.errors import ConfigError
from i3d_train.resources import kinetics400_classes
from i3d_train.train.run import train
from tests.conftest import compose_train, decode_index, index_frames

ASSETS = Path(__file__).parent / "assets"


# --- HMDB-51 ---------------------------------------------------------------------------------------


def make_hmdb(root: Path) -> Path:
    """A tiny HMDB-51 tree: trailing spaces, 0 = unused, class names with underscores."""
    ann = root / "testTrainMulti_7030_splits"
    ann.mkdir(parents=True)
    for cls in ("sword_exercise", "brush_hair"):
        for split in (1, 2, 3):
            lines = [f"{cls}_v{i}.avi {(i + split) % 3} " for i in range(6)]  # ids 0, 1, 2 in turn
            (ann / f"{cls}_test_split{split}.txt").write_text("\n".join(lines) + "\n")
        (root / cls).mkdir()
        for i in range(6):
            (root / cls / f"{cls}_v{i}.avi").write_bytes(b"x")
    return root


def test_hmdb51_tiny_tree(tmp_path):
    root = make_hmdb(tmp_path / "hmdb")
    lists = parse_hmdb51(root, 1)
    assert lists.classes == ["brush_hair", "sword_exercise"]  # ids: sorted class names
    assert len(lists.train) == 4 and len(lists.test) == 4  # 2 of 6 per class are 0 (unused)
    assert lists.train[0].video_id == "brush_hair/brush_hair_v0.avi" and lists.train[0].label == 0
    assert {it.video_id for it in lists.test} == {
        f"{c}/{c}_v{i}.avi" for c in ("brush_hair", "sword_exercise") for i in (1, 4)
    }
    assert {it.video_id for it in parse_hmdb51(root, 2).test} != {it.video_id for it in lists.test}
    assert lists.train[0].path == root / "brush_hair" / "brush_hair_v0.avi"
    (root / "testTrainMulti_7030_splits" / "brush_hair_test_split1.txt").write_text("a.avi 1 \nb.avi 3 \n")
    with pytest.raises(DatasetFormatError, match=r"brush_hair_test_split1.txt:2: expected '<video>.avi <0\|1\|2>'"):
        parse_hmdb51(root, 1)
    with pytest.raises(DatasetFormatError, match="no <class>_test_split"):
        parse_hmdb51(tmp_path, 1)


def test_hmdb51_real_split_files_excerpt(tmp_path):
    root = tmp_path / "hmdb"
    shutil.copytree(ASSETS / "hmdb51_excerpt", root / "testTrainMulti_7030_splits")
    for split in (1, 2, 3):
        lists = parse_hmdb51(root, split)
        assert lists.classes == ["brush_hair", "sword_exercise"]
        for label in (0, 1):  # 70 train / 30 test per class, as in every official split
            assert sum(it.label == label for it in lists.train) == 70
            assert sum(it.label == label for it in lists.test) == 30
    assert lists.train[0].video_id.startswith("brush_hair/") and lists.train[0].video_id.endswith(".avi")


# --- Kinetics-400 ----------------------------------------------------------------------------------

K400_HEADER = "label,youtube_id,time_start,time_end,split,is_cc"


def make_kinetics(root: Path) -> Path:
    """Train in per-class folders, val flat; quoted labels with spaces and parentheses; one clip missing."""
    (root / "annotations").mkdir(parents=True)
    rows = {
        "train": [
            ("abseiling", "aaaaaaaaaaa", 10, 20),
            ('"passing American football (in game)"', "bbbbbbbbbbb", 0, 10),
            ('"air drumming"', "-ccccccccc_", 5, 15),
        ],
        "val": [('"tying knot (not on a tie)"', "ddddddddddd", 1, 11), ("abseiling", "eeeeeeeeeee", 2, 12)],
    }
    for split, rs in rows.items():
        lines = [K400_HEADER] + [f"{lab},{yt},{a},{b},{split},0" for lab, yt, a, b in rs]
        (root / "annotations" / f"{split}.csv").write_text("\n".join(lines) + "\n")
    (root / "train" / "abseiling").mkdir(parents=True)
    (root / "train" / "abseiling" / "aaaaaaaaaaa_000010_000020.mp4").write_bytes(b"x")
    folder = root / "train" / "passing American football (in game)"
    folder.mkdir()
    (folder / "bbbbbbbbbbb_000000_000010.mp4").write_bytes(b"x")
    # "-ccccccccc_" (air drumming) is missing, as a few percent are in every real copy
    (root / "val").mkdir()
    (root / "val" / "ddddddddddd_000001_000011.mkv").write_bytes(b"x")  # flat layout, another container
    (root / "val" / "eeeeeeeeeee_000002_000012.mp4").write_bytes(b"x")
    return root


def test_kinetics400_both_layouts_quoted_labels_and_missing_clips(tmp_path, caplog):
    root = make_kinetics(tmp_path / "k400")
    lists = parse_kinetics400(root)
    classes = kinetics400_classes()
    assert lists.classes == classes and len(classes) == 400
    assert [it.label for it in lists.train] == [
        classes.index("abseiling"),
        classes.index("passing American football (in game)"),
        classes.index("air drumming"),
    ]
    assert lists.train[1].video_id == "train/passing American football (in game)/bbbbbbbbbbb_000000_000010.mp4"
    assert lists.train[2].video_id == "train/air drumming/-ccccccccc__000005_000015.mp4"  # where it would be
    assert lists.val[0].video_id == "val/ddddddddddd_000001_000011.mkv"
    assert lists.test == lists.val and lists.absent == ["test.csv"]  # no test.csv: val serves as test

    args = ("kinetics400", str(root), 1, 400, {"num_frames": 8, "resize": 64}, None, 2, 0, 1)
    with caplog.at_level("WARNING"):
        parsed = VideoDataModule(*args, val_source="test").parse()
    assert "kinetics400 train: 2 of 3 videos found" in caplog.text
    assert len(parsed.train) == 2 and len(parsed.val) == 2
    # by default validation is held out of train when val.csv is the test list: one clip per class here
    with pytest.raises(DatasetFormatError, match=r"no validation videos .* set data.val_source=test"):
        VideoDataModule(*args).parse()


def test_kinetics400_errors_name_file_and_line(tmp_path):
    root = make_kinetics(tmp_path / "k400")
    val = root / "annotations" / "val.csv"
    val.write_text(K400_HEADER + "\nabseiling,x,1,11,val,0\nflying cars,y,1,11,val,0\n")
    with pytest.raises(DatasetFormatError, match=r"val.csv:3: unknown Kinetics-400 label 'flying cars'"):
        parse_kinetics400(root)
    val.write_text(K400_HEADER + '\n"air drumming",y,1,11,val\n')
    with pytest.raises(DatasetFormatError, match=r"val.csv:2: expected 6 fields, got 5"):
        parse_kinetics400(root)
    (root / "annotations" / "train.csv").unlink()
    with pytest.raises(DatasetFormatError, match=r"train.csv: file not found"):
        parse_kinetics400(root)


def test_kinetics400_without_a_training_list_can_be_evaluated_but_not_trained(tmp_path):
    """Evaluation (stage "test") checks only the lists it reads: a copy with only val.csv and the val
    videos sets up its test list (val.csv stands in for it); training stops naming train.csv."""
    root = make_kinetics(tmp_path / "k400")
    (root / "annotations" / "train.csv").unlink()
    shutil.rmtree(root / "train")
    args = ("kinetics400", str(root), 1, 400, {"num_frames": 8, "resize": 64, "crop_size": 56}, None, 2, 0, 1)
    dm = VideoDataModule(*args, val_source="test")
    dm.setup("test")
    assert [it.video_id for it in dm.test_set.items] == [
        "val/ddddddddddd_000001_000011.mkv",
        "val/eeeeeeeeeee_000002_000012.mp4",
    ]
    assert dm.train_set is None
    with pytest.raises(DatasetFormatError, match=r"train.csv: file not found"):
        dm.setup("fit")  # set up for evaluation first: training still checks (and needs) the train list
    with pytest.raises(DatasetFormatError, match=r"train.csv: file not found"):
        VideoDataModule(*args).setup("fit")
    # the held-out validation list (of train.csv: val.csv is the test list here) cannot be made without
    # train.csv: one line that says how to evaluate on the test list alone (what eval.py does)
    with pytest.raises(DatasetFormatError, match=r"no validation videos .* set data.val_source=test"):
        VideoDataModule(*args).setup("test")
    (root / "annotations" / "val.csv").unlink()
    with pytest.raises(DatasetFormatError, match=r"val.csv: file not found"):
        VideoDataModule(*args).setup("test")


def test_kinetics400_real_val_excerpt(tmp_path):
    (tmp_path / "annotations").mkdir()
    shutil.copy(ASSETS / "kinetics400_excerpt" / "val.csv", tmp_path / "annotations" / "val.csv")
    lists = parse_kinetics400(tmp_path, required=("val",))
    names = [lists.classes[it.label] for it in lists.val]
    assert len(names) == 20 and names.count("passing American football (in game)") == 5
    assert names[0] == "abseiling" and lists.val[0].video_id == "val/abseiling/0wR5jVB-WPk_000417_000427.mp4"


# --- frame folders ---------------------------------------------------------------------------------


def test_frame_folders_read_like_videos(tmp_path):
    write_frame_folder(tmp_path / "v", index_frames(30))
    info = probe_frames(tmp_path / "v", fps=50.0)
    assert info.num_frames == 30 and info.num_frames_at(25.0) == 15
    clip = read_frame_folder(tmp_path / "v", [0, 1, 2, 14, 15], 25.0, info)  # 50 -> 25 fps: every 2nd; wraps
    assert [decode_index(f) for f in clip] == [0, 2, 4, 28, 0]
    item = VideoItem(tmp_path / "absent.mp4", 3, "v.mp4", frames_dir=tmp_path / "v")
    ds = VideoDataset([item], 8, 25.0, 1, CenterClipSampler(), ClipTransform(64, 64, train=False), frames_fps=25.0)
    s = ds[0]
    assert s["rgb"].shape == (3, 8, 64, 64) and s["label"].item() == 3 and s["skipped"].item() == 0


def test_datamodule_reads_frame_folders(tmp_path, caplog):
    root = generate(
        tmp_path / "syn", SyntheticConfig(num_classes=2, train_per_class=2, test_per_class=1, num_frames=10)
    )
    from i3d_train.video.reader import read_frames

    for video in (root / "UCF-101").rglob("*.mp4"):
        rel = video.relative_to(root / "UCF-101").with_suffix("")
        if rel.name != "v_MoveLeft_g01_c01":  # one folder missing
            write_frame_folder(tmp_path / "frames" / rel, read_frames(video, np.arange(10)))
    dm = VideoDataModule(
        "synthetic", str(root), 1, 2, {"num_frames": 8, "resize": 48, "crop_size": 32}, None, 2, 0, 1,
        synthetic={"num_classes": 2, "train_per_class": 2, "test_per_class": 1, "num_frames": 10},
        storage="frames", frames_root=str(tmp_path / "frames"),
    )  # fmt: skip
    with caplog.at_level("WARNING"):
        dm.setup("fit")
    assert "synthetic train: 3 of 4 frame folders found" in caplog.text
    batch = next(iter(dm.train_dataloader()))
    assert batch["rgb"].shape == (2, 3, 8, 32, 32) and batch["skipped"].sum() == 0


# --- data check command and bad files --------------------------------------------------------------


def break_files(videos: list[Path]) -> None:
    """A zero-byte file, a truncated file, and a text file named .mp4."""
    videos[0].write_bytes(b"")
    data = videos[1].read_bytes()
    videos[1].write_bytes(data[: len(data) // 2])
    videos[2].write_text("this is not a video\n")


def test_check_command_counts_missing_and_unreadable(tmp_path, capsys):
    root = generate(tmp_path / "syn", SyntheticConfig(num_classes=2, train_per_class=3, test_per_class=1, num_frames=8))
    videos = sorted((root / "UCF-101").rglob("*.mp4"))
    videos[-1].unlink()
    break_files(videos[:3])
    assert check_main(["check", "synthetic", "--root", str(root), "--decode", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert {"num_classes", "train", "val", "test", "missing", "unreadable"} <= set(r)
    assert (r["num_classes"], r["train"], r["val"], r["test"]) == (2, 6, 2, 2)
    assert r["missing"] == 1 and r["unreadable"] == 3
    assert {u["video"] for u in r["unreadable_files"]} == {str(v.relative_to(root / "UCF-101")) for v in videos[:3]}
    assert check_main(["check", "synthetic", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "2 classes, train 6, val 2, test 2" in out and "missing: 1 of 10" in out  # + 2 validation videos
    assert check_main(["check", "hmdb51", "--root", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.startswith("error: dataset root")


def test_check_on_excerpts_of_the_real_split_files(tmp_path):
    ucf = tmp_path / "ucf"
    shutil.copytree(ASSETS / "ucf101_excerpt", ucf / "ucfTrainTestlist")
    r = check("ucf101", ucf, 1)
    assert (r["num_classes"], r["train"] + r["val"], r["test"], r["missing"], r["disjoint"]) == (101, 6, 3, 9, True)
    hmdb = tmp_path / "hmdb"
    shutil.copytree(ASSETS / "hmdb51_excerpt", hmdb / "testTrainMulti_7030_splits")
    r = check("hmdb51", hmdb, 2)
    assert (r["num_classes"], r["train"] + r["val"], r["test"], r["missing"]) == (2, 140, 60, 200)


@pytest.mark.slow
def test_training_survives_broken_files_and_reports_them(tmp_path):
    cfg = compose_train(tmp_path)
    root = generate(cfg.data.root, SyntheticConfig(**cfg.data.synthetic))
    train_list = (root / "ucfTrainTestlist" / "trainlist01.txt").read_text().split()
    train_videos = [root / "UCF-101" / p for p in train_list if p.endswith(".mp4")]
    break_files(train_videos[:3])
    metrics = train(cfg)  # same digest: the set is not regenerated, the broken files stay
    assert metrics["skipped_videos"] >= 3
    assert metrics["test"]["num_videos"] == 8.0  # the test videos are intact


def test_a_dataset_without_usable_items_stops_at_setup(tmp_path):
    cfg = compose_train(tmp_path, ["data=hmdb51", f"data.root={make_hmdb(tmp_path / 'hmdb')}", "data.num_classes=2"])
    for v in (tmp_path / "hmdb").rglob("*.avi"):
        v.unlink()
    with pytest.raises(ConfigError, match="hmdb51 train: none of the 2 listed videos exist"):
        train(cfg)


def test_check_piped_into_a_reader_that_stops_ends_without_a_traceback(tmp_path):
    """`python -m i3d_train.data check ... | head`: the reader gone before the report is written, the
    command ends with the shell's broken-pipe code (141) and nothing on stderr (it printed a
    BrokenPipeError traceback)."""
    import os
    import subprocess
    import sys

    root = generate(tmp_path / "syn", SyntheticConfig(num_classes=2, train_per_class=1, test_per_class=1, num_frames=8))
    r, w = os.pipe()
    os.close(r)  # `head` has already exited
    proc = subprocess.run(
        [sys.executable, "-m", "i3d_train.data", "check", "synthetic", "--root", str(root)],
        stdout=w,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    os.close(w)
    assert (proc.returncode, proc.stderr) == (141, "")


# --- data=list: your own videos ------------------------------------------------------------------


def list_tree(root: Path) -> Path:
    """Two classes of tiny videos and the lists naming them (one path with a space, given with a tab)."""
    from i3d_train.data.synthetic import render_video
    from i3d_train.video.writer import write_video

    names = {"train": [], "test": []}
    for label, cls in enumerate(("jump", "wave")):
        for i in range(4):
            split = "test" if i == 3 else "train"
            rel = f"clips/{cls}/{'my clip' if i == 0 else 'c'}{i}.mp4"
            write_video(
                root / rel,
                render_video(SyntheticConfig(num_frames=12, height=48, width=64, seed=label * 10 + i), label * 2, i),
                25,
            )
            names[split].append(f"{rel}\t{cls}" if " " in rel else f"{rel} {cls}")
    for split, lines in names.items():
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def test_video_list_dataset_parses_paths_labels_and_holds_out_validation(tmp_path):
    from i3d_train.data.splits import with_validation
    from i3d_train.data.video_list import parse_video_list

    root = list_tree(tmp_path / "mine")
    lists = parse_video_list(root)
    assert lists.classes == ["jump", "wave"] and (len(lists.train), len(lists.test)) == (6, 2)
    assert {it.video_id for it in lists.test} == {"clips/jump/c3.mp4", "clips/wave/c3.mp4"}
    assert {it.label for it in lists.train if "wave" in it.video_id} == {1}
    assert any(it.video_id == "clips/jump/my clip0.mp4" for it in lists.train)  # the tab-separated line
    held = with_validation(lists, "list", fraction=0.34)
    assert held.val and {it.label for it in held.val} == {0, 1}  # per class
    assert not {it.video_id for it in held.val} & {it.video_id for it in held.train}
    (root / "test.txt").write_text("clips/jump/c3.mp4 run\n")
    with pytest.raises(DatasetFormatError, match=r"test.txt:1: label 'run' is not one of the labels of train.txt"):
        parse_video_list(root)
    (root / "test.txt").write_text("../elsewhere.mp4 jump\n")
    with pytest.raises(DatasetFormatError, match=r"test.txt:1: ../elsewhere.mp4 is outside the dataset root"):
        parse_video_list(root)


@pytest.mark.slow
def test_train_py_on_your_own_video_lists(tmp_path):
    """`python train.py data=list data.root=<folder> data.num_classes=2`: trains and tests on the lists."""
    import subprocess
    import sys

    root = list_tree(tmp_path / "mine")
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, str(repo / "train.py"), "data=list", f"data.root={root}", "data.num_classes=2",
         f"paths.root_dir={tmp_path}", "data.num_workers=0", "data.batch_size=3", "trainer.fast_dev_run=true", "data.test_clips=1",
         "data.input_override={num_frames: 8, resize: 48, crop_size: 40}", f"hydra.run.dir={tmp_path / 'run'}",
         "callbacks.progress_bar.refresh_rate=0"],  # fmt: skip
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={**__import__("os").environ, "PYTHONPATH": str(repo)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["data"] == "list" and m["test"]["num_videos"] == 2 and m["val_source"] == "held_out"
