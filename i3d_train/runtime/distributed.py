"""What the processes of one multi-GPU run agree on before Lightning connects them.

- **One run folder.** Hydra names a run's folder after the time it starts
  (``${run_time:%Y-%m-%d_%H-%M-%S}`` in ``conf/hydra/default.yaml``). :func:`share_run_time` fixes that
  time once per run in ``$I3D_TRAIN_RUN_TIME``: processes that Lightning starts for the other GPUs
  inherit it (so a ``-m`` sweep's ranks share one ``multiruns/<time>`` folder), and under ``torchrun``
  rank 0 hands its time to the other ranks through torchrun's rendezvous store, so they all write
  into rank 0's folder.
- **Only rank 0 writes.** :func:`is_rank_zero` tells, from the launcher's environment, whether this
  process may write files into the run folder, print, or touch logger experiments;
  :func:`quiet_other_ranks` keeps the other ranks out of ``train.log`` and the console (warnings
  and errors still show).
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import datetime, timedelta

RUN_TIME_ENV = "I3D_TRAIN_RUN_TIME"
_STORE_KEY = "i3d_train/run_time"


def process_rank() -> int:
    """This process's global rank as its launcher set it (0 when not launched for several processes)."""
    env = os.environ
    for var in ("RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if env.get(var, "").isdigit():
            return int(env[var])
    # Processes Lightning starts itself: LOCAL_RANK on each node, NODE_RANK for the node.
    local, node = env.get("LOCAL_RANK", "0"), env.get("NODE_RANK", "0")
    return 0 if local in ("", "0") and node in ("", "0") else 1 + int(node or 0) * 1000 + int(local or 0)


def is_rank_zero() -> bool:
    return process_rank() == 0


def _torchrun_store():
    """A client of the store torchrun's agent hosts for its workers, or None when not under torchrun."""
    env = os.environ
    if env.get("TORCHELASTIC_USE_AGENT_STORE") != "True" or int(env.get("WORLD_SIZE", "1")) < 2:
        return None
    from torch.distributed import TCPStore

    return TCPStore(env["MASTER_ADDR"], int(env["MASTER_PORT"]), is_master=False, timeout=timedelta(minutes=10))


def share_run_time() -> str:
    """Fix this run's start time (ISO format) in ``$I3D_TRAIN_RUN_TIME`` and return it.

    Kept if already set (a process Lightning started for another GPU); under ``torchrun``, rank 0's
    time for every rank, and the other ranks get ``hydra.output_subdir=null`` on their command line
    (as Lightning gives the processes it starts), so that only rank 0 writes the folder's ``.hydra/``.
    Call it before Hydra reads the command line.
    """
    if os.environ.get(RUN_TIME_ENV):
        return os.environ[RUN_TIME_ENV]
    stamp = datetime.now().isoformat(timespec="seconds")
    store = _torchrun_store()
    if store is not None:
        key = f"{_STORE_KEY}/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"
        if is_rank_zero():
            store.set(key, stamp)
        else:
            stamp = store.get(key).decode()
            if not any(a.startswith("hydra.output_subdir=") for a in sys.argv):
                sys.argv.append("hydra.output_subdir=null")
    os.environ[RUN_TIME_ENV] = stamp
    return stamp


def run_time(pattern: str) -> str:
    """``${run_time:<strftime pattern>}``: the run's start time (:func:`share_run_time`), else now."""
    stamp = os.environ.get(RUN_TIME_ENV)
    when = datetime.fromisoformat(stamp) if stamp else _process_start
    return when.strftime(pattern)


_process_start = datetime.now()


def quiet_other_ranks() -> None:
    """On ranks other than 0: no log file (rank 0 writes the run's log), warnings only on the console."""
    if is_rank_zero():
        return
    root = logging.getLogger()
    for h in list(root.handlers):
        if isinstance(h, logging.FileHandler):
            root.removeHandler(h)
            h.close()
    root.setLevel(logging.WARNING)
