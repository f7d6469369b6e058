"""Train an action-recognition model:  python train.py model=i3d data=ucf101

Composes conf/train.yaml (see the README for the config groups) and calls i3d_train.pipeline.train.
"""

import sys

import hydra
from omegaconf import DictConfig

from i3d_train.pipeline import ConfigError, train


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    try:
        metrics = train(cfg)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    # Returned to Hydra's sweepers (Optuna): the validation metric.
    return metrics.get("val", {}).get("video_acc_top1")


if __name__ == "__main__":
    main()
