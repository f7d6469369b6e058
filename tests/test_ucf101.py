"""UCF-101 parser: official format (CRLF, 1-based ids, unlabeled test lists), three splits, errors."""

from pathlib import Path

import pytest

from i3d_train.data.ucf101 import DatasetFormatError, parse_ucf101

ASSETS = Path(__file__).parent / "assets"
CLASSES = ["ApplyEyeMakeup", "HandstandPushups", "YoYo"]


def make_tree(root: Path) -> Path:
    """A tiny UCF-101 tree in the official layout, different lists for splits 1-3, CRLF endings."""
    ann = root / "ucfTrainTestlist"
    ann.mkdir(parents=True)
    crlf = lambda lines: "".join(f"{line}\r\n" for line in lines).encode()  # noqa: E731
    (ann / "classInd.txt").write_bytes(crlf(f"{i + 1} {c}" for i, c in enumerate(CLASSES)))
    vids = {
        "ApplyEyeMakeup": [f"v_ApplyEyeMakeup_g0{g}_c01.avi" for g in (1, 2, 3)],
        "HandstandPushups": [f"v_HandStandPushups_g0{g}_c01.avi" for g in (1, 2, 3)],
        "YoYo": [f"v_YoYo_g0{g}_c01.avi" for g in (1, 2, 3)],
    }
    for split in (1, 2, 3):
        test_group = split - 1  # group g0{split} is the test group of split `split`
        train, test = [], []
        for label, cls in enumerate(CLASSES):
            for g, name in enumerate(vids[cls]):
                (test if g == test_group else train).append((f"{cls}/{name}", label + 1))
        (ann / f"trainlist0{split}.txt").write_bytes(crlf(f"{p} {lab}" for p, lab in train))
        (ann / f"testlist0{split}.txt").write_bytes(crlf(p for p, _ in test))
    for cls, names in vids.items():
        (root / "UCF-101" / cls).mkdir(parents=True)
        for n in names:
            (root / "UCF-101" / cls / n).write_bytes(b"")
    return root


def test_three_splits(tmp_path):
    root = make_tree(tmp_path / "ucf")
    seen_test = set()
    for split in (1, 2, 3):
        s = parse_ucf101(root, split)
        assert s.classes == CLASSES
        assert len(s.train) == 6 and len(s.test) == 3
        assert {it.label for it in s.test} == {0, 1, 2}
        assert all(it.path.parent.parent == root / "UCF-101" for it in s.train + s.test)
        assert all(it.video_id.endswith(f"_g0{split}_c01.avi") for it in s.test)
        assert not any("\r" in it.video_id for it in s.train + s.test)
        seen_test |= {it.video_id for it in s.test}
        assert not {it.video_id for it in s.train} & {it.video_id for it in s.test}
    assert len(seen_test) == 9


def test_handstand_quirk_and_real_excerpt():
    s = parse_ucf101(ASSETS / "ucf101_excerpt", split=1)
    assert len(s.classes) == 101 and s.classes[0] == "ApplyEyeMakeup" and s.classes[-1] == "YoYo"
    hs = [it for it in s.train if it.video_id.startswith("HandstandPushups/")]
    assert hs and all("v_HandStandPushups_" in it.video_id for it in hs)
    assert {it.label for it in hs} == {s.classes.index("HandstandPushups")}
    assert s.train[-1].label == 100
    for split in (2, 3):
        assert len(parse_ucf101(ASSETS / "ucf101_excerpt", split).test) == 3


def test_errors_name_file_and_line(tmp_path):
    root = make_tree(tmp_path / "ucf")
    lst = root / "ucfTrainTestlist" / "trainlist01.txt"
    lst.write_bytes(lst.read_bytes() + b"NoSuchClass/v_x.avi 7\r\n")
    with pytest.raises(DatasetFormatError, match=r"trainlist01\.txt:7: expected"):
        parse_ucf101(root, 1)
    lst.write_bytes(b"YoYo/v_YoYo_g01_c01.avi 1\r\n")
    with pytest.raises(DatasetFormatError, match=r"trainlist01\.txt:1: class id '1' does not match folder 'YoYo'"):
        parse_ucf101(root, 1)
    with pytest.raises(DatasetFormatError, match="split must be 1, 2 or 3"):
        parse_ucf101(root, 4)


def test_missing_root_and_layout(tmp_path):
    with pytest.raises(DatasetFormatError, match="does not exist.*expected <root>/ucfTrainTestlist"):
        parse_ucf101(tmp_path / "nope", 1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetFormatError, match="no classInd.txt"):
        parse_ucf101(tmp_path / "empty", 1)
