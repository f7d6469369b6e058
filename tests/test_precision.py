"""Training speed options: trainer.precision=auto, trainer.compile, channels-last, mixed-precision steps
through a real Trainer, fp32 metrics, and the loader's per-video probe cache."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader
from torchmetrics.classification import MulticlassAccuracy

import i3d_train.engine.classifier as module_lib
import i3d_train.inference.fast as inference
import i3d_train.video.reader as reader
from i3d_train.data.dataset import VideoDataset, VideoItem
from i3d_train.data.probe_cache import ProbeCache
from i3d_train.data.samplers import UniformClipSampler
from i3d_train.data.transforms import ClipTransform
from i3d_train.engine.classifier import VideoClassifier
from i3d_train.engine.trainer_options import resolve_precision, to_channels_last, trainer_config

CPUINFO = "processor : 0\nflags : fpu sse sse2 avx avx2 avx512f {extra}\n"


def fake_cpu(monkeypatch, extra_flags: str) -> None:
    """/proc/cpuinfo as a CPU with these extra flags (what cpu_has_bf16 reads)."""

    class FakePath:
        def __init__(self, path):
            assert str(path) == "/proc/cpuinfo"

        def read_text(self):
            return CPUINFO.format(extra=extra_flags)

    monkeypatch.setattr(inference, "Path", FakePath)


def fake_gpu(monkeypatch, capability: tuple[int, int] | None) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: capability is not None)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: capability)


@pytest.mark.parametrize(
    "flags, gpu, accelerator, expected",
    [
        ("avx512_bf16 avx512_vnni", None, "auto", "bf16-mixed"),  # Cooper Lake / Zen 4
        ("amx_bf16 amx_tile amx_int8", None, "cpu", "bf16-mixed"),  # Sapphire Rapids
        ("avx512_vnni amx_tile", None, "auto", "32-true"),  # no bf16 arithmetic
        ("", None, "cpu", "32-true"),
        ("", (8, 0), "auto", "bf16-mixed"),  # A100
        ("", (9, 0), "gpu", "bf16-mixed"),  # H100
        ("", (7, 0), "gpu", "16-mixed"),  # V100
        ("", (7, 5), "cuda", "16-mixed"),  # T4
        ("", (7, 0), "cpu", "32-true"),  # a GPU is there, the run asked for the CPU
        ("amx_bf16", (7, 0), "cpu", "bf16-mixed"),
    ],
)
def test_precision_auto_resolves_from_hardware(monkeypatch, flags, gpu, accelerator, expected):
    fake_cpu(monkeypatch, flags)
    fake_gpu(monkeypatch, gpu)
    assert resolve_precision("auto", accelerator)[0] == expected


@pytest.mark.parametrize("value", ["32-true", "bf16-mixed", "16-mixed", 32, "64-true"])
def test_explicit_precision_passes_through(monkeypatch, value):
    fake_cpu(monkeypatch, "amx_bf16")
    assert resolve_precision(value, "cpu")[0] == value


def test_trainer_config_resolves_auto_once_and_takes_compile_out(monkeypatch, capsys):
    fake_cpu(monkeypatch, "avx512_bf16")
    fake_gpu(monkeypatch, None)
    net = nn.Linear(2, 2)
    cfg = trainer_config({"accelerator": "auto", "precision": "auto", "compile": True, "max_epochs": 3}, net)
    assert dict(cfg) == {"accelerator": "auto", "precision": "bf16-mixed", "max_epochs": 3}
    lines = [line for line in capsys.readouterr().out.splitlines() if "trainer.precision=auto" in line]
    assert lines == ["trainer.precision=auto: bf16-mixed (CPU has AVX512-BF16/AMX)"]
    assert net._compiled_call_impl is not None  # nn.Module.compile: compiled in place, same state-dict keys
    assert list(net.state_dict()) == ["weight", "bias"]
    pl.Trainer(**cfg, logger=False, enable_checkpointing=False)  # nothing Lightning would refuse is left
    with pytest.raises(ValueError, match="needs the net"):
        trainer_config({"compile": True})
    plain = trainer_config({"precision": "32-true", "compile": False})
    assert dict(plain) == {"precision": "32-true"} and "trainer.precision" not in capsys.readouterr().out


def test_channels_last_converts_3d_weights_and_leaves_2d_ones():
    """Mixed 2D/3D nets (3D-Fused Two-Stream) too, where ``module.to(memory_format=channels_last_3d)``
    raises on the 4-D weights."""
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv3d(4, 4, 3), nn.BatchNorm3d(4), nn.Linear(4, 2))
    with pytest.raises(RuntimeError, match="rank 5"):
        nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv3d(4, 4, 3)).to(memory_format=torch.channels_last_3d)
    ref = [p.clone() for p in net.parameters()]
    to_channels_last(net)
    w2, w3 = net[0].weight, net[1].weight
    assert w3.is_contiguous(memory_format=torch.channels_last_3d) and not w3.is_contiguous()
    assert w2.is_contiguous() and net[3].weight.is_contiguous()
    assert all(torch.equal(a, b) for a, b in zip(ref, net.parameters(), strict=True))  # same values
    assert isinstance(net[1].weight, nn.Parameter)


# --- through a real Trainer ------------------------------------------------------------------------


class TinyNet(nn.Module):
    """3D conv + batch norm + linear head; records the dtype of its logits and the layout of its input."""

    def __init__(self, num_classes: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv3d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm3d(8)
        self.fc = nn.Linear(8, num_classes)
        self.seen: list[tuple[torch.dtype, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cl = x.is_contiguous(memory_format=torch.channels_last_3d) and not x.is_contiguous()
        out = self.fc(torch.relu(self.bn(self.conv(x))).mean((2, 3, 4)))
        self.seen.append((out.dtype, cl))
        return out


def clips(n: int, tiles: int = 0, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    shape = (tiles, 3, 4, 8, 8) if tiles else (3, 4, 8, 8)
    return [
        {
            "rgb": torch.rand(shape, generator=g) * 2 - 1,
            "label": torch.tensor(i % 4),
            "video_index": torch.tensor(i),
            "clip_index": torch.tensor(0),
        }
        for i in range(n)
    ]


def classifier(net: nn.Module, channels_last: bool) -> VideoClassifier:
    return VideoClassifier(
        net,
        num_classes=4,
        modality="rgb",
        optimizer=lambda params: torch.optim.AdamW(params, lr=1e-2),
        channels_last=channels_last,
    )


def tiny_trainer(precision: str, **kw) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu",
        precision=precision,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        **kw,
    )


class LossRecorder(pl.Callback):
    def __init__(self) -> None:
        self.losses: list[torch.Tensor] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(outputs["loss"].detach())


def test_bf16_training_step_finite_fp32_loss_updates_weights():
    torch.manual_seed(0)
    net = TinyNet()
    model = classifier(net, channels_last=True)
    assert net.conv.weight.is_contiguous(memory_format=torch.channels_last_3d)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    rec = LossRecorder()
    trainer = tiny_trainer("bf16-mixed", max_steps=2, callbacks=[rec], limit_val_batches=0)
    trainer.fit(model, train_dataloaders=DataLoader(clips(8), batch_size=4))
    assert len(rec.losses) == 2
    assert all(loss.dtype == torch.float32 and torch.isfinite(loss) for loss in rec.losses)
    assert {s for s in net.seen} == {(torch.bfloat16, True)}  # ran in bf16, on channels-last input
    after = net.state_dict()
    for k in ("conv.weight", "fc.weight", "bn.weight", "bn.running_mean", "bn.running_var"):
        assert after[k].dtype == torch.float32, k  # parameters and batch-norm statistics stay fp32
        assert not torch.equal(after[k], before[k]), f"{k} not updated"
    assert net.conv.weight.is_contiguous(memory_format=torch.channels_last_3d)  # the optimiser kept the layout


def test_metrics_get_fp32_scores_under_bf16(monkeypatch):
    """Clip accuracy (train and val) and the video-level metrics see fp32 scores, with the paper
    protocol's 6-D tiled validation batches (N, K, C, T, H, W) on a channels-last model."""
    seen: list[torch.dtype] = []
    update = MulticlassAccuracy.update

    def spy_update(self, preds, target):
        seen.append(preds.dtype)
        return update(self, preds, target)

    monkeypatch.setattr(MulticlassAccuracy, "update", spy_update)
    video_seen: list[torch.dtype] = []
    video_metrics = module_lib.video_metrics

    def spy_video_metrics(scores, labels, num_classes):
        video_seen.append(scores.dtype)
        return video_metrics(scores, labels, num_classes)

    monkeypatch.setattr(module_lib, "video_metrics", spy_video_metrics)
    torch.manual_seed(0)
    net = TinyNet()
    model = classifier(net, channels_last=True)
    trainer = tiny_trainer("bf16-mixed", max_epochs=1)
    trainer.fit(
        model,
        train_dataloaders=DataLoader(clips(8), batch_size=4),
        val_dataloaders=DataLoader(clips(4, tiles=2, seed=1), batch_size=2),
    )
    assert torch.bfloat16 in {dtype for dtype, _ in net.seen}  # the net's own outputs were bf16
    assert all(cl for _, cl in net.seen)  # the flattened tiles reached the net channels-last too
    assert len(seen) == 4 and set(seen) == {torch.float32}  # 2 train + 2 val batches
    assert video_seen == [torch.float32]
    assert model.final_metrics["val"]["num_videos"] == 4.0


