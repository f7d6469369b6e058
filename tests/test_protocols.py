"""Transfer protocols: what is trainable, frozen batch norms, loading initial weights."""

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from i3d_train.engine.classifier import VideoClassifier
from i3d_train.models.i3d import InceptionI3d
from i3d_train.train.transfer import ProtocolError, apply_protocol


@pytest.fixture
def pretrained(tmp_path):
    torch.manual_seed(1)
    src = InceptionI3d(400)
    path = tmp_path / "k400.pt"
    torch.save(src.state_dict(), path)
    return src, path


class RecordingClassifier(VideoClassifier):
    """Records, at every training step, whether any batch norm was in training mode."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.frozen_bn_training: list[bool] = []
        self.dropout_training: list[bool] = []

    def training_step(self, batch, batch_idx):
        bns = [m for m in self.net.modules() if isinstance(m, torch.nn.BatchNorm3d)]
        self.frozen_bn_training.append(any(m.training for m in bns))
        self.dropout_training.append(self.net.dropout.training)
        return super().training_step(batch, batch_idx)


def clip_loader(n: int = 4, classes: int = 5) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    rgb = torch.rand(n, 3, 16, 56, 56, generator=g) * 2 - 1
    items = [
        {
            "rgb": rgb[i],
            "label": torch.tensor(i % classes),
            "video_index": torch.tensor(i),
            "clip_index": torch.tensor(0),
        }
        for i in range(n)
    ]
    return DataLoader(items, batch_size=2)


def fit(module: VideoClassifier, tmp_path, epochs: int, val: bool) -> None:
    """A real Trainer: ``epochs`` of 2 training batches (and one validation batch, with a sanity check)."""
    trainer = pl.Trainer(
        max_epochs=epochs, limit_train_batches=2, limit_val_batches=int(val), num_sanity_val_steps=int(val),
        accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(module, clip_loader(), clip_loader() if val else None)


def test_fixed_keeps_frozen_batchnorm_statistics_under_a_real_trainer(pretrained, tmp_path):
    """Lightning 2.x never calls module.train() when fit starts: the frozen batch norms must still be in
    eval mode in every training step, and their running statistics bit-identical after fit."""
    src, path = pretrained
    net = apply_protocol(InceptionI3d(5), "fixed", str(path))
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    assert trainable == {"logits.conv3d.weight", "logits.conv3d.bias"}
    assert torch.equal(net.Mixed_5c.b0.conv3d.weight, src.Mixed_5c.b0.conv3d.weight)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    module = RecordingClassifier(net, 5, "rgb", optimizer=lambda params: torch.optim.SGD(params, lr=0.5))
    fit(module, tmp_path, epochs=2, val=True)
    assert module.frozen_bn_training == [False] * 4 and module.dropout_training == [True] * 4
    after = net.state_dict()
    stats = [k for k in before if "running" in k or "num_batches_tracked" in k]
    assert len(stats) > 100 and all(torch.equal(before[k], after[k]) for k in stats)
    frozen = [k for k in before if not k.startswith("logits.")]
    assert all(torch.equal(before[k], after[k]) for k in frozen)
    assert not torch.equal(before["logits.conv3d.weight"], after["logits.conv3d.weight"])  # the head learned


def test_full_ft_trains_everything_from_the_loaded_weights(pretrained, tmp_path):
    """Under a real Trainer: every batch norm in training mode at every step, so their statistics and
    every weight move."""
    src, path = pretrained
    net = apply_protocol(InceptionI3d(5), "full_ft", str(path))
    assert all(p.requires_grad for p in net.parameters())
    assert torch.equal(net.Conv3d_1a_7x7.conv3d.weight, src.Conv3d_1a_7x7.conv3d.weight)
    assert net.get_classifier().conv3d.weight.shape == (5, 1024, 1, 1, 1)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    module = RecordingClassifier(net, 5, "rgb", optimizer=lambda params: torch.optim.SGD(params, lr=0.1))
    fit(module, tmp_path, epochs=1, val=False)
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm3d)]
    assert module.frozen_bn_training == [True] * 2 and all(m.training for m in bns)
    after = net.state_dict()
    assert not torch.equal(before["Mixed_4b.b0.bn.running_mean"], after["Mixed_4b.b0.bn.running_mean"])
    assert not torch.equal(before["Conv3d_1a_7x7.conv3d.weight"], after["Conv3d_1a_7x7.conv3d.weight"])


def test_protocol_errors(tmp_path, pretrained):
    with pytest.raises(ProtocolError, match="needs initial weights"):
        apply_protocol(InceptionI3d(5), "fixed", None)
    with pytest.raises(ProtocolError, match="not found"):
        apply_protocol(InceptionI3d(5), "full_ft", str(tmp_path / "nope.pt"))
    _, path = pretrained
    with pytest.raises(ProtocolError, match="do not fit"):
        apply_protocol(InceptionI3d(5, in_channels=2), "fixed", str(path))
