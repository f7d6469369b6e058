"""Commands whose output is piped into ``head``, ``grep -m`` or ``less`` end quietly when the reader stops.

Python raises ``BrokenPipeError`` on the next write once the reader has gone, and again when it
flushes stdout at exit: a traceback for something the user did on purpose. :func:`run_main` runs a
command's ``main`` and, if the pipe broke, points stdout at ``/dev/null`` (so the flush at exit is
silent) and ends with the shell's convention for a broken pipe: 141 (128 + SIGPIPE).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

BROKEN_PIPE = 128 + 13


def run_main(main: Callable[[], int | None]) -> int:
    """``main()``'s exit code, or :data:`BROKEN_PIPE` without a traceback if stdout's reader went away."""
    try:
        code = main()
        sys.stdout.flush()
        return code or 0
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return BROKEN_PIPE
