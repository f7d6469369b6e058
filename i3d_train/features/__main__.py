"""python -m i3d_train.features summary <output_dir>: see :mod:`i3d_train.features.summary`."""

import sys

from i3d_train.features.summary import main
from i3d_train.runtime.pipes import run_main

if __name__ == "__main__":
    sys.exit(run_main(main))
