"""Feature extraction at scale: streamed decoding, the overlapped pipeline, shards and locks, the summary
command, presets and snippet times, and streamed prediction."""

import json
import os
import socket
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path
from unittest.mock import ANY

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from i3d_train.data.synthetic import SyntheticConfig, render_video
from i3d_train.features.pipeline import (
    Job,
    SnippetBatches,
    StreamSettings,
    Work,
    plan_video,
    run_pipeline,
    to_model_input,
    video_snippets,
)
from i3d_train.features.reference import FeatureExtractor
from i3d_train.features.snippets import ExtractSettings
from i3d_train.features.summary import format_summary, summarize
from i3d_train.features.writer import Writer
from i3d_train.inference.fast import prepare
from i3d_train.inference.predict import stream_logits
from i3d_train.models.i3d import InceptionI3d
from i3d_train.runtime.atomic import temp_path
from i3d_train.runtime.sharding import Shard, launcher_shard, parse_shard, select, shard_of, try_lock
from i3d_train.video.reader import open_video, probe, read_frames
from i3d_train.video.resize import frames_to_unit
from i3d_train.video.stream import iter_frames
from i3d_train.video.writer import write_video
from tests.conftest import assert_same_rows, randomize_batchnorm, sensitive_i3d

ROOT = Path(__file__).resolve().parents[1]
NTSC = Fraction(30000, 1001)  # 29.97 fps


def tiny_video(path: Path, n: int, fps=25, seed: int = 0, h: int = 32, w: int = 40) -> Path:
    write_video(path, render_video(SyntheticConfig(num_frames=n, height=h, width=w, seed=seed), seed % 3, 0), fps)
    return path


def random_i3d(in_channels: int = 3, seed: int = 0) -> InceptionI3d:
    torch.manual_seed(seed)
    return randomize_batchnorm(InceptionI3d(400, in_channels), 0.1).eval()


def never_complete(name: str) -> bool:
    return False


def test_streamed_frames_are_the_readers_frames(tmp_path):
    """One decoding pass gives exactly the frames read_frames gives, at the file's rate and resampled."""
    path = tiny_video(tmp_path / "v.mp4", 50, fps=NTSC)
    info = probe(path)
    for fps in (None, 25.0):
        n = info.num_frames_at(fps)
        streamed = [(i, f) for i, f in iter_frames(path, fps, info)]
        assert [i for i, _ in streamed] == list(range(n))
        assert np.array_equal(np.stack([f for _, f in streamed]), read_frames(path, np.arange(n), fps, info))


def test_shards_are_disjoint_cover_the_list_and_ignore_its_order():
    items = [(Path(f"v{i}.mp4"), f"class_{i % 7}/v{i}") for i in range(200)]
    shards = [select(items, Shard(i, 4)) for i in range(4)]
    names = [n for s in shards for _, n in s]
    assert sorted(names) == sorted(n for _, n in items) and len(names) == len(set(names))
    assert all(len(s) > 20 for s in shards)  # a hash spreads them
    shuffled = list(reversed(items[50:])) + items[:50]
    assert [sorted(n for _, n in select(shuffled, Shard(i, 4))) for i in range(4)] == [
        sorted(n for _, n in s) for s in shards
    ]
    assert shard_of("a/b", 4) == shard_of("a/b", 4)


def test_shard_from_the_command_line_or_the_launcher():
    assert parse_shard("1/3") == Shard(1, 3)
    for bad in ("3/3", "1", "a/b", "-1/2"):
        with pytest.raises(ValueError, match="expected i/n"):
            parse_shard(bad)
    assert launcher_shard({"RANK": "2", "WORLD_SIZE": "8", "SLURM_PROCID": "0", "SLURM_NTASKS": "1"})[0] == Shard(2, 8)
    assert launcher_shard({"SLURM_PROCID": "5", "SLURM_NTASKS": "16"})[0] == Shard(5, 16)
    assert launcher_shard({})[0] == Shard(0, 1)


