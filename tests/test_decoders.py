"""Which decoder decodes a video, the per-video fallback and its count, and the one frame rule both
decoders follow (issue 28). The NVDEC path runs here against a stand-in for PyNvVideoCodec
(tests/assets/fake_nvdec) that decodes with PyAV: everything up to the library is the code a GPU runs."""

from __future__ import annotations

import os
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from i3d_train.data.synthetic import SyntheticConfig, render_video
from i3d_train.video import decoders, nvdec
from i3d_train.video.decoders import NOT_INSTALLED, Decoder, DecoderError, format_summary, merge
from i3d_train.video.reader import probe, read_frames
from i3d_train.video.stream import iter_frames
from i3d_train.video.timeline import cover, indexed
from i3d_train.video.writer import write_video

FAKE = Path(__file__).parent / "assets" / "fake_nvdec"


def h264(path: Path, n: int = 30, seed: int = 0, fps: int = 25) -> Path:
    frames = render_video(SyntheticConfig(num_frames=n, height=32, width=48, seed=seed), seed % 3, 0)
    write_video(path, frames, fps, gop=8)
    return path


def mpeg4_avi(path: Path, n: int = 20) -> Path:
    """An Xvid-like AVI (MPEG-4 Part 2), the codec of UCF-101 and HMDB-51."""
    frames = render_video(SyntheticConfig(num_frames=n, height=32, width=48, seed=5), 1, 0)
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=25)
        s.width, s.height, s.pix_fmt = 48, 32, "yuv420p"
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def vfr_video(path: Path) -> Path:
    """H.264 with a variable frame rate: frames at 0, 40, 80, 200, 240, ... ms (a 120 ms gap)."""
    frames = render_video(SyntheticConfig(num_frames=20, height=32, width=48, seed=2), 2, 0)
    times = [0, 40, 80] + [200 + 40 * i for i in range(17)]
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 48, 32, "yuv420p"
        s.codec_context.time_base = Fraction(1, 1000)
        for f, t in zip(frames, times, strict=True):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            vf.pts, vf.time_base = t, Fraction(1, 1000)
            for p in s.encode(vf):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


@pytest.fixture
def fake_nvdec(monkeypatch, tmp_path):
    """PyNvVideoCodec importable (here and in spawned workers); returns the file its opens are logged to."""
    monkeypatch.syspath_prepend(str(FAKE))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(FAKE), os.environ.get("PYTHONPATH", "")]))
    log = tmp_path / "nvdec_opened.txt"
    monkeypatch.setenv("FAKE_NVDEC_LOG", str(log))
    sys.modules.pop("PyNvVideoCodec", None)
    yield log
    sys.modules.pop("PyNvVideoCodec", None)


# --- the frame rule --------------------------------------------------------------------------------


def test_cover_gives_each_wanted_index_the_frame_shown_then_and_converts_only_those():
    converted = []
    decoded = [(i, f"f{i}") for i in (0, 1, 2, 5, 6)]  # a gap: 3 and 4 were never shown

    def convert(raw):
        converted.append(raw)
        return raw.upper()

    got = list(cover(iter(decoded), [1, 1, 3, 4, 6, 8], convert))
    # 3 and 4 take the next frame shown (5); 8 is past the end: the last frame repeats
    assert got == [(0, "F1"), (1, "F1"), (2, "F5"), (3, "F5"), (4, "F6"), (5, "F6")]
    assert converted == ["f1", "f5", "f6"]  # frame 0 and 2 skipped without conversion
    with pytest.raises(LookupError):
        list(cover(iter([]), [0], convert))


def test_indexed_maps_timestamps_to_the_files_own_timeline():
    # time base 1/1000 s, start 500 ms, 25 fps: 500 -> 0, 540 -> 1, 660 -> 4; no timestamp: previous + 1
    pts = [500, 540, None, 660]
    assert [i for i, _ in indexed(pts, lambda p: p, 500, 1 / 1000, 25.0)] == [0, 1, 2, 4]


# --- selection and fallback ------------------------------------------------------------------------


def test_selection_without_a_gpu_or_without_the_library(tmp_path, monkeypatch):
    monkeypatch.setattr(decoders, "nvdec_missing", lambda: NOT_INSTALLED)
    video = h264(tmp_path / "a.mp4")
    info = probe(video)
    assert info.codec == "h264"
    cpu = Decoder("auto", "cpu")
    assert not cpu.wants_gpu and cpu.choose("h264") == ("pyav", None)  # no GPU: PyAV, not a fallback
    gpu = Decoder("auto", "cuda")
    frames = gpu.read_frames(video, [0, 3], 25.0, info)
    assert np.array_equal(frames, read_frames(video, [0, 3], 25.0, info))
    assert gpu.summary() == {"decoder": "auto", "videos": {"pyav": 1}, "fallbacks": {NOT_INSTALLED: 1}}
    with pytest.raises(DecoderError, match="decoder=nvdec: PyNvVideoCodec not installed"):
        Decoder("nvdec", "cuda")
    with pytest.raises(DecoderError, match="decodes on a GPU"):
        Decoder("nvdec", "cpu")
    with pytest.raises(DecoderError, match="expected one of auto, pyav, nvdec"):
        Decoder("gpu", "cuda")


