"""Reading pickles of numpy arrays without running anything else.

A pickle can call any importable function while it loads. Checkpoints from elsewhere are read with an
unpickler that resolves only the few globals numpy needs to rebuild arrays; any other global is
refused with :class:`UnsafePickleError` before it can run.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

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
