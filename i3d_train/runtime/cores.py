"""How many cores a decoder may use: its process's share of the machine.

FFmpeg starts one decoding thread per core of the machine by default: right for one decoder per node,
too many when each of several DataLoader workers (and each of several ranks) runs one. Every loader of
the project (training, evaluation, extraction, flow) opens its videos with :func:`worker_threads`.
"""

from __future__ import annotations

import os

from torch.utils.data import get_worker_info


def decoding_cores() -> int:
    """The cores this process may use (its CPU affinity: cgroups, ``taskset``, SLURM's binding), shared
    with the other processes of the node that torchrun (``LOCAL_WORLD_SIZE``) or SLURM started."""
    node = os.cpu_count() or 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else node
    if cores < node:  # bound to some cores (SLURM's binding, taskset): they are already this process's share
        return cores
    per_node = os.environ.get("LOCAL_WORLD_SIZE") or os.environ.get("SLURM_NTASKS_PER_NODE") or "1"
    try:
        ranks = max(1, int(per_node.split("(")[0]))  # SLURM may write "4(x2)"
    except ValueError:
        ranks = 1
    return max(1, cores // ranks)


def worker_threads() -> int:
    """Decoding threads for one decoder in this process: in a DataLoader worker, the worker's share of
    :func:`decoding_cores` (every worker runs one decoder), else all of them."""
    info = get_worker_info()
    return max(1, decoding_cores() // (info.num_workers if info is not None else 1))
