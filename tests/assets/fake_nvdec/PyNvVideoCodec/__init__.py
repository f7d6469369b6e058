# ruff: noqa: N999 - the library's own module name
"""A stand-in for PyNvVideoCodec (its names: ``SimpleDecoder``, ``OutputColorType``; frames with ``getPTS()``
and DLPack), decoding with PyAV on the CPU, for the CPU tests of ``i3d_train.video.nvdec``: everything up to
the library runs as it would on a GPU. Only tests put this folder on ``sys.path``.

Environment knobs (they reach spawned DataLoader workers too):
- ``FAKE_NVDEC_LOG``: a file each opened path is appended to (which videos went to "NVDEC");
- ``FAKE_NVDEC_FAIL``: a substring; opening a path that contains it raises, as cuvid does for a bad file;
- ``FAKE_NVDEC_SEEK_OFFSET``: ``seek_to_index(i)`` lands ``offset`` frames later (a decoder whose frame
  numbering differs from the timestamps').
"""

import os

import av


class OutputColorType:
    NATIVE = 0
    RGB = 1
    RGBP = 2


class _Frame:
    def __init__(self, rgb, pts):
        self._rgb, self._pts = rgb, pts

    def getPTS(self):  # noqa: N802 - the library's name
        return self._pts

    def __dlpack__(self, *args, **kwargs):
        return self._rgb.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self._rgb.__dlpack_device__()


class SimpleDecoder:
    def __init__(self, enc_file_path, gpu_id=0, use_device_memory=True, output_color_type=OutputColorType.NATIVE, **kw):
        path = str(enc_file_path)
        fail = os.environ.get("FAKE_NVDEC_FAIL")
        if fail and fail in path:
            raise RuntimeError(f"cuvid could not open {path}")
        if output_color_type != OutputColorType.RGB:
            raise ValueError("the project asks for interleaved RGB")
        log = os.environ.get("FAKE_NVDEC_LOG")
        if log:
            with open(log, "a") as f:
                f.write(f"{path} gpu={gpu_id}\n")
        with av.open(path) as c:
            self._frames = [_Frame(f.to_ndarray(format="rgb24"), f.pts) for f in c.decode(c.streams.video[0])]
        self._pos = 0
        self._offset = int(os.environ.get("FAKE_NVDEC_SEEK_OFFSET", "0"))

    def __len__(self):
        return len(self._frames)

    def seek_to_index(self, index):
        self._pos = min(index + self._offset, len(self._frames))

    def get_batch_frames(self, batch_size):
        out = self._frames[self._pos : self._pos + batch_size]
        self._pos += len(out)
        return out
