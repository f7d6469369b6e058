"""python -m i3d_train.weights: see :mod:`i3d_train.weights.cli`."""

import sys

from i3d_train.runtime.pipes import run_main
from i3d_train.weights.cli import main

if __name__ == "__main__":
    sys.exit(run_main(main))
