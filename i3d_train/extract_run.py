"""``run(cfg)`` for ``extract.py``: videos in, per-snippet I3D features out, resumable."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from tqdm import tqdm

from i3d_train.features import ExtractSettings, FeatureExtractor
from i3d_train.inference import prepare
from i3d_train.models.i3d import InceptionI3d
from i3d_train.pipeline import ConfigError
from i3d_train.protocols import ProtocolError, load_init_state_dict
from i3d_train.video.files import VIDEO_SUFFIXES, find_videos

log = logging.getLogger(__name__)


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


def is_done(manifest_path: Path, settings: dict, modalities: list[str]) -> bool | None:
    """True: finished with these settings; False: finished with others (re-extract); None: not there."""
    if not manifest_path.is_file():
        return None
    try:
        old = json.loads(manifest_path.read_text()).get("settings") or {}
    except json.JSONDecodeError:
        return False
    same = old.get("common") == settings["common"] and all(old.get(m) == settings[m] for m in modalities)
    return same and all((manifest_path.parent / f"{manifest_path.stem}_{m}.npy").is_file() for m in modalities)


def load_i3d(path: str | Path, modality: str) -> InceptionI3d:
    """An I3D for ``modality`` from any checkpoint the project loads (a two-stream run's stream too)."""
    try:
        sd = load_init_state_dict(path, modality)  # a two-stream run's checkpoint: that stream
    except ProtocolError as e:
        raise ConfigError(str(e)) from None
    if "logits.conv3d.weight" not in sd or "Conv3d_1a_7x7.conv3d.weight" not in sd:
        raise ConfigError(f"{path}: not an I3D checkpoint")
    channels = sd["Conv3d_1a_7x7.conv3d.weight"].shape[1]
    if channels != {"rgb": 3, "flow": 2}[modality]:
        raise ConfigError(f"{path}: a {channels}-channel I3D cannot read {modality}")
    model = InceptionI3d(sd["logits.conv3d.weight"].shape[0], in_channels=channels)
    model.load_state_dict(sd, strict=True)
    return model.eval()


def _save_npy(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp.npy")
    np.save(tmp, array)
    os.replace(tmp, path)


def run(cfg: DictConfig) -> dict:
    modalities = list(cfg.modalities)
    device = cfg.inference.device or ("cuda" if torch.cuda.is_available() else "cpu")
    models = {}
    for m in modalities:
        net = load_i3d(cfg.weights[m], m).to(device)
        models[m] = prepare(
            net, fast=cfg.inference.fast, precision=cfg.inference.precision, compile=cfg.inference.compile
        )
    settings = ExtractSettings(
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
    )
    extractor = FeatureExtractor(models, settings)
    out_dir = Path(cfg.output_dir)
    videos = list_inputs(cfg.input)
    wanted = extraction_settings(cfg, modalities)
    done, skipped, redone, failed = 0, 0, 0, []
    for video, name in tqdm(videos, desc="features", unit="video"):
        manifest_path = out_dir / f"{name}.json"
        state = is_done(manifest_path, wanted, modalities)
        if state:
            skipped += 1
            continue
        try:
            flow_dir = Path(cfg.flow.root) / name if cfg.flow.root else None
            feats, manifest = extractor.extract(video, flow_dir)
        except Exception as e:  # noqa: BLE001 - one bad video must not stop the others
            failed.append((str(video), f"{type(e).__name__}: {e}"))
            continue
        manifest_path.parent.mkdir(parents=True, exist_ok=True)
        for m, f in feats.items():
            _save_npy(out_dir / f"{name}_{m}.npy", f)
        manifest["weights"] = {m: str(cfg.weights[m]) for m in modalities}
        manifest["settings"] = {k: v for k, v in wanted.items() if k == "common" or k in modalities}
        manifest["files"] = {m: f"{Path(name).name}_{m}.npy" for m in modalities}
        manifest["inference"] = {
            "fast": cfg.inference.fast,
            "precision": models[modalities[0]].dtype and str(models[modalities[0]].dtype),
        }
        tmp = manifest_path.with_name(manifest_path.name + ".tmp")
        tmp.write_text(json.dumps(manifest, indent=2))
        os.replace(tmp, manifest_path)  # written last: its presence means the video is complete
        done += 1
        redone += state is False
    summary = {"done": done, "skipped": skipped, "reextracted": redone, "failed": failed, "output_dir": str(out_dir)}
    print(
        f"features: {done} done, {skipped} skipped (already complete), {len(failed)} failed; "
        f"{redone} of the done re-extracted (made with other settings) -> {out_dir}"
    )
    for path, why in failed:
        print(f"  failed: {path}: {why}")
    return summary
