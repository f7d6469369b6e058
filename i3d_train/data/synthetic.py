"""A built-in synthetic motion dataset in the UCF-101 layout, generated on first use.

Each video shows a textured scene seen by a moving camera, with a few distractor objects that wander
at random over it. The class is *only* the motion: the scene moves right/left/up/down, turns
clockwise/counter-clockwise, or zooms in/out. Scene texture and colours, objects, speeds and starting
poses are drawn per video, so a single frame says nothing about the class: a model has to see motion,
which is exactly the question the paper asks of its architectures. (Horizontal flipping turns
"right" into "left" and "clockwise" into "counter-clockwise": this set is trained without flips.)

Files are real H.264 ``.mp4`` written with PyAV, with ``classInd.txt``, ``trainlist01.txt`` and
``testlist01.txt`` in UCF-101's format (CRLF), and a validation list of its own, ``vallist01.txt``
(videos are free here: validation need not take any from the training list), so the synthetic set runs through the same parser, reader
and transforms as UCF-101. Generation is deterministic from ``seed``; the parameters are stored in
``synthetic.json`` and the set is regenerated when they change, reused otherwise.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from i3d_train.runtime.atomic import write_bytes, write_json
from i3d_train.video.writer import write_video

log = logging.getLogger(__name__)

CLASSES = (
    "MoveRight",
    "MoveLeft",
    "MoveUp",
    "MoveDown",
    "RotateClockwise",
    "RotateCounterClockwise",
    "ZoomIn",
    "ZoomOut",
)


@dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of the synthetic set; any change regenerates it."""

    num_classes: int = 8
    train_per_class: int = 24
    test_per_class: int = 8
    val_per_class: int | None = None  # videos per class in vallist01.txt (None: as test_per_class)
    num_frames: int = 40
    fps: int = 25
    height: int = 128
    width: int = 160
    seed: int = 0
    crf: int = 18  # x264 quality: visually lossless, small files

    def __post_init__(self) -> None:
        if not 2 <= self.num_classes <= len(CLASSES):
            raise ValueError(f"synthetic num_classes must be in 2..{len(CLASSES)}, got {self.num_classes}")
        if self.height % 2 or self.width % 2:
            raise ValueError(f"synthetic height and width must be even (H.264 4:2:0), got {self.height}x{self.width}")

    @property
    def val_count(self) -> int:
        return self.test_per_class if self.val_per_class is None else self.val_per_class

    def digest(self) -> str:
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


