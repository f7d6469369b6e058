"""Read an offline W&B run (``<run>/wandb/offline-run-*/``) as the tests need it: the records of its
``run-*.wandb`` log and the media files beside it.

The ``.wandb`` file is W&B's transaction log: a 7-byte header (``:W&B``, magic 0xBEE1, version 0), then
the LevelDB log format (32 KiB blocks; each record: CRC-32C (4 bytes), length (2), type (1: full,
2: first, 3: middle, 4: last piece); a block's tail shorter than a record header is zero padding), each
record a serialized ``wandb.proto.wandb_internal_pb2.Record``.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from wandb.proto import wandb_internal_pb2 as pb

BLOCK = 32 * 1024
HEADER = 7


def records(path: Path) -> list:
    data = Path(path).read_bytes()
    ident, magic, version = struct.unpack("<4sHB", data[:HEADER])
    assert (ident, magic, version) == (b":W&B", 0xBEE1, 0), (ident, magic, version)
    out, pos, pieces = [], HEADER, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # padding at the end of a block
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if kind == 0 and length == 0:  # zeros: the end of what was written
            pos += left
            continue
        body = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind == 1:
            pieces = body
        elif kind == 2:
            pieces = body
            continue
        elif kind == 3:
            pieces += body
            continue
        elif kind == 4:
            pieces += body
        r = pb.Record()
        r.ParseFromString(pieces)
        out.append(r)
        pieces = b""
    return out


class OfflineRun:
    """One offline run folder: ``history`` (dicts, one per ``log`` call), ``summary``, ``config``,
    ``run`` (the run record: group, job type), ``metrics`` (define_metric records), ``files`` (its
    ``files/`` folder)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.files = self.folder / "files"
        self.history: list[dict] = []
        self.summary: dict = {}
        self.config: dict = {}
        self.metrics: dict = {}
        self.run = None
        for r in records(next(self.folder.glob("run-*.wandb"))):
            kind = r.WhichOneof("record_type")
            if kind == "history":
                self.history.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item})
            elif kind == "summary":
                for i in r.summary.update:
                    self.summary[i.key or "/".join(i.nested_key)] = json.loads(i.value_json)
            elif kind == "config":
                for i in r.config.update:
                    self.config[i.key or "/".join(i.nested_key)] = json.loads(i.value_json)
            elif kind == "run":
                self.run = r.run
                for i in r.run.config.update:
                    self.config[i.key or "/".join(i.nested_key)] = json.loads(i.value_json)
            elif kind == "metric":
                self.metrics[r.metric.name or r.metric.glob_name] = r.metric

    def logged(self, key: str):
        """The last value logged under ``key`` (a scalar; a media or table reference, whose fields W&B
        writes as ``key/<field>``, as a dict)."""
        values = []
        for h in self.history:
            if key in h:
                values.append(h[key])
            elif any(k.startswith(key + "/") for k in h):
                values.append({k[len(key) + 1 :]: v for k, v in h.items() if k.startswith(key + "/")})
        assert values, f"{key} never logged; keys: {sorted({k for h in self.history for k in h})}"
        return values[-1]

    def table(self, key: str) -> dict:
        """A logged table's JSON (``columns``, ``data``), from its file under ``files/``."""
        ref = self.logged(key)
        return json.loads((self.files / ref["path"]).read_text())
