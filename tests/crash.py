"""A crash at a chosen point of training, for the tests that kill a run and resume it.

``+callbacks.crash._target_=tests.crash.KillAt`` in a run's config; with ``I3D_TEST_KILL_AT=<epoch>:<batch>``
in its environment the process flushes its loggers and kills itself (SIGKILL: no clean-up, no
``finally``) at the end of that training batch. Without the variable it does nothing, so the same
config resumes the run. Deterministic where polling for files is not.
"""

from __future__ import annotations

import os
import signal

import pytorch_lightning as pl

ENV = "I3D_TEST_KILL_AT"


class KillAt(pl.Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        at = os.environ.get(ENV)
        if at and (trainer.current_epoch, batch_idx) == tuple(int(x) for x in at.split(":")):
            for lg in trainer.loggers:
                lg.save()  # the rows logged since the last checkpoint are on disk, as after a real crash
            os.kill(os.getpid(), signal.SIGKILL)
