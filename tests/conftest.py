"""Shared fixtures: tiny videos made by the tests, tiny dataset trees, and the composed config."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

from i3d_train.video.writer import write_video

CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (the README's ``-n 2``): one thread per worker, so two workers share two
    cores instead of fighting over them, and each worker's ``torchrun`` its own rendezvous port
    (torchrun reads ``PET_MASTER_PORT``; its default 29500 would collide between workers)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # gw0, gw1, ...
    if not worker:
        return
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    os.environ["PET_MASTER_PORT"] = str(29600 + 10 * int(worker.removeprefix("gw")))


BITS = 8
STRIPE = 16


def index_frames(n: int, height: int = 64) -> np.ndarray:
    """Frames whose content encodes their index: 8 stripes, white where the index's bit is 1."""
    frames = np.zeros((n, height, BITS * STRIPE, 3), dtype=np.uint8)
    for i in range(n):
        for b in range(BITS):
            if (i >> b) & 1:
                frames[i, :, b * STRIPE : (b + 1) * STRIPE] = 255
    return frames


def decode_index(frame: np.ndarray) -> int:
    """Inverse of :func:`index_frames` for one decoded frame ``(H, W, 3)``."""
    value = 0
    for b in range(BITS):
        stripe = frame[:, b * STRIPE + 4 : (b + 1) * STRIPE - 4]
        if stripe.mean() > 127:
            value |= 1 << b
    return value


@pytest.fixture
def index_video(tmp_path: Path):
    """Factory: an H.264 file of ``n`` index-encoded frames at ``fps`` with a keyframe every ``gop``."""

    def make(n: int = 100, fps: int = 25, gop: int = 10, name: str = "index.mp4") -> Path:
        path = tmp_path / name
        write_video(path, index_frames(n), fps, crf=10, gop=gop)
        return path

    return make


def compose_train(tmp_path: Path, overrides: list[str] | None = None) -> DictConfig:
    """The real ``conf/train.yaml``, shrunk for CPU tests: the tiny synthetic set under ``tmp_path``."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                "debug=tiny",
                f"paths.root_dir={tmp_path}",
                "callbacks.progress_bar.refresh_rate=0",
                *(overrides or []),
            ],
        )
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "run")
    return cfg


def randomize_batchnorm(net: torch.nn.Module, shift_std: float) -> torch.nn.Module:
    """Random batch-norm statistics and affine parameters (running mean and beta ~ N(0, shift_std),
    running var in [0.5, 2], gamma in [0.5, 1.5]), so that tests of folding and inflation are not
    trivial. Returns the net in eval mode."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0, shift_std)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, shift_std)
    return net.eval()


def sensitive_i3d(in_channels: int = 3, seed: int = 0, num_classes: int = 400) -> torch.nn.Module:
    """Random weights with batch-norm statistics measured on smooth random clips: its features change
    with the input (rows of different snippets differ by tens), unlike ``random_i3d``'s (by about 1e-6,
    below float error), so a test comparing rows can tell a wrong row from a right one."""
    torch.manual_seed(seed)
    from i3d_train.models.i3d import InceptionI3d

    net = InceptionI3d(num_classes, in_channels)
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = None  # a plain average over the calibration batch
            m.reset_running_stats()
    clips = torch.nn.functional.interpolate(
        torch.rand(8, in_channels, 4, 4, 4) * 2 - 1, size=(8, 32, 32), mode="trilinear"
    )
    with torch.no_grad():
        net.train().extract_features(clips)
    return net.eval()


def assert_same_rows(a: np.ndarray, b: np.ndarray) -> None:
    """Equal up to float error (relative to the features' scale), and the rows differ from one another
    far more than that (so a row in the wrong place would fail)."""
    assert a.shape == b.shape
    scale = np.abs(b).max()
    assert np.abs(a - b).max() <= 1e-5 * scale
    rows = b.reshape(b.shape[0], -1)
    if len(rows) > 1:
        d = np.abs(rows[:, None] - rows[None]).max(-1)
        np.fill_diagonal(d, np.inf)
        assert d.min() > 1e-3 * scale
