"""What logging to W&B costs a training run: wall time with ``logger=wandb`` (offline) against ``logger=csv``.

    python benchmarks/wandb_cost.py                               # the default run (python train.py), once each
    python benchmarks/wandb_cost.py --rounds 2 trainer.max_epochs=2   # shorter runs, alternated twice

Runs ``python train.py <overrides> logger=csv`` and ``... logger=wandb`` as subprocesses (alternating,
``--rounds`` times, in a scratch ``paths.root_dir`` whose synthetic set is made once beforehand, so that
neither run pays for it), and prints each wall time and the mean difference: W&B's start and finish,
its per-step scalars and, once after the test, the tables, the confusion matrix and the clips.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def train(root: Path, overrides: list[str], logger: str) -> float:
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "PYTHONPATH": str(ROOT)}
    t = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "train.py", *overrides, f"logger={logger}", f"paths.root_dir={root}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"logger={logger} failed:\n{r.stderr[-2000:]}")
    return wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("overrides", nargs="*", help="Hydra overrides of the run (default: none, the default run)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        # the synthetic set once, so that neither timed run makes it
        train(root, [*args.overrides, "trainer.max_epochs=0", "test=false"], "csv")
        times: dict[str, list[float]] = {"csv": [], "wandb": []}
        for i in range(args.rounds):
            for logger in ("csv", "wandb") if i % 2 == 0 else ("wandb", "csv"):
                times[logger].append(train(root, args.overrides, logger))
                print(f"round {i + 1}, logger={logger}: {times[logger][-1]:.1f} s", flush=True)
    csv_t, wb_t = statistics.mean(times["csv"]), statistics.mean(times["wandb"])
    run = " ".join(["python train.py", *args.overrides]) or "python train.py"
    print(f"\n{run}: logger=csv {csv_t:.1f} s, logger=wandb (offline) {wb_t:.1f} s: "
          f"{wb_t - csv_t:+.1f} s ({100 * (wb_t / csv_t - 1):+.1f}%), mean of {args.rounds}")  # fmt: skip


if __name__ == "__main__":
    main()