def test_locks_are_exclusive_and_stale_ones_are_taken_over(tmp_path):
    first = try_lock(tmp_path, "a/v1")
    assert first is not None and try_lock(tmp_path, "a/v1") is None  # held by a live process
    first.release()
    assert try_lock(tmp_path, "a/v1") is not None
    # a lock of a process that is gone (same host): taken over
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock = tmp_path / "v2.lock"
    lock.write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname(), "started": 0}))
    assert try_lock(tmp_path, "v2") is not None
    # another host's lock: fresh -> respected; untouched for longer than stale_after_s -> taken over
    other = tmp_path / "v3.lock"
    other.write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": 0}))
    assert try_lock(tmp_path, "v3", stale_after_s=60) is None
    os.utime(other, (time.time() - 120, time.time() - 120))
    assert try_lock(tmp_path, "v3", stale_after_s=60) is not None


def test_streaming_holds_a_bounded_number_of_frames(tmp_path):
    """Memory does not grow with the video: the frames held at once depend on stack only (a 4x longer
    video holds the same), and features are written to memory-mapped files, never held whole."""
    held = []
    for n in (60, 240):
        path = tiny_video(tmp_path / f"v{n}.mp4", n, h=16, w=16)
        s = StreamSettings(fps=25.0, stack=16, step=4, short_side=16, crop_size=16, flow_method="farneback")
        stats: dict = {}
        plan = plan_video(Job(path, "v"), s, ["rgb", "flow"])
        got = [k for k, _ in video_snippets(plan, s, ["rgb", "flow"], stats)]
        assert got == list(range((n - 1 - 16) // 4 + 1))
        held.append(stats["max_held"])
    assert held[0] == held[1] <= 16 + 1
    w = Writer(tmp_path / "out", ["rgb"], "separate", False, {})
    w.start("v", {"num_snippets": 1000})
    assert isinstance(w.open["v"].arrays["rgb"], np.memmap)
    w.discard("v")
    assert not list((tmp_path / "out").iterdir())  # nothing half-written stays


@pytest.mark.slow
def test_pipeline_rows_equal_the_one_video_reference(tmp_path):
    """Worker-decoded, streamed, batched across videos: the same rows as FeatureExtractor, RGB and flow."""
    videos = [tiny_video(tmp_path / f"v{i}.mp4", n, seed=i) for i, n in enumerate((26, 20))]
    models = {
        "rgb": prepare(sensitive_i3d(3, 1), fast=False),
        "flow": prepare(sensitive_i3d(2, 2), fast=False),
    }
    kw = dict(fps=25.0, stack=8, step=8, short_side=32, crop_size=32, batch_size=3, flow_method="farneback")
    out = tmp_path / "out"
    work = Work(
        [Job(v, v.stem) for v in videos], StreamSettings(**kw), ["rgb", "flow"], out, os.getpid(), never_complete
    )
    result = run_pipeline(work, models, Writer(out, ["rgb", "flow"], "concat", False, {}), num_workers=1)
    assert sorted(result["done"]) == ["v0", "v1"]
    for v in videos:
        ref, manifest = FeatureExtractor(models, ExtractSettings(**kw)).extract(v)
        got = np.load(out / f"{v.stem}.npy")
        written = json.loads((out / f"{v.stem}.json").read_text())
        assert got.shape == (manifest["num_snippets"], 2048) and written["columns"]["flow"] == [1024, 2048]
        assert_same_rows(got[:, :1024], ref["rgb"])
        assert_same_rows(got[:, 1024:], ref["flow"])
        assert not list(out.glob("*.lock")) and not list(out.glob("*.tmp"))


def test_a_short_video_is_looped_not_padded(tmp_path):
    """A 5-frame video with 8-frame snippets: its one snippet is frames 0 1 2 3 4 0 1 2 (paper Sec. 2.5:
    short videos are looped), against a clip built here from those indices written out, not from
    ``loop()``; padding with the last frame (0 1 2 3 4 4 4 4) gives another row."""
    v = tiny_video(tmp_path / "v.mp4", 5, seed=4)
    model = prepare(sensitive_i3d(3, 5), fast=False)
    kw = dict(fps=25.0, stack=8, step=8, short_side=32, crop_size=32, batch_size=2)
    out = tmp_path / "out"
    work = Work([Job(v, "v")], StreamSettings(**kw), ["rgb"], out, os.getpid(), never_complete)
    assert run_pipeline(work, {"rgb": model}, Writer(out, ["rgb"], "separate", False, {}), 0)["done"] == ["v"]
    got = np.load(out / "v_rgb.npy")
    frames = torch.from_numpy(read_frames(v, np.arange(5), 25.0))  # 5 x 32 x 40 x 3
    rows = {}
    for rule, idx in (("looped", [0, 1, 2, 3, 4, 0, 1, 2]), ("padded", [0, 1, 2, 3, 4, 4, 4, 4])):
        clip = frames_to_unit(frames[idx])[:, :, :, 4:36]  # 3 x 8 x 32 x 32: the center crop
        rows[rule] = model(clip[None], "extract_features").numpy()
    err = np.abs(got - rows["looped"]).max()
    assert got.shape == (1, 1024) and err <= 1e-5 * np.abs(rows["looped"]).max()
    assert np.abs(rows["padded"] - rows["looped"]).max() > 1000 * err + 1e-3


def test_what_a_killed_extraction_left_is_removed_by_the_next(tmp_path):
    """A feature array under the temporary name of a process now gone (a SIGKILL'd extract.py): the next
    run of that video on this host removes it, and only the finished files remain."""
    v = tiny_video(tmp_path / "v.mp4", 10)
    out = tmp_path / "out"
    out.mkdir()
    left = temp_path(out / "v_rgb.npy", pid=2**22 + 1)  # above Linux's largest pid_max: no such process
    left.write_bytes(b"half an array")
    s = StreamSettings(fps=25.0, stack=8, step=8, short_side=32, crop_size=32, batch_size=2)
    work = Work([Job(v, "v")], s, ["rgb"], out, os.getpid(), never_complete)
    model = prepare(random_i3d(3, 2), precision="fp32")
    assert run_pipeline(work, {"rgb": model}, Writer(out, ["rgb"], "separate", False, {}), 0)["done"] == ["v"]
    assert sorted(p.name for p in out.iterdir()) == ["v.json", "v_rgb.npy"]


def test_decoding_threads_are_set_and_change_no_frame(tmp_path):
    """A pipeline worker decodes with its share of the cores (FFmpeg would start one thread per core in
    every worker): the count reaches the decoder, and the frames are the same as FFmpeg's default gives."""
    path = tiny_video(tmp_path / "v.mp4", 30)
    container, stream = open_video(path, threads=1)
    assert stream.codec_context.thread_count == 1
    container.close()
    one = np.stack([f for _, f in iter_frames(path, 25.0, threads=1)])
    assert np.array_equal(one, np.stack([f for _, f in iter_frames(path, 25.0)]))


@pytest.mark.parametrize("workers", [0, 2])
def test_each_worker_decodes_with_its_share_of_the_cores(tmp_path, monkeypatch, workers):
    """16 cores for this process: in-process decoding gets 16 threads, each of 2 workers 8 (recorded
    from inside the forked workers, where the patched decoder runs)."""

    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.delenv("SLURM_NTASKS_PER_NODE", raising=False)
    record = tmp_path / "threads.txt"
    from i3d_train.video import stream

    real = stream.iter_frames

    def recording(*args, threads=0, **kwargs):
        with open(record, "a") as f:
            f.write(f"{threads}\n")
        yield from real(*args, threads=threads, **kwargs)

    monkeypatch.setattr(stream, "iter_frames", recording)
    jobs = [Job(tiny_video(tmp_path / f"v{i}.mp4", 10, seed=i), f"v{i}") for i in range(2)]
    s = StreamSettings(fps=25.0, stack=8, step=8, short_side=32, crop_size=32, batch_size=2)
    out = tmp_path / "out"
    work = Work(jobs, s, ["rgb"], out, os.getpid(), never_complete)
    model = prepare(random_i3d(3, 9), precision="fp32")
    result = run_pipeline(work, {"rgb": model}, Writer(out, ["rgb"], "separate", False, {}), workers)
    assert sorted(result["done"]) == ["v0", "v1"]
    assert record.read_text().split() == ["16" if workers == 0 else "8"] * 2


def test_decoding_cores_are_shared_with_the_nodes_other_ranks(monkeypatch):
    """A worker's decoding threads come from the cores this process may use, split between the ranks
    torchrun or SLURM started on the node (each would otherwise size its decoders for the whole node)."""
    from i3d_train.runtime.cores import decoding_cores

    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)))
    for var in ("LOCAL_WORLD_SIZE", "SLURM_NTASKS_PER_NODE"):
        monkeypatch.delenv(var, raising=False)
    assert decoding_cores() == 16
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert decoding_cores() == 4
    monkeypatch.delenv("LOCAL_WORLD_SIZE")
    monkeypatch.setenv("SLURM_NTASKS_PER_NODE", "2(x3)")
    assert decoding_cores() == 8
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2})  # bound by SLURM: already its share
    assert decoding_cores() == 3


