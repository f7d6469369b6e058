"""Training clips/s per architecture: fp32 eager against the default ``trainer.precision=auto`` path.

    python benchmarks/train_speed.py                        # CPU, every model on its input_small
    python benchmarks/train_speed.py --models i3d --compile # also trainer.compile=true, compile time included
    python benchmarks/train_speed.py --device cuda --input full --batch 16   # one call on a GPU

Each model trains through a real Lightning ``Trainer`` and the project's ``VideoClassifier`` (the
model's own optimiser config, AdamW) on random clips of its input shape (``model.input_small``, the
synthetic recipe's, or ``--input full``: the paper's), so only the training step is timed, not data
loading. Variants, measured in interleaved rounds in one process (median per variant, so the ratios
come from one run under the same load):

- ``fp32``: ``trainer.precision=32-true``, default memory format (the reference);
- ``fp32+cl``: fp32 with ``channels_last_3d`` (``model.channels_last``);
- ``auto``: ``trainer.precision=auto`` (bf16-mixed on CPUs with AVX512-BF16/AMX and bf16 GPUs,
  16-mixed on older GPUs, else 32-true), default memory format;
- ``auto+cl``: auto with ``channels_last_3d``;
- ``default``: what ``python train.py model=<m>`` runs (auto, and the model's ``channels_last``);
- with ``--compile``: ``default+compile`` (``trainer.compile=true``): its steady clips/s, and the
  compile time (the first steps, less what they would take uncompiled), with the number of training
  clips after which compiling pays off.

Prints a Markdown table of clips/s and the ratios to fp32.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import statistics
import time
import warnings
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from torch.utils.data import DataLoader, Dataset

from i3d_train.data.datamodule import ClipSpec
from i3d_train.engine.trainer_options import resolve_precision, trainer_config
from i3d_train.inference.fast import cpu_has_bf16

CONF = str(Path(__file__).resolve().parents[1] / "conf")
MODELS = ["i3d", "c3d", "convnet_lstm", "two_stream", "fused_two_stream", "i3d_two_stream"]
CHANNELS = {"rgb": 3, "flow": 2}


def model_config(model: str):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose("train", overrides=[f"model={model}"])


def clip_shapes(cfg, full: bool) -> dict[str, tuple[int, ...]]:
    """``{modality: (C, T, H, W)}`` of one training sample."""
    spec = ClipSpec.from_config(dict(cfg.model.input), None if full else dict(cfg.model.input_small))
    frames = {"rgb": spec.num_frames, "flow": spec.flow_frames or spec.num_frames}
    return {m: (CHANNELS[m], frames[m], spec.crop_size, spec.crop_size) for m in spec.modalities}


class RandomClips(Dataset):
    def __init__(self, shapes: dict[str, tuple[int, ...]], num_classes: int, n: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.samples = [
            {
                **{m: torch.rand(s, generator=g) * 2 - 1 for m, s in shapes.items()},
                "label": torch.randint(num_classes, (), generator=g),
            }
            for _ in range(n)
        ]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.samples[i]


class StepTimer(pl.Callback):
    """Wall time of every training step (optimiser step included)."""

    def __init__(self, device: torch.device, clock=time.perf_counter) -> None:
        self.device = device
        self.clock = clock
        self.times: list[float] = []

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._sync()
        self._t = self.clock()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._sync()
        self.times.append(self.clock() - self._t)


def run_steps(
    cfg, data: Dataset, precision: str, channels_last: bool, compile_net: bool, steps: int, device, clock
) -> list[float]:
    """Per-step times of ``steps`` training steps through a real Trainer."""
    torch.manual_seed(0)
    net = instantiate(cfg.model.net)
    module = instantiate(cfg.module, net=net, channels_last=channels_last, scheduler=None)
    timer = StepTimer(device, clock)
    with contextlib.redirect_stdout(io.StringIO()):  # the choice is printed once, above the table
        tcfg = trainer_config(
            {
                "accelerator": "gpu" if device.type == "cuda" else "cpu",
                "devices": 1,
                "precision": precision,
                "compile": compile_net,
                "max_steps": steps,
                "logger": False,
                "enable_checkpointing": False,
                "enable_progress_bar": False,
                "enable_model_summary": False,
                "num_sanity_val_steps": 0,
                "limit_val_batches": 0,
            },
            module.net,
        )
    trainer = pl.Trainer(**tcfg, callbacks=[timer])
    loader = DataLoader(data, batch_size=cfg.data.batch_size, shuffle=False, drop_last=True)
    trainer.fit(module, train_dataloaders=loader)
    return timer.times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--input", default="small", choices=["small", "full"], help="model.input_small or model.input")
    p.add_argument("--batch", type=int, default=8, help="clips per step (the synthetic recipe's: 8)")
    p.add_argument("--steps", type=int, default=3, help="timed steps per variant and round")
    p.add_argument("--warmup", type=int, default=1, help="untimed first steps of every measurement")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median step time is kept")
    p.add_argument("--compile", action="store_true", help="also measure trainer.compile=true")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument(
        "--clock",
        default="wall",
        choices=["wall", "cpu"],
        help="wall: clips/s; cpu: clips per CPU-second of this process (steadier when other jobs share the CPU)",
    )
    args = p.parse_args()
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device visible")
    accel = "gpu" if device.type == "cuda" else "cpu"
    auto, why = resolve_precision("auto", accel)
    where = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, {where}; CPU bf16 (AVX512-BF16/AMX): {cpu_has_bf16()}")
    print(f"trainer.precision=auto -> {auto} ({why}); batch {args.batch}, input {args.input}")
    print(
        f"{args.rounds} rounds x {args.steps} timed steps per variant (after {args.warmup} warm-up), {args.clock} clock\n"
    )

    rows = []
    for model in args.models.split(","):
        cfg = model_config(model)
        cfg.data.batch_size = args.batch
        shapes = clip_shapes(cfg, args.input == "full")
        data = RandomClips(shapes, cfg.data.num_classes, args.batch * (args.warmup + args.steps))
        cl_default = bool(cfg.model.get("channels_last", False))
        variants = {
            "fp32": ("32-true", False),
            "fp32+cl": ("32-true", True),
            "auto": ("auto", False),
            "auto+cl": ("auto", True),
        }
        times: dict[str, list[float]] = {v: [] for v in variants}
        for _ in range(args.rounds):
            for v, (prec, cl) in variants.items():
                t = run_steps(cfg, data, prec, cl, False, args.warmup + args.steps, device, clock)
                times[v].append(statistics.median(t[args.warmup :]))
        rate = {v: args.batch / statistics.median(ts) for v, ts in times.items()}
        rate["default"] = rate["auto+cl" if cl_default else "auto"]
        comp = ""
        if args.compile:
            t = run_steps(cfg, data, "auto", cl_default, True, args.warmup + args.steps + 2, device, clock)
            steady = statistics.median(t[args.warmup + 2 :])
            eager = args.batch / rate["default"]
            compile_s = sum(t[: args.warmup + 2]) - (args.warmup + 2) * eager
            gain = eager - steady  # seconds saved per step
            pays = f"{compile_s / gain * args.batch:,.0f} clips" if gain > 0 else "never"
            rate["default+compile"] = args.batch / steady
            comp = f" {rate['default+compile']:.1f} ({rate['default+compile'] / rate['fp32']:.2f}x) | {compile_s:.0f} s | {pays} |"
        shape = ", ".join(f"{m} {'x'.join(map(str, s))}" for m, s in shapes.items())
        rows.append(
            f"| {model} | {shape} | {rate['fp32']:.1f} | {rate['fp32+cl'] / rate['fp32']:.2f}x | "
            f"{rate['auto'] / rate['fp32']:.2f}x | {rate['auto+cl'] / rate['fp32']:.2f}x | "
            f"{'yes' if cl_default else 'no'} | {rate['default']:.1f} | {rate['default'] / rate['fp32']:.2f}x |{comp}"
        )
        print(rows[-1], flush=True)

    u = "clips/s" if args.clock == "wall" else "clips/CPU-s"
    head = f"| model | clip (C x T x H x W) | fp32 {u} | fp32+cl | auto | auto+cl | model.channels_last | default {u} | default / fp32 |"
    sep = "|---|---|---|---|---|---|---|---|---|"
    if args.compile:
        head += f" default+compile {u} | compile time | compile pays off after |"
        sep += "---|---|---|"
    unit = "clips/s" if args.clock == "wall" else "clips per CPU-second"
    print(f"\nTraining {unit} ({auto} = auto; ratios to fp32 eager; cl = channels_last_3d):\n")
    print(head)
    print(sep)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