# --------------------------------------------------------------------------------------------------
# Rendering


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [0, 1]: random values on a coarse grid, bilinearly upsampled."""
    gh, gw = cells + 1, max(2, round(cells * w / h)) + 1
    grid = rng.random((gh, gw))
    ys = np.linspace(0, gh - 1, h)
    xs = np.linspace(0, gw - 1, w)
    y0 = np.minimum(ys.astype(int), gh - 2)
    x0 = np.minimum(xs.astype(int), gw - 2)
    fy = (ys - y0)[:, None]
    fx = (xs - x0)[None, :]
    a = grid[y0][:, x0]
    b = grid[y0][:, x0 + 1]
    c = grid[y0 + 1][:, x0]
    d = grid[y0 + 1][:, x0 + 1]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A random coloured texture ``(h, w, 3)`` in [0, 255]: a blend of two colours through a pattern."""
    kind = rng.integers(4)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    if kind == 0:  # stripes at a random angle
        a = rng.uniform(0, math.pi)
        period = rng.uniform(5, 12)
        pattern = 0.5 + 0.5 * np.sin(2 * math.pi * (xx * math.cos(a) + yy * math.sin(a)) / period)
    elif kind == 1:  # checkerboard
        cell = int(rng.integers(4, 9))
        pattern = (((yy // cell) + (xx // cell)) % 2).astype(np.float64)
    elif kind == 2:  # blobs
        pattern = _smooth_noise(rng, h, w, int(rng.integers(3, 7)))
    else:  # fine noise over coarse noise
        pattern = 0.6 * _smooth_noise(rng, h, w, 4) + 0.4 * rng.random((h, w))
    c1, c2 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    # Keep the two colours apart so the texture has visible structure to track.
    if np.abs(c1 - c2).sum() < 150:
        c2 = 255 - c1
    return pattern[..., None] * c1 + (1 - pattern[..., None]) * c2


def _shape_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random shape (ellipse, rectangle, diamond, or blob) as a boolean mask ``(size, size)``."""
    r = (size - 1) / 2
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    u, v = (xx - r) / r, (yy - r) / r
    kind = rng.integers(4)
    ax, ay = rng.uniform(0.6, 1.0, 2)
    if kind == 0:
        return (u / ax) ** 2 + (v / ay) ** 2 <= 1
    if kind == 1:
        return (np.abs(u) <= ax) & (np.abs(v) <= ay)
    if kind == 2:
        return np.abs(u) / ax + np.abs(v) / ay <= 1
    return _smooth_noise(rng, size, size, 3) * (1 - np.clip(u * u + v * v, 0, 1)) > 0.15


@dataclass
class _Sprite:
    texture: np.ndarray  # (S, S, 3)
    mask: np.ndarray  # (S, S)
    cx: np.ndarray  # (T,) centre x per frame
    cy: np.ndarray
    angle: np.ndarray  # (T,) radians
    scale: np.ndarray  # (T,)


def _draw(frame: np.ndarray, sp: _Sprite, t: int) -> None:
    """Paint sprite ``sp`` at frame ``t`` by inverse mapping (nearest neighbour), in place."""
    h, w = frame.shape[:2]
    size = sp.mask.shape[0]
    s = sp.scale[t]
    reach = size * s * 0.75
    x0, x1 = max(0, int(sp.cx[t] - reach)), min(w, int(sp.cx[t] + reach) + 1)
    y0, y1 = max(0, int(sp.cy[t] - reach)), min(h, int(sp.cy[t] + reach) + 1)
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    dx, dy = xx - sp.cx[t], yy - sp.cy[t]
    ca, sa = math.cos(sp.angle[t]), math.sin(sp.angle[t])
    # Inverse rotation and scale: frame offset -> sprite coordinates.
    u = (ca * dx + sa * dy) / s + (size - 1) / 2
    v = (-sa * dx + ca * dy) / s + (size - 1) / 2
    ui, vi = np.rint(u).astype(int), np.rint(v).astype(int)
    inside = (ui >= 0) & (ui < size) & (vi >= 0) & (vi < size)
    ui, vi = np.clip(ui, 0, size - 1), np.clip(vi, 0, size - 1)
    m = inside & sp.mask[vi, ui]
    region = frame[y0:y1, x0:x1]
    region[m] = sp.texture[vi, ui][m]


def _periodic_texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A tileable coloured texture ``(size, size, 3)`` in [0, 255]: band-limited noise at two scales
    mixed with a random pattern, so motion is visible everywhere and at every speed."""
    f = np.fft.fftfreq(size)
    r = np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    layers = []
    for cutoff in (rng.uniform(0.02, 0.04), rng.uniform(0.08, 0.15)):
        spec = np.fft.fft2(rng.standard_normal((size, size))) * np.exp(-((r / cutoff) ** 2))
        layer = np.real(np.fft.ifft2(spec))
        layers.append((layer - layer.mean()) / (layer.std() + 1e-8))
    pattern = 1 / (1 + np.exp(-(layers[0] + 0.7 * layers[1]) * rng.uniform(1.0, 2.5)))
    palette = rng.uniform(0, 255, (3, 3))
    t = pattern[..., None]
    # Two-segment colour ramp through three random colours.
    return np.where(
        t < 0.5, palette[0] + (palette[1] - palette[0]) * 2 * t, palette[1] + (palette[2] - palette[1]) * (2 * t - 1)
    )


def _sample_periodic(tex: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Bilinear sample of a tileable texture at float coordinates (wrapping)."""
    n = tex.shape[0]
    u0, v0 = np.floor(u).astype(int), np.floor(v).astype(int)
    fu, fv = (u - u0)[..., None], (v - v0)[..., None]
    u0, v0 = u0 % n, v0 % n
    u1, v1 = (u0 + 1) % n, (v0 + 1) % n
    top = tex[v0, u0] * (1 - fu) + tex[v0, u1] * fu
    bottom = tex[v1, u0] * (1 - fu) + tex[v1, u1] * fu
    return top * (1 - fv) + bottom * fv


def render_video(cfg: SyntheticConfig, label: int, video_seed: int) -> np.ndarray:
    """Frames ``uint8 (T, H, W, 3)`` of one video of class ``label``, deterministic from ``video_seed``.

    The class is the motion of the camera over a textured scene: a pan (right, left, up, down), a roll
    (clockwise, counter-clockwise) or a zoom (in, out), with its speed, the scene and the distractor
    objects drawn per video.
    """
    rng = np.random.default_rng([cfg.seed, video_seed])
    # Rendered at twice the size and box-filtered down: no aliasing flicker in small videos.
    T, H, W = cfg.num_frames, 2 * cfg.height, 2 * cfg.width
    t = np.arange(T, dtype=np.float64) - (T - 1) / 2  # centred time
    scene = _periodic_texture(rng, 256)
    unit = min(H, W) / 128  # sizes and speeds are given for a 128-pixel short side
    pan = rng.uniform(1.5, 2.5) * unit  # px / frame
    roll = math.radians(rng.uniform(2.0, 3.5))  # rad / frame
    zoom = rng.uniform(0.02, 0.03)  # log-scale / frame
    ox, oy = rng.uniform(0, 256, 2)
    angle0 = rng.uniform(0, 2 * math.pi)
    scale0 = rng.uniform(0.8, 1.25) * unit
    sx, sy = np.zeros(T), np.zeros(T)  # displacement of the content in the frame, px
    angle, scale = np.full(T, angle0), np.full(T, scale0)
    name = CLASSES[label]
    if name == "MoveRight":
        sx = pan * t
    elif name == "MoveLeft":
        sx = -pan * t
    elif name == "MoveUp":  # image y points down
        sy = -pan * t
    elif name == "MoveDown":
        sy = pan * t
    elif name == "RotateClockwise":  # with y down, a growing angle turns content clockwise on screen
        angle = angle0 - roll * t
    elif name == "RotateCounterClockwise":
        angle = angle0 + roll * t
    elif name == "ZoomIn":  # content grows
        scale = scale0 * np.exp(zoom * t)
    elif name == "ZoomOut":
        scale = scale0 * np.exp(-zoom * t)

    # Distractors: objects on random walks, independent of the class, drawn over the scene.
    sprites = []
    for _ in range(int(rng.integers(2, 5))):
        ds = int(rng.integers(16, 30) * unit)
        steps = rng.normal(0, 0.8 * unit, (T, 2)).cumsum(axis=0)
        spin = rng.normal(0, 0.05)
        sprites.append(
            _Sprite(
                _texture(rng, ds, ds),
                _shape_mask(rng, ds),
                rng.uniform(0, W) + steps[:, 0],
                rng.uniform(0, H) + steps[:, 1],
                rng.uniform(0, 2 * math.pi) + spin * np.arange(T),
                np.ones(T),
            )
        )

    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    dx, dy = xx - (W - 1) / 2, yy - (H - 1) / 2
    frames = np.empty((T, cfg.height, cfg.width, 3), dtype=np.uint8)
    for i in range(T):
        ca, sa = math.cos(angle[i]), math.sin(angle[i])
        # Frame pixel -> scene coordinates: undo the pan (in frame axes), then the roll and zoom.
        px, py = dx - sx[i], dy - sy[i]
        u = (ca * px + sa * py) / scale[i] + ox
        v = (-sa * px + ca * py) / scale[i] + oy
        frame = _sample_periodic(scene, u, v)
        for sp in sprites:
            _draw(frame, sp, i)
        frame = frame.reshape(H // 2, 2, W // 2, 2, 3).mean(axis=(1, 3))
        frames[i] = np.clip(np.rint(frame), 0, 255).astype(np.uint8)
    return frames


# --------------------------------------------------------------------------------------------------
# Writing


def _video_name(cls: str, index: int) -> str:
    return f"{cls}/v_{cls}_g{index + 1:02d}_c01.mp4"


def _plan(cfg: SyntheticConfig) -> list[tuple[str, int, int, str]]:
    """(relative path, label, video seed, list: train | test | val) for every video; the validation
    videos come after the train and test ones, which stay what they were without them."""
    plan = []
    n_train, n_test = cfg.train_per_class, cfg.test_per_class
    for label, cls in enumerate(CLASSES[: cfg.num_classes]):
        for i in range(n_train + n_test + cfg.val_count):
            which = "train" if i < n_train else "test" if i < n_train + n_test else "val"
            plan.append((_video_name(cls, i), label, label * 100_000 + i, which))
    return plan


def _make_one(args: tuple[SyntheticConfig, Path, str, int, int]) -> None:
    cfg, videos, rel, label, seed = args
    write_video(videos / rel, render_video(cfg, label, seed), cfg.fps, cfg.crf)


def _write_lines(path: Path, lines: list[str]) -> None:
    write_bytes(path, "".join(line + "\r\n" for line in lines).encode())  # CRLF, as the official files


def generate(root: str | Path, cfg: SyntheticConfig, workers: int = 2) -> Path:
    """Generate the set into ``root`` unless an identical one is already there. Returns ``root``.

    Regenerating also removes ``root/flow`` (where the synthetic config stores the flow it computes
    from the videos)."""
    root = Path(root)
    meta = root / "synthetic.json"
    if meta.is_file():
        try:
            if json.loads(meta.read_text()).get("digest") == cfg.digest():
                return root
        except json.JSONDecodeError:
            pass
        log.info("synthetic dataset parameters changed: regenerating %s", root)
    for sub in ("UCF-101", "ucfTrainTestlist", "flow"):  # flow computed from the old videos goes too
        shutil.rmtree(root / sub, ignore_errors=True)
    meta.unlink(missing_ok=True)
    plan = _plan(cfg)
    videos = root / "UCF-101"
    ann = root / "ucfTrainTestlist"
    ann.mkdir(parents=True, exist_ok=True)
    jobs = [(cfg, videos, rel, label, seed) for rel, label, seed, _ in plan]
    log.info("generating %d synthetic videos into %s (made once, then reused)", len(jobs), root)
    started = time.perf_counter()
    bar = tqdm(total=len(jobs), desc="synthetic set", unit="video", disable=len(jobs) < 16)
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            for _ in pool.map(_make_one, jobs, chunksize=4):
                bar.update(1)
    else:
        for job in jobs:
            _make_one(job)
            bar.update(1)
    bar.close()
    classes = CLASSES[: cfg.num_classes]
    _write_lines(ann / "classInd.txt", [f"{i + 1} {c}" for i, c in enumerate(classes)])
    _write_lines(ann / "trainlist01.txt", [f"{rel} {label + 1}" for rel, label, _, w in plan if w == "train"])
    _write_lines(ann / "testlist01.txt", [rel for rel, _, _, w in plan if w == "test"])
    if cfg.val_count:
        _write_lines(ann / "vallist01.txt", [f"{rel} {label + 1}" for rel, label, _, w in plan if w == "val"])
    # Written last: its presence means the set is complete.
    write_json(meta, {"digest": cfg.digest(), "params": asdict(cfg), "classes": list(classes)})
    log.info("synthetic set ready: %d videos in %.0f s (%s)", len(jobs), time.perf_counter() - started, root)
    return root
