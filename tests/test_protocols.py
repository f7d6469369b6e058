"""Transfer protocols: what is trainable, frozen batch norms, loading initial weights."""

import pytest
import torch
import torch.nn.functional as F

from i3d_train.models.i3d import InceptionI3d
from i3d_train.module import VideoClassifier
from i3d_train.protocols import ProtocolError, apply_protocol


@pytest.fixture
def pretrained(tmp_path):
    torch.manual_seed(1)
    src = InceptionI3d(400)
    path = tmp_path / "k400.pt"
    torch.save(src.state_dict(), path)
    return src, path


def module_for(net):
    return VideoClassifier(net, 5, "rgb", optimizer=lambda params: torch.optim.SGD(params, lr=0.1))


def test_fixed_trains_only_the_classifier_and_keeps_bn_statistics(pretrained):
    src, path = pretrained
    net = apply_protocol(InceptionI3d(5), "fixed", str(path))
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    assert trainable == {"logits.conv3d.weight", "logits.conv3d.bias"}
    assert torch.equal(net.Mixed_5c.b0.conv3d.weight, src.Mixed_5c.b0.conv3d.weight)
    module = module_for(net)
    module.train()
    before = {k: v.clone() for k, v in net.state_dict().items() if "running" in k}
    opt = module.configure_optimizers()
    batch = {"rgb": torch.rand(2, 3, 8, 64, 64) * 2 - 1, "label": torch.tensor([0, 3])}
    loss = F.cross_entropy(module(batch), batch["label"])
    loss.backward()
    opt.step()
    after = {k: v for k, v in net.state_dict().items() if "running" in k}
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not net.Mixed_4b.b0.bn.training and net.dropout.training


def test_full_ft_trains_everything_from_the_loaded_weights(pretrained):
    src, path = pretrained
    net = apply_protocol(InceptionI3d(5), "full_ft", str(path))
    assert all(p.requires_grad for p in net.parameters())
    assert torch.equal(net.Conv3d_1a_7x7.conv3d.weight, src.Conv3d_1a_7x7.conv3d.weight)
    assert net.get_classifier().conv3d.weight.shape == (5, 1024, 1, 1, 1)
    module_for(net).train()
    assert net.Mixed_4b.b0.bn.training


def test_protocol_errors(tmp_path, pretrained):
    with pytest.raises(ProtocolError, match="needs initial weights"):
        apply_protocol(InceptionI3d(5), "fixed", None)
    with pytest.raises(ProtocolError, match="not found"):
        apply_protocol(InceptionI3d(5), "full_ft", str(tmp_path / "nope.pt"))
    _, path = pretrained
    with pytest.raises(ProtocolError, match="do not fit"):
        apply_protocol(InceptionI3d(5, in_channels=2), "fixed", str(path))
