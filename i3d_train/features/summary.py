"""What an output folder of ``extract.py`` holds, across all the shards that wrote into it.

    python -m i3d_train.features summary <output_dir> [--json]

Each run records in ``<output_dir>/.extract/``: ``videos.json`` (every name of the input list: what
"complete" is measured against) and ``shard-<i>-of-<n>.json`` (what that process did, when it ended).
Per video, ``<name>.json`` (the manifest, written last) means complete, ``<name>.failed.json`` holds the
error of a failed attempt, and ``<name>.lock`` a process working on it now (or one that died: see
:mod:`i3d_train.runtime.sharding`). Exit code 0 when every listed video is complete, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from i3d_train.runtime.atomic import write_json
from i3d_train.runtime.sharding import LOCK_SUFFIX, is_stale, read_lock, shard_of

STATE_DIR = ".extract"
FAILED_SUFFIX = ".failed.json"


def record_inputs(out_dir: Path, names: list[str], input_spec: str) -> None:
    write_json(Path(out_dir) / STATE_DIR / "videos.json", {"input": str(input_spec), "names": sorted(names)})


def record_shard(out_dir: Path, shard, report: dict) -> None:
    write_json(Path(out_dir) / STATE_DIR / f"shard-{shard.index}-of-{shard.count}.json", report)


def _names(out_dir: Path, suffix: str) -> set[str]:
    out = set()
    for p in out_dir.rglob(f"*{suffix}"):
        rel = p.relative_to(out_dir).as_posix()
        if rel.startswith(STATE_DIR + "/"):
            continue
        out.add(rel[: -len(suffix)])
    return out


def _complete(out_dir: Path) -> set[str]:
    done = set()
    for p in out_dir.rglob("*.json"):
        rel = p.relative_to(out_dir).as_posix()
        if rel.startswith(STATE_DIR + "/") or rel.endswith(FAILED_SUFFIX):
            continue
        try:
            manifest = json.loads(p.read_text())
        except (json.JSONDecodeError, OSError):
            continue
        files = manifest.get("files", {})
        if isinstance(files, dict) and all((p.parent / f).is_file() for f in files.values()):
            done.add(rel[: -len(".json")])
    return done


def summarize(out_dir: str | Path, stale_after_s: float = 600.0) -> dict:
    """``{listed, complete, failed: {name: error}, in_progress, stale_locks, missing, shards}``."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise FileNotFoundError(f"{out_dir}: no such folder")
    state = out_dir / STATE_DIR
    listed = json.loads((state / "videos.json").read_text())["names"] if (state / "videos.json").is_file() else None
    complete = _complete(out_dir)
    failed = {}
    for name in _names(out_dir, FAILED_SUFFIX) - complete:
        try:
            failed[name] = json.loads((out_dir / f"{name}{FAILED_SUFFIX}").read_text()).get("error", "?")
        except (json.JSONDecodeError, OSError):
            failed[name] = "?"
    in_progress, stale = [], []
    for name in sorted(_names(out_dir, LOCK_SUFFIX) - complete):
        seen = read_lock(out_dir / f"{name}{LOCK_SUFFIX}")
        if seen is not None:
            (stale if is_stale(*seen, stale_after_s) else in_progress).append(name)
    shards = []
    for p in sorted(state.glob("shard-*.json")) if state.is_dir() else []:
        try:
            shards.append(json.loads(p.read_text()))
        except json.JSONDecodeError:
            continue
    known = set(listed) if listed is not None else complete | set(failed) | set(in_progress) | set(stale)
    missing = sorted(known - complete - set(failed) - set(in_progress))
    counts = {s["shard"].split("/")[1] for s in shards if "shard" in s}
    n = int(counts.pop()) if len(counts) == 1 else None
    return {
        "output_dir": str(out_dir),
        "listed": None if listed is None else len(listed),
        "complete": sorted(complete & known),
        "failed": dict(sorted(failed.items())),
        "in_progress": in_progress,
        "stale_locks": stale,
        "missing": missing,
        "missing_by_shard": _by_shard(missing, n) if n else {},
        "shards": shards,
    }


def _by_shard(names: list[str], n: int) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for m in names:
        out.setdefault(f"{shard_of(m, n)}/{n}", []).append(m)
    return dict(sorted(out.items()))


def format_summary(s: dict) -> str:
    listed = "?" if s["listed"] is None else s["listed"]
    lines = [
        f"{s['output_dir']}: {listed} listed, {len(s['complete'])} complete, {len(s['failed'])} failed, "
        f"{len(s['in_progress'])} in progress, {len(s['missing'])} missing"
    ]
    if s["shards"]:
        ended = ", ".join(f"{r['shard']} ({r['done']} done, {r['skipped']} skipped)" for r in s["shards"])
        lines.append(f"  shards ended: {ended}")
    for name, why in s["failed"].items():
        lines.append(f"  failed: {name}: {why}")
    for name in s["in_progress"]:
        lines.append(f"  in progress: {name}")
    by_shard = s["missing_by_shard"] or {"?": s["missing"]}
    for shard, names in by_shard.items():
        for name in names:
            lines.append(f"  missing: {name} (shard {shard})")
    if s["stale_locks"]:
        lines.append(f"  stale locks (their process is gone; the next run takes them over): {len(s['stale_locks'])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m i3d_train.features", description="I3D feature folders")
    sub = p.add_subparsers(dest="command", required=True)
    sp = sub.add_parser("summary", help="what is complete, failed, in progress and missing, across all shards")
    sp.add_argument("output_dir")
    sp.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    try:
        s = summarize(args.output_dir)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(s, indent=2) if args.json else format_summary(s))
    return 0 if not (s["failed"] or s["missing"] or s["in_progress"]) else 1