def test_rgb_travels_channels_last_and_arrives_as_the_models_input():
    """Workers send RGB as uint8 (N, T, h, w, 3); the model gets (N, 3, T, h, w) in [-1, 1], the values of
    frames_to_unit, already in the fast path's channels_last_3d layout (so nothing transposes it)."""
    frames = torch.randint(0, 256, (2, 8, 24, 24, 3), dtype=torch.uint8)
    x = to_model_input(frames, "rgb", torch.device("cpu"))
    assert x.shape == (2, 3, 8, 24, 24) and x.dtype == torch.float32
    assert x.is_contiguous(memory_format=torch.channels_last_3d)
    assert torch.equal(x, torch.stack([frames_to_unit(f) for f in frames]))


def test_flow_sent_in_the_autocast_dtype_gives_the_models_own_result():
    """Flow travels from the workers in the flow model's autocast dtype (half the bytes of float32): the
    features are bit for bit those of float32 input, because the first convolution casts to that dtype."""
    model = prepare(random_i3d(2, 3), precision="bf16")
    x = torch.rand(2, 2, 8, 32, 32) * 2 - 1
    assert torch.equal(model(x, "extract_features"), model(x.to(torch.bfloat16), "extract_features"))


class Recording:
    """An InferenceModel that records the batches it is given (rows, dtype)."""

    def __init__(self, model) -> None:
        self.model, self.device, self.dtype, self.seen = model, model.device, model.dtype, []

    def __call__(self, x: torch.Tensor, method: str = "forward") -> torch.Tensor:
        self.seen.append((x.shape[0], x.dtype))
        return self.model(x, method)


