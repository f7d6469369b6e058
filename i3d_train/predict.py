"""python -m i3d_train.predict: the predict command (its code: :mod:`i3d_train.inference.predict`)."""

import sys

from i3d_train.inference.predict import main
from i3d_train.runtime.pipes import run_main

if __name__ == "__main__":
    sys.exit(run_main(main))
