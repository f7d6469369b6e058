"""Tests that a plausible wrong implementation fails: flips and resizes of flow through the dataset,
the exact center clip, RGB/flow-stack alignment of the fused two-stream net, every model overfitting
one batch, the paper's SGD + plateau pair under a real Trainer, and a two-stream checkpoint as the
initial weights of one stream."""

import math
import random
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from torch import nn
from torch.utils.data import DataLoader

from i3d_train.data.dataset import VideoDataset, VideoItem
from i3d_train.data.samplers import CenterClipSampler
from i3d_train.data.transforms import ClipTransform, SpatialParams
from i3d_train.engine.classifier import VideoClassifier
from i3d_train.engine.metrics import fuse
from i3d_train.flow.store import FlowStore, read_flow, write_flow_folder
from i3d_train.models.i3d import InceptionI3d
from i3d_train.models.multistream import MultiStream
from i3d_train.models.two_stream import frames_2d, stack_flow
from i3d_train.train.transfer import apply_protocol
from i3d_train.video.writer import write_video
from tests.conftest import compose_train
from tests.test_models import PAPER_PARAMS, build

LEVEL = 4  # gray level per frame index


def gray_video(path: Path, n: int, h: int = 48, w: int = 64, period: int = 64) -> Path:
    """Frame i is uniformly gray at ``LEVEL * (i mod period)`` (its index survives crops and resizes)."""
    frames = np.stack([np.full((h, w, 3), LEVEL * (i % period), np.uint8) for i in range(n)])
    write_video(path, frames, 25, crf=0)
    return path


def flow_folder(folder: Path, flow: np.ndarray, method: str | None = None) -> Path:
    meta = {"fps": 25.0, "frames": len(flow) + 1, "flow_frames": len(flow), "bound": 20.0, "method": method}
    write_flow_folder(folder, flow, FlowStore(20.0, jpeg_quality=100), meta)
    return folder


def rgb_index(clip: torch.Tensor) -> list[int]:
    return ((clip[0].mean((1, 2)) + 1) * 127.5 / LEVEL).round().long().tolist()


def test_forced_flip_mirrors_a_flow_ramp_and_negates_x(tmp_path):
    h, w = 48, 64
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    flow = np.stack([xs * 0.25 - 8, ys * 0.2 - 4], axis=-1)[None].repeat(4, 0)  # a ramp in x and in y
    folder = flow_folder(tmp_path / "flow", flow)
    item = VideoItem(gray_video(tmp_path / "v.mp4", 5, h, w), 0, "v.mp4", flow_dir=folder)
    ds = VideoDataset(
        [item], 4, 25.0, 1, CenterClipSampler(), ClipTransform(48, 40, train=True), modalities=("rgb", "flow")
    )
    stored = torch.from_numpy(read_flow(folder, range(4))).permute(3, 0, 1, 2) / 20  # what the dataset reads
    for flip in (False, True):
        ds.transform.draw = lambda hh, ww, rng, crop_index=0, f=flip: SpatialParams(3, 10, f)  # noqa: E731
        out = ds.load(0, 0, random.Random(0))["flow"]
        view = stored[:, :, 3:43, 10:50]
        if not flip:
            assert torch.allclose(out, view, atol=1e-6)
        else:  # mirrored image, and x vectors point the other way; y unchanged
            assert torch.allclose(out[0], -view[0].flip(-1), atol=1e-6)
            assert torch.allclose(out[1], view[1].flip(-1), atol=1e-6)
            assert not torch.allclose(out[0], -view[0], atol=1e-3)  # the ramp makes a mirror visible


def test_resizing_frames_96_to_48_halves_the_flow_vectors(tmp_path):
    flow = np.zeros((4, 96, 128, 2), np.float32)
    flow[..., 0], flow[..., 1] = 6.0, -4.0  # pixels at 96x128
    item = VideoItem(
        gray_video(tmp_path / "v.mp4", 5, 96, 128), 0, "v.mp4", flow_dir=flow_folder(tmp_path / "flow", flow)
    )
    ds = VideoDataset(
        [item], 4, 25.0, 1, CenterClipSampler(), ClipTransform(48, 48, train=False), modalities=("rgb", "flow")
    )
    s = ds[0]
    assert s["rgb"].shape == (3, 4, 48, 48) and s["flow"].shape == (2, 4, 48, 48)
    dx, dy = (s["flow"][i] * 20 for i in (0, 1))  # back to pixels at 48x64
    assert torch.allclose(dx, torch.full_like(dx, 3.0), atol=0.1) and torch.allclose(
        dy, torch.full_like(dy, -2.0), atol=0.1
    )


