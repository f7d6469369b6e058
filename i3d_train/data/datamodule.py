"""The DataModule: split lists from a dataset parser, clips shaped as the model asks.

The model config declares what it consumes (``model.input``: frames, fps, stride, crop, modalities);
the data config may shrink it for small data (``data.input_small``, used by the synthetic set so a
CPU run is quick). Train clips: random start, random crop, flip. Validation: one center clip, center
crop. Test (``test_protocol``): ``clips``: ``test_clips`` uniform clips x ``test_crops`` (1 center or 3
along the long side); ``center``: one center clip; ``paper``: the whole video, center crop, as the
model's ``input.paper_test`` says (the paper's Table 1 test input; batch size 1). Scores are averaged per video by the LightningModule.
Validation (best checkpoint, plateau schedule) never sees the test list by default
(``val_source=held_out``): Kinetics-400 uses its official ``val``, UCF-101 and HMDB-51 hold about
``val_fraction`` of the training list out (:func:`i3d_train.data.splits.with_validation`);
``val_source=test`` validates on the test list, as many UCF-101 / HMDB-51 papers did.

Flow clips (``flow`` among the model's modalities) are read from ``data.flow_root``: one folder per
video named like the video's path relative to the video folder, without its suffix, which is what
``python -m i3d_train.flow --src <video folder> --dst <flow_root>`` writes. With ``data.flow_extract``
set (the synthetic set's default, Farneback), missing flow is computed in ``prepare_data``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from i3d_train.data.dataset import VideoDataset, VideoItem
from i3d_train.data.hmdb51 import parse_hmdb51
from i3d_train.data.kinetics import parse_kinetics400
from i3d_train.data.samplers import (
    CenterClipSampler,
    ClipSampler,
    RandomClipSampler,
    SeededSampler,
    UniformClipSampler,
    WholeVideoSampler,
)
from i3d_train.data.splits import DatasetFormatError, SplitLists, with_validation
from i3d_train.data.synthetic import SyntheticConfig, generate
from i3d_train.data.transforms import ClipTransform
from i3d_train.data.ucf101 import parse_ucf101
from i3d_train.data.video_list import parse_video_list
from i3d_train.errors import ConfigError
from i3d_train.flow.compute import METHODS
from i3d_train.flow.store import check_fps, is_complete, read_meta
from i3d_train.flow.video import ExtractOptions
from i3d_train.video.decoders import DECODERS, Decoder, DecoderError

log = logging.getLogger(__name__)

TEST_PROTOCOLS = ("clips", "center", "paper")

# Dataset name -> parser of its official annotation files (root, split) -> SplitLists.
PARSERS = {
    "ucf101": parse_ucf101,
    "synthetic": parse_ucf101,  # written in UCF-101's layout
    "hmdb51": parse_hmdb51,
    "kinetics400": parse_kinetics400,
    "list": parse_video_list,  # your own videos: <root>/train.txt, test.txt of "<path> <label>" lines
}


@dataclass(frozen=True)
class ClipSpec:
    """What a model consumes: ``num_frames`` frames every ``frame_stride`` at ``fps``, ``crop_size`` crops,
    of ``modalities``; flow may have its own number of frames and stride (same start)."""

    num_frames: int = 64  # paper: 64-frame training clips for I3D (Sec. 2.5)
    fps: float | None = 25.0  # paper: everything at 25 fps
    frame_stride: int = 1
    resize: int | tuple[int, int] = 256  # short side (paper: 256), or an exact (height, width) (C3D: 128 x 171)
    crop_size: int = 224  # paper: 224x224 crops of frames resized to short side 256
    modalities: tuple[str, ...] = ("rgb",)
    flow_frames: int | None = None  # flow frames per clip when not num_frames (Two-Stream: 10 for 1 RGB frame)
    flow_stride: int | None = None  # step between flow frames when not frame_stride
    test_clips: int | None = None  # clips per test video when the model has its own (Two-Stream: 25)
    # The paper's test input (data.test_protocol=paper, Table 1): `whole`: one clip of every frame of the
    # video at the model's stride, the model averages over time (I3D, ConvNet+LSTM); `tile`: the training
    # clip repeated back to back over the whole video, scores averaged (C3D, Two-Stream, 3D-Fused).
    paper_test: str = "whole"

    @classmethod
    def from_config(cls, spec: dict[str, Any], *overrides: dict[str, Any] | None) -> ClipSpec:
        """The model's ``input``, with the fields each override sets (``None`` values: not set)."""
        merged = dict(spec)
        for override in overrides:
            merged.update({k: v for k, v in dict(override or {}).items() if v is not None})
        unknown = set(merged) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown model.input keys {sorted(unknown)}; expected {sorted(cls.__dataclass_fields__)}")
        if "modalities" in merged:
            merged["modalities"] = tuple(merged["modalities"])
        if not isinstance(merged.get("resize", 256), int):
            merged["resize"] = tuple(int(v) for v in merged["resize"])
        if merged.get("paper_test", "whole") not in ("whole", "tile"):
            raise ValueError(f"model.input.paper_test must be 'whole' or 'tile', got {merged['paper_test']!r}")
        return cls(**merged)


