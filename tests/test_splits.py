"""The validation split: held out from the training list (never the test list by default), whole
UCF-101 groups, HMDB-51 per class by source film, deterministic, the same for any number of processes."""

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.utils import instantiate

from i3d_train.data.hmdb51 import parse_hmdb51
from i3d_train.data.splits import DatasetFormatError, hmdb51_source, ucf101_group, with_validation
from i3d_train.data.synthetic import SyntheticConfig, generate
from i3d_train.data.ucf101 import parse_ucf101
from tests.conftest import compose_train

ROOT = Path(__file__).resolve().parents[1]
ASSETS = Path(__file__).parent / "assets"
UCF = ASSETS / "ucf101_groups_excerpt"  # 4 whole classes of the real split files 1 and 2


def ids(items) -> list[str]:
    return [it.video_id for it in items]


@pytest.mark.parametrize("split", [1, 2])
def test_ucf101_val_is_whole_groups_of_the_train_list(split):
    raw = parse_ucf101(UCF, split)
    lists = with_validation(raw, "ucf101")
    train, val, test = set(ids(lists.train)), set(ids(lists.val)), set(ids(lists.test))
    assert val and not train & val and not val & test and not train & test
    assert train | val == set(ids(raw.train))  # nothing lost, nothing added
    assert ids(lists.test) == ids(raw.test)
    # no group is split between train and val (by group number, across classes, like the official splits)
    assert not {ucf101_group(v) for v in train} & {ucf101_group(v) for v in val}
    assert 0.05 <= len(val) / len(raw.train) <= 0.2
    assert {it.label for it in lists.val} == {it.label for it in raw.train}  # every class validated
    assert lists.val_source == "held_out" and "whole groups" in lists.val_rule


def test_val_list_is_identical_across_calls_and_list_orders(tmp_path):
    first = ids(with_validation(parse_ucf101(UCF, 1), "ucf101").val)
    assert first == ids(with_validation(parse_ucf101(UCF, 1), "ucf101").val)
    shuffled = tmp_path / "ucf"
    shutil.copytree(UCF, shuffled)
    lines = (UCF / "trainlist01.txt").read_text().splitlines()
    random.Random(0).shuffle(lines)
    (shuffled / "trainlist01.txt").write_text("\n".join(lines) + "\n")
    assert sorted(ids(with_validation(parse_ucf101(shuffled, 1), "ucf101").val)) == sorted(first)
    hmdb = tmp_path / "hmdb"
    shutil.copytree(ASSETS / "hmdb51_excerpt", hmdb / "testTrainMulti_7030_splits")
    a = ids(with_validation(parse_hmdb51(hmdb, 1), "hmdb51").val)
    assert a == ids(with_validation(parse_hmdb51(hmdb, 1), "hmdb51").val)
    # a bigger fraction holds more out; the smaller one's films stay held out only if chosen again
    assert len(ids(with_validation(parse_hmdb51(hmdb, 1), "hmdb51", fraction=0.3).val)) > len(a)


def test_hmdb51_val_is_a_per_class_fraction_by_source_film(tmp_path):
    root = tmp_path / "hmdb"
    shutil.copytree(ASSETS / "hmdb51_excerpt", root / "testTrainMulti_7030_splits")
    for split in (1, 2, 3):
        raw = parse_hmdb51(root, split)
        lists = with_validation(raw, "hmdb51")
        assert len(lists.train) + len(lists.val) == len(raw.train) == 140
        for label in (0, 1):  # 70 train videos per class: about 7 held out in each class
            n = sum(it.label == label for it in lists.val)
            assert 4 <= n <= 10, (split, label, n)
        films = [{hmdb51_source(it.video_id, lists.classes, it.label) for it in x} for x in (lists.train, lists.val)]
        assert not films[0] & films[1]
        assert not set(ids(lists.val)) & set(ids(lists.test))


