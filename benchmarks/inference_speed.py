"""I3D inference and training throughput: the fp32 eager reference against the fast paths, next to
this machine's matrix-multiply rate in the same precision (the ceiling).

    python benchmarks/inference_speed.py                       # CPU: 16x224x224 snippets, batch 4
    python benchmarks/inference_speed.py --device cuda --batch 32 --compile

Inference: snippets/s and achieved GFLOP/s (FLOPs of one snippet counted with torch's FlopCounterMode,
2 per multiply-add) for the reference (fp32, eager, batch norm separate) and the fast paths of
``i3d_train.inference.fast.prepare`` (batch norm folded, channels_last_3d, fp32 / bf16 [/ fp16 on GPUs],
optionally torch.compile). Training: clips/s of a full SGD step, fp32 and with bf16 autocast.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from i3d_train.inference.fast import cpu_has_bf16, prepare
from i3d_train.models.i3d import InceptionI3d


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device, repeats: int) -> float:
    fn()  # warm-up (and compilation)
    sync(device)
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync(device)
    return (time.perf_counter() - t) / repeats


def matmul_ceiling(device: torch.device, dtype: torch.dtype, n: int = 2048, repeats: int = 10) -> float:
    """GFLOP/s of an n x n x n matrix product in ``dtype``: the best of ``torch.mm`` and the same
    product as a 1x1 convolution (oneDNN's GEMM on CPUs; the BLAS behind torch.mm may not use the
    widest vector units everywhere, e.g. on AMD CPUs)."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    mm = 2 * n**3 / timed(lambda: a @ b, device, repeats) / 1e9
    side = int(n**0.5)
    x = torch.randn(1, n, side, side, device=device).to(dtype).contiguous(memory_format=torch.channels_last)
    w = torch.randn(n, n, 1, 1, device=device).to(dtype).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        conv = 2 * n * n * side * side / timed(lambda: F.conv2d(x, w), device, repeats) / 1e9
    return max(mm, conv)


def snippet_flops(model: torch.nn.Module, x: torch.Tensor) -> float:
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(x[:1])
    return float(counter.get_total_flops())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--train-size", type=int, default=112, help="crop size of the training-step measurement")
    p.add_argument("--compile", action="store_true", help="also measure torch.compile on the fast path")
    args = p.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = InceptionI3d(400).to(device).eval()
    x = torch.rand(args.batch, 3, args.frames, args.size, args.size, device=device) * 2 - 1
    flops = snippet_flops(model, x)
    threads = torch.get_num_threads() if device.type == "cpu" else None
    what = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU, {threads} threads, bf16 instructions: {cpu_has_bf16()}"
    )
    print(f"device: {what}; torch {torch.__version__}")
    print(
        f"I3D inference, {args.frames}x{args.size}x{args.size} snippets, batch {args.batch}, {flops / 1e9:.1f} GFLOP per snippet\n"
    )

    half = [("bf16", torch.bfloat16)] + ([("fp16", torch.float16)] if device.type == "cuda" else [])
    ceilings = {name: matmul_ceiling(device, dt) for name, dt in [("fp32", torch.float32), *half]}
    paths = [("reference (fp32 eager)", dict(fast=False), "fp32")]
    paths += [(f"fast {name}", dict(fast=True, precision=name), name) for name in ["fp32", *[h for h, _ in half]]]
    if args.compile:
        paths += [(f"fast {name} + compile", dict(fast=True, precision=name, compile=True), name) for name, _ in half]
    print("| path | snippets/s | x reference | GFLOP/s | matmul ceiling GFLOP/s | % of ceiling |")
    print("|---|---|---|---|---|---|")
    base = None
    for label, kw, prec in paths:
        m = prepare(model, device=device, **kw)
        secs = timed(lambda m=m: m(x, "extract_features"), device, args.repeats)
        rate = args.batch / secs
        base = base or rate
        gflops = rate * flops / 1e9
        print(
            f"| {label} | {rate:.2f} | {rate / base:.2f} | {gflops:.0f} | {ceilings[prec]:.0f} | {100 * gflops / ceilings[prec]:.0f}% |"
        )

    xt = torch.rand(args.batch, 3, args.frames, args.train_size, args.train_size, device=device) * 2 - 1
    y = torch.randint(0, 400, (args.batch,), device=device)
    train_model = InceptionI3d(400).to(device).to(memory_format=torch.channels_last_3d).train()
    opt = torch.optim.SGD(train_model.parameters(), lr=1e-3, momentum=0.9)
    print(f"\nI3D training step (SGD), {args.frames}x{args.train_size}x{args.train_size} clips, batch {args.batch}:\n")
    print("| precision | clips/s | x fp32 |")
    print("|---|---|---|")
    t_base = None
    for name, dt in [("fp32", None), *half]:

        def step(dt=dt):
            with torch.autocast(device.type, dtype=dt, enabled=dt is not None):
                loss = F.cross_entropy(train_model(xt.contiguous(memory_format=torch.channels_last_3d)), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        rate = args.batch / timed(step, device, args.repeats)
        t_base = t_base or rate
        print(f"| {name}{' autocast' if dt is not None else ''} | {rate:.2f} | {rate / t_base:.2f} |")


if __name__ == "__main__":
    main()