def attach_folders(item: VideoItem, frames_root: Path | None, flow_root: Path | None) -> VideoItem:
    """``item`` with its frame and flow folders: ``<root>/<video id without suffix>`` (None: not used)."""
    stem = Path(item.video_id).with_suffix("")
    return replace(
        item,
        frames_dir=frames_root / stem if frames_root is not None else None,
        flow_dir=flow_root / stem if flow_root is not None else None,
    )


SPLITS = ("train", "val", "test")


def item_exists(item: VideoItem) -> bool:
    """Its frame folder, if it is read from one, else its video file."""
    return item.frames_dir.is_dir() if item.frames_dir is not None else item.path.is_file()


def _check_items(name: str, split: str, items: list[VideoItem], where: Path, storage: str = "video") -> list[VideoItem]:
    """Drop missing videos (or frame folders) with one summary line; stop if nothing is left."""
    found = [it for it in items if item_exists(it)]
    what = "frame folders" if storage == "frames" else "videos"
    if len(found) < len(items):
        log.warning("%s %s: %s of %s %s found", name, split, f"{len(found):,}", f"{len(items):,}", what)
    if not found:
        raise DatasetFormatError(f"{name} {split}: none of the {len(items):,} listed {what} exist under {where}")
    return found


def _check_flow(
    name: str,
    split: str,
    items: list[VideoItem],
    flow_root: Path,
    hint: str,
    fps: float | None = None,
    method: str | None = None,
) -> list[VideoItem]:
    """Drop items without a complete flow folder with one summary line; stop if nothing is left, or if
    the flow was stored at another frame rate than the model's or computed with another method than
    ``method`` (checked on the first folder; each clip's folder is checked again when it is read)."""
    found = [it for it in items if is_complete(it.flow_dir)]
    if found:
        try:
            check_fps(read_meta(found[0].flow_dir, method), fps, found[0].flow_dir)
        except ValueError as e:
            raise DatasetFormatError(str(e)) from None
    if len(found) < len(items):
        log.warning(
            "%s %s: %s of %s flow folders found in %s (%s)",
            *(name, split, f"{len(found):,}", f"{len(items):,}", flow_root, hint),
        )
    if not found:
        raise DatasetFormatError(
            f"{name} {split}: no flow folders in {flow_root} ({hint}){misplaced_flow(items, flow_root)}"
        )
    return found


