"""Gather the ``metrics.json`` of many training runs into the paper's tables.

    python -m i3d_train.report <runs folder or multirun folder> [--out report.md] [--metric video_acc_top1]
    python -m i3d_train.report --wandb ENTITY/PROJECT          # the runs of a W&B project (public API)
    python -m i3d_train.report --wandb-report ENTITY/PROJECT   # create a saved W&B report with the panels

- **Table 2 layout**: architecture x dataset x modality (RGB, Flow, RGB+Flow), runs with protocol
  ``original``. A two-stream run gives its streams' numbers (RGB, Flow) and their fusion (RGB+Flow);
  a single-stream run its own column.
- **Table 4 layout**: architecture x protocol (Original, Fixed, Full-FT) x dataset.

Every cell is the test video-level top-1 (%) averaged over the splits of one model, input and recipe
(the paper's mean over UCF-101's and HMDB-51's three splits), saying how many splits, and how many
runs where one split has several. Runs of one model with another input or recipe (``config.yaml``
beside ``metrics.json``: the clip, optimiser, learning rate, epochs, batch, initial weights) get rows
of their own, never one average. A layout with no runs says so instead of an empty table. A bar chart
of the Table 2 numbers is written beside the Markdown (``<out>.png``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from i3d_train.engine.predictions import save_figure
from i3d_train.report.runs import variant, variant_key, variant_label
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
            m.update(variant(read_config(path.parent / "config.yaml")))
            runs.append(m)
    return runs


def read_config(path: Path) -> dict | None:
    """A run folder's resolved ``config.yaml`` as a dict (None if absent or unreadable)."""
    if not path.is_file():
        return None
    try:
        from omegaconf import OmegaConf

        cfg = OmegaConf.load(path)
        try:
            return OmegaConf.to_container(cfg, resolve=True)  # train.py saves it resolved already
        except Exception:  # noqa: BLE001 - an interpolation that no longer resolves: the raw values
            return OmegaConf.to_container(cfg, resolve=False)
    except Exception:  # noqa: BLE001 - a damaged config: the run is reported without its variant
        return None


def cells_of(run: dict, metric: str) -> dict[str, float]:
    """``{modality: value}`` one run contributes (a two-stream run: its streams and their fusion)."""
    t = run["test"]
    if f"fused/{metric}" in t:
        return {"rgb": t.get(f"rgb/{metric}"), "flow": t.get(f"flow/{metric}"), "rgb+flow": t[f"fused/{metric}"]}
    return {run.get("modality", "rgb"): t.get(metric)}


def _fmt(values: list[tuple[Any, float]]) -> str:
    """A cell: the mean over splits of ``(split, value)`` pairs (runs of one split averaged first), with
    the number of splits, and of runs where a split has several."""
    by_split: dict[Any, list[float]] = defaultdict(list)
    for split, v in values:
        if v is not None:
            by_split[split].append(v)
    if not by_split:
        return ""
    means = [sum(vs) / len(vs) for vs in by_split.values()]
    text = f"{100 * sum(means) / len(means):.1f}"
    notes = []
    if len(by_split) > 1:
        notes.append(f"{len(by_split)} splits")
    repeated = {s: len(vs) for s, vs in by_split.items() if len(vs) > 1}
    if repeated:
        notes.append(", ".join(f"split {s}: {n} runs" for s, n in sorted(repeated.items(), key=str)))
    return text + (f" ({'; '.join(notes)})" if notes else "")


def _rows(runs: list[dict]) -> list[tuple[str, tuple]]:
    """``(model, variant key)`` per report row, in the paper's model order; a model trained with
    several inputs or recipes gets a row each."""
    seen: dict[tuple[str, tuple], None] = {}
    for r in sorted(runs, key=lambda r: (_order(r["model"]), variant_label(r))):
        seen.setdefault((r["model"], variant_key(r)), None)
    return list(seen)


def _order(model: str) -> int:
    return MODEL_ORDER.index(model) if model in MODEL_ORDER else len(MODEL_ORDER)


def _row_label(model: str, key: tuple, runs: list[dict], several: bool) -> str:
    name = f"{MODEL_NAMES.get(model, model)} (`{model}`)"
    if not several:
        return name
    run = next(r for r in runs if r["model"] == model and variant_key(r) == key)
    return f"{name} [{variant_label(run) or 'no config.yaml'}]"


def _models(runs: list[dict]) -> list[str]:
    seen = {r["model"] for r in runs}
    return [m for m in MODEL_ORDER if m in seen] + sorted(seen - set(MODEL_ORDER))


def table2(runs: list[dict], metric: str) -> tuple[str, dict]:
    """Markdown and ``{(model, dataset, modality): [values]}`` for protocol ``original`` runs; a row per
    model and variant (input, recipe), cells averaged over splits."""
    runs = [r for r in runs if r["protocol"] == "original"]
    if not runs:
        return "No runs with protocol `original`: nothing in this layout.", {}
    datasets = sorted({r["data"] for r in runs})
    vals: dict[tuple, list] = defaultdict(list)
    chart: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for r in runs:
        for mod, v in cells_of(r, metric).items():
            vals[(r["model"], variant_key(r), r["data"], mod)].append((r.get("split"), v))
    rows = _rows(runs)
    models = Counter(m for m, _ in rows)
    head = "| architecture | " + " | ".join(f"{d} {label}" for d in datasets for _, label in MODALITIES) + " |"
    lines = [head, "|---|" + "---|" * (len(datasets) * len(MODALITIES))]
    for model, key in rows:
        cells = [_fmt(vals.get((model, key, d, mod), [])) for d in datasets for mod, _ in MODALITIES]
        lines.append(f"| {_row_label(model, key, runs, models[model] > 1)} | " + " | ".join(cells) + " |")
        for d in datasets:
            for mod, _ in MODALITIES:
                chart[(model, d, mod)] += [v for _, v in vals.get((model, key, d, mod), []) if v is not None]
    return "\n".join(lines), chart


def table4(runs: list[dict], metric: str) -> str:
    """Markdown: a row per model, variant and modality, a column per dataset and protocol. The
    protocols differ in their initial weights by design, so a row's variant leaves the init out."""
    if not runs:
        return "No runs: nothing in this layout."
    runs = [{**r, "recipe": {k: v for k, v in (r.get("recipe") or {}).items() if k != "init"}} for r in runs]
    datasets = sorted({r["data"] for r in runs})
    vals: dict[tuple, list] = defaultdict(list)
    for r in runs:
        for mod, v in cells_of(r, metric).items():
            vals[(r["model"], variant_key(r), mod, r["data"], r["protocol"])].append((r.get("split"), v))
    rows = _rows(runs)
    models = Counter(m for m, _ in rows)
    head = "| architecture | modality | " + " | ".join(f"{d} {p}" for d in datasets for _, p in PROTOCOLS) + " |"
    lines = [head, "|---|---|" + "---|" * (len(datasets) * len(PROTOCOLS))]
    for model, key in rows:
        for mod, label in MODALITIES:
            cells = [_fmt(vals.get((model, key, mod, d, p), [])) for d in datasets for p, _ in PROTOCOLS]
            if any(cells):
                lines.append(
                    f"| {_row_label(model, key, runs, models[model] > 1)} | {label} | " + " | ".join(cells) + " |"
                )
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
        f"# Results from {len(runs)} run{'s' if len(runs) != 1 else ''} in {folder}",
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
