"""Extract I3D features for temporal action localization:  python extract.py input=<videos>

Composes conf/extract.yaml and calls i3d_train.features.run.run.
"""

import sys

import hydra
from omegaconf import DictConfig

from i3d_train.errors import ConfigError
from i3d_train.features.run import run


@hydra.main(version_base="1.3", config_path="conf", config_name="extract")
def main(cfg: DictConfig) -> None:
    try:
        summary = run(cfg)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    if summary["failed"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
