"""Time one KoLeo-Proto forward + backward on the CPU: blocked exact search vs a dense baseline.

The dense baseline is the textbook implementation: the whole K x K similarity matrix in memory,
arg-max per row, then the distances of the (k, nn(k)) pairs with autograd. It needs 4 K^2 bytes
(256 MiB at K = 8192, 16 GiB at K = 65536), so it is only run where it fits (``--dense-max``).

Two heads of unit prototypes in D dimensions: ``healthy`` (random directions) and ``collapsed``
(K prototypes in ``--groups`` groups of near-copies 1e-4 apart, like released DINO heads):
near-ties float32 cannot order are decided again in float64, which costs extra on collapsed heads.

    .venv/bin/python benchmarks/bench_koleo.py                 # K = 8192 and 65536, D = 256
    .venv/bin/python benchmarks/bench_koleo.py --sizes 8192 --repeats 5 --json koleo.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, no install

from collapse_probe.koleo import koleo_proto_loss  # noqa: E402


def dense_koleo(weight: torch.Tensor, delta: float = 1e-8) -> torch.Tensor:
    unit = torch.nn.functional.normalize(weight.float(), dim=1)
    with torch.no_grad():
        sims = unit @ unit.T  # (K, K): the memory the blocked search avoids
        sims.fill_diagonal_(-2.0)
        neighbours = sims.argmax(dim=1)
    dist = (unit - unit[neighbours]).pow(2).sum(dim=1).clamp_min(1e-30).sqrt()
    return -torch.log(dist + delta).mean()


def head(num: int, dim: int, groups: int | None, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    if groups is None:
        return torch.randn(num, dim, generator=gen)
    centres = torch.nn.functional.normalize(torch.randn(groups, dim, generator=gen), dim=1)
    members = torch.randint(0, groups, (num,), generator=gen)
    return centres[members] + 1e-4 * torch.randn(num, dim, generator=gen)


def time_step(fn, weight: torch.Tensor, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        w = weight.clone().requires_grad_(True)
        start = time.perf_counter()
        fn(w).backward()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[8192, 65536])
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--groups", type=int, default=1000)
    parser.add_argument("--anchors", type=int, default=4096, help="sampled mode: anchors per step")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dense-max", type=int, default=16384, help="largest K for the dense baseline")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    rows = []
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")
    print(f"{'K':>7} {'head':>9} {'method':>22} {'seconds':>9}")
    for num in args.sizes:
        for name, groups in (("healthy", None), ("collapsed", args.groups)):
            weight = head(num, args.dim, groups)
            methods = {"blocked exact": lambda w: koleo_proto_loss(w),
                       f"sampled ({args.anchors} anchors)": lambda w: koleo_proto_loss(
                           w, num_anchors=args.anchors, generator=torch.Generator().manual_seed(0))}
            if num <= args.dense_max:
                methods["dense K x K"] = dense_koleo
            for method, fn in methods.items():
                seconds = time_step(fn, weight, args.repeats)
                rows.append({"K": num, "D": args.dim, "head": name, "method": method, "seconds": seconds})
                print(f"{num:>7} {name:>9} {method:>22} {seconds:>9.3f}", flush=True)
            if num > args.dense_max:
                print(f"{num:>7} {name:>9} {'dense K x K':>22} {'skipped':>9}  "
                      f"({4 * num * num / 2**30:.0f} GiB matrix)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
