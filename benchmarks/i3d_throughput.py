"""I3D training-step and inference throughput (clips/s) at a few clip sizes.

python benchmarks/i3d_throughput.py                      # CPU sizes
python benchmarks/i3d_throughput.py --sizes 64x224 --batch 8 --device cuda
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from i3d_train.models.i3d import InceptionI3d


def measure(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, train: bool) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    model.train(train)

    def step() -> None:
        if train:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        else:
            with torch.inference_mode():
                model(x)

    step()  # warm-up
    if x.is_cuda:
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    if x.is_cuda:
        torch.cuda.synchronize()
    return steps * x.shape[0] / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="16x112,16x56,64x224", help="comma-separated TxS clip sizes")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    print(f"device {args.device}, torch {torch.__version__}, threads {torch.get_num_threads()}, batch {args.batch}")
    print(f"{'clip':>10} {'train clips/s':>14} {'inference clips/s':>18}")
    for size in args.sizes.split(","):
        t, s = (int(v) for v in size.split("x"))
        model = InceptionI3d(8).to(args.device)
        x = torch.rand(args.batch, 3, t, s, s, device=args.device) * 2 - 1
        y = torch.randint(0, 8, (args.batch,), device=args.device)
        tr = measure(model, x, y, args.steps, train=True)
        inf = measure(model, x, y, args.steps, train=False)
        print(f"{t:>3}x{s}x{s} {tr:>14.1f} {inf:>18.1f}")


if __name__ == "__main__":
    main()
