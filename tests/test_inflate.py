"""ImageNet Inception-V1 -> I3D by inflation (paper Sec. 2.4), the torchvision key mapping, and
``model.imagenet_weights`` for every model."""

import pytest
import torch

from i3d_train.errors import ConfigError
from i3d_train.models.c3d import C3D
from i3d_train.models.i3d import InceptionI3d
from i3d_train.models.inception_v1 import InceptionV1
from i3d_train.models.inflate import inflate
from i3d_train.models.loading import WeightsMismatchError, load_without_classifier
from i3d_train.models.two_stream import TwoStream2D
from i3d_train.train.run import train
from i3d_train.weights.imagenet import (
    TORCHVISION_BLOCKS,
    ImageNetWeightsError,
    from_torchvision,
    init_from_imagenet,
    load_2d,
)
from tests.conftest import compose_train, randomize_batchnorm


def random_2d(seed: int = 0, num_classes: int = 10) -> InceptionV1:
    """An Inception-V1 with random weights and random batch-norm statistics, in eval mode."""
    torch.manual_seed(seed)
    return randomize_batchnorm(InceptionV1(num_classes), 0.2)


def test_boring_video_gives_the_2d_activations():
    """An image repeated in time through the inflated I3D = the 2D net on the image, at Mixed_5c, in
    the time steps whose receptive field (about 99 frames) stays inside the 160-frame clip."""
    net2d = random_2d()
    net3d = InceptionI3d(10)
    load_without_classifier(net3d, inflate(net2d.state_dict(), net3d))
    net3d.eval()
    img = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        ref = net2d.forward_features(img)  # 1 x 1024 x 2 x 2
        out = net3d.forward_features(img[:, :, None].expand(1, 3, 160, 64, 64).contiguous())  # 20 time steps
    assert out.shape == (1, 1024, 20, 2, 2)
    scale = ref.abs().max()
    for t in range(6, 14):  # step t sees frames around 8t + 4 +- 50
        assert (out[:, :, t] - ref).abs().max() / scale < 1e-4, t
    assert (out[:, :, 0] - ref).abs().max() / scale > 1e-3  # the ends do see the padding: the check can fail


def test_inflated_kernels_are_repeated_and_divided_by_their_depth():
    net2d = random_2d(1)
    sd = inflate(net2d.state_dict(), InceptionI3d(10))
    w2 = net2d.Mixed_4b.b1b.conv2d.weight  # 3x3 -> 3x3x3
    w3 = sd["Mixed_4b.b1b.conv3d.weight"]
    assert w3.shape == (*w2.shape[:2], 3, *w2.shape[2:])
    assert torch.allclose(w3.sum(dim=2), w2, atol=1e-6) and torch.allclose(w3[:, :, 0], w2 / 3)
    assert torch.equal(sd["Mixed_4b.b1b.bn.running_var"], net2d.Mixed_4b.b1b.bn.running_var)
    assert sd["Conv3d_1a_7x7.conv3d.weight"].shape[2] == 7 and "logits.conv3d.weight" not in sd
    # flow: the RGB kernel averaged over its input channels, repeated for each flow channel
    flow = inflate(net2d.state_dict(), InceptionI3d(10, in_channels=2))["Conv3d_1a_7x7.conv3d.weight"]
    mean = net2d.Conv2d_1a_7x7.conv2d.weight.mean(dim=1) / 7
    assert flow.shape == (64, 2, 7, 7, 7)
    assert torch.allclose(flow[:, 0, 3], mean, atol=1e-7) and torch.allclose(flow[:, 1, 6], mean, atol=1e-7)


def torchvision_googlenet_state_dict(net2d: InceptionV1) -> dict[str, torch.Tensor]:
    """The exact key names and shapes of torchvision's GoogLeNet state dict, with net2d's values
    (built by hand from the documented structure), plus the auxiliary classifiers and fc."""
    sd: dict[str, torch.Tensor] = {}
    ours = net2d.state_dict()
    branches = {"b0": "branch1", "b1a": "branch2.0", "b1b": "branch2.1", "b2a": "branch3.0", "b2b": "branch3.1"}
    branches["b3b"] = "branch4.1"
    for tv, block in TORCHVISION_BLOCKS.items():
        for b_ours, b_tv in branches.items() if block.startswith("Mixed") else [("", "")]:
            src = f"{block}.{b_ours}." if b_ours else f"{block}."
            dst = f"{tv}.{b_tv}." if b_tv else f"{tv}."
            sd[dst + "conv.weight"] = ours[src + "conv2d.weight"]
            for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
                sd[dst + f"bn.{p}"] = ours[src + f"bn.{p}"]
    for aux, cin in (("aux1", 512), ("aux2", 528)):
        sd[f"{aux}.conv.conv.weight"] = torch.randn(128, cin, 1, 1)
        for p in ("weight", "bias", "running_mean", "running_var"):
            sd[f"{aux}.conv.bn.{p}"] = torch.randn(128)
        sd[f"{aux}.conv.bn.num_batches_tracked"] = torch.tensor(0)
        sd[f"{aux}.fc1.weight"], sd[f"{aux}.fc1.bias"] = torch.randn(1024, 2048), torch.randn(1024)
        sd[f"{aux}.fc2.weight"], sd[f"{aux}.fc2.bias"] = torch.randn(1000, 1024), torch.randn(1000)
    sd["fc.weight"], sd["fc.bias"] = torch.randn(1000, 1024), torch.randn(1000)
    return sd


