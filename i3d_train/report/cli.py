"""Gather the ``metrics.json`` of many training runs into the paper's tables.

    python -m i3d_train.report <runs folder or multirun folder> [--out report.md] [--metric video_acc_top1]
    python -m i3d_train.report --wandb ENTITY/PROJECT          # the runs of a W&B project (public API)
    python -m i3d_train.report --wandb-report ENTITY/PROJECT   # create a saved W&B report with the panels

- **Table 2 layout**: architecture x dataset x modality (RGB, Flow, RGB+Flow), runs with protocol
  ``original``. A two-stream run gives its streams' numbers (RGB, Flow) and their fusion (RGB+Flow);
  a single-stream run its own column.
- **Table 4 layout**: architecture x protocol (Original, Fixed, Full-FT) x dataset.

Every cell is the test video-level top-1 (%) averaged over the runs that fill it (several splits:
the mean over splits, as the paper reports UCF-101 and HMDB-51), with the number of runs when more
than one. A bar chart of the Table 2 numbers is written beside the Markdown (``<out>.png``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

from i3d_train.engine.predictions import save_figure
from i3d_train.report.wandb_runs import build_workspace_report, runs_from_wandb
from i3d_train.runtime.atomic import write_text

MODEL_ORDER = ["convnet_lstm", "c3d", "two_stream", "fused_two_stream", "i3d_two_stream", "i3d"]
MODEL_NAMES = {
    "convnet_lstm": "ConvNet+LSTM",
    "c3d": "3D-ConvNet",
    "two_stream": "Two-Stream",
    "fused_two_stream": "3D-Fused",
    "i3d_two_stream": "Two-Stream I3D",
    "i3d": "I3D",
}
MODALITIES = [("rgb", "RGB"), ("flow", "Flow"), ("rgb+flow", "RGB+Flow")]
PROTOCOLS = [("original", "Original"), ("fixed", "Fixed"), ("full_ft", "Full-FT")]


def find_runs(folder: Path) -> list[dict]:
    """Every training run's metrics.json under ``folder`` (eval outputs and incomplete runs skipped)."""
    runs = []
    for path in sorted(folder.rglob("metrics.json")):
        try:
            m = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(m, dict) and {"model", "data", "protocol", "test"} <= set(m) and m["test"]:
            m["_path"] = str(path)
            runs.append(m)
    return runs


def cells_of(run: dict, metric: str) -> dict[str, float]:
    """``{modality: value}`` one run contributes (a two-stream run: its streams and their fusion)."""
    t = run["test"]
    if f"fused/{metric}" in t:
        return {"rgb": t.get(f"rgb/{metric}"), "flow": t.get(f"flow/{metric}"), "rgb+flow": t[f"fused/{metric}"]}
    return {run.get("modality", "rgb"): t.get(metric)}


def _fmt(values: list[float]) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return ""
    mean = 100 * sum(values) / len(values)
    return f"{mean:.1f}" + (f" (n={len(values)})" if len(values) > 1 else "")


def _models(runs: list[dict]) -> list[str]:
    seen = {r["model"] for r in runs}
    return [m for m in MODEL_ORDER if m in seen] + sorted(seen - set(MODEL_ORDER))


def table2(runs: list[dict], metric: str) -> tuple[str, dict]:
    """Markdown and ``{(model, dataset, modality): [values]}`` for protocol ``original`` runs."""
    runs = [r for r in runs if r["protocol"] == "original"]
    datasets = sorted({r["data"] for r in runs})
    vals: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for r in runs:
        for mod, v in cells_of(r, metric).items():
            vals[(r["model"], r["data"], mod)].append(v)
    head = "| architecture | " + " | ".join(f"{d} {label}" for d in datasets for _, label in MODALITIES) + " |"
    lines = [head, "|---|" + "---|" * (len(datasets) * len(MODALITIES))]
    for model in _models(runs):
        cells = [_fmt(vals.get((model, d, mod), [])) for d in datasets for mod, _ in MODALITIES]
        lines.append(f"| {MODEL_NAMES.get(model, model)} (`{model}`) | " + " | ".join(cells) + " |")
    return "\n".join(lines), vals


