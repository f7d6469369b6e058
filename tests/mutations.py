"""Mutation testing by hand: plausible one-line bugs, each put into a scratch copy of the repository, and
the tests that must catch it run there. A mutation that no test kills is a claim no test guards.

    python tests/mutations.py            # every mutation (about 5 minutes on 2 cores)
    python tests/mutations.py --list     # the table of mutations, without running them
    python tests/mutations.py -k loop    # those whose claim or file contains "loop"

Prints one row per mutation: the claim, where the bug goes, the tests run, and whether they killed it
(a test failed) or it survived (every test passed). Exit code 1 when any survived. Not collected by
pytest (the file name does not start with ``test_``); a mutation run takes minutes, not a suite's place.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    claim: str
    file: str
    old: str  # must occur exactly once in the file
    new: str
    tests: tuple[str, ...]


MUTATIONS = [
    Mutation(
        "under DDP every video is counted once (padded copies dropped)",
        "i3d_train/engine/classifier.py",
        "keep = first_occurrences(idx * MAX_VIEWS + views)",
        "keep = torch.arange(len(idx))",
        ("tests/test_eval.py::test_eval_under_two_process_ddp_counts_every_video_once",),
    ),
    Mutation(
        "one loop rule: short videos are looped, not padded with the last frame",
        "i3d_train/video/reader.py",
        "return np.asarray(indices, dtype=np.int64) % period",
        "return np.minimum(np.asarray(indices, dtype=np.int64), period - 1)",
        ("tests/test_extract_scale.py::test_a_short_video_is_looped_not_padded",),
    ),
    Mutation(
        "extraction loops through the one loop rule",
        "i3d_train/features/pipeline.py",
        "return loop(np.arange(starts[j], starts[j] + s.stack), n)",
        "return np.minimum(np.arange(starts[j], starts[j] + s.stack), n - 1)",
        ("tests/test_extract_scale.py::test_a_short_video_is_looped_not_padded",),
    ),
    Mutation(
        "chunked prediction: each chunk at its own steps (not piled at step 0)",
        "i3d_train/inference/predict.py",
        "first = start // STEP_FRAMES",
        "first = 0",
        ("tests/test_extract_scale.py::test_predict_streams_in_chunks_each_at_its_own_steps",),
    ),
    Mutation(
        "chunked prediction: every chunk counts (not only the last)",
        "i3d_train/inference/predict.py",
        "return (total[:, covered] / count[covered]).mean(dim=1), n",
        "return logits.mean(dim=1), n",
        ("tests/test_extract_scale.py::test_predict_streams_in_chunks_each_at_its_own_steps",),
    ),
    Mutation(
        "the paper protocol tiles fixed-length models over the whole video",
        "i3d_train/data/samplers.py",
        "return [k * span for k in range(max(1, num_frames // span))]",
        "return [0]",
        ("tests/test_strict.py::test_the_paper_protocol_tiles_a_fixed_length_model_over_the_whole_video",),
    ),
    Mutation(
        "TV-L1 follows OpenCV's defaults: median filter 5",
        "i3d_train/flow/tvl1.py",
        "median_filtering: int = 5",
        "median_filtering: int = 3",
        ("tests/test_tvl1.py::test_agrees_with_opencv_on_natural_frames",),
    ),
    Mutation(
        "TV-L1 follows OpenCV's defaults: 5 warps",
        "i3d_train/flow/tvl1.py",
        "warps: int = 5  # warps per level",
        "warps: int = 3  # warps per level",
        ("tests/test_tvl1.py::test_agrees_with_opencv_on_natural_frames",),
    ),
    Mutation(
        "Two-Stream I3D keeps the checkpoint with the lowest summed val loss",
        "conf/model/i3d_two_stream.yaml",
        "monitor_mode: min",
        "monitor_mode: max",
        ("tests/test_two_stream.py::test_two_stream_trains_end_to_end_with_per_stream_metrics",),
    ),
    Mutation(
        "every model learns the batch's labels (not constant ones)",
        "i3d_train/engine/classifier.py",
        'loss = self._loss(raw, scores, batch["label"], "train", n)',
        'loss = self._loss(raw, scores, torch.zeros_like(batch["label"]), "train", n)',
        ("tests/test_strict.py::test_every_model_fits_one_fixed_batch_through_each_stream[i3d-rgb]",),
    ),
    Mutation(
        "a run learns end to end (the labels reach the loss through the data pipeline)",
        "i3d_train/data/dataset.py",
        '"label": torch.tensor(item.label, dtype=torch.long),',
        '"label": torch.tensor(0, dtype=torch.long),',
        ("tests/test_train.py::test_a_tiny_run_learns_well_above_chance",),
    ),
    Mutation(
        "3D-Fused Two-Stream learns through its flow stream",
        "i3d_train/models/two_stream.py",
        "b = self.flow.forward_features(stack_flow(flow, s))",
        "b = self.flow.forward_features(stack_flow(flow, s)).detach()",
        ("tests/test_strict.py::test_every_model_fits_one_fixed_batch_through_each_stream[fused_two_stream-flow]",),
    ),
    Mutation(
        "decoder threads follow the CPU share",
        "i3d_train/runtime/cores.py",
        "return max(1, decoding_cores() // (info.num_workers if info is not None else 1))",
        "return 0",
        ("tests/test_extract_scale.py::test_each_worker_decodes_with_its_share_of_the_cores",),
    ),
    Mutation(
        "a flow model has a 2-channel first convolution",
        "conf/model/i3d.yaml",
        "in_channels: ${channels:${model.modality}}",
        "in_channels: 3",
        ("tests/test_two_stream.py::test_flow_stream_alone_builds_a_two_channel_i3d",),
    ),
    Mutation(
        "Full-FT trains the batch norms (their statistics move)",
        "i3d_train/models/freezing.py",
        "if params and not any(p.requires_grad for p in params):",
        "if params:",
        ("tests/test_protocols.py::test_full_ft_trains_everything_from_the_loaded_weights",),
    ),
    Mutation(
        "Fixed keeps its frozen batch norms in eval mode",
        "i3d_train/models/freezing.py",
        "                m.eval()",
        "                pass",
        ("tests/test_protocols.py::test_fixed_keeps_frozen_batchnorm_statistics_under_a_real_trainer",),
    ),
    Mutation(
        "the fused score is the mean of the streams' softmax",
        "i3d_train/engine/metrics.py",
        "return torch.stack([o.float().softmax(-1) for o in outputs.values()]).mean(0)",
        "return torch.stack([o.float() for o in outputs.values()]).mean(0).softmax(-1)",
        (
            "tests/test_two_stream.py::test_fusion_is_the_mean_of_softmax_scores",
            "tests/test_two_stream.py::test_two_stream_module_reports_each_stream_and_the_fusion",
        ),
    ),
    Mutation(
        "a per-video lock is exclusive",
        "i3d_train/runtime/sharding.py",
        "os.O_CREAT | os.O_EXCL | os.O_WRONLY",
        "os.O_CREAT | os.O_WRONLY",
        ("tests/test_extract_scale.py::test_locks_are_exclusive_and_stale_ones_are_taken_over",),
    ),
    Mutation(
        "a run made before the package moved still resumes",
        "i3d_train/train/resume.py",
        "fp.read_text().strip() in fingerprints:",
        "fp.read_text().strip() == fingerprints[0]:",
        ("tests/test_legacy_run.py::test_an_old_run_resumes_in_its_own_folder",),
    ),
    Mutation(
        "a killed write leaves nothing under the output's name",
        "i3d_train/runtime/atomic.py",
        "    except BaseException:\n        _remove(tmp)\n        raise\n    commit(tmp, path)",
        "    finally:\n        commit(tmp, path)",
        ("tests/test_atomic.py",),
    ),
    Mutation(
        "converting the same weights twice gives the same bytes (extract.py's digest)",
        "i3d_train/weights/convert.py",
        "torch.save(model.state_dict(), f)",
        "torch.save(model.state_dict(), tmp)",
        ("tests/test_weights.py::test_cli_writes_strict_loadable_state_dict",),
    ),
    Mutation(
        "what a killed extraction left is removed",
        "i3d_train/features/writer.py",
        "remove_stale(final)  # what a killed run of this host left",
        "pass",
        ("tests/test_extract_scale.py::test_what_a_killed_extraction_left_is_removed_by_the_next",),
    ),
    Mutation(
        "no file from elsewhere runs code (weights-only loads)",
        "i3d_train/weights/safe_pickle.py",
        'return torch.load(path, map_location="cpu", weights_only=True)',
        'return torch.load(path, map_location="cpu", weights_only=False)',
        ("tests/test_untrusted_files.py::test_predict_weights",),
    ),
    Mutation(
        "a crafted checkpoint is refused in one line before Lightning loads it",
        "i3d_train/engine/checkpoint_io.py",
        "        load_torch_file(path)",
        "        pass",
        ("tests/test_untrusted_files.py::test_eval_ckpt_path",),
    ),
    Mutation(
        "imports run one way (models never import weights)",
        "i3d_train/models/inflate.py",
        "from i3d_train.models.loading import",
        "from i3d_train.weights.registry import download_command  # noqa: F401\nfrom i3d_train.models.loading import",
        ("tests/test_layers.py::test_imports_run_one_way",),
    ),
    Mutation(
        "[i28] NVDEC is chosen only for the codecs it decodes; others fall back to PyAV, counted",
        "i3d_train/video/decoders.py",
        "        if codec not in NVDEC_CODECS:",
        "        if False:",
        ("tests/test_decoders.py::test_nvdec_gives_pyavs_frames_and_falls_back_per_video_with_the_reason_counted",),
    ),
    Mutation(
        "[i28] the frame rule: a gap in the timestamps shows the next frame",
        "i3d_train/video/timeline.py",
        "        while target < n and wanted[target] <= idx:",
        "        while target < n and wanted[target] == idx:",
        ("tests/test_decoders.py::test_cover_gives_each_wanted_index_the_frame_shown_then_and_converts_only_those",),
    ),
    Mutation(
        "[i28] NVDEC frames follow their timestamps, not the decoder's numbering, after a seek",
        "i3d_train/video/nvdec.py",
        "        if first[0] <= needed[0] or attempt == 0:",
        "        if True:",
        (
            "tests/test_decoders.py::test_nvdec_frames_follow_timestamps_on_a_variable_frame_rate_and_a_seek_that_overshoots",
        ),
    ),
    Mutation(
        "[i28] GPU decoding in the training loader starts its workers with spawn",
        "i3d_train/data/datamodule.py",
        "        spawn = workers > 0 and ds.decoder.wants_gpu  # NVDEC in the workers: CUDA does not survive a fork",
        "        spawn = False",
        ("tests/test_decoders.py::test_training_loader_decodes_with_nvdec_in_spawned_workers_and_counts_fallbacks",),
    ),
    Mutation(
        "[i29] the clips table shows the most confident errors first",
        "i3d_train/engine/dashboards.py",
        '    wrong = [int(i) for i in np.argsort(-conf, kind="stable") if preds[i] != labels[i]]',
        '    wrong = [int(i) for i in np.argsort(conf, kind="stable") if preds[i] != labels[i]]',
        ("tests/test_wandb.py::test_a_wandb_training_run_and_its_evaluation_hold_the_test_results_as_wandb_objects",),
    ),
    Mutation(
        "[i29] the run summary keeps the best validation accuracy (define_metric max)",
        "i3d_train/engine/dashboards.py",
        'BEST = {"val/video_acc_top1": "max", "val/acc_top1": "max", "val/loss": "min", "train/loss": "min"}',
        'BEST = {"val/acc_top1": "max", "val/loss": "min", "train/loss": "min"}',
        ("tests/test_wandb.py::test_a_wandb_training_run_and_its_evaluation_hold_the_test_results_as_wandb_objects",),
    ),
    Mutation(
        "[i30] report cells average over splits, not over unrelated recipes",
        "i3d_train/report/runs.py",
        '    return tuple(sorted((k, str(v)) for part in ("input", "recipe") for k, v in (run.get(part) or {}).items()))',
        "    return ()",
        ("tests/test_eval.py::test_report_keeps_runs_of_other_recipes_apart_and_never_renders_empty_tables",),
    ),
    Mutation(
        "[i30] stored-flow extraction finds a list entry's flow by the tail of its name",
        "i3d_train/features/run.py",
        "    for i in range(len(parts)):",
        "    for i in range(1):",
        ("tests/test_extract.py::test_flow_folders_then_stored_flow_extraction_chain",),
    ),
    Mutation(
        "[i30] data check --decode catches a truncated file (the end is read on its own)",
        "i3d_train/data/check.py",
        "            read_frames(item.path, np.array([0, n // 2]), None, info)",
        "            read_frames(item.path, np.array([0, n // 2, n - 1]), None, info)\n            return None",
        ("tests/test_readme_commands.py::test_data_check_hmdb51_decode_reports_non_utf8_files_readable",),
    ),
    Mutation(
        "[i30] a multirun with a failed run exits 1 with a summary",
        "i3d_train/train/sweep.py",
        "        if len(lines) > 1:\n            sys.exit(1)",
        "        if False:\n            sys.exit(1)",
        ("tests/test_scale.py::test_multirun_goes_on_when_one_run_fails",),
    ),
]


def copy_tree(dst: Path) -> None:
    """The repository's tracked and untracked-but-not-ignored files, as they are in the working tree."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for f in files:
        if f and (ROOT / f.decode()).is_file():
            (dst / f.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f.decode(), dst / f.decode())