def test_center_clip_is_exactly_the_middle_frames(tmp_path):
    """13 frames, 4 frames every 2 (a span of 7): start (13 - 7) // 2 = 3. With flow the video has 12
    fields, so both modalities start at (12 - 7) // 2 = 2."""
    video = gray_video(tmp_path / "v.mp4", 13)
    item = VideoItem(video, 0, "v.mp4")
    ds = VideoDataset([item], 4, 25.0, 2, CenterClipSampler(), ClipTransform(48, 32, train=False))
    assert rgb_index(ds[0]["rgb"]) == [3, 5, 7, 9]
    fields = np.zeros((12, 48, 64, 2), np.float32)
    fields[..., 0] = np.arange(12, dtype=np.float32)[:, None, None]
    both = VideoDataset(
        [VideoItem(video, 0, "v.mp4", flow_dir=flow_folder(tmp_path / "flow", fields))],
        *(4, 25.0, 2, CenterClipSampler(), ClipTransform(48, 32, train=False)),
        modalities=("rgb", "flow"),
    )
    s = both[0]
    assert rgb_index(s["rgb"]) == [2, 4, 6, 8]
    assert (s["flow"][0].mean((1, 2)) * 20).round().long().tolist() == [2, 4, 6, 8]


def test_fused_two_stream_gets_each_rgb_frame_with_the_flow_stack_that_starts_at_it(tmp_path):
    """The fused net's input as configured (5 RGB frames 10 apart, 50 flow fields from the same start),
    through the dataset and the net's own stacking: step k pairs RGB frame start + 10k with fields
    start + 10k ... start + 10k + 9, x and y interleaved."""
    cfg = compose_train(tmp_path, ["model=fused_two_stream"])
    spec = cfg.model.input
    n = 62  # frames; 61 fields; field i is x = i mod 20, y = i // 20 (within the +-20 bound)
    fields = np.zeros((n - 1, 48, 64, 2), np.float32)
    i = np.arange(n - 1, dtype=np.float32)[:, None, None]
    fields[..., 0], fields[..., 1] = i % 20, i // 20
    item = VideoItem(gray_video(tmp_path / "v.mp4", n), 0, "v.mp4", flow_dir=flow_folder(tmp_path / "flow", fields))
    ds = VideoDataset(
        [item], spec.num_frames, spec.fps, spec.frame_stride, CenterClipSampler(), ClipTransform(48, 32, train=False),
        modalities=tuple(spec.modalities), flow_frames=spec.flow_frames, flow_stride=spec.flow_stride,
    )  # fmt: skip
    s = ds[0]
    rgb = frames_2d(s["rgb"][None])  # steps x 3 x h x w
    stacks = stack_flow(s["flow"][None], spec.num_frames)  # steps x (2 * 10) x h x w
    start = (n - 1 - 50) // 2  # 61 fields; the clip spans 50 (the 5 stacks of 10 flow fields)
    for k in range(spec.num_frames):
        frame = round(float((rgb[k].mean() + 1) * 127.5 / LEVEL))
        assert frame == start + 10 * k
        x, y = ((stacks[k, c::2].mean((1, 2)) * 20).round().long().tolist() for c in (0, 1))
        assert [a + 20 * b for a, b in zip(x, y, strict=True)] == list(range(frame, frame + 10))


def small_net(name: str, classes: int) -> nn.Module:
    if name == "i3d":
        return InceptionI3d(classes, dropout=0.0)
    net = build(name, classes)
    for m in net.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    return net


FLOW_MODELS = ("two_stream", "fused_two_stream", "i3d_two_stream")