def table4(runs: list[dict], metric: str) -> str:
    datasets = sorted({r["data"] for r in runs})
    vals: dict[tuple[str, str, str, str], list[float]] = defaultdict(list)
    for r in runs:
        for mod, v in cells_of(r, metric).items():
            vals[(r["model"], mod, r["data"], r["protocol"])].append(v)
    head = "| architecture | modality | " + " | ".join(f"{d} {p}" for d in datasets for _, p in PROTOCOLS) + " |"
    lines = [head, "|---|---|" + "---|" * (len(datasets) * len(PROTOCOLS))]
    for model in _models(runs):
        for mod, label in MODALITIES:
            cells = [_fmt(vals.get((model, mod, d, p), [])) for d in datasets for p, _ in PROTOCOLS]
            if any(cells):
                lines.append(f"| {MODEL_NAMES.get(model, model)} (`{model}`) | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bar_chart(path: Path, vals: dict, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted(
        {(m, d) for m, d, _ in vals}, key=lambda k: (k[1], MODEL_ORDER.index(k[0]) if k[0] in MODEL_ORDER else 99)
    )
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(keys)), 4))
    width = 0.8 / len(MODALITIES)
    for j, (mod, label) in enumerate(MODALITIES):
        ys = []
        for k in keys:
            v = [x for x in vals.get((*k, mod), []) if x is not None]
            ys.append(100 * sum(v) / len(v) if v else 0)
        ax.bar([i + j * width for i in range(len(keys))], ys, width, label=label)
    ax.set_xticks([i + width for i in range(len(keys))], [f"{MODEL_NAMES.get(m, m)}\n{d}" for m, d in keys], fontsize=8)
    ax.set_ylabel("test video top-1 (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)
    return path


def build_report(
    folder: Path | str, metric: str = "video_acc_top1", runs: list[dict] | None = None
) -> tuple[str, dict]:
    """The Markdown of the tables and the Table 2 values, from the runs under ``folder`` (or ``runs``:
    e.g. those of a W&B project, ``folder`` then only names them)."""
    if runs is None:
        runs = find_runs(Path(folder))
        if not runs:
            raise FileNotFoundError(f"no training-run metrics.json under {folder}")
    elif not runs:
        raise FileNotFoundError(f"no finished training run with test metrics in {folder}")
    t2, vals = table2(runs, metric)
    md = [
        f"# Results from {len(runs)} runs in {folder}",
        "",
        f"Test {metric.replace('_', ' ')} (%), video level; mean over runs (splits) when n > 1.",
        "",
        "## Table 2 layout: architecture x dataset x modality (protocol original)",
        "",
        t2,
        "",
        "## Table 4 layout: architecture x protocol x dataset",
        "",
        table4(runs, metric),
        "",
    ]
    return "\n".join(md), vals


def save_wandb_report(path: str, metric: str) -> int:
    """Create the W&B report of :func:`build_workspace_report` in ``entity/project`` (needs a login)."""
    entity, _, project = path.partition("/")
    if not entity or not project:
        print(f"error: --wandb-report {path}: expected ENTITY/PROJECT", file=sys.stderr)
        return 2
    try:
        report = build_workspace_report(entity, project, metric)
    except ImportError:
        print('error: --wandb-report needs wandb-workspaces: pip install -e ".[wandb]"', file=sys.stderr)
        return 2
    report.save()
    print(f"W&B report: {report.url}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m i3d_train.report", description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path, nargs="?", help="runs folder (metrics.json files); or --wandb")
    p.add_argument("--wandb", metavar="ENTITY/PROJECT", default=None, help="read the runs from a W&B project")
    p.add_argument(
        "--wandb-report", metavar="ENTITY/PROJECT", default=None, help="create a saved W&B report with the panels"
    )
    p.add_argument("--out", type=Path, default=None, help="write the Markdown here (and <out>.png)")
    p.add_argument("--metric", default="video_acc_top1")
    args = p.parse_args(argv)
    if args.wandb_report:
        return save_wandb_report(args.wandb_report, args.metric)
    if (args.folder is None) == (args.wandb is None):
        print("error: give a runs folder or --wandb ENTITY/PROJECT (one of them)", file=sys.stderr)
        return 2
    try:
        if args.wandb:
            runs = runs_from_wandb(args.wandb)
            md, vals = build_report(f"W&B project {args.wandb}", args.metric, runs)
        else:
            md, vals = build_report(args.folder, args.metric)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(md)
    if args.out:
        write_text(args.out, md)
        if vals:
            where = args.folder.name if args.folder else args.wandb
            png = bar_chart(args.out.with_suffix(".png"), vals, f"Table 2 layout, {where}")
            print(f"wrote {args.out} and {png}")
    return 0