def test_a_free_worker_takes_the_next_untaken_video(tmp_path):
    """Workers share one counter over the list: while one is busy with a long video, another takes every
    other video (a fixed every-other-video split would have given the busy one a second video)."""
    lengths = {"long": 80, "s1": 16, "s2": 16, "s3": 16}
    jobs = [Job(tiny_video(tmp_path / f"{k}.mp4", n, seed=i), k) for i, (k, n) in enumerate(lengths.items())]
    s = StreamSettings(fps=25.0, stack=8, step=8, short_side=32, crop_size=32, batch_size=2)
    batches = SnippetBatches(Work(jobs, s, ["rgb"], tmp_path / "out", os.getpid(), never_complete))
    busy = iter(batches)  # two consumers of one dataset, as two DataLoader workers are
    assert next(busy) == {"kind": "start", "name": "long", "manifest": ANY}  # takes the long one, stays on it
    other = [i["name"] for i in batches if i["kind"] == "start"]
    assert other == ["s1", "s2", "s3"]
    rest = list(busy)
    decoded = [i for i in rest if i["kind"] == "decoded"]
    assert decoded == [{"kind": "decoded", "name": "long", "backend": "pyav", "fallback": None}]
    rest = [i for i in rest if i["kind"] != "decoded"]
    assert {i["kind"] for i in rest} == {"batch"} and {n for i in rest for n in i["names"]} == {"long"}
    assert sum(len(i["names"]) for i in rest) == 10