def test_torchvision_googlenet_keys_map_to_inception_v1(tmp_path):
    net2d = random_2d(2)
    tv = torchvision_googlenet_state_dict(net2d)
    assert "inception3a.branch2.1.conv.weight" in tv and "inception5b.branch4.1.bn.bias" in tv
    assert tv["inception3a.branch2.1.conv.weight"].shape == (128, 96, 3, 3)
    assert tv["inception5b.branch3.1.conv.weight"].shape == (128, 48, 3, 3)  # its "5x5" branch is 3x3
    assert len(tv) == 57 * 6 + 2 * 10 + 2  # 57 BasicConv2d (conv + 5 bn entries), 2 aux classifiers, fc
    mapped = from_torchvision(tv)
    body = {k: v for k, v in net2d.state_dict().items() if not k.startswith("logits.")}
    assert set(mapped) == set(body) and all(torch.equal(mapped[k], body[k]) for k in body)

    torch.save(tv, tmp_path / "googlenet.pth")
    net3d = InceptionI3d(5)
    init_from_imagenet(net3d, tmp_path / "googlenet.pth")
    assert torch.allclose(net3d.Mixed_3b.b1b.conv3d.weight.sum(2), net2d.Mixed_3b.b1b.conv2d.weight, atol=1e-7)

    bad = dict(tv)
    bad["inception3a.branch5.conv.weight"] = torch.zeros(1)
    with pytest.raises(ImageNetWeightsError, match="without a mapping: \\['inception3a.branch5"):
        from_torchvision(bad)
    short = dict(tv)
    short.pop("inception4c.branch1.bn.running_var")
    torch.save(short, tmp_path / "short.pth")
    with pytest.raises(ImageNetWeightsError, match="Mixed_4d.b0.bn.running_var"):
        init_from_imagenet(InceptionI3d(5), tmp_path / "short.pth")


def test_every_imagenet_model_takes_the_weights_and_c3d_refuses(tmp_path):
    net2d = random_2d(3)
    torch.save(net2d.state_dict(), tmp_path / "inception_v1.pt")
    ts = TwoStream2D(5, flow_frames=10)
    assert init_from_imagenet(ts, tmp_path / "inception_v1.pt") == ["rgb", "flow"]
    assert torch.equal(ts.rgb.Mixed_5c.b0.conv2d.weight, net2d.Mixed_5c.b0.conv2d.weight)
    first = ts.flow.Conv2d_1a_7x7.conv2d.weight
    assert first.shape == (64, 20, 7, 7)
    assert torch.allclose(first[:, 13], net2d.Conv2d_1a_7x7.conv2d.weight.mean(1))
    with pytest.raises(ImageNetWeightsError, match="C3D trains from scratch"):
        init_from_imagenet(C3D(5), tmp_path / "inception_v1.pt")
    with pytest.raises(ImageNetWeightsError, match="not found"):
        load_2d(tmp_path / "nope.pt")
    torch.save({"x.weight": torch.zeros(1)}, tmp_path / "junk.pt")
    with pytest.raises(ImageNetWeightsError, match="not an Inception-V1 state dict"):
        load_2d(tmp_path / "junk.pt")
    with pytest.raises(WeightsMismatchError, match="does not inflate|do not fit"):
        InceptionI3d(5).load_imagenet({**net2d.state_dict(), "Mixed_3b.b0.conv2d.weight": torch.zeros(3, 3, 1, 1)})


def test_imagenet_weights_from_the_config(tmp_path):
    torch.save(random_2d(4).state_dict(), tmp_path / "inception_v1.pt")
    cfg = compose_train(
        tmp_path,
        ["model=convnet_lstm", f"model.imagenet_weights={tmp_path / 'inception_v1.pt'}", "trainer.fast_dev_run=true"],
    )
    assert train(cfg)["model"] == "convnet_lstm"
    cfg = compose_train(tmp_path, ["model=c3d", f"model.imagenet_weights={tmp_path / 'inception_v1.pt'}"])
    with pytest.raises(ConfigError, match="C3D trains from scratch"):
        train(cfg)
