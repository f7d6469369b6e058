"""I3D: shapes, parameter counts (DeepMind's release + one gamma per batch norm), gradients, SAME padding."""

import pytest
import torch
import torch.nn.functional as F

from i3d_train.models.i3d import InceptionI3d
from i3d_train.models.layers import MaxPool3dSame, Unit3D, same_padding


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def test_parameter_counts_match_deepmind_plus_gammas():
    rgb = InceptionI3d(400, in_channels=3)
    bn_channels = sum(m.num_features for m in rgb.modules() if isinstance(m, torch.nn.BatchNorm3d))
    assert sum(1 for m in rgb.modules() if isinstance(m, torch.nn.BatchNorm3d)) == 57
    assert bn_channels == 7280
    assert n_params(rgb) == 12_697_264
    assert n_params(rgb) - bn_channels == 12_689_984  # DeepMind's RGB model (beta-only batch norm)
    assert n_params(InceptionI3d(400, in_channels=2)) - bn_channels == 12_668_032  # DeepMind's flow model


@pytest.mark.parametrize(
    ("shape", "t_out", "feat"),
    [((1, 3, 16, 112, 112), 1, (1, 1024, 2, 4, 4)), ((2, 3, 8, 64, 64), 1, (2, 1024, 1, 2, 2))],
)
def test_small_inputs(shape, t_out, feat):
    m = InceptionI3d(10).eval()
    x = torch.rand(shape) * 2 - 1
    with torch.no_grad():
        assert m.forward_features(x).shape == feat
        assert m(x).shape == (shape[0], 10)
        assert m.forward_head(m.forward_features(x), per_time=True).shape == (shape[0], 10, t_out)
        assert m.extract_features(x).shape == (shape[0], 1024)


@pytest.mark.slow
def test_full_size_shapes():
    """64x224x224 -> Mixed_5c 8x7x7 -> 7 time steps; 79 frames -> 9 steps (DeepMind's kinetics-i3d: time stride 8)."""
    m = InceptionI3d(400, in_channels=2).eval()
    with torch.no_grad():
        f = m.forward_features(torch.zeros(1, 2, 64, 224, 224))
        assert f.shape == (1, 1024, 8, 7, 7)
        assert m.forward_head(f, per_time=True).shape == (1, 400, 7)
        f79 = m.forward_features(torch.zeros(1, 2, 79, 224, 224))
        assert m.forward_head(f79, per_time=True).shape == (1, 400, 9)


def test_every_parameter_gets_a_gradient():
    m = InceptionI3d(5, dropout=0.0)
    x = torch.rand(2, 3, 16, 64, 64) * 2 - 1
    F.cross_entropy(m(x), torch.tensor([1, 3])).backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert not missing


def test_tf_same_padding():
    # 224 input, k7 s2: out 112, total pad 5 -> 2 before, 3 after (not PyTorch's symmetric 3/3).
    assert same_padding((224,), (7,), (2,)) == [2, 3]
    assert same_padding((64, 224, 224), (7, 7, 7), (2, 2, 2)) == [2, 3, 2, 3, 2, 3]
    assert same_padding((8,), (2,), (2,)) == [0, 0]
    u = Unit3D(1, 1, 7, stride=2)
    assert u(torch.zeros(1, 1, 9, 224, 223)).shape == (1, 1, 5, 112, 112)
    # SAME max pool never selects padding, even for all-negative inputs.
    p = MaxPool3dSame(3, 2)
    x = -torch.ones(1, 1, 4, 4, 4)
    assert torch.all(p(x) == -1)


def test_reset_classifier():
    m = InceptionI3d(400)
    m.reset_classifier(7)
    assert m.get_classifier().conv3d.weight.shape == (7, 1024, 1, 1, 1)
    assert m(torch.zeros(1, 3, 8, 64, 64)).shape == (1, 7)