@pytest.mark.slow
def test_two_workers_write_each_video_once_with_the_right_rows(tmp_path):
    """Two workers, items taken from whichever is ready: every video once, every row where it belongs."""
    videos = [tiny_video(tmp_path / f"v{i}.mp4", n, seed=i) for i, n in enumerate((40, 16, 24))]
    kw = dict(fps=25.0, stack=8, step=8, short_side=32, crop_size=32, batch_size=2)
    model = prepare(sensitive_i3d(3, 6), fast=False)
    out = tmp_path / "out"
    work = Work([Job(v, v.stem) for v in videos], StreamSettings(**kw), ["rgb"], out, os.getpid(), never_complete)
    result = run_pipeline(work, {"rgb": model}, Writer(out, ["rgb"], "separate", False, {}), num_workers=2)
    assert sorted(result["done"]) == ["v0", "v1", "v2"] and not result["failed"]
    for v in videos:
        ref, _ = FeatureExtractor({"rgb": model}, ExtractSettings(**kw)).extract(v)
        assert_same_rows(np.load(out / f"{v.stem}_rgb.npy"), ref["rgb"])


def test_flow_travels_in_the_models_autocast_dtype_and_changes_no_row(tmp_path, monkeypatch):
    """With a bf16 flow model, flow leaves the workers as bfloat16 and the rows are bit for bit those of
    the same pipeline sending float32."""
    from i3d_train.features import pipeline as extract_pipeline

    jobs = [Job(tiny_video(tmp_path / "v.mp4", 30), "v")]
    s = StreamSettings(fps=25.0, stack=8, step=4, short_side=32, crop_size=32, batch_size=2, flow_method="farneback")
    rows, seen = {}, {}
    for transport in ("autocast", "float32"):
        if transport == "float32":
            monkeypatch.setattr(extract_pipeline, "for_models", lambda work, models: work)
        model = Recording(prepare(sensitive_i3d(2, 7), precision="bf16"))
        out = tmp_path / transport
        work = Work(jobs, s, ["flow"], out, os.getpid(), never_complete)
        run_pipeline(work, {"flow": model}, Writer(out, ["flow"], "separate", False, {}), 0)
        rows[transport], seen[transport] = np.load(out / "v_flow.npy"), {d for _, d in model.seen}
    assert seen == {"autocast": {torch.bfloat16}, "float32": {torch.float32}}
    assert np.array_equal(rows["autocast"], rows["float32"]) and rows["autocast"].shape == (6, 1024)
    assert np.abs(rows["autocast"][0] - rows["autocast"][1]).max() > 1e-3 * np.abs(rows["autocast"]).max()


def test_padded_short_batches_give_the_same_rows(tmp_path):
    """On a GPU a short batch is padded to the usual size (one shape for cuDNN): the model sees only full
    batches, and padding changes no row."""
    jobs = [Job(tiny_video(tmp_path / f"v{i}.mp4", n, seed=i), f"v{i}") for i, n in enumerate((40, 24))]
    s = StreamSettings(fps=25.0, stack=8, step=8, short_side=32, crop_size=32, batch_size=3)  # 5 + 3: 3, 3, 2
    rows, sizes = {}, {}
    for pad in (False, True):
        model = Recording(prepare(sensitive_i3d(3, 5), precision="fp32"))
        out = tmp_path / f"out_{pad}"
        work = Work(jobs, s, ["rgb"], out, os.getpid(), never_complete)
        run_pipeline(work, {"rgb": model}, Writer(out, ["rgb"], "separate", False, {}), 0, pad_batches=pad)
        rows[pad], sizes[pad] = [np.load(out / f"v{i}_rgb.npy") for i in range(2)], [n for n, _ in model.seen]
    assert sizes == {False: [3, 3, 2], True: [3, 3, 3]}
    assert [r.shape[0] for r in rows[True]] == [5, 3]
    assert_same_rows(np.concatenate(rows[True]), np.concatenate(rows[False]))


