"""python -m i3d_train.flow: see :mod:`i3d_train.flow.cli`."""

import sys

from i3d_train.flow.cli import main

if __name__ == "__main__":
    sys.exit(main())
