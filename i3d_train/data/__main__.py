"""python -m i3d_train.data check <dataset> --root <path> [--split N] [--decode] [--json]"""

import sys

from i3d_train.data.check import main
from i3d_train.runtime.pipes import run_main

if __name__ == "__main__":
    sys.exit(run_main(main))
