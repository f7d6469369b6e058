"""Download a file over HTTP(S) with resume and verify it, using only the standard library.

:func:`fetch` writes ``<dest>.part``, resuming an existing one with an HTTP ``Range`` request (also
after the connection drops mid-file, up to ``retries`` times), and renames it to ``dest`` only once its
hash matches. A mismatch moves the file to ``<dest>.bad`` and raises :class:`ChecksumError`; it is
never renamed to ``dest``. Errors are one line and name the URL.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from i3d_train.runtime.atomic import commit
from i3d_train.weights.registry import GIT_BLOB_SHA1, SHA256

CHUNK = 1 << 20
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class DownloadError(RuntimeError):
    """A download that did not complete (one line, naming the URL)."""


class ChecksumError(DownloadError):
    """A downloaded file whose hash is not the expected one (the file is kept at ``<dest>.bad``)."""


def file_hash(path: str | Path, kind: str) -> str:
    """Hex digest of ``path``: ``git-blob-sha1`` (as ``git hash-object``) or ``sha256``."""
    path = Path(path)
    if kind == GIT_BLOB_SHA1:
        h = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    elif kind == SHA256:
        h = hashlib.sha256()
    else:
        raise ValueError(f"unknown hash kind {kind!r}")
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def check_expected(kind: str, expected: str) -> str:
    """The expected hash, lower case; raises ``ValueError`` unless it is hex of a usable length."""
    e = expected.strip().lower()
    full = {GIT_BLOB_SHA1: 40, SHA256: 64}[kind]
    if not re.fullmatch(r"[0-9a-f]+", e) or not (len(e) == full or (kind == SHA256 and 8 <= len(e) < full)):
        need = "40 hex digits" if kind == GIT_BLOB_SHA1 else "8 to 64 hex digits (a prefix is checked as a prefix)"
        raise ValueError(f"expected {kind} hash: {need}, got {expected!r}")
    return e


def matches(path: str | Path, kind: str, expected: str) -> tuple[bool, str]:
    """``(ok, actual digest)``; a shorter ``expected`` (a SHA-256 prefix) is compared as a prefix."""
    actual = file_hash(path, kind)
    return actual.startswith(check_expected(kind, expected)), actual


def _open(url: str, start: int, timeout: float):
    req = urllib.request.Request(url, headers={"User-Agent": "i3d-train"})
    if start:
        req.add_header("Range", f"bytes={start}-")
    return urllib.request.urlopen(req, timeout=timeout)


def _transfer(url: str, part: Path, timeout: float, progress: bool) -> None:
    """One request: append to ``part`` from its current size (or restart it when the server ignores
    the range). Raises ``OSError``/``IncompleteRead`` when the body stops short."""
    start = part.stat().st_size if part.exists() else 0
    try:
        resp = _open(url, start, timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and start:  # nothing left to fetch: .part is already whole (verified next)
            return
        raise
    with resp:
        status = getattr(resp, "status", None)
        total = None
        if status == 206:
            m = _CONTENT_RANGE.fullmatch(resp.headers.get("Content-Range", "").strip())
            if m is None or int(m[1]) != start:
                raise DownloadError(f"{url}: the server answered a resume with an unexpected Content-Range")
            total = int(m[3]) if m[3] != "*" else None
            mode = "ab"
        else:  # 200 (or a file:// URL): the whole file from the start
            start, mode = 0, "wb"
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        with (
            open(part, mode) as f,
            tqdm(
                total=total,
                initial=start,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=part.name.removesuffix(".part"),
                disable=None if progress else True,  # None: shown on a terminal only
                leave=False,
            ) as bar,
        ):
            while chunk := resp.read(CHUNK):
                f.write(chunk)
                bar.update(len(chunk))
    if total is not None and part.stat().st_size < total:
        raise http.client.IncompleteRead(b"", total - part.stat().st_size)


def fetch(
    url: str,
    dest: str | Path,
    kind: str,
    expected: str,
    *,
    retries: int = 3,
    timeout: float = 30.0,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest`` through ``<dest>.part`` (resumed if present) and verify it.

    A connection that drops mid-file is resumed with ``Range`` up to ``retries`` more times; a server
    that cannot be reached at all fails at once. ``dest`` appears only when the hash matches.
    """
    dest = Path(dest)
    expected = check_expected(kind, expected)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    attempt = 0
    while True:
        try:
            _transfer(url, part, timeout, progress)
            break
        except urllib.error.HTTPError as e:
            raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from None
        except urllib.error.URLError as e:  # the request never got an answer (no network, no such host)
            raise DownloadError(f"cannot reach {url}: {e.reason}") from None
        except (http.client.HTTPException, OSError) as e:  # dropped mid-file, timed out while reading
            attempt += 1
            if attempt > retries:
                have = part.stat().st_size if part.exists() else 0
                raise DownloadError(
                    f"{url}: connection lost ({type(e).__name__}) after {retries + 1} tries; {have:,} bytes kept "
                    f"in {part}, run the command again to resume"
                ) from None
    ok, actual = matches(part, kind, expected)
    if not ok:
        bad = dest.with_name(dest.name + ".bad")
        os.replace(part, bad)
        raise ChecksumError(
            f"checksum mismatch for {url}: {kind} {actual}, expected {expected}; the file is kept at {bad} "
            "and was not used"
        )
    commit(part, dest)  # the verified download under its name, atomically
    return dest
