"""One LightningModule for every architecture: loss, optimiser, metrics, clip -> video averaging.

Accuracy is reported at two levels, so it is always clear what a number means:
- clip level (``*/acc_top1``): one prediction per sampled clip;
- video level (``*/video_acc_top1``, ``*/video_acc_top5``, ``*/video_mean_class_acc``): the softmax
  scores of every clip of a video averaged, one prediction per video (the paper's test protocol
  averages predictions over the whole video).
Clip scores are gathered across processes, the copies DistributedSampler pads with are dropped (each
``(video_index, clip_index)`` once), and the rest averaged per ``video_index``: every video counts once
whatever the number of clips or processes.

Multi-stream nets (Two-Stream I3D) return ``{stream: logits}``: each stream has its own loss (summed),
and metrics are logged per stream and for their fusion, the average of the streams' softmax scores
(``val/rgb/video_acc_top1``, ``val/flow/video_acc_top1``, ``val/fused/video_acc_top1``); the
unprefixed names (``val/video_acc_top1``, which checkpointing watches) are the fused ones.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from i3d_train.engine.metrics import MAX_VIEWS, first_occurrences, fuse, video_level_scores, video_metrics
from i3d_train.engine.trainer_options import to_channels_last
from i3d_train.models.freezing import keep_frozen_batchnorm_in_eval


class VideoClassifier(pl.LightningModule):
    """Trains any ``nn.Module`` that maps a batch's input to logits ``(N, num_classes)``.

    What the net reads: a net with a ``modalities`` attribute gets the dict ``{m: batch[m]}`` of
    those modalities; any other net gets the tensor ``batch[modality]``. What it returns: logits
    ``(N, C)``; per-step logits ``(N, T, C)`` (a loss at every step, the clip predicted by the last);
    or a dict ``{stream: logits}`` of streams fused by score averaging, each with its own loss, or one
    loss on the fused scores when the net sets ``train_on_fusion``.

    Args:
        net: the architecture (``model.net``).
        num_classes: number of classes.
        modality: the batch key a single-input net reads (``rgb`` or ``flow``).
        optimizer: partial of a ``torch.optim`` class (Hydra ``_partial_: true``), called with the params.
        scheduler: partial of a scheduler, or None.
        scheduler_monitor: metric a plateau scheduler watches (paper: validation loss).
        channels_last: hold the net's 3D convolution weights and the 5-D inputs in ``channels_last_3d``
            (``model.channels_last``: set per model where it is faster; ``benchmarks/train_speed.py``).
    """

    def __init__(
        self,
        net: nn.Module,
        num_classes: int,
        modality: str,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        scheduler_monitor: str = "val/loss",
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"], logger=False)
        self.net = net
        self.num_classes = num_classes
        self.modality = modality
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.scheduler_monitor = scheduler_monitor
        self.channels_last = channels_last
        if channels_last:
            to_channels_last(self.net)
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self._eval_outputs: list[tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor], torch.Tensor]] = []
        self.skipped_videos = 0  # unreadable videos replaced during training (this process)
        self.final_metrics: dict[str, dict[str, float]] = {}
        # per stage: {"video_index" (V,), "label" (V,), "scores": {stream: (V, C) averaged softmax}}
        self.video_outputs: dict[str, dict[str, Any]] = {}

    def train(self, mode: bool = True) -> VideoClassifier:
        """Also keeps frozen batch norms (protocol ``fixed``) in eval mode when the module is switched."""
        super().train(mode)
        if mode:
            keep_frozen_batchnorm_in_eval(self.net)
        return self

    def on_train_epoch_start(self) -> None:
        """Frozen batch norms (protocol ``fixed``) in eval mode for training. Lightning 2.x does not call
        :meth:`train` when fit starts (modules keep the mode they were built in, and the validation loop
        restores the modes it found), so this hook, not ``train()``, is what holds them there."""
        keep_frozen_batchnorm_in_eval(self.net)

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        """A clip ``(N, C, T, H, W)`` in the net's memory format (6-D tiled batches are flattened first)."""
        return x.contiguous(memory_format=torch.channels_last_3d) if self.channels_last and x.dim() == 5 else x

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor | dict[str, torch.Tensor]:
        modalities = getattr(self.net, "modalities", None)
        if modalities is not None:
            return self.net({m: self._input(batch[m]) for m in modalities})
        return self.net(self._input(batch[self.modality]))

    def _outputs(
        self, batch: dict[str, torch.Tensor]
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor]:
        """``(raw, clip, scores)``: the net's outputs per stream (one unnamed stream for a plain net),
        the clip logits per stream (for per-step outputs ``(N, T, C)``, the last step, as ConvNet+LSTM
        predicts), and the clip scores: the fused softmax of several streams, or the one stream's logits."""
        out = self(batch)
        raw = out if isinstance(out, dict) else {"": out}
        clip = {s: o[:, -1] if o.dim() == 3 else o for s, o in raw.items()}
        return raw, clip, fuse(clip) if len(clip) > 1 else clip[""]

    def _loss(
        self, raw: dict[str, torch.Tensor], scores: torch.Tensor, labels: torch.Tensor, stage: str, n: int
    ) -> torch.Tensor:
        """Cross-entropy: per stream, summed (on every time step of per-step outputs), or on the fused
        scores for nets trained through their fusion (``net.train_on_fusion``). In fp32 whatever the
        precision the net ran in."""
        sync = stage != "train"
        losses = {}
        for s, o in raw.items():
            o = o.float()
            if o.dim() == 3:  # (N, T, C): a loss at every step
                losses[s] = F.cross_entropy(o.flatten(0, 1), labels.repeat_interleave(o.shape[1]))
            else:
                losses[s] = F.cross_entropy(o, labels)
        if len(losses) > 1:
            for s, v in losses.items():
                self.log(f"{stage}/{s}/loss", v, batch_size=n, sync_dist=sync)
            if getattr(self.net, "train_on_fusion", False):
                return F.nll_loss(scores.clamp_min(1e-12).log(), labels)
        return torch.stack(list(losses.values())).sum()

    # --- training ---------------------------------------------------------------------------------

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        raw, _, scores = self._outputs(batch)
        n = batch["label"].shape[0]
        loss = self._loss(raw, scores, batch["label"], "train", n)
        self.train_acc(scores.float(), batch["label"])  # fp32 scores, also under mixed precision
        self.log("train/loss", loss, prog_bar=True, batch_size=n)
        self.log("train/acc_top1", self.train_acc, prog_bar=True, on_step=False, on_epoch=True, batch_size=n)
        if "skipped" in batch:
            self.skipped_videos += int(batch["skipped"].sum())  # this process, whole run
        # per epoch, summed: unreadable videos replaced; clips PyAV decoded instead of NVDEC (data.decoder on a GPU)
        for key, name in (("skipped", "train/skipped_videos"), ("decoder_fallback", "train/decoder_fallbacks")):
            if key in batch:
                self.log(name, batch[key].sum().float(), on_step=False, on_epoch=True, reduce_fx="sum", batch_size=n)
        return loss

    # --- evaluation -------------------------------------------------------------------------------

    def _eval_step(self, batch: dict[str, torch.Tensor], stage: str) -> None:
        labels = batch["label"]
        n = labels.shape[0]
        # The paper's test input of fixed-length models: K clips of one video per sample, (N, K, C, T, H, W).
        clips = [m for m in ("rgb", "flow") if m in batch]
        tiles = batch[clips[0]].shape[1] if batch[clips[0]].dim() == 6 else 1
        if batch[clips[0]].dim() == 6:
            batch = {**batch, **{m: batch[m].flatten(0, 1) for m in clips}}
            labels = labels.repeat_interleave(tiles)
        raw, streams, scores = self._outputs(batch)
        self.log(f"{stage}/loss", self._loss(raw, scores, labels, stage, n), batch_size=n, sync_dist=True)
        probs = {s: o.float().softmax(-1) for s, o in streams.items()}
        if len(probs) > 1:
            probs["fused"] = scores.float()
        probs = {s: p.view(n, tiles, -1).mean(1) for s, p in probs.items()}  # the clips of a sample averaged
        if stage == "val":
            self.val_acc(probs["fused"] if "fused" in probs else probs[""], batch["label"])
            self.log("val/acc_top1", self.val_acc, batch_size=n)
        self._eval_outputs.append((batch["video_index"], batch["clip_index"], probs, batch["label"]))

    def _eval_epoch_end(self, stage: str) -> None:
        if not self._eval_outputs:
            return
        idx, views, labels = (torch.cat([o[i] for o in self._eval_outputs]) for i in (0, 1, 3))
        probs = {s: torch.cat([o[2][s] for o in self._eval_outputs]) for s in self._eval_outputs[0][2]}
        self._eval_outputs.clear()
        if self.trainer.world_size > 1:  # every process's clips
            idx, views, labels = (self.all_gather(t).flatten(0, 1) for t in (idx, views, labels))
            probs = {s: self.all_gather(p).flatten(0, 1) for s, p in probs.items()}
        # DistributedSampler pads with repeated samples: keep each (video, view) once.
        keep = first_occurrences(idx * MAX_VIEWS + views)
        idx, labels = idx[keep], labels[keep]
        metrics: dict[str, float] = {}
        videos: dict[str, torch.Tensor] = {}
        for s, p in probs.items():
            vscores, vlabels, seen = video_level_scores(idx, p[keep], labels)
            videos[s] = vscores
            m = video_metrics(vscores, vlabels, self.num_classes)
            metrics.update({(f"{s}/{k}" if s else k): v for k, v in m.items()})
            if s == "fused":  # the model's own numbers are the fused ones
                metrics.update(m)
        self.final_metrics[stage] = metrics
        self.video_outputs[stage] = {"video_index": seen.nonzero().flatten(), "label": vlabels, "scores": videos}
        for k, v in metrics.items():
            self.log(f"{stage}/{k}", v, prog_bar=k == "video_acc_top1", rank_zero_only=True)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")

    # --- exact resumes ----------------------------------------------------------------------------

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep the global random states (dropout draws from them), as plain types."""
        np_state = np.random.get_state()
        checkpoint["rng_states"] = {
            "torch": torch.get_rng_state(),
            "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
            "python": random.getstate(),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._rng_states = checkpoint.get("rng_states")

    def on_train_start(self) -> None:
        """A resumed run continues with the random states the interrupted one had at its checkpoint."""
        states = getattr(self, "_rng_states", None)
        if states:
            torch.set_rng_state(states["torch"])
            np_state = states["numpy"]
            np.random.set_state((np_state[0], np.array(np_state[1], dtype=np.uint32), *np_state[2:]))
            random.setstate(tuple(x if not isinstance(x, list) else tuple(x) for x in states["python"]))
            self._rng_states = None

    # --- optimisation -----------------------------------------------------------------------------

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = self.optimizer_factory(params=params)
        if self.scheduler_factory is None:
            return optimizer
        kwargs = {"optimizer": optimizer}
        if (
            "total_steps"
            in inspect.signature(getattr(self.scheduler_factory, "func", self.scheduler_factory)).parameters
        ):
            kwargs["total_steps"] = int(self.trainer.estimated_stepping_batches)
        scheduler = self.scheduler_factory(**kwargs)
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": self.scheduler_monitor}}
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
