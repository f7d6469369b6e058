"""Flow streams and Two-Stream I3D: per-stream losses and metrics, late fusion, flow in the
DataModule (attached, checked, computed on first use), per-stream initial weights, end to end."""

import csv
import json
import logging
import re
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from i3d_train.data.datamodule import VideoDataModule
from i3d_train.data.ucf101 import DatasetFormatError
from i3d_train.engine.classifier import VideoClassifier
from i3d_train.engine.metrics import fuse
from i3d_train.flow.store import FlowMethodError, is_complete, read_meta
from i3d_train.models.i3d import InceptionI3d
from i3d_train.models.multistream import MultiStream
from i3d_train.train.run import train
from i3d_train.train.transfer import ProtocolError, apply_protocol
from tests.conftest import compose_train


class Fixed(nn.Module):
    """A 'network' whose logits are given per sample (input[:, 0, 0, 0, 0] picks the row)."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = table
        self.w = nn.Parameter(torch.zeros(()))  # something for the optimizer
        self.num_classes = table.shape[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.table[x[:, 0, 0, 0, 0].long()] + 0 * self.w


def test_fusion_is_the_mean_of_softmax_scores():
    a, b = torch.randn(4, 6), torch.randn(4, 6) * 3
    fused = fuse({"rgb": a, "flow": b})
    assert torch.allclose(fused, (a.softmax(-1) + b.softmax(-1)) / 2)
    assert torch.allclose(fused.sum(-1), torch.ones(4))


def test_two_stream_module_reports_each_stream_and_the_fusion():
    """Video 0: rgb right, flow wrong but unsure -> fused right. Video 1: rgb wrong, flow right and
    sure -> fused right. Video 2: rgb right and sure, flow wrong -> fused right by the mean of the
    softmax scores, wrong by the mean of the logits ([-1.5, 0.5, 0])."""
    rgb = torch.tensor([[4.0, 0, 0], [0, 0, 3.0], [3.0, 0, 0]])
    flow = torch.tensor([[0, 1.0, 0], [0, 9.0, 0], [-6.0, 1.0, 0]])
    net = MultiStream(rgb=Fixed(rgb), flow=Fixed(flow))
    module = VideoClassifier(net, 3, "rgb+flow", optimizer=lambda params: torch.optim.SGD(params, lr=0.1))
    assert module.net.modalities == ("rgb", "flow")
    idx = torch.arange(3).float().view(3, 1, 1, 1, 1).expand(3, 1, 1, 2, 2)
    labels = torch.tensor([0, 1, 0])
    batch = {
        "rgb": idx,
        "flow": idx,
        "label": labels,
        "video_index": torch.arange(3),
        "clip_index": torch.zeros(3, dtype=torch.long),
    }

    raw, streams, scores = module._outputs(batch)
    assert set(streams) == {"rgb", "flow"} and torch.allclose(scores, fuse(streams))
    loss = module._loss(raw, scores, labels, "x", 3)
    assert torch.allclose(loss, F.cross_entropy(rgb, labels) + F.cross_entropy(flow, labels))

    # the numbers a real test run reports (Lightning's loop, hooks and logging)
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    (m,) = trainer.test(module, dataloaders=DataLoader([batch], batch_size=None), verbose=False)
    assert m["test/rgb/video_acc_top1"] == pytest.approx(2 / 3)
    assert m["test/flow/video_acc_top1"] == pytest.approx(1 / 3)
    assert m["test/fused/video_acc_top1"] == pytest.approx(1.0)  # better than either stream alone
    assert m["test/video_acc_top1"] == m["test/fused/video_acc_top1"]  # the unprefixed numbers are the fused ones
    assert fuse(streams).argmax(-1).tolist() == [0, 1, 0]


def test_multistream_rejects_mismatched_streams():
    with pytest.raises(ValueError, match="number of classes"):
        MultiStream(rgb=InceptionI3d(5), flow=InceptionI3d(6, in_channels=2))
    with pytest.raises(KeyError, match="lacks"):
        MultiStream(rgb=InceptionI3d(5))({"flow": torch.zeros(1, 2, 8, 32, 32)})


def test_per_stream_initial_weights(tmp_path):
    torch.manual_seed(0)
    rgb_src, flow_src = InceptionI3d(400), InceptionI3d(400, in_channels=2)
    torch.save(rgb_src.state_dict(), tmp_path / "k_rgb.pt")
    # the flow file in the PyTorch port's form: DataParallel prefix, no num_batches_tracked
    port = {f"module.{k}": v for k, v in flow_src.state_dict().items() if "num_batches" not in k}
    torch.save(port, tmp_path / "k_flow.pt")

    net = MultiStream(rgb=InceptionI3d(8), flow=InceptionI3d(8, in_channels=2))
    apply_protocol(net, "fixed", str(tmp_path / "k_{modality}.pt"))
    s = net.streams
    assert torch.equal(s["rgb"].Mixed_5c.b0.conv3d.weight, rgb_src.Mixed_5c.b0.conv3d.weight)
    assert torch.equal(s["flow"].Conv3d_1a_7x7.conv3d.weight, flow_src.Conv3d_1a_7x7.conv3d.weight)
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    assert trainable == {f"streams.{m}.logits.conv3d.{w}" for m in ("rgb", "flow") for w in ("weight", "bias")}

    single = apply_protocol(InceptionI3d(8, in_channels=2), "full_ft", str(tmp_path / "k_{modality}.pt"), "flow")
    assert torch.equal(single.Mixed_3b.b1b.conv3d.weight, flow_src.Mixed_3b.b1b.conv3d.weight)
    mapped = MultiStream(rgb=InceptionI3d(8), flow=InceptionI3d(8, in_channels=2))
    apply_protocol(mapped, "full_ft", {"rgb": str(tmp_path / "k_rgb.pt"), "flow": str(tmp_path / "k_flow.pt")})
    assert torch.equal(mapped.streams["flow"].Mixed_4b.b0.conv3d.weight, flow_src.Mixed_4b.b0.conv3d.weight)
    with pytest.raises(ProtocolError, match="not 'flow'"):
        apply_protocol(MultiStream(flow=InceptionI3d(8, in_channels=2)), "fixed", {"rgb": "x.pt"})
    with pytest.raises(ProtocolError, match="k_depth.pt not found"):
        apply_protocol(InceptionI3d(8), "fixed", str(tmp_path / "k_{modality}.pt"), "depth")


def tiny_datamodule(tmp_path, modalities, **kw):
    synthetic = dict(num_classes=2, train_per_class=2, test_per_class=1, num_frames=10, height=48, width=64)
    return VideoDataModule(
        name="synthetic",
        root=str(tmp_path / "syn"),
        split=1,
        num_classes=2,
        input={"num_frames": 8, "fps": 25, "resize": 48, "crop_size": 32, "modalities": modalities},
        input_override=None,
        batch_size=2,
        num_workers=0,
        test_clips=2,
        flip=False,
        synthetic=synthetic,
        **kw,
    )


def test_datamodule_computes_flow_on_first_use_and_serves_both_modalities(tmp_path):
    flow_root = tmp_path / "syn" / "flow" / "farneback"
    dm = tiny_datamodule(
        tmp_path,
        ["rgb", "flow"],
        flow_root=str(flow_root),
        flow_extract={"method": "farneback", "short_side": 48, "workers": 1},
    )
    dm.prepare_data()
    folders = sorted(p.parent.relative_to(flow_root).as_posix() for p in flow_root.rglob("meta.json"))
    assert len(folders) == 8 and "MoveRight/v_MoveRight_g01_c01" in folders  # train 4, val 2, test 2
    meta = read_meta(flow_root / folders[0])
    assert (meta["method"], meta["frames"], meta["flow_frames"]) == ("farneback", 10, 9)
    assert dm.extract_flow()["skipped"] == 8  # second use: nothing recomputed
    dm.setup("fit")
    assert all(is_complete(it.flow_dir) for it in dm.lists.train + dm.lists.test)
    batch = next(iter(dm.train_dataloader()))
    assert batch["rgb"].shape == (2, 3, 8, 32, 32) and batch["flow"].shape == (2, 2, 8, 32, 32)
    assert batch["flow"].abs().max() <= 1.0 and batch["flow"].abs().mean() > 0.01  # the scenes move


def test_datamodule_drops_videos_without_flow_and_stops_when_none(tmp_path, caplog):
    flow_root = tmp_path / "flow"
    dm = tiny_datamodule(tmp_path, ["flow"], flow_root=str(flow_root), flow_extract={"method": "farneback"})
    dm.prepare_data()
    victim = flow_root / "MoveLeft" / "v_MoveLeft_g01_c01"
    (victim / "meta.json").unlink()  # an interrupted extraction: not complete
    with caplog.at_level(logging.WARNING):
        dm.setup("fit")
    assert "synthetic train: 3 of 4 flow folders found" in caplog.text and "python -m i3d_train.flow" in caplog.text
    assert len(dm.lists.train) == 3

    with pytest.raises(DatasetFormatError, match="data.flow_root is not set"):
        tiny_datamodule(tmp_path, ["flow"])
    empty = tiny_datamodule(tmp_path, ["flow"], flow_root=str(tmp_path / "none"))
    with pytest.raises(DatasetFormatError, match=r"synthetic train: no flow folders in .*none \(python -m"):
        empty.setup("fit")


def test_flow_is_read_only_if_computed_with_the_requested_method(tmp_path):
    """The default flow folder is named by method, and each folder's meta.json method is checked: Farneback
    flow where TV-L1 is asked for stops at setup with one line, and a folder that slips through stops
    when it is read."""
    for overrides, folder in (([], "flow/tvl1"), (["data.flow_extract={method: farneback}"], "flow/farneback")):
        cfg = compose_train(tmp_path, ["data=ucf101", f"data.root={tmp_path / 'ucf'}", *overrides])
        assert cfg.data.flow_root == f"{tmp_path / 'ucf'}/{folder}" and cfg.data.flow_method == folder[5:]
    flow_root = tmp_path / "flow"
    farneback = tiny_datamodule(tmp_path, ["flow"], flow_root=str(flow_root), flow_extract={"method": "farneback"})
    farneback.prepare_data()
    tvl1 = tiny_datamodule(tmp_path, ["flow"], flow_root=str(flow_root), flow_method="tvl1")
    with pytest.raises(DatasetFormatError, match=r"v_\w+: holds farneback flow, expected tvl1 \(meta.json"):
        tvl1.setup("fit")
    farneback.setup("fit")
    farneback.train_set.flow_method = "tvl1"
    with pytest.raises(FlowMethodError, match="holds farneback flow, expected tvl1"):
        farneback.train_set[0]
    with pytest.raises(ValueError, match="data.flow_extract.method=farneback but data.flow_method=tvl1"):
        tiny_datamodule(
            tmp_path, ["flow"], flow_root=str(flow_root), flow_method="tvl1", flow_extract={"method": "farneback"}
        )


def test_flow_stream_alone_builds_a_two_channel_i3d(tmp_path):
    cfg = compose_train(tmp_path, ["model.modality=flow", "trainer.fast_dev_run=true"])
    assert cfg.model.net.in_channels == 2 and list(cfg.model.input.modalities) == ["flow"]
    metrics = train(cfg)
    two, three = (sum(p.numel() for p in InceptionI3d(cfg.data.num_classes, c).parameters()) for c in (2, 3))
    assert metrics["modality"] == "flow" and metrics["params_total"] == two != three  # the 2-channel first conv
    assert "video_acc_top1" in metrics["test"]


@pytest.mark.slow
def test_two_stream_trains_end_to_end_with_per_stream_metrics(tmp_path):
    """Three epochs, so that the best checkpoint is a choice: the epoch of the lowest summed val loss."""
    cfg = compose_train(tmp_path, ["model=i3d_two_stream", "trainer.max_epochs=3"])
    metrics = train(cfg)
    for stage in ("val", "test"):
        for s in ("rgb", "flow", "fused"):
            assert 0.0 <= metrics[stage][f"{s}/video_acc_top1"] <= 1.0
            assert metrics[stage][f"{s}/num_videos"] == 8.0
        assert metrics[stage]["video_acc_top1"] == metrics[stage]["fused/video_acc_top1"]
    assert metrics["params_total"] == sum(p.numel() for p in InceptionI3d(8).parameters()) + sum(
        p.numel() for p in InceptionI3d(8, in_channels=2).parameters()
    )
    logged = (tmp_path / "run" / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"val/rgb/video_acc_top1", "val/flow/video_acc_top1", "val/fused/video_acc_top1"} <= set(logged)
    assert {"train/rgb/loss", "train/flow/loss"} <= set(logged)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["modality"] == "rgb+flow"
    # The best checkpoint is chosen by the lowest summed validation loss, and named after it.
    with open(tmp_path / "run" / "csv" / "metrics.csv") as f:
        val = {int(r["epoch"]): float(r["val/loss"]) for r in csv.DictReader(f) if r.get("val/loss")}
    assert sorted(val) == [0, 1, 2] and len(set(val.values())) == 3
    best = min(val, key=val.get)
    m = re.fullmatch(r"epoch(\d{3})-loss(\d+\.\d{4})\.ckpt", Path(metrics["best_ckpt"]).name)
    assert m and int(m.group(1)) == best and float(m.group(2)) == pytest.approx(val[best], abs=1e-4)
