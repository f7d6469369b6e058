"""What makes two training runs comparable, read from a run's config (a run folder's ``config.yaml``, or
the config W&B keeps): the input the model saw and the recipe it was trained with.

Two runs are averaged in a report cell only when they share the model, data, modality, protocol, input
and recipe, and differ by split (and, with several runs of one split, by nothing that is recorded).
"""

from __future__ import annotations

from typing import Any


def effective_input(config: dict) -> dict:
    """The clip the model trained on: ``model.input``, with the data recipe's ``input_small`` (the
    synthetic set's small variant) and the user's ``data.input_override`` applied."""
    model, data = config.get("model") or {}, config.get("data") or {}
    out = dict(model.get("input") or {})
    for extra in (data.get("input_small"), data.get("input_override")):
        if isinstance(extra, dict):
            out.update({k: v for k, v in extra.items() if v is not None})
    return out


def recipe_of(config: dict) -> dict:
    """What besides the data and the model makes two runs comparable: optimiser, learning rate,
    schedule, epochs, batch and initial weights."""
    opt = config.get("optimizer") or {}
    sched = config.get("scheduler") or {}
    trainer = config.get("trainer") or {}
    data = config.get("data") or {}
    protocol = config.get("protocol") or {}
    return {
        "optimizer": str(opt.get("_target_", "")).rsplit(".", 1)[-1] or None,
        "lr": opt.get("lr"),
        "scheduler": str(sched.get("_target_", "") or "").rsplit(".", 1)[-1] or None,
        "epochs": trainer.get("max_epochs"),
        "batch": data.get("global_batch_size") or data.get("batch_size"),
        "init": protocol.get("init_weights"),
    }


def variant(config: dict | None) -> dict[str, Any]:
    """``{"input": ..., "recipe": ...}`` of a run (empty for a run without a config)."""
    if not config:
        return {"input": {}, "recipe": {}}
    return {"input": effective_input(config), "recipe": recipe_of(config)}


def variant_key(run: dict) -> tuple:
    """A hashable key of a run's input and recipe."""
    return tuple(sorted((k, str(v)) for part in ("input", "recipe") for k, v in (run.get(part) or {}).items()))


def variant_label(run: dict) -> str:
    """A short text for a report row: ``64x224, SGD lr 0.1, 40 epochs, batch 6``."""
    i, r = run.get("input") or {}, run.get("recipe") or {}
    parts = []
    if i.get("num_frames") and i.get("crop_size"):
        parts.append(f"{i['num_frames']}x{i['crop_size']}")
    if r.get("optimizer"):
        parts.append(f"{r['optimizer']} lr {r['lr']:g}" if isinstance(r.get("lr"), int | float) else r["optimizer"])
    if r.get("epochs") is not None:
        parts.append(f"{r['epochs']} epoch{'s' if r['epochs'] != 1 else ''}")
    if r.get("batch"):
        parts.append(f"batch {r['batch']}")
    if r.get("init"):
        parts.append(f"init {r['init']}")
    return ", ".join(parts)
