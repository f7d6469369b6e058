"""W&B must never block on a login prompt or the network: without credentials, every command logs offline."""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


def wandb_offline_unless_logged_in() -> None:
    """Set ``WANDB_MODE=offline`` unless a mode, an API key or a W&B login (``~/.netrc``) is there."""
    if os.environ.get("WANDB_MODE") or os.environ.get("WANDB_API_KEY"):
        return
    if (Path.home() / ".netrc").is_file() and "api.wandb.ai" in (Path.home() / ".netrc").read_text(errors="ignore"):
        return
    os.environ["WANDB_MODE"] = "offline"
    log.info("W&B: no API key found, logging offline (upload later with `wandb sync`)")