def misplaced_flow(items: list[VideoItem], flow_root: Path) -> str:
    """Where the flow of ``items`` is if not under ``flow_root``: one folder up or down (the flow
    command's ``--dst`` given without, or with another, method folder), as a hint to append."""
    candidates = [flow_root.parent, *sorted(p for p in flow_root.parent.glob("*") if p.is_dir() and p != flow_root)]
    for root in candidates:
        for it in items[:50]:
            if it.flow_dir is None:
                continue
            moved = root / it.flow_dir.relative_to(flow_root)
            if is_complete(moved):
                return f"; but {root} holds them: set data.flow_root={root}"
    return ""


class VideoDataModule(pl.LightningDataModule):
    """Train/val/test loaders for a dataset in one of the supported layouts.

    Args:
        name: ``ucf101``, ``hmdb51``, ``kinetics400`` or ``synthetic`` (:data:`PARSERS`).
        root: the dataset's root folder.
        split: official split number (1-3).
        num_classes: expected number of classes (checked against the annotation files).
        input: the model's ``ClipSpec`` fields (``model.input``): frames, rate, stride, resize, crop, ...
        input_small: if set (the synthetic recipe sets ``model.input_small``), fields of ``input``
            replaced by the model's small variant.
        input_override: fields of ``input`` replaced by the user (``None`` values: not replaced), e.g.
            ``data.input_override='{num_frames: 16, crop_size: 112}'``.
        batch_size: clips per batch (per process).
        num_workers: DataLoader workers.
        test_clips: uniform clips per video at test time (``test_protocol=clips``).
        test_protocol: ``clips`` (uniform clips x crops), ``center`` (one center clip x crops) or
            ``paper`` (the whole video, center crop).
        test_crops: spatial crops per test clip: 1 (center) or 3.
        seed: seeds the training order and every sample's augmentation (with the epoch).
        global_batch_size: if set, the batch over all processes (``batch_size`` is then ignored):
            each process gets ``global_batch_size / world_size`` (``trainer=ddp`` sets it).
        flip: random left-right flips in training (paper: yes; off for data whose classes are
            mirror images of each other, like the synthetic set's left/right motions).
        synthetic: parameters of the synthetic set (``name=synthetic`` only).
        flow_root: folder of stored flow (needed when the model reads ``flow``).
        flow_extract: if set, ``{method, fps, short_side, bound, workers, backend, device, batch}`` to
            compute missing flow
            into ``flow_root`` before training (``python -m i3d_train.flow`` does the same by hand).
        flow_method: the flow the model reads, ``tvl1`` or ``farneback`` (default: ``flow_extract``'s
            method, else ``tvl1``); stored flow of another method (``meta.json``) is an error.
        storage: ``video`` (decode the files) or ``frames`` (read ``frames_root/<video id without
            suffix>/img_00001.jpg``, ...).
        frames_root: folder of the frame folders.
        frames_fps: the rate the frames were extracted at.
        decoder: ``auto`` (NVDEC when training on a GPU and the codec allows, else PyAV) | ``pyav`` |
            ``nvdec`` (:mod:`i3d_train.video.decoders`); workers then start with ``spawn``.
        pin_memory: batches in pinned memory (None: when the Trainer runs on a GPU).
        prefetch_factor: batches each worker prepares ahead.
    """

    def __init__(
        self,
        name: str,
        root: str,
        split: int,
        num_classes: int,
        input: dict[str, Any],
        input_override: dict[str, Any] | None,
        batch_size: int,
        num_workers: int,
        test_clips: int,
        flip: bool = True,
        synthetic: dict[str, Any] | None = None,
        pin_memory: bool | None = None,
        flow_root: str | None = None,
        flow_extract: dict[str, Any] | None = None,
        storage: str = "video",
        frames_root: str | None = None,
        frames_fps: float = 25.0,
        test_protocol: str = "clips",
        test_crops: int = 1,
        seed: int = 0,
        global_batch_size: int | None = None,
        input_small: dict[str, Any] | None = None,
        val_source: str = "held_out",
        val_fraction: float = 0.1,
        flow_method: str | None = None,
        decoder: str = "auto",
        prefetch_factor: int = 2,
    ) -> None:
        super().__init__()
        if decoder not in DECODERS:
            raise ValueError(f"data.decoder must be one of {', '.join(DECODERS)}, got {decoder!r}")
        self.decoder = decoder
        self.prefetch_factor = prefetch_factor
        self.val_source = val_source
        self.val_fraction = val_fraction
        self.name = name
        self.root = Path(root)
        self.split = split
        self.num_classes = num_classes
        self.clip = ClipSpec.from_config(input, input_small, input_override)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.test_clips = test_clips
        if test_protocol not in TEST_PROTOCOLS:
            raise ValueError(f"data.test_protocol must be one of {', '.join(TEST_PROTOCOLS)}, got {test_protocol!r}")
        if test_crops not in (1, 3):
            raise ValueError(f"data.test_crops must be 1 or 3, got {test_crops}")
        self.test_protocol = test_protocol
        self.seed = seed
        self.global_batch_size = global_batch_size
        self.test_crops = test_crops
        self.flip = flip
        self.synthetic = SyntheticConfig(**(synthetic or {})) if name == "synthetic" else None
        self.pin_memory = pin_memory
        if storage not in ("video", "frames"):
            raise ValueError(f"data.storage must be 'video' or 'frames', got {storage!r}")
        if storage == "frames" and not frames_root:
            raise DatasetFormatError("data.storage=frames needs data.frames_root (folders of img_00001.jpg, ...)")
        self.storage = storage
        self.frames_root = Path(frames_root) if frames_root else None
        self.frames_fps = frames_fps
        self.uses_flow = "flow" in self.clip.modalities
        self.flow_root = Path(flow_root) if flow_root else None
        self.flow_extract = dict(flow_extract or {})
        self.flow_method = flow_method or self.flow_extract.get("method") or "tvl1"
        if self.flow_method not in METHODS:
            raise ValueError(f"data.flow_method must be one of {METHODS}, got {self.flow_method!r}")
        if self.flow_extract and self.flow_extract.setdefault("method", self.flow_method) != self.flow_method:
            raise ValueError(
                f"data.flow_extract.method={self.flow_extract['method']} but data.flow_method={self.flow_method}: "
                "flow is read as it is extracted, set both to the same method"
            )
        if self.uses_flow and self.flow_root is None:
            raise DatasetFormatError(
                "the model reads flow but data.flow_root is not set (extract it with "
                "`python -m i3d_train.flow --src <videos> --dst <flow_root>`, then data.flow_root=<flow_root>)"
            )
        self.lists: SplitLists | None = None
        self._parsed: tuple[str, ...] = ()  # the lists setup() checked
        self.train_set: VideoDataset | None = None
        self.val_set: VideoDataset | None = None
        self.test_set: VideoDataset | None = None
        if self.synthetic and self.synthetic.num_classes != num_classes:
            raise ValueError(f"data.num_classes={num_classes} but the synthetic set has {self.synthetic.num_classes}")

    def prepare_data(self) -> None:
        if self.synthetic is not None:
            generate(self.root, self.synthetic)
        if self.uses_flow and self.flow_extract:
            self.extract_flow()

    def extract_flow(self) -> dict:
        """Compute the flow of every listed video that has none yet (resumable, parallel)."""
        from i3d_train.flow.parallel import extract_many

        opts = dict(self.flow_extract)
        workers = int(opts.pop("workers", max(1, self.num_workers)))
        lists = self.parse(check_flow=False)
        items = {it.video_id: it for it in lists.train + (lists.val or []) + lists.test}.values()
        pairs = [(it.path, it.flow_dir) for it in items]
        todo = sum(not is_complete(f) for _, f in pairs)
        if not todo:
            return {"done": 0, "skipped": len(pairs), "failed": []}
        log.info("computing %s flow of %d videos into %s", opts.get("method", "tvl1"), todo, self.flow_root)
        summary = extract_many(pairs, ExtractOptions(**opts), workers)
        log.info(
            "flow: %d done, %d failed, %.0f frames/s per worker",
            summary["done"],
            len(summary["failed"]),
            summary["fps_per_worker"],
        )
        for path, why in summary["failed"][:5]:
            log.warning("flow failed: %s: %s", path, why)
        return summary

    def parse(self, check_flow: bool = True, splits: tuple[str, ...] = SPLITS) -> SplitLists:
        """Parse the annotations, attach frame/flow folders, drop items whose data is missing (one
        summary line per split), and stop if a split is left empty.

        Only the lists in ``splits`` are checked (evaluation reads the test list, and the validation
        list when it evaluates on it): a Kinetics-400 copy with only ``val.csv`` and its videos can be
        evaluated without the training list.
        """
        if self.name not in PARSERS:
            raise ValueError(f"unknown dataset {self.name!r}; expected one of: {', '.join(PARSERS)}")
        if self.name == "kinetics400":
            # the files a run needs: train.csv to train, val.csv to validate; the test list is
            # test.csv when labelled, else val.csv (either is enough to evaluate)
            raw = parse_kinetics400(self.root, self.split, required=tuple(s for s in ("train", "val") if s in splits))
        else:
            raw = PARSERS[self.name](self.root, self.split)
        lists = with_validation(raw, self.name, self.val_source, self.val_fraction)
        if "test" in splits and not lists.test:
            raise DatasetFormatError(
                f"{self.root}: no labelled test list to evaluate on (Kinetics-400: annotations/val.csv or a labelled test.csv)"
            )
        if "val" in splits and not lists.val:
            raise DatasetFormatError(
                f"{self.name} split {self.split}: no validation videos ({lists.val_rule}); raise data.val_fraction "
                "or set data.val_source=test"
            )
        if len(lists.classes) != self.num_classes:
            raise DatasetFormatError(
                f"{self.root}: annotations list {len(lists.classes)} classes, config says data.num_classes={self.num_classes}"
            )
        method = "" if self.flow_method == "tvl1" else f" --method {self.flow_method}"
        hint = f"python -m i3d_train.flow --src {lists.video_dir} --dst {self.flow_root}{method}"
        for split in splits:
            items = getattr(lists, split)
            items = [self.attach(it) for it in items]
            items = _check_items(self.name, split, items, self.root, self.storage)
            if self.uses_flow and check_flow:
                items = _check_flow(self.name, split, items, self.flow_root, hint, self.clip.fps, self.flow_method)
            setattr(lists, split, items)
        return lists

    def attach(self, item: VideoItem) -> VideoItem:
        """The item with its frame folder (``storage=frames``) and flow folder (``flow_root``) set."""
        return attach_folders(item, self.frames_root if self.storage == "frames" else None, self.flow_root)

    def dataset(self, items: list[VideoItem], train: bool, sampler, crops: int = 1) -> VideoDataset:
        c = self.clip
        return VideoDataset(
            items,
            num_frames=c.num_frames,
            fps=c.fps,
            frame_stride=c.frame_stride,
            sampler=sampler,
            transform=ClipTransform(c.resize, c.crop_size, train=train, flip=self.flip, crops=crops),
            modalities=c.modalities,
            flow_frames=c.flow_frames,
            flow_stride=c.flow_stride,
            frames_fps=self.frames_fps,
            flow_method=self.flow_method if self.uses_flow else None,
            decoder=self.video_decoder(),
        )

    def _device(self) -> str:
        """Where the model runs (the attached Trainer's device; the CPU without one)."""
        trainer = getattr(self, "trainer", None)
        root = getattr(getattr(trainer, "strategy", None), "root_device", None)
        return str(root) if root is not None else "cpu"

    def video_decoder(self) -> Decoder:
        """The decoder of the video files (``data.decoder``), for the device the model runs on."""
        try:
            return Decoder(self.decoder if self.storage == "video" else "pyav", self._device())
        except DecoderError as e:
            raise ConfigError(str(e)) from None

    def setup(self, stage: str | None = None) -> None:
        # evaluation (stage "test") reads the test list, and the validation list when it is held out
        # (eval.py split=val); training reads all three
        if stage in ("test", "predict"):
            splits = ("val", "test") if self.val_source != "test" else ("test",)
        else:
            splits = SPLITS
        if self.lists is not None and set(splits) <= set(self._parsed):
            return  # already set up for these lists (a later stage needing more parses again)
        if self.synthetic is not None:  # in-process callers (tests) may skip prepare_data
            generate(self.root, self.synthetic)
        self.lists = self.parse(splits=splits)
        self._parsed = splits
        if "train" in splits:
            self.train_set = self.dataset(self.lists.train, True, RandomClipSampler())
        if "val" in splits:
            self.val_set = self.dataset(self.lists.val, False, CenterClipSampler())
        self.test_set = self.dataset(self.lists.test, False, self.test_sampler(), self.test_crops)

    @property
    def val_info(self) -> dict[str, str]:
        """Where the validation videos come from (``metrics.json`` and the run summary say it)."""
        if self.lists is None:
            return {"val_source": self.val_source}
        return {"val_source": self.lists.val_source, "val_rule": self.lists.val_rule}

    def test_sampler(self) -> ClipSampler:
        if self.test_protocol == "paper":
            return WholeVideoSampler(tiles=self.clip.paper_test == "tile")
        if self.test_protocol == "center":
            return CenterClipSampler()
        return UniformClipSampler(self.clip.test_clips or self.test_clips)

    @property
    def classes(self) -> list[str]:
        if self.lists is None:
            self.setup()
        return self.lists.classes

    def _loader(
        self, ds: VideoDataset, shuffle: bool, batch_size: int | None = None, sampler: SeededSampler | None = None
    ) -> DataLoader:
        bs = batch_size or self.per_process_batch
        workers = self.num_workers
        spawn = workers > 0 and ds.decoder.wants_gpu  # NVDEC in the workers: CUDA does not survive a fork
        pin = self.pin_memory if self.pin_memory is not None else self._device().startswith("cuda")
        return DataLoader(
            ds,
            batch_size=bs,
            sampler=sampler,
            num_workers=workers,
            pin_memory=pin,
            prefetch_factor=self.prefetch_factor if workers > 0 else None,
            multiprocessing_context="spawn" if spawn else None,
            drop_last=shuffle and len(ds) > bs,
            # spawned workers start a new interpreter: kept for the whole run rather than every epoch
            persistent_workers=spawn,
            # its own generator: creating a loader never draws from the global one (exact resumes)
            generator=torch.Generator().manual_seed(self.seed),
        )

    def _world(self) -> tuple[int, int]:
        """(number of processes, this process's rank) from the Trainer, if attached."""
        trainer = getattr(self, "trainer", None)
        return (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)

    @property
    def per_process_batch(self) -> int:
        """``batch_size`` per process, or ``global_batch_size`` split over the processes."""
        if not self.global_batch_size:
            return self.batch_size
        world, _ = self._world()
        if self.global_batch_size % world:
            raise ConfigError(
                f"data.global_batch_size={self.global_batch_size} does not split over {world} processes: "
                f"use a multiple of {world} (e.g. {max(world, self.global_batch_size // world * world)})"
            )
        return self.global_batch_size // world

    def train_dataloader(self) -> DataLoader:
        world, rank = self._world()
        sampler = SeededSampler(self.train_set, self.seed, shuffle=True, num_replicas=world, rank=rank)
        return self._loader(self.train_set, shuffle=True, sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        # whole videos (the paper's protocol) differ in length: one per batch
        return self._loader(self.test_set, shuffle=False, batch_size=1 if self.test_protocol == "paper" else None)
