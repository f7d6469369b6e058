"""A file made by someone else never runs code: every door that loads a checkpoint or a state dict, fed
a crafted one whose pickle would create a marker file when loaded without ``weights_only``. At each door:
exit code 2, one line naming the file and what it held, the marker absent, nothing written."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from i3d_train.models.i3d import InceptionI3d
from i3d_train.video.writer import write_video
from tests.conftest import index_frames

ROOT = Path(__file__).resolve().parents[1]
LEGACY = ROOT / "tests" / "assets" / "legacy_run" / "train" / "runs" / "2026-12-06_21-50-00"
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled"}


class Payload:
    """Unpickled without ``weights_only``, it would run ``os.system("touch <marker>")``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def crafted(tmp_path):
    """``(lightning-like checkpoint, state dict, marker)``: each holds real tensors plus the payload."""
    marker = tmp_path / "MARKER"
    sd = dict(InceptionI3d(400).state_dict())
    sd["payload"] = Payload(marker)
    torch.save(sd, tmp_path / "evil_state_dict.pt")
    ckpt = torch.load(LEGACY / "checkpoints" / "last.ckpt", weights_only=True)
    ckpt["payload"] = Payload(marker)
    run = tmp_path / "run"  # a run folder (its config.yaml beside checkpoints/), as eval.py reads one
    shutil.copytree(LEGACY, run)
    torch.save(ckpt, run / "checkpoints" / "evil.ckpt")
    return run / "checkpoints" / "evil.ckpt", tmp_path / "evil_state_dict.pt", marker


def refused(args: list[str], cwd: Path, path: Path, marker: Path) -> None:
    proc = subprocess.run(args, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and len(errors) == 1 and str(path) in errors[0], proc.stderr[-2000:]
    assert "refused to load: it holds the global posix.system" in errors[0]
    assert not marker.exists()


def no_checkpoints(root: Path) -> bool:
    return not list(root.rglob("*.ckpt")) and not list(root.rglob("metrics.json"))


@pytest.mark.slow
@pytest.mark.parametrize("fast", [False, True])
def test_eval_ckpt_path(crafted, tmp_path, fast):
    ckpt, _, marker = crafted
    out = tmp_path / "eval"
    refused([sys.executable, str(ROOT / "eval.py"), f"ckpt_path={ckpt}", f"fast={str(fast).lower()}",
             f"hydra.run.dir={out}"], tmp_path, ckpt, marker)  # fmt: skip
    assert not (out / "predictions.csv").exists() and not (out / "metrics.json").exists()


@pytest.mark.slow
def test_eval_weights(crafted, tmp_path):
    _, sd, marker = crafted
    out = tmp_path / "eval"
    refused([sys.executable, str(ROOT / "eval.py"), f"weights={sd}", "model=i3d", "data=kinetics400",
             f"data.root={tmp_path / 'k400'}", f"hydra.run.dir={out}"], tmp_path, sd, marker)  # fmt: skip
    assert not (out / "metrics.json").exists()


@pytest.mark.slow
def test_train_ckpt_path(crafted, tmp_path):
    ckpt, _, marker = crafted
    refused([sys.executable, str(ROOT / "train.py"), "debug=tiny", f"ckpt_path={ckpt}", f"paths.root_dir={tmp_path / 'r'}"],
            tmp_path, ckpt, marker)  # fmt: skip
    assert no_checkpoints(tmp_path / "r") and not list((tmp_path / "r").rglob("fingerprint.txt"))


@pytest.mark.slow
def test_protocol_init_weights(crafted, tmp_path):
    _, sd, marker = crafted
    refused([sys.executable, str(ROOT / "train.py"), "debug=tiny", "protocol=fixed", f"protocol.init_weights={sd}",
             f"paths.root_dir={tmp_path / 'r'}"], tmp_path, sd, marker)  # fmt: skip
    assert no_checkpoints(tmp_path / "r")


@pytest.mark.slow
def test_extract_weights(crafted, tmp_path):
    _, sd, marker = crafted
    write_video(tmp_path / "v.mp4", index_frames(20), 25)
    out = tmp_path / "features"
    refused([sys.executable, str(ROOT / "extract.py"), f"input={tmp_path / 'v.mp4'}", f"output_dir={out}",
             f"weights.rgb={sd}", f"hydra.run.dir={tmp_path / 'h'}"], tmp_path, sd, marker)  # fmt: skip
    assert not list(out.rglob("*.npy")) and not (out / "v.json").exists()


def test_predict_weights(crafted, tmp_path):
    _, sd, marker = crafted
    write_video(tmp_path / "v.mp4", index_frames(20), 25)
    refused(
        [sys.executable, "-m", "i3d_train.predict", str(tmp_path / "v.mp4"), "--weights", str(sd)], tmp_path, sd, marker
    )


def test_weights_convert_pytorch_i3d(crafted, tmp_path):
    _, sd, marker = crafted
    out = tmp_path / "converted.pt"
    refused([sys.executable, "-m", "i3d_train.weights", "convert", "pytorch-i3d", "--src", str(sd), "--out", str(out)],
            tmp_path, sd, marker)  # fmt: skip
    assert not out.exists() and not list(tmp_path.glob(".converted*"))


def test_without_weights_only_the_payload_would_run(crafted):
    """The crafted file is what it says: loaded the unsafe way, it creates the marker."""
    _, sd, marker = crafted
    torch.load(sd, weights_only=False)
    assert marker.exists()