def test_val_source_test_keeps_the_old_behaviour_and_bad_options_are_one_line():
    raw = parse_ucf101(UCF, 1)
    lists = with_validation(raw, "ucf101", "test")
    assert ids(lists.val) == ids(raw.test) and ids(lists.train) == ids(raw.train) and lists.val_source == "test"
    with pytest.raises(DatasetFormatError, match="data.val_source must be one of held_out, test, got 'train'"):
        with_validation(raw, "ucf101", "train")
    with pytest.raises(DatasetFormatError, match="data.val_fraction must be between 0 and 1, got 1.5"):
        with_validation(raw, "ucf101", fraction=1.5)


def ucf_tree(tmp_path: Path) -> Path:
    """The excerpt with (empty) video files, so that a DataModule finds every listed video."""
    root = tmp_path / "ucf"
    shutil.copytree(UCF, root / "ucfTrainTestlist")
    for f in ("trainlist01.txt", "testlist01.txt"):
        for line in (UCF / f).read_text().splitlines():
            p = root / "UCF-101" / line.split()[0]
            p.parent.mkdir(parents=True, exist_ok=True)
            p.touch()
    return root


def test_val_list_does_not_depend_on_the_number_of_processes(tmp_path, monkeypatch):
    """Every process of a DDP run builds the same validation list, whatever the world size and its rank,
    as the trainer and the launcher's environment (torchrun's, SLURM's) tell them."""
    root = ucf_tree(tmp_path)
    seen = []
    for world, rank in ((1, 0), (2, 0), (2, 1), (4, 3)):
        for key, value in (("RANK", rank), ("LOCAL_RANK", rank), ("WORLD_SIZE", world), ("SLURM_PROCID", rank)):
            monkeypatch.setenv(key, str(value))
        cfg = compose_train(tmp_path, ["data=ucf101", f"data.root={root}", "data.num_classes=101"])
        dm = instantiate(cfg.data, _convert_="object")

        class Trainer:
            world_size, global_rank, local_rank = world, rank, rank

        dm.trainer = Trainer()
        dm.setup("fit")
        seen.append((ids(dm.val_set.items), ids(dm.train_set.items)))
        assert dm.val_info["val_source"] == "held_out"
    assert all(s == seen[0] for s in seen[1:]) and seen[0][0]
    val, train = (set(x) for x in seen[0])
    assert not val & train and len(val) >= 0.05 * (len(val) + len(train))  # held out of the training list


def test_check_command_reports_train_val_test_and_disjointness(tmp_path):
    root = tmp_path / "ucf"
    shutil.copytree(UCF, root / "ucfTrainTestlist")
    cmd = [sys.executable, "-m", "i3d_train.data", "check", "ucf101", "--root", str(root), "--split", "1", "--json"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True, env=env, cwd=ROOT).stdout)
    n_train = len((UCF / "trainlist01.txt").read_text().splitlines())
    assert r["train"] + r["val"] == n_train and r["val"] > 0 and r["test"] == 143
    assert r["disjoint"] is True and r["overlap"] == {"train_val": 0, "train_test": 0, "val_test": 0}
    assert r["val_source"] == "held_out"
    r = json.loads(
        subprocess.run([*cmd, "--val-source", "test"], capture_output=True, text=True, check=True, env=env).stdout
    )
    assert (r["train"], r["val"], r["test"], r["disjoint"]) == (n_train, 143, 143, False)
    assert r["overlap"]["val_test"] == 143


def test_synthetic_set_has_its_own_val_list_and_adding_it_keeps_train_and_test(tmp_path):
    small = dict(num_classes=2, train_per_class=2, test_per_class=1, num_frames=6, height=32, width=32)
    a = generate(tmp_path / "a", SyntheticConfig(**small, val_per_class=0), workers=1)
    b = generate(tmp_path / "b", SyntheticConfig(**small, val_per_class=2), workers=1)
    assert not (a / "ucfTrainTestlist" / "vallist01.txt").exists()
    for f in ("trainlist01.txt", "testlist01.txt"):
        assert (a / "ucfTrainTestlist" / f).read_bytes() == (b / "ucfTrainTestlist" / f).read_bytes()
    for rel in (a / "ucfTrainTestlist" / "trainlist01.txt").read_text().split()[::2]:
        assert (a / "UCF-101" / rel).read_bytes() == (b / "UCF-101" / rel).read_bytes()
    lists = with_validation(parse_ucf101(b, 1), "synthetic")
    assert len(lists.val) == 4 and len(lists.train) == 4 and "official synthetic" in lists.val_rule
    assert not set(ids(lists.val)) & (set(ids(lists.train)) | set(ids(lists.test)))
    # without a list of its own, one is held out of train: one group number (g01 or g02), both classes
    lists = with_validation(parse_ucf101(a, 1), "synthetic", fraction=0.25)
    assert len(lists.val) == 2 and len(lists.train) == 2 and len({ucf101_group(v) for v in ids(lists.val)}) == 1


