"""The paper's five architectures side by side: sizes (Table 1) and accuracy on the synthetic motion set
with equal budgets (Table 2 layout).

    python benchmarks/architectures.py --params-only      # parameter counts next to the paper's
    python benchmarks/architectures.py --epochs 10        # trains all five, prints the Table 2 layout

Every model trains from scratch on the default synthetic set (8 motion-only classes, each model on its
own small input, ``model.input_small``) for the same number of epochs with the same optimiser (AdamW
3e-4, warm-up + cosine), then is tested on the test list. Columns: RGB, Flow, RGB+Flow video-level
top-1, where the model has them (two-stream models report each stream and their fusion).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import open_dict

from i3d_train.train.run import train

CONF = str(Path(__file__).resolve().parents[1] / "conf")

# (config, paper row, paper parameters in millions): paper Table 1.
MODELS = [
    ("convnet_lstm", "(a) ConvNet+LSTM", 9),
    ("c3d", "(b) 3D-ConvNet", 79),
    ("two_stream", "(c) Two-Stream", 12),
    ("fused_two_stream", "(d) 3D-Fused Two-Stream", 39),
    ("i3d_two_stream", "(e) Two-Stream I3D", 25),
]


def config(model: str, extra: list[str]):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose("train", overrides=[f"model={model}", "callbacks.progress_bar.refresh_rate=0", *extra])


def params_table() -> None:
    print("Parameters with 400 classes (Table 1):\n")
    print("| model | paper | this project | ratio |")
    print("|---|---|---|---|")
    for model, row, paper in MODELS:
        cfg = config(model, ["data.num_classes=400", "data.synthetic.num_classes=400"])
        n = sum(p.numel() for p in instantiate(cfg.model.net).parameters())
        print(f"| {row} (`model={model}`) | {paper}M | {n:,} | {n / (paper * 1e6):.3f} |")


def columns(metrics: dict) -> tuple[str, str, str]:
    """RGB, Flow, RGB+Flow test top-1 of one run ('-' where the model has no such output)."""
    t = metrics["test"]

    def pct(key: str) -> str:
        return f"{100 * t[key]:.1f}" if key in t else "-"

    if "fused/video_acc_top1" in t:
        return pct("rgb/video_acc_top1"), pct("flow/video_acc_top1"), pct("fused/video_acc_top1")
    if metrics["modality"] == "rgb+flow":
        return "-", "-", pct("video_acc_top1")
    return (pct("video_acc_top1"), "-", "-") if metrics["modality"] == "rgb" else ("-", pct("video_acc_top1"), "-")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--models", default=",".join(m for m, _, _ in MODELS))
    p.add_argument("--params-only", action="store_true")
    p.add_argument("--out", type=Path, default=None, help="also write the runs' metrics here (JSON)")
    p.add_argument(
        "--runs-dir",
        type=Path,
        default=Path("logs/benchmarks/architectures"),
        help="each run's folder (metrics.json, checkpoints): python -m i3d_train.report reads them",
    )
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run")
    args = p.parse_args()
    params_table()
    if args.params_only:
        return
    rows, runs = [], {}
    for model, row, _ in MODELS:
        if model not in args.models.split(","):
            continue
        cfg = config(model, [f"trainer.max_epochs={args.epochs}", *args.overrides])
        with open_dict(cfg):
            cfg.paths.output_dir = str((args.runs_dir / model).resolve())
        t0 = time.time()
        m = train(cfg)
        runs[model] = m
        rows.append((row, model, *columns(m), m["params_total"], time.time() - t0))
    print(f"\nTable 2 layout: synthetic motion set (8 classes, motion only), from scratch, {args.epochs} epochs each,")
    print("video-level top-1 (%) on the test list:\n")
    print("| architecture | RGB | Flow | RGB+Flow | params (8 classes) | time (s) |")
    print("|---|---|---|---|---|---|")
    for row, model, rgb, flow, both, n, secs in rows:
        print(f"| {row} (`{model}`) | {rgb} | {flow} | {both} | {n:,} | {secs:.0f} |")
    if args.out:
        args.out.write_text(json.dumps(runs, indent=2))


if __name__ == "__main__":
    main()
