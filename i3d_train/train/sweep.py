"""The closing summary of a multirun (``python train.py -m ...``): how many runs, which failed and why.

A run that fails in a multirun leaves ``error.txt`` (its traceback) in its folder and the sweep goes on
(``train.py``). When every run has ended, :class:`SweepSummary` (a Hydra callback, ``conf/hydra/default.yaml``)
prints one line for the sweep and one per failed run, writes them to ``<sweep dir>/summary.txt``, and
makes the command exit with 1 if any run failed (0 otherwise), so that scripts and schedulers see it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from i3d_train.runtime.atomic import write_text


def sweep_results(sweep_dir: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """``(run folders, [(failed run folder, last line of its error.txt)])`` under a sweep folder."""
    runs = sorted((p.parent for p in sweep_dir.glob("*/.hydra")), key=lambda p: (len(p.name), p.name))
    failed = []
    for run in runs:
        err = run / "error.txt"
        if err.is_file():
            lines = [line for line in err.read_text(errors="replace").splitlines() if line.strip()]
            failed.append((run, lines[-1].strip() if lines else "error"))
    return runs, failed


def summary_lines(sweep_dir: Path) -> list[str]:
    runs, failed = sweep_results(sweep_dir)
    lines = [f"multirun: {len(runs)} runs, {len(runs) - len(failed)} finished, {len(failed)} failed ({sweep_dir})"]
    lines += [f"  failed: {run.name}: {why} (traceback: {run / 'error.txt'})" for run, why in failed]
    return lines


class SweepSummary(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        lines = summary_lines(sweep_dir)
        print("\n".join(lines), flush=True)
        write_text(sweep_dir / "summary.txt", "\n".join(lines) + "\n")
        if len(lines) > 1:
            sys.exit(1)
