"""Where feature rows are written: one memory-mapped ``.npy`` per video and modality under a temporary
name, renamed when the last row is in, then the manifest (its presence means the video is complete)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from i3d_train.models.i3d import FEATURE_DIM
from i3d_train.runtime.atomic import commit, remove_stale, temp_path, write_json


@dataclass
class _Open:
    """A video whose rows are arriving: memory-mapped outputs under temporary names."""

    manifest: dict
    arrays: dict[str, np.ndarray]  # file key -> memmap
    paths: dict[str, tuple[Path, Path]]  # file key -> (temporary, final)
    got: int = 0
    seen: set = field(default_factory=set)


def output_files(name: str, modalities: list[str], layout: str) -> dict[str, str]:
    """File key -> file name (relative to the manifest's folder) of one video's features."""
    base = Path(name).name
    if layout == "concat":
        return {"+".join(modalities): f"{base}.npy"}
    return {m: f"{base}_{m}.npy" for m in modalities}


@dataclass
class Writer:
    """Main-process side: rows in, files out (atomic; the manifest last)."""

    out_dir: Path
    modalities: list[str]
    layout: str  # separate | concat
    ten_crop: bool
    manifest_extra: dict
    open: dict[str, _Open] = field(default_factory=dict)

    def start(self, name: str, manifest: dict) -> None:
        n = manifest["num_snippets"]
        files = output_files(name, self.modalities, self.layout)
        arrays, paths = {}, {}
        folder = (self.out_dir / name).parent
        folder.mkdir(parents=True, exist_ok=True)
        for key, fname in files.items():
            width = FEATURE_DIM * (len(self.modalities) if self.layout == "concat" else 1)
            shape = (n, 10, width) if self.ten_crop else (n, width)
            final = folder / fname
            remove_stale(final)  # what a killed run of this host left
            tmp = temp_path(final)
            arrays[key] = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
            paths[key] = (tmp, final)
        manifest = dict(manifest)
        manifest["layout"] = self.layout
        manifest["files"] = files
        if self.layout == "concat":
            manifest["columns"] = {m: [i * FEATURE_DIM, (i + 1) * FEATURE_DIM] for i, m in enumerate(self.modalities)}
        manifest["shapes"] = {k: list(a.shape) for k, a in arrays.items()}
        self.open[name] = _Open(manifest, arrays, paths)

    def rows(self, name: str, snippet: int, feats: dict[str, np.ndarray]) -> bool:
        """Store one snippet's features (``{modality: (V, 1024)}``); True when the video is complete."""
        o = self.open[name]
        for i, m in enumerate(self.modalities):
            f = feats[m] if self.ten_crop else feats[m][0]
            if self.layout == "concat":
                o.arrays["+".join(self.modalities)][snippet, ..., i * FEATURE_DIM : (i + 1) * FEATURE_DIM] = f
            else:
                o.arrays[m][snippet] = f
        if snippet not in o.seen:
            o.seen.add(snippet)
            o.got += 1
        return o.got == o.manifest["num_snippets"]

    def finish(self, name: str) -> Path:
        o = self.open.pop(name)
        for key, a in o.arrays.items():
            a.flush()
            del a
            commit(*o.paths[key])
        manifest = self.out_dir / f"{name}.json"
        self.drop_stale_files(manifest, set(o.manifest["files"].values()))
        # written last: its presence means the video is complete
        return write_json(manifest, {**o.manifest, **self.manifest_extra})

    @staticmethod
    def drop_stale_files(manifest: Path, keep: set[str]) -> None:
        """Files an earlier extraction of the video listed in its manifest and this one does not write
        (re-extracted with fewer modalities, or another layout): removed, so that the folder holds only
        what the new manifest says. Nothing the manifest does not list is touched."""
        try:
            import json

            old = json.loads(manifest.read_text()).get("files", {})
        except (OSError, ValueError, AttributeError):
            return
        for fname in set(old.values()) - keep:
            if "/" not in fname and not fname.startswith("."):
                (manifest.parent / fname).unlink(missing_ok=True)

    def discard(self, name: str) -> None:
        o = self.open.pop(name, None)
        if o is None:
            return
        for key, a in o.arrays.items():
            del a
            o.paths[key][0].unlink(missing_ok=True)