def test_a_decoding_error_after_the_last_snippet_leaves_the_video_done(tmp_path, monkeypatch):
    """A file whose tail does not decode: once every snippet is out, the frames after them are not read,
    so the video is done (not done and failed at once)."""
    from i3d_train.video import stream
    from i3d_train.video.reader import VideoDecodeError

    real = stream.iter_frames

    def corrupt_tail(*args, **kwargs):
        yield from real(*args, **kwargs)
        raise VideoDecodeError("corrupt tail")

    monkeypatch.setattr(stream, "iter_frames", corrupt_tail)
    s = StreamSettings(fps=25.0, stack=8, step=8, short_side=32, crop_size=32, batch_size=3)
    out = tmp_path / "out"
    work = Work([Job(tiny_video(tmp_path / "v.mp4", 27), "v")], s, ["rgb"], out, os.getpid(), never_complete)
    model = prepare(random_i3d(3, 8), precision="fp32")
    result = run_pipeline(work, {"rgb": model}, Writer(out, ["rgb"], "separate", False, {}), 0)
    assert result["done"] == ["v"] and result["failed"] == [] and (out / "v.json").exists()


def test_summary_lists_complete_failed_in_progress_and_missing(tmp_path, capsys):
    from i3d_train.features.summary import main

    (tmp_path / ".extract").mkdir()
    (tmp_path / ".extract" / "videos.json").write_text(json.dumps({"names": ["a/x", "b", "c", "d"]}))
    (tmp_path / "a").mkdir()
    np.save(tmp_path / "a" / "x_rgb.npy", np.zeros((2, 1024), np.float32))
    (tmp_path / "a" / "x.json").write_text(json.dumps({"files": {"rgb": "x_rgb.npy"}}))
    (tmp_path / "b.json").write_text(json.dumps({"files": {"rgb": "b_rgb.npy"}}))  # its features are gone
    (tmp_path / "c.failed.json").write_text(json.dumps({"error": "VideoDecodeError: cannot open c.mp4"}))
    try_lock(tmp_path, "d")  # this process is working on it
    s = summarize(tmp_path)
    assert s["complete"] == ["a/x"] and s["failed"] == {"c": "VideoDecodeError: cannot open c.mp4"}
    assert s["in_progress"] == ["d"] and s["missing"] == ["b"]
    assert main(["summary", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "4 listed, 1 complete, 1 failed, 1 in progress, 1 missing" in out and "failed: c: " in out
    assert format_summary(s) in out


def test_thumos14_preset_writes_down_the_recipe():
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        t = compose("extract", overrides=["preset=thumos14_i3d", "input=x.mp4"])
        k = compose("extract", overrides=["preset=kinetics_paper", "input=x.mp4", "step=8"])
    assert (t.fps, t.stack, t.step, list(t.frame_size), t.crop_size, t.crops) == (
        None,
        16,
        4,
        [340, 256],
        224,
        "center",
    )
    assert (list(t.modalities), t.flow.method, t.flow.bound, t.layout) == (["rgb", "flow"], "tvl1", 20.0, "concat")
    assert t.weights.rgb.endswith("i3d_kinetics400_rgb.pt") and t.weights.flow.endswith("i3d_kinetics400_flow.pt")
    assert (k.fps, k.short_side, k.frame_size, k.crops, k.layout) == (25, 256, None, "center", "separate")
    assert k.step == 8  # command-line values still win over the preset


# extract.py behind a barrier: each process waits, just before its pipeline starts (configs composed,
# model loaded), until `parties` processes are there, so that they work on the folder at the same time
BARRIER = """import pathlib, runpy, sys, time
import i3d_train.features.run as extraction
folder, parties = pathlib.Path(sys.argv[1]), int(sys.argv[2])
real = extraction.run_pipeline
def gated(*args, **kwargs):
    (folder / str(time.time_ns())).touch()
    while len(list(folder.iterdir())) < parties:
        time.sleep(0.002)
    return real(*args, **kwargs)
extraction.run_pipeline = gated
sys.argv = [sys.argv[3], *sys.argv[4:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run(
    args: list[str], cwd: Path, module: str | None = None, barrier: tuple[Path, int] | None = None
) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", module] if module else [sys.executable, str(ROOT / "extract.py")]
    if barrier:
        cmd = [sys.executable, "-c", BARRIER, str(barrier[0]), str(barrier[1]), str(ROOT / "extract.py")]
    return subprocess.Popen([*cmd, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(p: subprocess.Popen) -> tuple[int, str, str]:
    out, err = p.communicate(timeout=600)
    return p.returncode, out, err


@pytest.mark.slow
def test_preset_snippet_count_and_times_on_a_2997_fps_clip(tmp_path):
    """`python extract.py preset=thumos14_i3d input=<29.97 fps clip>` (frames squashed smaller here, for
    speed): the README's count (N - 1 - 16) // 4 + 1 with N - 1 flow fields, and times (4i + 8) / fps."""
    clip = tiny_video(tmp_path / "clip.mp4", 40, fps=NTSC, h=24, w=32)
    torch.save(random_i3d(3, 3).state_dict(), tmp_path / "rgb.pt")
    torch.save(random_i3d(2, 4).state_dict(), tmp_path / "flow.pt")
    code, out, err = finish(
        run(["preset=thumos14_i3d", f"input={clip}", f"output_dir={tmp_path / 'f'}", "frame_size=[40,32]",
             "crop_size=32", "flow.method=farneback", f"weights.rgb={tmp_path / 'rgb.pt'}",
             f"weights.flow={tmp_path / 'flow.pt'}", "extract.num_workers=1", "inference.precision=fp32",
             f"hydra.run.dir={tmp_path / 'h'}"], tmp_path)
    )  # fmt: skip
    assert code == 0, err[-2000:]
    m = json.loads((tmp_path / "f" / "clip.json").read_text())
    fps = 30000 / 1001
    count = (40 - 1 - 16) // 4 + 1
    assert m["num_snippets"] == count == 6 and abs(m["fps"] - fps) < 1e-6
    assert np.load(tmp_path / "f" / "clip.npy").shape == (count, 2048) and m["frame_size"] == [40, 32]
    i = np.arange(count)
    assert np.allclose(m["snippet_center_times"], (4 * i + 8) / fps, atol=1e-4)
    assert np.allclose(m["snippet_start_times"], 4 * i / fps, atol=1e-4)
    assert np.allclose(m["snippet_end_times"], (4 * i + 16) / fps, atol=1e-4)


def _extract_args(tmp_path: Path) -> list[str]:
    return [f"input={tmp_path / 'videos' / 'list.txt'}", f"output_dir={tmp_path / 'f'}", f"weights.rgb={tmp_path / 'rgb.pt'}",
            "short_side=32", "crop_size=32", "stack=8", "step=8", "inference.precision=fp32",
            "extract.num_workers=0"]  # fmt: skip


def _videos(tmp_path: Path, n: int) -> list[str]:
    names = [f"v{i}" for i in range(n)]
    for i, name in enumerate(names):
        tiny_video(tmp_path / "videos" / f"{name}.mp4", 10, seed=i)
    (tmp_path / "videos" / "list.txt").write_text("".join(f"{name}.mp4\n" for name in names))
    torch.save(random_i3d(3, 5).state_dict(), tmp_path / "rgb.pt")
    return names


@pytest.mark.slow
def test_two_shards_do_each_video_once_and_the_summary_says_so(tmp_path):
    names = _videos(tmp_path, 5)
    procs = [run([*_extract_args(tmp_path), f"extract.shard={i}/2", f"hydra.run.dir={tmp_path / f'h{i}'}"], tmp_path)
             for i in range(2)]  # fmt: skip
    results = [finish(p) for p in procs]
    assert all(code == 0 for code, _, _ in results), [err[-1500:] for _, _, err in results]
    writers = {n: json.loads((tmp_path / "f" / f"{n}.json").read_text())["shard"] for n in names}
    assert writers == {n: f"{shard_of(n, 2)}/2" for n in names}  # each by its own shard only
    done = [int(out.split(" done")[0].split()[-1]) for _, out, _ in results]
    assert sum(done) == len(names)
    code, out, _ = finish(run(["summary", str(tmp_path / "f")], tmp_path, module="i3d_train.features"))
    assert code == 0 and "5 listed, 5 complete, 0 failed, 0 in progress, 0 missing" in out
    assert "shards ended: 0/2" in out and "1/2" in out


@pytest.mark.slow
def test_two_processes_on_the_same_list_never_write_the_same_video(tmp_path):
    """Two extract.py processes on one list and one folder, started together behind a barrier: each
    video written once, by one of them, none failed, and both did some (they overlapped)."""
    names = _videos(tmp_path, 6)
    (tmp_path / "barrier").mkdir()
    procs = [
        run(
            [*_extract_args(tmp_path), f"hydra.run.dir={tmp_path / f'h{i}'}"],
            tmp_path,
            barrier=(tmp_path / "barrier", 2),
        )
        for i in range(2)
    ]
    results = [finish(p) for p in procs]
    assert all(code == 0 for code, _, _ in results), [err[-1500:] for _, _, err in results]
    done = [int(out.split(" done")[0].split()[-1]) for _, out, _ in results]
    assert sum(done) == len(names) and min(done) >= 1, done  # none written twice (it would count in both)
    assert all((tmp_path / "f" / f"{n}.json").is_file() for n in names)
    assert not list((tmp_path / "f").rglob("*.lock")) and not list((tmp_path / "f").rglob("*.tmp"))


@pytest.mark.slow
def test_predict_streams_in_chunks_each_at_its_own_steps(tmp_path, monkeypatch):
    """72 frames in chunks of 32 overlapping by 8 (stride 24 = 3 steps): chunk c is frames
    [24c, 24c + 32), its per-step logits sit at steps 3c, 3c + 1, ...; a step two chunks cover is their
    mean, and the result the mean over steps. Checked against that rule computed here from each chunk's
    own logits (so piling every chunk at step 0, or keeping only the last chunk, fails), and each chunk's
    input against the frames it should hold. (How far chunks are from one whole pass depends on the
    model's receptive field: ``benchmarks/predict_streaming.py`` measures it on the real weights.)"""
    import i3d_train.inference.predict as predict

    path = tiny_video(tmp_path / "v.mp4", 72, h=32, w=32)
    model = prepare(sensitive_i3d(3, 6), fast=False)
    whole, n = stream_logits(model, path, short_side=32, crop_size=32, chunk_frames=0)
    seen = []
    real = predict.step_logits
    monkeypatch.setattr(predict, "step_logits", lambda m, clip: seen.append((clip, real(m, clip))) or seen[-1][1])
    chunked, n2 = stream_logits(model, path, short_side=32, crop_size=32, chunk_frames=32, overlap_frames=8)
    assert n == n2 == 72 and [c.shape[2] for c, _ in seen] == [32, 32, 24]  # one chunk of frames in memory
    frames = read_frames(path, np.arange(72), 25.0)
    for c, (clip, _) in enumerate(seen):
        assert torch.equal(clip, predict.prepare_frames(frames[24 * c : 24 * c + 32], 32, 32))
    steps: dict[int, list[torch.Tensor]] = {}
    for c, (_, logits) in enumerate(seen):
        for j in range(logits.shape[1]):
            steps.setdefault(3 * c + j, []).append(logits[:, j])
    steps = {k: v for k, v in steps.items() if k < 8}  # a whole pass of 72 frames has ceil(72 / 8) - 1 = 8 steps
    expected = torch.stack([torch.stack(v).mean(0) for v in steps.values()]).mean(0)
    scale = expected.abs().max()
    assert sorted(steps) == list(range(8)) and (chunked - expected).abs().max() <= 1e-5 * scale
    # each chunk's logits differ: piling them at step 0 or keeping one would give another result
    assert (seen[0][1].mean(1) - seen[-1][1].mean(1)).abs().max() > 1e-2 * scale
    assert whole.shape == chunked.shape
    with pytest.raises(ValueError, match="multiples of 8"):
        stream_logits(model, path, chunk_frames=30, overlap_frames=8)
