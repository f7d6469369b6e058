"""Loggers: a CSV logger whose ``metrics.csv`` survives a resume, and W&B that never waits for a login.

W&B runs offline unless the user is logged in (:func:`wandb_offline_unless_logged_in`); upload later
with ``wandb sync``.


Lightning's ``CSVLogger`` deletes an existing ``metrics.csv`` when it starts ("Previous log files in
this directory will be deleted"), so a run continued with ``ckpt_path=last`` kept only the rows of
the last session. :class:`ResumableCSVLogger` keeps the earlier rows instead: on its first write it
drops only the rows at or after the first step the new session logs (the steps the killed session
logged after its last checkpoint, which the resumed session logs again) and appends. A run killed
and resumed therefore has one ``metrics.csv`` with every epoch once, as an uninterrupted run.
"""

from __future__ import annotations

import csv
import logging
from typing import Any

from lightning_fabric.loggers.logger import rank_zero_experiment
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter

log = logging.getLogger(__name__)


def _step(row: dict[str, str]) -> float:
    try:
        return float(row.get("step") or "nan")
    except ValueError:
        return float("nan")


class AppendingExperimentWriter(ExperimentWriter):
    """Keeps an existing ``metrics.csv``; the first save drops its rows from the new session's first step on."""

    def _check_log_dir_exists(self) -> None:  # Lightning's deletes metrics.csv here
        self._merged = not self._fs.isfile(self.metrics_file_path)

    def save(self) -> None:
        if self.metrics and not self._merged:
            self._merge_earlier_rows()
        super().save()

    def _merge_earlier_rows(self) -> None:
        with self._fs.open(self.metrics_file_path, "r", newline="") as f:
            reader = csv.DictReader(f)
            old_keys = list(reader.fieldnames or [])
            rows = list(reader)
        first = min(float(m.get("step", float("inf"))) for m in self.metrics)
        kept = [r for r in rows if not _step(r) >= first]  # NaN steps (none are written) stay
        self.metrics_keys = sorted(set(old_keys).union(self.metrics_keys, *self.metrics))
        with self._fs.open(self.metrics_file_path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.metrics_keys)
            writer.writeheader()
            writer.writerows(kept)
        self._merged = True


class ResumableCSVLogger(CSVLogger):
    """``CSVLogger`` (same arguments) that appends to the run's ``metrics.csv`` instead of replacing it."""

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = AppendingExperimentWriter(log_dir=self.log_dir)
        return self._experiment


def wandb_loggers(loggers: list[Any]) -> list[Any]:
    """The W&B loggers among ``loggers``."""
    from pytorch_lightning.loggers import WandbLogger

    return [lg for lg in loggers if isinstance(lg, WandbLogger)]


def finish_failed_wandb_run() -> None:
    """Close the W&B run this process started, if any, marked failed (``wandb.run``: the process's run)."""
    import wandb

    if wandb.run is not None:
        wandb.run.finish(exit_code=1)