def test_a_tiny_fraction_still_holds_out_one_group_and_one_group_alone_is_refused(tmp_path):
    root = ucf_tree(tmp_path)
    cfg = compose_train(
        tmp_path,
        ["data=ucf101", f"data.root={root}", "data.num_classes=101", "data.val_fraction=0.01"],
    )
    dm = instantiate(cfg.data, _convert_="object")
    dm.setup("fit")  # 1% of 392 videos is closer to no group than to one, but validation needs one
    assert len({ucf101_group(v) for v in ids(dm.val_set.items)}) == 1
    one = tmp_path / "one"  # every training video in group g08: nothing can be held out
    shutil.copytree(ASSETS / "ucf101_excerpt", one / "ucfTrainTestlist")
    train = (ASSETS / "ucf101_excerpt" / "trainlist01.txt").read_text().splitlines()[:5]
    (one / "ucfTrainTestlist" / "trainlist01.txt").write_text("\n".join(train) + "\n")
    for line in train + (ASSETS / "ucf101_excerpt" / "testlist01.txt").read_text().splitlines():
        (one / "UCF-101" / line.split()[0]).parent.mkdir(parents=True, exist_ok=True)
        (one / "UCF-101" / line.split()[0]).touch()
    cfg = compose_train(tmp_path, ["data=ucf101", f"data.root={one}", "data.num_classes=101"])
    with pytest.raises(DatasetFormatError, match="no validation videos .*data.val_source=test"):
        instantiate(cfg.data, _convert_="object").setup("fit")


def test_kinetics_validation_is_held_out_of_train_when_val_csv_is_the_test_list():
    """Without a labelled test.csv, Kinetics-400's test list is val.csv: validation (best checkpoint,
    plateau schedule) is then held out of the training clips, per class, whole YouTube videos, never the
    list the results are reported on. With a labelled test.csv, val.csv is the validation list."""
    from i3d_train.data.dataset import VideoItem
    from i3d_train.data.splits import SplitLists, youtube_id

    def clips(split: str, n: int) -> list[VideoItem]:
        return [
            VideoItem(Path(f"/k/{split}/c{c}/y{split}{c}{i % (n // 2)}_{i:06d}_{i + 10:06d}.mp4"), c,
                      f"c{c}/y{split}{c}{i % (n // 2)}_{i:06d}_{i + 10:06d}.mp4")
            for c in range(3) for i in range(n)
        ]  # fmt: skip

    train, val = clips("train", 20), clips("val", 4)
    lists = with_validation(SplitLists(["a", "b", "c"], train, val, Path("/k"), val=val), "kinetics400")
    assert lists.val_source == "held_out" and "of each class" in lists.val_rule
    got = {it.video_id for it in lists.val}
    assert got and got.isdisjoint(it.video_id for it in lists.test)
    assert got.isdisjoint(it.video_id for it in lists.train) and len(lists.train) + len(got) == len(train)
    for c in range(3):  # about 10% of each class, whole YouTube videos on one side
        mine = [it for it in lists.val if it.label == c]
        assert 1 <= len(mine) <= 4
        assert {youtube_id(it.video_id) for it in mine}.isdisjoint(youtube_id(it.video_id) for it in lists.train)
    test = clips("test", 4)
    official = with_validation(SplitLists(["a", "b", "c"], train, test, Path("/k"), val=val), "kinetics400")
    assert official.val == val and official.train == train and "official" in official.val_rule
