"""One video per job, jobs run in this process or in a pool of spawned processes: what the flow and
frame commands share.

Spawned, not forked: forking a process whose decoder, OpenCV or torch thread pools are running can
deadlock. One job failing (its exception) is an outcome like a result: the caller reports it and the
next job goes on.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any


def outcomes(
    work: Callable[[tuple], Any],
    jobs: list[tuple],
    processes: int,
    in_process: bool,
    initializer: Callable | None = None,
    initargs: tuple = (),
) -> Iterator[tuple[Any, Any]]:
    """``(job[0], work(job) or the exception it raised)`` per job as it ends. ``in_process``: run them
    here, one after another (a spawned process would first spend seconds on its imports); else in a pool
    of ``processes`` spawned processes, each started with ``initializer(*initargs)``. ``work`` is a
    module-level function (it travels to the processes by name)."""
    if in_process:
        for job in jobs:
            try:
                yield job[0], work(job)
            except Exception as e:  # noqa: BLE001 - reported by the caller, the next job goes on
                yield job[0], e
        return
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(processes, mp_context=ctx, initializer=initializer, initargs=initargs) as pool:
        futures = {pool.submit(work, job): job[0] for job in jobs}
        for fut in as_completed(futures):
            try:
                yield futures[fut], fut.result()
            except Exception as e:  # noqa: BLE001 - reported by the caller, the next job goes on
                yield futures[fut], e
