"""Evaluate a trained checkpoint, or fuse two:  python eval.py ckpt_path=<rgb.ckpt> [fuse_with=<flow.ckpt>]
Evaluate a state dict (released weights):     python eval.py weights=<file.pt> model=<name> data=<name> [data.*]

Composes conf/eval.yaml and calls i3d_train.evaluation.run.evaluate.
"""

import sys

import hydra
from omegaconf import DictConfig

from i3d_train.errors import ConfigError
from i3d_train.evaluation.run import evaluate
from i3d_train.runtime.distributed import share_run_time


@hydra.main(version_base="1.3", config_path="conf", config_name="eval")
def main(cfg: DictConfig) -> None:
    try:
        evaluate(cfg)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    share_run_time()
    main()