def run_one(m: Mutation, scratch: Path) -> tuple[bool, float, str]:
    """(killed, seconds, last lines of the test output)."""
    path = scratch / m.file
    original = path.read_text()
    assert original.count(m.old) == 1, f"{m.file}: {m.old!r} occurs {original.count(m.old)} times"
    path.write_text(original.replace(m.old, m.new))
    start = time.time()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *m.tests],
            cwd=scratch, env={**os.environ, "PYTHONPATH": str(scratch)}, capture_output=True, text=True,
        )  # fmt: skip
    finally:
        path.write_text(original)
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:]
    return proc.returncode != 0, time.time() - start, " ".join(tail)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--list", action="store_true", help="print the mutations, run nothing")
    p.add_argument("-k", default="", help="only mutations whose claim or file contains this")
    args = p.parse_args(argv)
    todo = [m for m in MUTATIONS if args.k in m.claim or args.k in m.file]
    print("| claim | mutation | test | result |\n|---|---|---|---|")
    survived = 0
    with tempfile.TemporaryDirectory(prefix="i3d-mutations-") as tmp:
        scratch = Path(tmp)
        if not args.list:
            copy_tree(scratch)
        for m in todo:
            where = f"`{m.file}`: `{m.old.strip().splitlines()[0]}` -> `{m.new.strip().splitlines()[0]}`"
            tests = ", ".join(f"`{t.split('::')[-1]}`" for t in m.tests)
            if args.list:
                print(f"| {m.claim} | {where} | {tests} | |")
                continue
            killed, seconds, tail = run_one(m, scratch)
            survived += not killed
            print(
                f"| {m.claim} | {where} | {tests} | {'killed' if killed else 'SURVIVED'} ({seconds:.0f} s) |",
                flush=True,
            )
    if not args.list:
        print(f"\n{len(todo) - survived} of {len(todo)} mutations killed")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
