"""Which decoder decodes a video (PyAV on the CPU, or NVDEC on the GPU), and the one frame rule both follow.

``decoder=`` is chosen like the flow backend:

- ``pyav``: FFmpeg through PyAV, on the CPU (every codec; the default on a machine without a GPU);
- ``nvdec``: the GPU's video engines through PyNvVideoCodec (``pip install -e ".[gpu]"``); the codecs
  NVDEC decodes are H.264, HEVC, VP9 and AV1 (:data:`NVDEC_CODECS`). UCF-101 and HMDB-51 are MPEG-4
  Part 2 (Xvid/DivX) AVIs, which it does not: those videos are decoded with PyAV, and counted;
- ``auto``: NVDEC where the model runs on a GPU, PyNvVideoCodec is installed and the codec is one it
  decodes; PyAV otherwise.

The choice is made per video: a video NVDEC cannot decode falls back to PyAV, and the reason
(:data:`NOT_INSTALLED`, ``codec mpeg4 ...``, or the error NVDEC raised) is counted by the
:class:`Decoder` and printed in the closing summary of the command.

**The same frames whatever the decoder.** Both decoders hand their frames, in decoding order with their
presentation timestamps, to :func:`i3d_train.video.timeline.cover`, which picks the frame of each
index of the resampled timeline (index ``i`` at ``fps``: the source frame presented at ``i / fps``); the
loop rule (:func:`i3d_train.video.reader.loop`) and the resize come after and are shared too. What can
differ is the YUV->RGB conversion of each pixel (FFmpeg's swscale against NVDEC's), by a few levels
(``benchmarks/gpu_check.py`` measures it, and the features' agreement).
"""

from __future__ import annotations

import copy
import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from i3d_train.video import nvdec, reader, stream

DECODERS = ("auto", "pyav", "nvdec")
# what NVDEC decodes on the GPUs this project targets (Video Codec SDK's support matrix: A100, H100,
# H200, L4, L40); FFmpeg's codec names
NVDEC_CODECS = frozenset({"h264", "hevc", "vp9", "av1"})
NOT_INSTALLED = 'PyNvVideoCodec not installed (pip install -e ".[gpu]")'


class DecoderError(ValueError):
    """A decoder setting that cannot work here (one line: what was asked, what is missing)."""


def cuda_index(device: str | None) -> int | None:
    """The GPU of ``device`` (``cuda``: this process's, ``LOCAL_RANK`` under torchrun), None for the CPU."""
    if device is None or not str(device).startswith("cuda"):
        return None
    _, _, index = str(device).partition(":")
    return int(index) if index else int(os.environ.get("LOCAL_RANK", 0))


def nvdec_missing() -> str | None:
    """Why NVDEC cannot be used in this environment (None: it can)."""
    try:
        import PyNvVideoCodec  # noqa: F401
    except (ImportError, OSError, RuntimeError):  # not installed, or its libraries (libnvcuvid) missing
        return NOT_INSTALLED
    return None


