"""The paper's recipe per dataset and protocol (conf/experiment/), the synthetic recipe kept to the
synthetic set, and trainer=gpu on a machine without one (issue 30)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from i3d_train.data.synthetic import SyntheticConfig, generate

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


def composed(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=overrides)


def test_the_synthetic_recipe_stays_with_the_synthetic_set():
    """`python train.py data=kinetics400 --cfg job` showed the synthetic set's 18 epochs, AdamW 3e-4 and
    cosine; real datasets get the paper's SGD and plateau schedule, the default run is unchanged, and
    the command line still wins over the data recipe."""
    default = composed([])
    assert (default.optimizer._target_, default.optimizer.lr) == ("torch.optim.AdamW", 3e-4)
    assert default.scheduler._target_.endswith("warmup_cosine") and default.trainer.max_epochs == 18
    for data in ("ucf101", "hmdb51", "kinetics400"):
        cfg = composed([f"data={data}"])
        assert (cfg.optimizer._target_, cfg.optimizer.momentum) == ("torch.optim.SGD", 0.9), data
        assert cfg.scheduler._target_ == "torch.optim.lr_scheduler.ReduceLROnPlateau" and cfg.trainer.max_epochs == 40
    assert composed(["optimizer=sgd"]).optimizer._target_ == "torch.optim.SGD"  # over the synthetic recipe
    assert composed(["trainer=gpu"]).trainer.max_epochs == 18  # the data recipe after the trainer group


# (experiment, data, protocol, lr, max_steps): the values each experiment file says where they come from
EXPECTED = {
    "ucf101_original": ("ucf101", "original", 0.01, 5000),
    "ucf101_fixed": ("ucf101", "fixed", 0.1, 5000),
    "ucf101_full_ft": ("ucf101", "full_ft", 0.01, 5000),
    "hmdb51_original": ("hmdb51", "original", 0.01, 5000),
    "hmdb51_fixed": ("hmdb51", "fixed", 0.1, 5000),
    "hmdb51_full_ft": ("hmdb51", "full_ft", 0.01, 5000),
    "kinetics400": ("kinetics400", "original", 0.1, 110000),
    "ucf101_i3d_rgb": ("ucf101", "original", 0.01, 5000),  # ucf101_original with model=i3d (the README's)
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_experiment_is_the_papers_recipe_for_its_dataset_and_protocol(name):
    data, protocol, lr, steps = EXPECTED[name]
    for model in ("i3d", "i3d_two_stream", "c3d"):  # any model: one experiment per row family
        cfg = composed([f"experiment={name}", f"model={model}"])
        if name == "ucf101_i3d_rgb":
            cfg = composed([f"experiment={name}"])
            model = "i3d"
        assert (cfg.data.name, cfg.protocol.name, cfg.model.name) == (data, protocol, model)
        assert (cfg.optimizer._target_, cfg.optimizer.momentum, cfg.optimizer.lr) == ("torch.optim.SGD", 0.9, lr)
        assert cfg.scheduler._target_ == "torch.optim.lr_scheduler.ReduceLROnPlateau" and cfg.scheduler.factor == 0.1
        assert (cfg.trainer.max_steps, cfg.trainer.max_epochs) == (steps, -1)
        assert (cfg.data.batch_size, cfg.data.test_protocol) == (6, "paper")
        if protocol != "original":  # the Kinetics-400 weights of the chosen model, per stream
            stem = {"i3d_two_stream": "i3d"}.get(model, model)  # Two-Stream I3D: each stream an I3D's weights
            assert cfg.protocol.init_weights.endswith(f"weights/{stem}_kinetics400_{{modality}}.pt")
        else:
            assert cfg.protocol.init_weights is None
    # every value line says where it comes from: the paper [P] or this project's choice [C]
    text = (CONF / "experiment" / f"{name}.yaml").read_text()
    if name == "ucf101_i3d_rgb":  # its values are ucf101_original's
        assert "- /experiment/ucf101_original" in text
        return
    values = [
        line
        for line in text.splitlines()
        if ":" in line and not line.lstrip().startswith(("#", "-")) and not line.rstrip().endswith(":")
    ]
    assert values and all("[P]" in line or "[C]" in line for line in values), [v for v in values if "[" not in v]


def test_every_experiment_file_is_listed_here():
    assert set(EXPERIMENTS) == set(EXPECTED)


@pytest.mark.slow
def test_an_experiment_trains_as_written_on_a_cpu_with_trainer_cpu_and_says_gpu_is_missing_without(tmp_path):
    """`python train.py experiment=ucf101_original data.root=...` on a tiny UCF-101 tree, with trainer=cpu
    and a few steps, trains and tests; without trainer=cpu (the experiment asks for a GPU) it is one line,
    exit 2 (it was torch's AssertionError traceback)."""
    root = tmp_path / "ucf"
    generate(
        root,
        SyntheticConfig(num_classes=3, train_per_class=2, test_per_class=1, num_frames=12, height=64, width=80),
        workers=1,
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    base = [
        sys.executable,
        str(ROOT / "train.py"),
        "experiment=ucf101_original",
        f"data.root={root}",
        f"paths.root_dir={tmp_path}",
    ]
    no_gpu = subprocess.run(base, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert no_gpu.returncode == 2
    assert (
        no_gpu.stderr.strip().splitlines()[-1].startswith("error: trainer.accelerator=gpu but no CUDA GPU is visible")
    )
    ok = subprocess.run(
        [*base, "trainer=cpu", "trainer.max_steps=2", "data.num_classes=3", "data.num_workers=0", "data.batch_size=3",
         "data.input_override={num_frames: 8, resize: 64, crop_size: 56}", f"hydra.run.dir={tmp_path / 'run'}",
         "callbacks.progress_bar.refresh_rate=0"],  # fmt: skip
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr[-3000:]
    import json

    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["protocol"] == "original" and m["data"] == "ucf101" and m["test"]["num_videos"] == 3
