"""Train an action-recognition model:  python train.py model=i3d data=ucf101

Composes conf/train.yaml (see the README for the config groups) and calls i3d_train.train.run.train.
In a multirun (``-m``), a run that fails is logged (traceback in its folder's ``error.txt``, written by
rank 0 only) and the sweep goes on; its W&B run, if any, is finished as failed. Every process of a
multi-GPU run (Lightning's or torchrun's) uses rank 0's run folder (``i3d_train.runtime.distributed``).
"""

import logging
import math
import sys
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from i3d_train.errors import ConfigError
from i3d_train.runtime.distributed import is_rank_zero, share_run_time
from i3d_train.train.run import train

log = logging.getLogger("train")


def _multirun() -> bool:
    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:  # not under Hydra
        return False


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    try:
        metrics = train(cfg)
    except Exception as e:
        if not _multirun():
            if isinstance(e, ConfigError):
                print(f"error: {e}", file=sys.stderr)
                sys.exit(2)
            raise
        out = Path(cfg.paths.output_dir)
        if is_rank_zero():
            out.mkdir(parents=True, exist_ok=True)
            (out / "error.txt").write_text(traceback.format_exc())
        log.error(
            "run %s failed (%s: %s); the sweep goes on. Traceback: %s", out.name, type(e).__name__, e, out / "error.txt"
        )
        return math.nan  # a failed trial for sweepers that optimise (Optuna)
    # Returned to Hydra's sweepers (Optuna): the validation metric.
    return metrics.get("val", {}).get(cfg.get("optimized_metric", "video_acc_top1"))


if __name__ == "__main__":
    share_run_time()
    main()
