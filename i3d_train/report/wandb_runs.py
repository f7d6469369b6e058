"""The paper's tables from a W&B project, and a saved W&B report with the same panels.

- :func:`runs_from_wandb`: the finished training runs of ``entity/project`` through W&B's public API
  (``wandb.Api().runs``), each turned into the dict a run folder's ``metrics.json`` holds (model, data,
  protocol, modality, split, input, recipe, test metrics), so ``python -m i3d_train.report --wandb
  entity/project`` prints the same tables as from local folders.
- :func:`build_workspace_report`: a W&B report (``wandb-workspaces``: ``pip install -e ".[wandb]"``)
  with the runs table grouped by architecture, protocol and dataset, bar charts of the test video
  top-1 per architecture (Table 2) and per protocol (Table 4), the best validation accuracy over
  training, and the test predictions and clips of the runs; ``save`` (a logged-in user) creates it.

Only :func:`runs_from_wandb`'s ``api.runs`` call and the report's ``save`` reach the network; what
they are given is built, and tested, without it.
"""

from __future__ import annotations

from typing import Any

from i3d_train.report.runs import variant

TEST_PREFIX = "final/test/"


def run_filters(job_type: str = "train") -> dict:
    """The W&B API query of the runs a report reads (MongoDB-style, as ``Api.runs`` takes it)."""
    return {"$and": [{"state": "finished"}, {"jobType": job_type}]}


def metrics_of_run(config: dict, summary: dict, name: str = "") -> dict | None:
    """A W&B run's config and summary as the dict of a ``metrics.json``; None for a run without test
    metrics (an evaluation, a crashed run)."""
    test = {k[len(TEST_PREFIX) :]: v for k, v in summary.items() if k.startswith(TEST_PREFIX)}
    model, data, protocol = (config.get(k) or {} for k in ("model", "data", "protocol"))
    if not test or not model.get("name") or not data.get("name"):
        return None
    return {
        "model": model["name"],
        "data": data["name"],
        "protocol": protocol.get("name", "original"),
        "modality": model.get("modality", "rgb"),
        "split": data.get("split"),
        **variant(config),
        "test": test,
        "_path": f"wandb:{name}",
    }


def runs_from_wandb(path: str, api: Any = None, job_type: str = "train") -> list[dict]:
    """Every finished training run of ``path`` (``entity/project``) with test metrics, as metrics dicts."""
    if api is None:
        import wandb

        api = wandb.Api()
    runs = []
    for run in api.runs(path, filters=run_filters(job_type)):
        m = metrics_of_run(dict(run.config), dict(run.summary), getattr(run, "name", ""))
        if m is not None:
            runs.append(m)
    return runs


def build_workspace_report(entity: str, project: str, metric: str = "video_acc_top1"):
    """A ``wandb_workspaces.reports.v2.Report`` (not saved): the paper's comparisons as panels."""
    import wandb_workspaces.reports.v2 as wr

    test = f"{TEST_PREFIX}{metric}"
    runs = wr.Runset(
        entity=entity,
        project=project,
        name="training runs",
        filters="State = 'finished'",
        groupby=["config.model.name", "config.protocol.name", "config.data.name"],
    )
    return wr.Report(
        entity=entity,
        project=project,
        title="I3D: the paper's tables",
        description="Test video-level top-1 by architecture, modality, protocol and dataset (i3d-train).",
        blocks=[
            wr.H1(text="Table 2 layout: architectures"),
            wr.PanelGrid(
                runsets=[runs],
                panels=[
                    wr.BarPlot(
                        title="test video top-1 per architecture",
                        metrics=[test],
                        groupby="config.model.name",
                        groupby_aggfunc="mean",
                        groupby_rangefunc="minmax",
                    ),  # fmt: skip
                    wr.LinePlot(title="validation video top-1", y=["val/video_acc_top1"], groupby="config.model.name"),
                ],
            ),
            wr.H1(text="Table 4 layout: transfer protocols"),
            wr.PanelGrid(
                runsets=[runs],
                panels=[
                    wr.BarPlot(
                        title="test video top-1 per protocol",
                        metrics=[test],
                        groupby="config.protocol.name",
                        groupby_aggfunc="mean",
                        groupby_rangefunc="minmax",
                    ),  # fmt: skip
                    wr.ScalarChart(
                        title="best validation video top-1", metric="val/video_acc_top1", groupby_aggfunc="max"
                    ),  # fmt: skip
                ],
            ),
            wr.H1(text="Test predictions and clips"),
            wr.PanelGrid(
                runsets=[runs],
                panels=[
                    wr.MediaBrowser(media_keys=["test/clip_videos"]),
                    wr.WeavePanelSummaryTable(table_name="test/predictions"),
                ],
            ),
        ],
    )