class Decoder:
    """Decodes videos with the backend chosen per video (see the module's text), and counts the choices.

    Args:
        name: ``auto`` | ``pyav`` | ``nvdec``.
        device: where the frames go (``cpu``, ``cuda``, ``cuda:1``; None: the CPU): ``auto`` picks
            NVDEC only for a GPU.

    ``used``: videos per backend; ``fallbacks``: videos decoded with PyAV although NVDEC was asked for
    (``nvdec``) or possible (``auto`` on a GPU), per reason. Picklable (it travels to spawned workers).
    """

    def __init__(self, name: str = "auto", device: str | None = None) -> None:
        if name not in DECODERS:
            raise DecoderError(f"decoder={name}: expected one of {', '.join(DECODERS)}")
        self.name = name
        self.gpu = cuda_index(device)
        if name == "nvdec":
            if self.gpu is None:
                raise DecoderError(
                    "decoder=nvdec decodes on a GPU, but the frames go to the CPU: use a CUDA device or decoder=pyav"
                )
            missing = nvdec_missing()
            if missing is not None:
                raise DecoderError(f"decoder=nvdec: {missing}")
        self.used: Counter[str] = Counter()
        self.fallbacks: Counter[str] = Counter()
        self._missing: str | None | bool = False  # not looked up yet
        self.last: tuple[str, str | None] | None = None  # (backend, fallback reason) of the last video
        self.last_path: str | None = None

    @property
    def wants_gpu(self) -> bool:
        """Whether some videos may be decoded on the GPU (DataLoader workers then need ``spawn``: CUDA
        cannot be used in a forked process)."""
        return self.name != "pyav" and self.gpu is not None

    def choose(self, codec: str) -> tuple[str, str | None]:
        """``(backend, reason)`` for a video of ``codec``: the reason why it is not NVDEC when NVDEC was
        asked for or possible, else None."""
        if not self.wants_gpu:
            return "pyav", None
        if self._missing is False:
            self._missing = nvdec_missing()
        if self._missing:
            return "pyav", self._missing
        if codec not in NVDEC_CODECS:
            return "pyav", f"codec {codec or 'unknown'} not decoded by NVDEC"
        return "nvdec", None

    def count(self, backend: str, reason: str | None) -> None:
        """One more video decoded by ``backend`` (``reason``: why not NVDEC, if it was asked for)."""
        self.used[backend] += 1
        if reason:
            self.fallbacks[reason] += 1
        self.last = (backend, reason)

    def iter_frames(
        self, path: str | Path, fps: float | None, info: reader.VideoInfo, stop: int | None = None, threads: int = 0
    ):
        """:func:`i3d_train.video.stream.iter_frames` with the chosen decoder: ``(index, uint8 (H, W, 3))``."""
        self.last_path = str(path)
        backend, reason = self.choose(info.codec)
        if backend == "nvdec":
            try:
                frames = nvdec.iter_frames(path, fps, info, stop, self.gpu)
                first = next(frames, None)
            except Exception as e:  # noqa: BLE001 - NVDEC refused this file: PyAV decodes it
                backend, reason = "pyav", f"NVDEC failed: {type(e).__name__}"
            else:
                self.count(backend, None)
                if first is not None:
                    yield first
                    yield from frames
                return
        self.count(backend, reason)
        yield from stream.iter_frames(path, fps, info, stop=stop, threads=threads)

    def read_frames(
        self, path: str | Path, indices, fps: float | None, info: reader.VideoInfo, threads: int = 0
    ) -> np.ndarray:
        """:func:`i3d_train.video.reader.read_frames` with the chosen decoder: ``uint8 (T, H, W, 3)``."""
        self.last_path = str(path)
        backend, reason = self.choose(info.codec)
        if backend == "nvdec":
            try:
                frames = nvdec.read_frames(path, indices, fps, info, self.gpu)
            except reader.VideoDecodeError:
                raise
            except Exception as e:  # noqa: BLE001 - NVDEC refused this file: PyAV decodes it
                backend, reason = "pyav", f"NVDEC failed: {type(e).__name__}"
            else:
                self.count(backend, None)
                return frames
        self.count(backend, reason)
        return reader.read_frames(path, indices, fps, info, threads=threads)

    def fresh(self) -> Decoder:
        """The same choice, with nothing counted yet."""
        d = copy.copy(self)
        d.used, d.fallbacks, d.last = Counter(), Counter(), None
        return d

    def summary(self) -> dict:
        """``{"decoder", "videos": {backend: n}, "fallbacks": {reason: n}}`` for a run's summary."""
        return {"decoder": self.name, "videos": dict(self.used), "fallbacks": dict(self.fallbacks)}


def merge(summaries: Iterable[dict]) -> dict:
    """Several :meth:`Decoder.summary` (one per worker) as one."""
    used: Counter[str] = Counter()
    fallbacks: Counter[str] = Counter()
    name = None
    for s in summaries:
        name = name or s.get("decoder")
        used.update(s.get("videos", {}))
        fallbacks.update(s.get("fallbacks", {}))
    return {"decoder": name, "videos": dict(used), "fallbacks": dict(fallbacks)}


def format_summary(s: dict) -> str:
    """One line: ``decoding: 12 videos with NVDEC, 3 with PyAV (3: codec mpeg4 not decoded by NVDEC)``."""
    names = {"nvdec": "NVDEC", "pyav": "PyAV"}
    used = s.get("videos", {})
    parts = [f"{n} video{'s' if n != 1 else ''} with {names.get(b, b)}" for b, n in sorted(used.items())]
    line = f"decoding (decoder={s.get('decoder')}): " + (", ".join(parts) if parts else "no videos")
    if s.get("fallbacks"):
        line += "; fell back to PyAV: " + ", ".join(f"{n} ({why})" for why, n in sorted(s["fallbacks"].items()))
    return line
