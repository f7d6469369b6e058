"""``run(cfg)`` for ``extract.py``: videos in, per-snippet I3D features out, resumable."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
from functools import partial
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from i3d_train.errors import ConfigError, ProtocolError
from i3d_train.features.pipeline import Job, StreamSettings, Work, run_pipeline
from i3d_train.features.summary import FAILED_SUFFIX, format_summary, record_inputs, record_shard, summarize, write_json
from i3d_train.features.writer import Writer
from i3d_train.flow.store import is_complete as is_flow_complete
from i3d_train.inference.fast import prepare
from i3d_train.models.i3d import InceptionI3d
from i3d_train.runtime.sharding import resolve_shard, select
from i3d_train.video.decoders import Decoder, DecoderError
from i3d_train.video.decoders import format_summary as format_decoding
from i3d_train.video.files import VIDEO_SUFFIXES, find_videos
from i3d_train.weights.loading import load_init_state_dict
from i3d_train.weights.safe_pickle import UnsafePickleError

log = logging.getLogger(__name__)


def flow_folder(root: Path, name: str) -> Path:
    """The stored flow of the video named ``name``: ``<root>/<name>``, or the longest tail of the name
    (leading folders dropped) that is a complete flow folder under ``root``. Names are paths relative to
    the list's (or input folder's) folder, the flow command names relative to its ``--src``: a list at
    ``data/list.txt`` naming ``videos/a/clip.mp4`` finds the flow of ``--src data/videos`` at
    ``<root>/a/clip``. None found: ``<root>/<name>`` (the video then fails with a one-line reason)."""
    parts = Path(name).parts
    for i in range(len(parts)):
        folder = root.joinpath(*parts[i:])
        if is_flow_complete(folder):
            return folder
    return root / name


def check_flow_options(cfg: DictConfig, modalities: list[str]) -> None:
    """Stored-flow options without the flow stream would be ignored: said instead, in one line."""
    if "flow" in modalities:
        return
    if cfg.flow.get("source") == "folder" or cfg.flow.get("root"):
        raise ConfigError(
            f"flow.source={cfg.flow.source} flow.root={cfg.flow.root} reads stored flow, but modalities={modalities} "
            "has no flow stream: add modalities=[rgb,flow] (or drop the flow options)"
        )


def list_inputs(spec: str | Path) -> list[tuple[Path, str]]:
    """``(video, name)`` pairs from a video file, a folder or a list file. Outputs are named by the path
    relative to the folder (for a list: the list file's folder), without suffix, so that videos with
    the same file name in different folders do not collide; two videos that would get the same name
    (or a list entry outside the list's folder) are refused with a one-line error."""
    p = Path(spec)
    if p.is_file() and p.suffix.lower() in (".txt", ".lst", ".list"):
        base = Path(os.path.normpath(p.parent.absolute()))
        out = []
        for lineno, line in enumerate(p.read_text().splitlines(), 1):
            entry = line.strip()
            if not entry:
                continue
            v = Path(os.path.normpath(base / entry))  # an absolute entry stays what it is
            if not v.is_relative_to(base):
                raise ConfigError(
                    f"{p}:{lineno}: {entry} is outside the list's folder {base} (outputs are named by the path "
                    "relative to it: put the list in a folder above the videos)"
                )
            out.append((v, v.relative_to(base).with_suffix("").as_posix()))
    elif p.is_file() and p.suffix.lower() not in VIDEO_SUFFIXES:
        raise ConfigError(f"input={p}: expected a video ({', '.join(sorted(VIDEO_SUFFIXES))}), a folder or a .txt list")
    else:
        try:
            out = find_videos(p)
        except FileNotFoundError as e:
            raise ConfigError(f"input={p}: no such file or folder") from e
    seen: dict[str, Path] = {}
    for v, name in out:
        if name in seen:
            raise ConfigError(f"input={p}: {seen[name]} and {v} would both be written as {name}_*.npy")
        seen[name] = v
    return out


def file_digest(path: str | Path) -> str:
    """sha1 of a file's bytes (the weights a feature was made with)."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def extraction_settings(cfg: DictConfig, modalities: list[str]) -> dict:
    """What a feature depends on: a finished video is skipped only if its manifest has the same
    ``common`` settings and, for each requested modality, the same weights (and flow options)."""
    out: dict = {
        "common": {
            "fps": cfg.fps,
            "stack": cfg.stack,
            "step": cfg.step,
            "short_side": cfg.short_side,
            "crop_size": cfg.crop_size,
            "crops": cfg.crops,
            "inference": {"fast": cfg.inference.fast, "precision": cfg.inference.precision},
        }
    }
    for m in modalities:
        out[m] = {"weights_sha1": file_digest(cfg.weights[m])}
        if m == "flow":
            out[m]["flow"] = {"source": cfg.flow.source, "method": cfg.flow.method, "bound": cfg.flow.bound}
            if cfg.flow.source == "folder":
                out[m]["flow"] = {"source": "folder", "root": str(Path(cfg.flow.root).absolute())}
    return out


def load_i3d(path: str | Path, modality: str) -> InceptionI3d:
    """An I3D for ``modality`` from any checkpoint the project loads (a two-stream run's stream too)."""
    try:
        sd = load_init_state_dict(path, modality)  # a two-stream run's checkpoint: that stream
    except (ProtocolError, UnsafePickleError) as e:
        raise ConfigError(str(e)) from None
    if "logits.conv3d.weight" not in sd or "Conv3d_1a_7x7.conv3d.weight" not in sd:
        raise ConfigError(f"{path}: not an I3D checkpoint")
    channels = sd["Conv3d_1a_7x7.conv3d.weight"].shape[1]
    if channels != {"rgb": 3, "flow": 2}[modality]:
        raise ConfigError(f"{path}: a {channels}-channel I3D cannot read {modality}")
    model = InceptionI3d(sd["logits.conv3d.weight"].shape[0], in_channels=channels)
    model.load_state_dict(sd, strict=True)
    return model.eval()


def finished(out_dir: Path, modalities: list[str], settings: dict, name: str) -> bool | None:
    """True: finished with these settings (a manifest covering ``modalities`` whose feature files exist;
    the manifest is written last); False: finished with other settings, or broken (extract again);
    None: not there."""
    path = Path(out_dir) / f"{name}.json"
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError:
        return False
    files = manifest.get("files") or {}
    if not (
        set(manifest.get("modalities", [])) >= set(modalities)
        and all((path.parent / f).is_file() for f in files.values())
    ):
        return False
    old = manifest.get("settings") or {}
    return old.get("common") == settings["common"] and all(old.get(m) == settings[m] for m in modalities)


def is_complete(out_dir: Path, modalities: list[str], settings: dict, name: str) -> bool:
    return finished(out_dir, modalities, settings, name) is True


def stream_settings(cfg: DictConfig) -> StreamSettings:
    if cfg.layout not in ("separate", "concat"):
        raise ConfigError(f"layout={cfg.layout}: expected separate or concat")
    if cfg.layout == "concat" and sorted(cfg.modalities) != ["flow", "rgb"]:
        raise ConfigError("layout=concat writes RGB and flow side by side: it needs modalities=[rgb,flow]")
    frame_size = None
    if cfg.get("frame_size"):
        if len(cfg.frame_size) != 2:
            raise ConfigError(f"frame_size={list(cfg.frame_size)}: expected [width, height]")
        frame_size = (int(cfg.frame_size[0]), int(cfg.frame_size[1]))
    return StreamSettings(
        fps=cfg.fps,
        stack=cfg.stack,
        step=cfg.step,
        short_side=cfg.short_side,
        crop_size=cfg.crop_size,
        crops=cfg.crops,
        batch_size=cfg.batch_size,
        flow_source=cfg.flow.source,
        flow_method=cfg.flow.method,
        flow_bound=cfg.flow.bound,
        frame_size=frame_size,
        flow_backend=cfg.flow.get("backend", "auto"),
        flow_device=cfg.flow.get("device"),
        flow_batch=cfg.flow.get("batch"),
    )


def run(cfg: DictConfig) -> dict:
    started = time.time()
    modalities = list(cfg.modalities)
    check_flow_options(cfg, modalities)
    settings = stream_settings(cfg)
    try:
        shard, origin = resolve_shard(cfg.extract.shard)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    device = cfg.inference.device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        decoder = Decoder(cfg.get("decoder", "auto"), device)
    except DecoderError as e:
        raise ConfigError(str(e)) from None
    models = {}
    for m in modalities:
        net = load_i3d(cfg.weights[m], m).to(device)
        models[m] = prepare(
            net, fast=cfg.inference.fast, precision=cfg.inference.precision, compile=cfg.inference.compile
        )
    out_dir = Path(cfg.output_dir)
    videos = list_inputs(cfg.input)
    record_inputs(out_dir, [name for _, name in videos], cfg.input)
    wanted = extraction_settings(cfg, modalities)
    mine = select(videos, shard)
    # finished with other settings (stride, crops, weights, ...): extracted again, and counted
    stale = {name for _, name in mine if finished(out_dir, modalities, wanted, name) is False}
    where = {name: video for video, name in mine}
    jobs = [Job(v, name, flow_folder(Path(cfg.flow.root), name) if cfg.flow.root else None) for v, name in mine]
    writer = Writer(
        out_dir,
        modalities,
        cfg.layout,
        cfg.crops == "ten_crop",
        manifest_extra={
            "weights": {m: str(cfg.weights[m]) for m in modalities},
            "settings": {k: v for k, v in wanted.items() if k == "common" or k in modalities},
            "shard": str(shard),
            "inference": {
                "fast": cfg.inference.fast,
                "precision": models[modalities[0]].dtype and str(models[modalities[0]].dtype),
            },
        },
    )
    work = Work(
        jobs,
        settings,
        modalities,
        out_dir,
        os.getpid(),
        partial(is_complete, out_dir, modalities, wanted),
        float(cfg.extract.lock_stale_after_s),
        decoder,
    )
    bar = tqdm(total=len(jobs), desc="features", unit="video")

    def on_video(name: str, status: str, error: str | None) -> None:
        bar.update(1)
        failed_record = out_dir / f"{name}{FAILED_SUFFIX}"
        if status == "failed":
            write_json(failed_record, {"video": str(where[name]), "error": error, "shard": str(shard)})
        elif status == "done":
            failed_record.unlink(missing_ok=True)

    result = run_pipeline(
        work,
        models,
        writer,
        num_workers=cfg.extract.num_workers,
        prefetch_factor=cfg.extract.prefetch_factor,
        on_video=on_video,
    )
    bar.close()
    failed = [(str(where[name]), why) for name, why in result["failed"]]
    summary = {
        "done": len(result["done"]),
        "skipped": len(result["complete"]),
        "reextracted": len(stale & set(result["done"])),
        "busy": len(result["busy"]),
        "failed": failed,
        "shard": str(shard),
        "videos": len(jobs),
        "output_dir": str(out_dir),
        "decoding": result["decoding"].summary(),
    }
    record_shard(
        out_dir,
        shard,
        {**summary, "failed": len(failed), "host": socket.gethostname(), "pid": os.getpid(), "ended": time.time()},
    )
    print(
        f"features: {summary['done']} done, {summary['skipped']} skipped (already complete), {len(failed)} failed; "
        f"{summary['reextracted']} of the done re-extracted (made with other settings) -> {out_dir}"
    )
    print(
        f"shard {shard} ({origin}): {len(jobs)} of {len(videos)} videos; "
        f"{summary['busy']} left to another process working on them"
    )
    if summary["done"] or result["decoding"].used:
        print(format_decoding(summary["decoding"]))
    for path, why in failed:
        print(f"  failed: {path}: {why}")
    if shard.index == 0 and shard.count > 1:
        print("across all shards so far (other shards may still be running; python -m i3d_train.features summary):")
        print(format_summary(summarize(out_dir, float(cfg.extract.lock_stale_after_s))))
    if cfg.get("wandb"):
        log_to_wandb(cfg, summary, shard, time.time() - started)
    return summary


def log_to_wandb(cfg: DictConfig, summary: dict, shard, seconds: float) -> None:
    """``wandb=true``: the extraction as a W&B run (job type ``extract``, one per shard, grouped by the
    output folder): its config and closing counts, decoders and failures included."""
    import wandb

    from i3d_train.runtime.wandb_mode import wandb_offline_unless_logged_in

    wandb_offline_unless_logged_in()
    out = Path(cfg.output_dir)
    run = wandb.init(
        project="i3d-train",
        job_type="extract",
        group=f"extract-{out.name}",
        name=f"extract-{out.name}-shard{shard.index}of{shard.count}",
        dir=str(out),
        config=OmegaConf.to_container(cfg, resolve=True),
        reinit="create_new",
    )
    failed = summary["failed"]
    run.summary.update(
        {**{k: v for k, v in summary.items() if k != "failed"}, "failed": len(failed), "seconds": round(seconds, 1)}
    )
    if failed:
        run.log({"failed": wandb.Table(columns=["video", "error"], data=[list(f) for f in failed])})
    run.finish()