def fixed_batch(name: str, varies: str = "rgb") -> dict[str, torch.Tensor]:
    """4 clips of 4 classes in which only ``varies`` (``rgb`` or ``flow``) tells the clips apart: the
    other modality is the same clip four times, so a model can fit the labels only through that stream."""
    g = torch.Generator().manual_seed(0)
    frames = {"convnet_lstm": 4, "c3d": 16, "two_stream": 1, "fused_two_stream": 2, "i3d_two_stream": 8, "i3d": 8}[name]
    flow_frames = {"two_stream": 10, "fused_two_stream": 20}.get(name, frames)
    size = 16
    batch = {}
    for m, t, c in (("rgb", frames, 3), ("flow", flow_frames, 2)):
        n = 4 if m == varies else 1
        batch[m] = (torch.rand(n, c, t, size, size, generator=g) * 2 - 1).expand(4, -1, -1, -1, -1).contiguous()
    batch["label"] = torch.tensor([0, 1, 2, 3])
    return batch


class LossRecorder(pl.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


CASES = [(n, "rgb") for n in [*sorted(PAPER_PARAMS), "i3d"]] + [(n, "flow") for n in FLOW_MODELS]
# the lowest loss when one stream cannot tell the clips apart: Two-Stream I3D sums a loss per stream
# (that stream's stays at ln 4); Two-Stream trains through the average of the two softmaxes, at best
# (1 + 1/4) / 2 on the right class
FLOOR = {"i3d_two_stream": math.log(4), "two_stream": -math.log(5 / 8)}


@pytest.mark.slow
@pytest.mark.parametrize("name,varies", sorted(CASES))
def test_every_model_fits_one_fixed_batch_through_each_stream(name, varies):
    """15 Adam steps of a real Trainer on one batch of 4 clips of 4 classes that only one modality tells
    apart: the net must then classify all 4 (two-stream nets: by their fused scores), the loss fall from
    chance (ln 4 = 1.39 per loss) to within 0.1 of the lowest it can reach (``FLOOR``), and every weight
    move. Training against other labels than the batch's leaves some of the 4 misclassified; a stream
    that is ignored cannot tell them apart; a detached one keeps its initial weights."""
    torch.manual_seed(0)
    net = small_net(name, 4)
    initial = {k: v.clone() for k, v in net.named_parameters()}
    module = VideoClassifier(net, 4, "rgb", optimizer=lambda params: torch.optim.Adam(params, lr=1e-3))
    batch = fixed_batch(name, varies)
    rec = LossRecorder()
    trainer = pl.Trainer(
        max_steps=15, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[rec], num_sanity_val_steps=0, limit_val_batches=0,
    )  # fmt: skip
    trainer.fit(module, train_dataloaders=DataLoader([batch] * 15, batch_size=None))
    floor = FLOOR.get(name, 0.0)
    assert len(rec.losses) == 15 and rec.losses[0] > 1.0 and rec.losses[-1] < floor + 0.1, rec.losses[::3]
    with torch.no_grad():  # in training mode: batch norm with the batch's statistics, as it was fit
        out = module.train()(batch)
    scores = fuse(out) if isinstance(out, dict) else out[:, -1] if out.dim() == 3 else out
    assert scores.argmax(-1).tolist() == [0, 1, 2, 3]
    # every weight of the stream that tells the clips apart trained (one cut off from the loss would keep
    # its initial weights; the other stream's weights may get no gradient from identical clips)
    prefix = {"i3d_two_stream": f"streams.{varies}.", "two_stream": f"{varies}.", "fused_two_stream": f"{varies}."}
    mine = [k for k in initial if k.startswith(prefix.get(name, ""))]
    assert mine and [k for k in mine if torch.equal(net.get_parameter(k), initial[k])] == []


class Clips(torch.utils.data.Dataset):
    """Blank clips with balanced labels in the batch format of the DataModule: with a zero bias the
    gradient is exactly zero, so the validation loss stays at ln 2 whatever the learning rate."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"rgb": torch.zeros(3, 2, 4, 4), "label": torch.tensor(i % 2), "video_index": torch.tensor(i),
                "clip_index": torch.tensor(0)}  # fmt: skip


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3 * 2 * 4 * 4, 2)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


def test_sgd_with_the_plateau_schedule_divides_the_rate_when_val_loss_stalls(tmp_path):
    """``optimizer=sgd scheduler=plateau`` exactly as configured (lr 0.01, momentum 0.9, patience 2),
    under a real Trainer: the rate is divided by 10 after the validation loss has not improved for
    more than 2 epochs, and not before."""
    cfg = compose_train(tmp_path, ["optimizer=sgd", "scheduler=plateau"])
    module = VideoClassifier(
        Tiny(), 2, "rgb", instantiate(cfg.optimizer), instantiate(cfg.scheduler), cfg.module.scheduler_monitor
    )
    rates, losses = [], []

    class Record(pl.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            rates.append(trainer.optimizers[0].param_groups[0]["lr"])

        def on_validation_epoch_end(self, trainer, pl_module):
            losses.append(float(trainer.callback_metrics["val/loss"]))

    trainer = pl.Trainer(
        max_epochs=6, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[Record()], num_sanity_val_steps=0,
    )  # fmt: skip
    loader = DataLoader(Clips(), batch_size=4)
    trainer.fit(module, loader, loader)
    opt = trainer.optimizers[0]
    assert isinstance(opt, torch.optim.SGD) and opt.param_groups[0]["momentum"] == 0.9
    assert losses == pytest.approx([np.log(2)] * 6)  # stalled from the first epoch
    # epoch 0 sets the best; epochs 1-3 do not improve: after the third (more than patience 2) the rate drops
    assert rates == pytest.approx([0.01, 0.01, 0.01, 0.01, 0.001, 0.001])


def test_a_two_stream_lightning_checkpoint_initialises_each_single_stream(tmp_path):
    torch.manual_seed(0)
    net = MultiStream(rgb=InceptionI3d(3), flow=InceptionI3d(3, 2))
    module = VideoClassifier(net, 3, "rgb+flow", optimizer=lambda params: torch.optim.SGD(params, lr=0.0))
    trainer = pl.Trainer(
        max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=0,
    )  # fmt: skip

    class Both(torch.utils.data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return {"rgb": torch.zeros(3, 8, 32, 32), "flow": torch.zeros(2, 8, 32, 32), "label": torch.tensor(i)}

    trainer.fit(module, DataLoader(Both(), batch_size=2))
    ckpt = tmp_path / "two_stream.ckpt"
    trainer.save_checkpoint(ckpt)
    for modality, channels in (("rgb", 3), ("flow", 2)):
        single = apply_protocol(InceptionI3d(7, channels), "full_ft", str(ckpt), modality)
        source = net.streams[modality].state_dict()
        for k, v in single.state_dict().items():
            if not k.startswith("logits."):
                assert torch.equal(v, source[k]), (modality, k)
        assert single.logits.conv3d.weight.shape[0] == 7  # a new classifier for the new classes


@pytest.mark.parametrize("model", ["c3d", "two_stream", "fused_two_stream"])
def test_the_paper_protocol_tiles_a_fixed_length_model_over_the_whole_video(tmp_path, model):
    """``data.test_protocol=paper`` for a fixed-input model: its clip back to back over a video several
    clips long (Table 1's test input), ``n // span`` tiles starting at ``0, span, 2 span, ...``, each
    tile the frames its start says (read back from gray levels), stacked as ``(K, C, T, H, W)``."""
    n_frames = 121  # 120 flow fields; frame i's gray level says i mod 60
    cfg = compose_train(tmp_path, [f"model={model}", "data.test_protocol=paper"])
    dm = instantiate(cfg.data, _convert_="object")
    sampler = dm.test_sampler()
    assert sampler.tiles
    path = gray_video(tmp_path / "v.mp4", n_frames, period=60)
    flow_dir = flow_folder(tmp_path / "flow", np.zeros((n_frames - 1, 48, 64, 2), np.float32), dm.flow_method)
    ds = dm.dataset([VideoItem(path, 0, "v.mp4", flow_dir=flow_dir)], False, sampler)
    t, stride = ds.frames["rgb"]
    span = max((tt - 1) * ss + 1 for tt, ss in ds.frames.values())
    k = (n_frames - 1) // span  # the flow fields set the length: 120
    assert k >= 3, span  # several tiles, so that one tile, or tiles at the wrong starts, would show
    rgb = ds.load(0, 0, random.Random(0))["rgb"]  # K x 3 x T x h x w
    assert rgb.shape[:3] == (k, 3, t)
    for i in range(k):
        assert rgb_index(rgb[i]) == [(i * span + j * stride) % 60 for j in range(t)], (i, span)
