"""The paper's five architectures (Table 1): sizes, shapes, gradients (every model config trains: test_matrix.py)."""

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from i3d_train.engine.classifier import VideoClassifier
from i3d_train.models.c3d import C3D
from i3d_train.models.convnet_lstm import ConvNetLSTM
from i3d_train.models.i3d import InceptionI3d
from i3d_train.models.inception_v1 import InceptionV1
from i3d_train.models.multistream import MultiStream
from i3d_train.models.two_stream import FusedTwoStream, TwoStream2D, stack_flow
from tests.conftest import compose_train

# Paper Table 1 parameter counts (millions), 400 Kinetics classes.
PAPER_PARAMS = {"convnet_lstm": 9, "c3d": 79, "two_stream": 12, "fused_two_stream": 39, "i3d_two_stream": 25}


def build(name: str, num_classes: int = 400) -> torch.nn.Module:
    return {
        "convnet_lstm": lambda: ConvNetLSTM(num_classes),
        "c3d": lambda: C3D(num_classes),
        "two_stream": lambda: TwoStream2D(num_classes),
        "fused_two_stream": lambda: FusedTwoStream(num_classes),
        "i3d_two_stream": lambda: MultiStream(rgb=InceptionI3d(num_classes), flow=InceptionI3d(num_classes, 2)),
    }[name]()


# Exact counts with 400 classes (the README's architecture table); each within 10% of Table 1.
EXACT_PARAMS = {
    "convnet_lstm": 8_956_976,
    "c3d": 79_645_520,
    "two_stream": 12_073_120,
    "fused_two_stream": 39_770_896,
    "i3d_two_stream": 25_372_576,
}


@pytest.mark.parametrize("name", sorted(PAPER_PARAMS))
def test_parameter_counts_match_table_1(name):
    n = sum(p.numel() for p in build(name).parameters())
    assert n == EXACT_PARAMS[name], f"{name}: {n:,}"  # a missing bias, batch norm or layer changes it
    assert abs(n / 1e6 - PAPER_PARAMS[name]) <= 0.1 * PAPER_PARAMS[name], f"{name}: {n:,}"


def test_c3d_pool5_map_of_a_16x112x112_clip():
    """Every pool 2x2x2 with SAME padding (the paper's change: C3D's pool1 was 1x2x2): 16x112x112 ->
    (N, 512, 1, 4, 4), fc6's 8,192 inputs without resampling."""
    net = C3D(5).eval()
    with torch.no_grad():
        assert net.forward_features(torch.zeros(2, 3, 16, 112, 112)).shape == (2, 512, 1, 4, 4)
    assert net.fc6[0].in_features == 8192


def test_the_configs_build_the_paper_models():
    """conf/model/<name>.yaml instantiates the same net as ``build`` (same parameter count)."""
    for name in PAPER_PARAMS:
        cfg = compose_train(Path("/tmp"), [f"model={name}", "data.num_classes=400", "data.synthetic.num_classes=400"])
        net = instantiate(cfg.model.net)
        assert sum(p.numel() for p in net.parameters()) == sum(p.numel() for p in build(name).parameters())


def test_inception_v1_shapes_and_endpoints():
    net = InceptionV1(1000)
    assert sum(p.numel() for p in net.parameters()) == 6_624_904  # GoogLeNet with BN, no aux heads
    x = torch.rand(2, 3, 224, 224) * 2 - 1
    assert net.forward_features(x).shape == (2, 1024, 7, 7)
    assert net(x).shape == (2, 1000)
    assert "Mixed_4f.b2b.conv2d.weight" in net.state_dict()


def test_flow_stacks_interleave_x_and_y_per_frame():
    flow = torch.arange(2 * 6 * 1 * 1, dtype=torch.float).view(1, 2, 6, 1, 1)  # x: 0..5, y: 6..11
    s = stack_flow(flow, stacks=2)  # 2 stacks of 3 frames
    assert s.shape == (2, 6, 1, 1)
    assert s[0].flatten().tolist() == [0, 6, 1, 7, 2, 8] and s[1].flatten().tolist() == [3, 9, 4, 10, 5, 11]


def small_batch(name: str, n: int = 2) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    frames = {"convnet_lstm": 4, "c3d": 16, "two_stream": 1, "fused_two_stream": 2, "i3d_two_stream": 8}[name]
    flow_frames = {"two_stream": 10, "fused_two_stream": 20}.get(name, frames)
    return {
        "rgb": torch.rand(n, 3, frames, 64, 64) * 2 - 1,
        "flow": torch.rand(n, 2, flow_frames, 64, 64) * 2 - 1,
        "label": torch.tensor([1, 3]),
    }


@pytest.mark.parametrize("name", sorted(PAPER_PARAMS))
def test_forward_shapes_and_a_gradient_on_every_parameter(name):
    net = build(name, num_classes=5)
    module = VideoClassifier(net, 5, "rgb", optimizer=lambda params: torch.optim.SGD(params, lr=0.1))
    module.log = lambda *a, **k: None
    batch = small_batch(name)
    raw, clip, scores = module._outputs(batch)
    assert scores.shape == (2, 5) and all(c.shape == (2, 5) for c in clip.values())
    if name == "convnet_lstm":
        assert raw[""].shape == (2, 4, 5)  # one output per frame; the clip is its last
        assert torch.equal(clip[""], raw[""][:, -1])
    module._loss(raw, scores, batch["label"], "train", 2).backward()
    no_grad = [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not no_grad, no_grad[:5]
    zero = [n for n, p in net.named_parameters() if p.grad.abs().sum() == 0]
    assert not zero, zero[:5]


# Every model config trains, validates and tests through train(cfg): tests/test_matrix.py (each config
# under original + the paper's test protocol and fixed + clips).
