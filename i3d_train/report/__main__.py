"""python -m i3d_train.report: see :mod:`i3d_train.report.cli`."""

import sys

from i3d_train.report.cli import main
from i3d_train.runtime.pipes import run_main

if __name__ == "__main__":
    sys.exit(run_main(main))
