"""python -m i3d_train.frames: see :mod:`i3d_train.frames.cli`."""

import sys

from i3d_train.frames.cli import main

if __name__ == "__main__":
    sys.exit(main())