# --- the loader's probe cache ----------------------------------------------------------------------


def test_probe_cache_fills_once_and_reads_back():
    cache = ProbeCache(2)
    calls = []

    def probe():
        calls.append(1)
        return reader.VideoInfo(100, 29.97002997, 240, 320)

    assert cache.get(1, probe) == reader.VideoInfo(100, 29.97002997, 240, 320)
    assert cache.get(1, probe) == reader.VideoInfo(100, 29.97002997, 240, 320)
    assert len(calls) == 1 and len(cache) == 1
    with pytest.raises(reader.VideoDecodeError):  # failures are not cached
        cache.get(0, lambda: (_ for _ in ()).throw(reader.VideoDecodeError("bad")))
    assert len(cache) == 1


def test_loader_opens_each_video_once_per_sample_across_workers_and_epochs(index_video, tmp_path, monkeypatch):
    """2 videos x 4 clips, 2 workers that are not persistent, 2 epochs: each video is probed once in
    the whole run, and every sample opens its file once (before: twice, probe + decode). Batches of 4
    give each worker its own video in the first epoch: two workers reaching an unprobed video at the
    same moment would both probe it (documented), which made this count depend on timing."""
    videos = [index_video(n=60, name=f"v{i}.mp4") for i in range(2)]
    opens = tmp_path / "opens.txt"
    open_video = reader.open_video

    def counting_open(path, threads=0):
        with opens.open("a") as f:  # workers are processes: count in a file
            f.write(f"{Path(path).name}\n")
        return open_video(path, threads)

    monkeypatch.setattr(reader, "open_video", counting_open)
    items = [VideoItem(p, 0, p.name) for p in videos]
    ds = VideoDataset(items, 8, 25.0, 1, UniformClipSampler(4), ClipTransform(64, 56, train=True))
    assert len(ds) == 8
    loader = DataLoader(ds, batch_size=4, num_workers=2, persistent_workers=False, multiprocessing_context="fork")
    samples = 0
    for _ in range(2):
        for batch in loader:
            samples += batch["rgb"].shape[0]
    assert samples == 16
    names = opens.read_text().splitlines()
    assert len(names) == samples + len(videos)  # one open per sample, plus one probe per video
    assert sorted(set(names)) == ["v0.mp4", "v1.mp4"]
    assert len(ds.probes) == 2
    assert ds.probes.get(0, lambda: pytest.fail("probed again")).num_frames == 60
