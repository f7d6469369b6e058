"""The overlapped feature-extraction pipeline: decoding and flow in ``DataLoader`` workers, the model
in the main process, memory bounded whatever the video length.

- **Workers** (``extract.num_workers``) each take the next video of the list that no other worker has
  taken. For a video a worker takes its lock (:mod:`i3d_train.runtime.sharding`; a video another process holds is skipped),
  then decodes it front to back in one pass (:func:`i3d_train.video.stream.iter_frames`), resizes each
  frame once, computes each flow field once (or reads it from a flow folder), and keeps only the frames
  and fields that the next snippet still needs (about ``stack`` of each, whatever the length). It
  yields batches of ``batch_size`` snippets, cropped into their views and built in shared memory: RGB
  as ``uint8 (B, V, T, h, w, 3)`` (a quarter of the bytes of float, channels last), flow as
  ``(B, V, 2, T, h, w)`` in the flow model's autocast dtype (``StreamSettings.flow_dtype``). A batch may
  hold the end of one video and the start of the next.
- **The main process** only moves batches to the device (pinned memory and prefetch on GPU), runs the
  model (on a GPU it queues the next batch before writing the previous one's rows, so the GPU does not
  wait for the writing) and writes each row straight into a memory-mapped ``.npy`` under a temporary name. When a
  video's last row is in, the files are renamed and the manifest written (last: its presence means
  complete), and the lock released.

So a video's frames are never all in memory, in the workers or in the main process: a 1-hour video
needs the same memory as a 1-minute one (``benchmarks/extract_speed.py --memory`` measures it).

The snippets, their frames and their values are exactly those of the one-video-at-a-time reference,
:class:`i3d_train.features.reference.FeatureExtractor` (checked in ``tests/test_extract_scale.py``).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from i3d_train.features.snippets import ExtractSettings, snippet_manifest, snippet_starts, views, views_hwc
from i3d_train.features.writer import Writer
from i3d_train.flow.compute import compute_flow, to_gray
from i3d_train.flow.store import check_fps, is_complete, read_flow, read_meta
from i3d_train.inference.fast import InferenceModel
from i3d_train.runtime.cores import worker_threads
from i3d_train.runtime.sharding import VideoLock, lock_path, try_lock
from i3d_train.video.decoders import Decoder
from i3d_train.video.reader import loop, probe
from i3d_train.video.resize import resize_flow, resize_frames, resize_to, to_float_clip


@dataclass
class StreamSettings(ExtractSettings):
    """:class:`ExtractSettings` plus what only the streamed pipeline has."""

    frame_size: tuple[int, int] | None = None  # (width, height): squash every frame to it; None: short_side
    # flow as it travels from the workers: the model's autocast dtype (its first convolution casts to it
    # anyway, so the result is the same) for half the bytes; float32 for an fp32 model
    flow_dtype: str = "float32"

    @property
    def resize(self) -> int | tuple[int, int]:
        """What :func:`resize_frames` takes: a short side, or ``(height, width)``."""
        if self.frame_size:
            w, h = self.frame_size
            return int(h), int(w)
        return self.short_side


@dataclass
class Job:
    video: Path
    name: str
    flow_dir: Path | None = None


@dataclass
class VideoPlan:
    """What a video gives, known before decoding it."""

    job: Job
    info: object
    n_frames: int  # frames at the extraction rate
    n: int  # usable frames: n_frames, or the number of flow fields with flow
    starts: list[int]
    meta: dict | None  # a flow folder's meta.json

    def manifest(self, s: StreamSettings, modalities: list[str]) -> dict:
        return snippet_manifest(
            self.job.video, s.fps or self.info.fps, s, self.n_frames, self.n, self.starts, modalities, self.meta
        )


def plan_video(job: Job, s: StreamSettings, modalities: list[str]) -> VideoPlan:
    info = probe(job.video) if (s.flow_source != "folder" or "rgb" in modalities or s.fps is None) else None
    meta = None
    if "flow" in modalities and s.flow_source == "folder":
        if job.flow_dir is None:
            raise ValueError("flow.source=folder needs flow.root")
        if not is_complete(job.flow_dir):
            raise ValueError(
                f"no complete flow folder for {job.name}: {job.flow_dir}/meta.json is missing (nor is there one for a "
                "tail of its name; python -m i3d_train.flow --src <the videos' folder> --dst <flow.root> writes them)"
            )
        meta = read_meta(job.flow_dir)
        info = info or probe(job.video)
        check_fps(meta, s.fps or info.fps, job.flow_dir)
    n_frames = info.num_frames_at(s.fps)
    n = n_frames
    if "flow" in modalities:
        n = int(meta["flow_frames"]) if meta is not None else n_frames - 1
        if n < 1:
            raise ValueError(f"{job.video}: {n_frames} frame(s): flow needs at least 2")
    return VideoPlan(job, info, n_frames, n, snippet_starts(n, s.stack, s.step), meta)


def _gray(frame: np.ndarray, resize: int | tuple[int, int]) -> np.ndarray:
    """One RGB frame -> grayscale at the extraction size (as :func:`to_gray` does for a short side)."""
    if isinstance(resize, int):
        return to_gray(frame[None], resize)[0]
    clip = resize_to(to_float_clip(frame[None]), resize)  # 3 x 1 x h x w
    small = clip.permute(1, 2, 3, 0).round().clamp(0, 255).byte().numpy()[0]
    return cv2.cvtColor(np.ascontiguousarray(small), cv2.COLOR_RGB2GRAY)


def video_snippets(
    plan: VideoPlan,
    s: StreamSettings,
    modalities: list[str],
    stats: dict | None = None,
    threads: int = 0,
    decoder: Decoder | None = None,
) -> Iterator[tuple[int, dict]]:
    """``(snippet number, {modality: views})`` of one video in order, from one decoding pass; views are
    ``uint8 (V, stack, crop, crop, 3)`` for RGB (channels last: the layout the fast model path computes in,
    see :func:`to_model_input`), ``(V, 2, stack, crop, crop)`` in [-1, 1] for flow, of ``s.flow_dtype``.
    Holds only the frames the pending snippets need (``stats["max_held"]``: the most frames and fields
    held at once), each already cut into its views: a frame is resized and cropped once, however many
    snippets it is part of (4 with the THUMOS-14 recipe's step). ``threads``: decoding threads;
    ``decoder``: PyAV or NVDEC, chosen per video (default PyAV)."""
    n, starts, resize = plan.n, plan.starts, s.resize
    need_decode = "rgb" in modalities or ("flow" in modalities and s.flow_source != "folder")
    # crops and flips act on each frame alone, so views of a clip = views of its frames, side by side in T
    rgb: dict[int, torch.Tensor] = {}  # frame index -> uint8 (V, 1, crop, crop, 3): its views
    flow: dict[int, torch.Tensor] = {}  # field index -> (V, 2, 1, crop, crop), in [-1, 1]
    flow_dtype = getattr(torch, s.flow_dtype)
    prev_gray = None
    k = 0  # next snippet to emit

    def needed(j: int) -> np.ndarray:
        return loop(np.arange(starts[j], starts[j] + s.stack), n)  # the one loop rule, period n

    def ready(j: int, latest: int) -> bool:
        return int(needed(j).max()) <= latest

    def emit(j: int) -> dict:
        idx = needed(j).tolist()
        out = {}
        if "rgb" in modalities:
            out["rgb"] = torch.cat([rgb[i] for i in idx], dim=1)
        if "flow" in modalities:
            out["flow"] = torch.cat([flow[i] for i in idx], dim=2)
        return out

    def evict(j: int) -> None:
        lo = int(needed(j).min()) if j < len(starts) else n
        for buf in (rgb, flow):
            for i in [i for i in buf if i < lo]:
                del buf[i]

    def add_field(i: int, field_hw2: np.ndarray, bound: float) -> None:
        f = torch.from_numpy(np.ascontiguousarray(field_hw2)).permute(2, 0, 1)[:, None].float()  # 2 x 1 x h x w
        f = views((resize_flow(f, resize) / bound).clamp_(-1, 1), s.crop_size, s.crops, True)
        flow[i] = f.to(flow_dtype).contiguous()

    decoder = decoder or Decoder("pyav")
    source = (
        decoder.iter_frames(plan.job.video, s.fps, plan.info, stop=min(plan.n_frames, n + 1), threads=threads)
        if need_decode
        else ((i, None) for i in range(n))
    )
    for i, frame in source:
        if "rgb" in modalities and i < n:
            small = resize_frames(torch.from_numpy(frame[None]), resize)[0]  # h x w x 3
            rgb[i] = views_hwc(small, s.crop_size, s.crops)[:, None]
        latest = i if i < n else n - 1
        if "flow" in modalities:
            if s.flow_source == "folder":
                add_field(i, read_flow(plan.job.flow_dir, [i], plan.meta)[0], float(plan.meta["bound"]))
            else:
                gray = _gray(frame, resize)
                if prev_gray is not None:  # field i - 1: from frame i - 1 to frame i
                    add_field(i - 1, compute_flow(np.stack([prev_gray, gray]), s.flow_method)[0], s.flow_bound)
                prev_gray = gray
                latest = i - 1
        if stats is not None:
            stats["max_held"] = max(stats.get("max_held", 0), len(rgb), len(flow))
        while k < len(starts) and ready(k, latest):
            yield k, emit(k)
            k += 1
            evict(k)
        if k == len(starts):
            return  # every snippet out: frames past them are not needed (nor a decoding error in them)
    if k < len(starts):
        raise RuntimeError(f"{plan.job.video}: decoding ended before snippet {k} of {len(starts)}")


@dataclass
class Work:
    """What the workers need (picklable: it travels to spawned workers)."""

    jobs: list[Job]
    settings: StreamSettings
    modalities: list[str]
    out_dir: Path
    owner_pid: int
    is_complete: Callable[[str], bool]
    stale_after_s: float = 600.0
    decoder: Decoder = dataclasses.field(default_factory=lambda: Decoder("pyav"))


class SnippetBatches(IterableDataset):
    """Items for the main process, in each worker's order (a worker takes the next video of the list
    not yet taken by another when it is free, so a long video does not leave the others idle):

    - ``{"kind": "start", "name", "manifest"}`` before a video's rows;
    - ``{"kind": "batch", "names", "snippets", "rgb": uint8 (B, V, T, h, w, 3), "flow": (B, V, 2, T, h, w)}``;
    - ``{"kind": "error", "name", "error"}`` (rows of that video not yet sent are dropped);
    - ``{"kind": "skip", "name", "why"}``: ``complete`` or ``busy`` (another process holds its lock);
    - ``{"kind": "decoded", "name", "backend", "fallback"}``: how a video was decoded (PyAV or NVDEC, and
      why not NVDEC where it was asked for), once its frames are all decoded.
    """

    def __init__(self, work: Work) -> None:
        self.w = work
        # the next job to take, shared by the workers (inherited by forked ones, pickled to spawned ones)
        self.next_job = torch.multiprocessing.get_context().Value("i", 0)

    def _take(self) -> Job | None:
        with self.next_job.get_lock():
            k = self.next_job.value
            if k >= len(self.w.jobs):
                return None
            self.next_job.value = k + 1
        return self.w.jobs[k]

    def _batch(self, rows: list) -> dict:
        out = {"kind": "batch", "names": [r[0] for r in rows], "snippets": [r[1] for r in rows]}
        for m in self.w.modalities:
            first = rows[0][2][m]
            buf = torch.empty((len(rows), *first.shape), dtype=first.dtype)
            if get_worker_info() is not None:
                # filled where it travels: sent as is, not copied into shared memory on the way out
                buf.share_memory_()
            out[m] = torch.stack([r[2][m] for r in rows], out=buf)
        return out

    def __iter__(self) -> Iterator[dict]:
        threads = worker_threads()
        w, s = self.w, self.w.settings
        rows: list = []
        while (job := self._take()) is not None:
            if w.is_complete(job.name):
                yield {"kind": "skip", "name": job.name, "why": "complete"}
                continue
            lock = try_lock(w.out_dir, job.name, w.owner_pid, w.stale_after_s)
            if lock is None:
                yield {"kind": "skip", "name": job.name, "why": "busy"}
                continue
            if w.is_complete(job.name):  # finished by another process between the check and the lock
                lock.release()
                yield {"kind": "skip", "name": job.name, "why": "complete"}
                continue
            try:
                plan = plan_video(job, s, w.modalities)
                yield {"kind": "start", "name": job.name, "manifest": plan.manifest(s, w.modalities)}
                for k, v in video_snippets(plan, s, w.modalities, threads=threads, decoder=w.decoder):
                    rows.append((job.name, k, v))
                    if len(rows) >= s.batch_size:
                        yield self._batch(rows)
                        rows = []
                if w.decoder.last is not None:
                    backend, why = w.decoder.last
                    w.decoder.last = None
                    yield {"kind": "decoded", "name": job.name, "backend": backend, "fallback": why}
            except Exception as e:  # noqa: BLE001 - one bad video must not stop the others
                rows = [r for r in rows if r[0] != job.name]
                yield {"kind": "error", "name": job.name, "error": f"{type(e).__name__}: {e}"}
        if rows:
            yield self._batch(rows)


def to_model_input(x: torch.Tensor, modality: str, device: torch.device) -> torch.Tensor:
    """A batch's views on the device as the model takes them, ``(B*V, C, T, h, w)`` float in [-1, 1].
    RGB arrives as ``uint8 (B*V, T, h, w, 3)``: permuted, it is a ``channels_last_3d`` tensor (the fast
    path's layout: no transposition anywhere), converted to float on the device."""
    x = x.to(device, non_blocking=True)
    if modality == "rgb":
        x = x.permute(0, 4, 1, 2, 3).to(torch.float32).div_(127.5).sub_(1.0)  # as frames_to_unit
    return x


def for_models(work: Work, models: dict[str, InferenceModel]) -> Work:
    """``work`` with flow sent in the flow model's autocast dtype (see ``StreamSettings.flow_dtype``)."""
    if "flow" not in models or models["flow"].dtype is None:
        return work
    s = dataclasses.replace(work.settings, flow_dtype=str(models["flow"].dtype).removeprefix("torch."))
    return dataclasses.replace(work, settings=s)


def snippet_loader(work: Work, device: torch.device, num_workers: int = 2, prefetch_factor: int = 2) -> DataLoader:
    """The workers' side: :class:`SnippetBatches` items from ``num_workers`` processes (0: in this one),
    into pinned memory when the model is on a GPU."""
    extra = {}
    if "in_order" in inspect.signature(DataLoader.__init__).parameters:  # PyTorch >= 2.6
        # items as they come, so that one slow worker does not hold the others' batches back; each worker's
        # own items stay in its order (one queue), which is all the main process relies on
        extra["in_order"] = False
    if num_workers > 0 and work.decoder.wants_gpu:
        extra["multiprocessing_context"] = "spawn"  # NVDEC in the workers: CUDA does not survive a fork
    return DataLoader(
        SnippetBatches(work),
        batch_size=None,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        prefetch_factor=prefetch_factor if num_workers > 0 else None,
        persistent_workers=False,
        **extra,
    )


def run_pipeline(
    work: Work,
    models: dict[str, InferenceModel],
    writer: Writer,
    num_workers: int = 2,
    prefetch_factor: int = 2,
    on_video: Callable[[str, str, str | None], None] | None = None,
    pad_batches: bool | None = None,
) -> dict:
    """Extract every job of ``work``; ``on_video(name, status, error)`` is called as each video ends
    (status ``done``, ``failed``, ``complete`` or ``busy``). Returns the lists of names per status, and
    under ``decoding`` a :class:`Decoder` whose counts are the workers' (``.summary()``).

    ``pad_batches`` (default: on a GPU): a short batch (the end of a worker's videos) is padded to
    ``batch_size`` snippets and the extra rows dropped, so the model sees one shape only: on a GPU each
    new shape makes cuDNN (``benchmark`` mode) time every layer's algorithms again, and a run has up
    to one short batch per worker."""
    device = next(iter(models.values())).device
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # one batch shape (see pad_batches): the fastest kernels, once
    if pad_batches is None:
        pad_batches = device.type == "cuda"
    full = work.settings.batch_size
    work = for_models(work, models)
    loader = snippet_loader(work, device, num_workers, prefetch_factor)
    result: dict[str, list] = {"done": [], "failed": [], "complete": [], "busy": []}
    decoding = work.decoder.fresh()  # the workers' choices, counted here
    result["decoding"] = decoding

    def ended(name: str, status: str, error: str | None = None) -> None:
        result[status].append((name, error) if status == "failed" else name)
        if status in ("done", "failed"):
            VideoLock(lock_path(work.out_dir, name), work.owner_pid).release()
        if on_video is not None:
            on_video(name, status, error)

    pending: list = []  # on a GPU: the last batch's features, still being computed and copied

    def write(item: dict, out: dict, done: torch.cuda.Event | None) -> None:
        if done is not None:
            done.synchronize()
        out = {m: o.numpy() for m, o in out.items()}
        for r, (name, k) in enumerate(zip(item["names"], item["snippets"], strict=True)):
            if writer.rows(name, k, {m: out[m][r] for m in work.modalities}):
                writer.finish(name)
                ended(name, "done")
        for name in set(item["names"]) & set(writer.open):
            VideoLock(lock_path(work.out_dir, name), work.owner_pid).refresh()

    def flush() -> None:
        while pending:
            write(*pending.pop(0))

    try:
        for item in loader:
            kind = item["kind"]
            if kind == "decoded":
                decoding.count(item["backend"], item["fallback"])
                continue
            if kind != "batch":
                flush()  # rows of earlier batches first: an error or skip may end their videos
            if kind == "skip":
                ended(item["name"], item["why"])
            elif kind == "start":
                writer.start(item["name"], item["manifest"])
            elif kind == "error":
                writer.discard(item["name"])
                ended(item["name"], "failed", item["error"])
            else:
                out = {}
                for m in work.modalities:
                    x = item[m]
                    b, v = x.shape[:2]
                    if pad_batches and b < full:
                        x = torch.cat([x, x[-1:].expand(full - b, *x.shape[1:])])
                    f = models[m](to_model_input(x.flatten(0, 1), m, device), "extract_features")
                    f = f[: b * v].view(b, v, -1)
                    if device.type == "cuda":  # copied back without waiting: the GPU goes on to the next batch
                        out[m] = torch.empty(f.shape, dtype=f.dtype, pin_memory=True).copy_(f, non_blocking=True)
                    else:
                        out[m] = f.cpu()
                done = None
                if device.type == "cuda":
                    done = torch.cuda.Event()
                    done.record()
                flush()  # the previous batch is written while this one runs
                pending.append((item, out, done))
        flush()
    finally:
        pending.clear()
        for name in list(writer.open):  # interrupted: nothing half-written stays
            writer.discard(name)
            VideoLock(lock_path(work.out_dir, name), work.owner_pid).release()
    return result