def test_the_gpu_is_this_ranks(monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert decoders.cuda_index("cuda") == 3
    assert decoders.cuda_index("cuda:1") == 1
    assert decoders.cuda_index("cpu") is None


def test_nvdec_gives_pyavs_frames_and_falls_back_per_video_with_the_reason_counted(tmp_path, fake_nvdec, monkeypatch):
    a, b = h264(tmp_path / "a.mp4", 40, seed=1), h264(tmp_path / "bad_b.mp4", 12, seed=2)
    xvid = mpeg4_avi(tmp_path / "c.avi")
    monkeypatch.setenv("FAKE_NVDEC_FAIL", "bad_")
    d = Decoder("nvdec", "cuda:0")
    info = probe(a)
    # streamed, resampled to 10 fps, and a clip far into the video (a seek)
    assert [i for i, _ in d.iter_frames(a, 10.0, info)] == list(range(16))
    assert all(
        np.array_equal(x, y)
        for (_, x), (_, y) in zip(d.iter_frames(a, 10.0, info), iter_frames(a, 10.0, info), strict=True)
    )
    idx = np.array([33, 30, 31, 31, 45])  # unsorted, repeated, past the end (loops)
    assert np.array_equal(d.read_frames(a, idx, 25.0, info), read_frames(a, idx, 25.0, info))
    assert fake_nvdec.read_text().count(str(a)) == 3
    # the MPEG-4 AVI and the file cuvid refuses are decoded by PyAV, each counted with its reason
    for v in (xvid, b):
        vi = probe(v)
        assert np.array_equal(d.read_frames(v, [0, 5], 25.0, vi), read_frames(v, [0, 5], 25.0, vi))
    assert str(xvid) not in fake_nvdec.read_text()
    assert d.summary() == {
        "decoder": "nvdec",
        "videos": {"nvdec": 3, "pyav": 2},
        "fallbacks": {"codec mpeg4 not decoded by NVDEC": 1, "NVDEC failed: RuntimeError": 1},
    }
    line = format_summary(merge([d.summary(), d.summary()]))
    assert line == (
        "decoding (decoder=nvdec): 6 videos with NVDEC, 4 videos with PyAV; fell back to PyAV: "
        "2 (NVDEC failed: RuntimeError), 2 (codec mpeg4 not decoded by NVDEC)"
    )


def test_nvdec_frames_follow_timestamps_on_a_variable_frame_rate_and_a_seek_that_overshoots(
    tmp_path, fake_nvdec, monkeypatch
):
    video = vfr_video(tmp_path / "vfr.mp4")
    info = probe(video)
    want = np.arange(info.num_frames)  # at the file's own (average) rate
    ref = read_frames(video, want, None, info)
    assert not np.array_equal(ref[3], ref[2]) and np.array_equal(ref[3], ref[5])  # the gap shows the next frame
    assert np.array_equal(nvdec.read_frames(video, want, None, info, 0), ref)
    assert np.array_equal(
        nvdec.read_frames(video, np.arange(22), 25.0, info, 0), read_frames(video, np.arange(22), 25.0, info)
    )
    monkeypatch.setenv("FAKE_NVDEC_SEEK_OFFSET", "4")  # lands past the first frame needed: decodes from 0
    assert np.array_equal(nvdec.read_frames(video, [10, 11, 12], None, info, 0), ref[10:13])


# --- through the loaders ---------------------------------------------------------------------------


def test_extraction_with_nvdec_writes_pyavs_features_and_counts_the_fallbacks(tmp_path, fake_nvdec):
    from i3d_train.features.pipeline import Job, StreamSettings, Work, run_pipeline
    from i3d_train.features.writer import Writer
    from i3d_train.inference.fast import prepare
    from tests.test_extract_scale import never_complete, random_i3d

    videos = [h264(tmp_path / "v0.mp4", 24, seed=0), mpeg4_avi(tmp_path / "v1.avi", 20)]
    jobs = [Job(v, v.stem) for v in videos]
    s = StreamSettings(fps=25.0, stack=8, step=8, short_side=32, crop_size=32, batch_size=2)
    model = prepare(random_i3d(3, 1), precision="fp32")
    feats, results = {}, {}
    for name in ("pyav", "auto"):
        out = tmp_path / name
        work = Work(jobs, s, ["rgb"], out, os.getpid(), never_complete, decoder=Decoder(name, "cuda:0"))
        results[name] = run_pipeline(work, {"rgb": model}, Writer(out, ["rgb"], "separate", False, {}), 0)
        feats[name] = {v.stem: np.load(out / f"{v.stem}_rgb.npy") for v in videos}
    for v in videos:
        assert np.array_equal(feats["auto"][v.stem], feats["pyav"][v.stem])
    assert results["auto"]["decoding"].summary() == {
        "decoder": "auto",
        "videos": {"nvdec": 1, "pyav": 1},
        "fallbacks": {"codec mpeg4 not decoded by NVDEC": 1},
    }
    assert results["pyav"]["decoding"].summary()["fallbacks"] == {}
    assert fake_nvdec.read_text().count("v0.mp4") == 1


def tiny_datamodule(root: Path, workers: int, **kw):
    """A synthetic-set DataModule of 8 tiny videos per split, set up for training."""
    from i3d_train.data.datamodule import VideoDataModule

    synthetic = {"num_classes": 8, "train_per_class": 1, "test_per_class": 1, "val_per_class": 1, "num_frames": 16,
                 "height": 32, "width": 40}  # fmt: skip
    dm = VideoDataModule(
        name="synthetic",
        root=str(root),
        split=1,
        num_classes=8,
        input={"num_frames": 8, "fps": 25, "frame_stride": 1, "resize": 32, "crop_size": 32},
        input_override=None,
        batch_size=2,
        num_workers=workers,
        test_clips=1,
        synthetic=synthetic,
        **kw,
    )
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_training_loader_decodes_with_nvdec_in_spawned_workers_and_counts_fallbacks(tmp_path, fake_nvdec, monkeypatch):
    """On a GPU the loader's workers start with spawn (CUDA does not survive a fork), keep running, pin
    memory, and each sample says whether its clip fell back to PyAV."""
    from i3d_train.data.datamodule import VideoDataModule

    monkeypatch.setattr(VideoDataModule, "_device", lambda self: "cuda:0")
    monkeypatch.setenv("FAKE_NVDEC_FAIL", "/Move")  # "NVDEC" refuses the 4 Move* classes' videos
    dm = tiny_datamodule(tmp_path / "syn", 1, decoder="auto")
    loader = dm.train_dataloader()
    assert loader.multiprocessing_context is not None and loader.multiprocessing_context.get_start_method() == "spawn"
    assert loader.persistent_workers and loader.pin_memory is True
    batches = list(loader)  # one epoch: the 8 training videos, one per class
    assert [tuple(b["rgb"].shape) for b in batches] == [(2, 3, 8, 32, 32)] * 4
    fell_back = {dm.train_set.items[i].video_id.split("/")[0]: int(f) for b in batches
                 for i, f in zip(b["video_index"].tolist(), b["decoder_fallback"].tolist(), strict=True)}  # fmt: skip
    assert fell_back == {c: int(c.startswith("Move")) for c in fell_back} and sum(fell_back.values()) == 4
    opened = fake_nvdec.read_text()
    assert "Rotate" in opened and "/Move" not in opened  # the others went through "NVDEC"


def test_a_cpu_run_keeps_fork_and_no_fallback_key(tmp_path):
    loader = tiny_datamodule(tmp_path / "syn", 0).train_dataloader()
    assert loader.multiprocessing_context is None and not loader.pin_memory
    assert "decoder_fallback" not in next(iter(loader))
    assert torch.is_tensor(next(iter(loader))["rgb"])


@pytest.mark.slow
def test_the_prepared_gpu_check_runs_through_every_section_on_a_cpu(tmp_path):
    """``benchmarks/gpu_check.py --smoke`` (tiny inputs): every section ends with figures or the reason it
    could not run here (no GPU, no NVDEC), none with an error, and the JSON is written."""
    import json
    import subprocess

    out = tmp_path / "check.json"
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run(
        [sys.executable, "benchmarks/gpu_check.py", "--smoke", "--out", str(out)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    got = json.loads(out.read_text())["sections"]
    assert set(got) == {"train", "loader", "flow", "extract", "agreement"}
    assert not [s for s, v in got.items() if "error" in v], got
    assert [row["model"] for row in got["train"]["rows"]] == ["i3d", "two_stream"]
    assert all(row["eager"]["clips_per_s"] > 0 for row in got["train"]["rows"])
    loader = {(row.get("storage"), row.get("decoder", "jpeg")): row for row in got["loader"]["rows"]}
    assert loader[("video", "pyav")]["clips_per_s"] > 0 and loader[("frames", "jpeg")]["clips_per_s"] > 0
    assert "decodes on a GPU" in loader[(None, "nvdec")]["skipped"]  # no GPU here: said, not failed
    rows = got["extract"]["thumos14"]["rows"]
    assert rows[0]["decoder"] == "pyav" and rows[0]["ratio_median"] > 0 and "skipped" in rows[1]
    assert got["agreement"]["skipped"]


def test_predict_says_nvdec_needs_a_gpu(tmp_path):
    import subprocess

    video = h264(tmp_path / "a.mp4")
    r = subprocess.run(
        [sys.executable, "-m", "i3d_train.predict", str(video), "--decoder", "nvdec", "--device", "cpu"],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    assert r.stderr.strip() == (
        "error: decoder=nvdec decodes on a GPU, but the frames go to the CPU: use a CUDA device or decoder=pyav"
    )
