"""Time one KoLeo-Proto forward + backward on the CPU: blocked exact search vs a dense baseline.

The dense baseline is the textbook implementation: the whole K x K similarity matrix in memory,
arg-max per row, then the distances of the (k, nn(k)) pairs with autograd. It needs 4 K^2 bytes
(256 MiB at K = 8192, 16 GiB at K = 65536), so it is only run where it fits (``--dense-max``).
Next to it, the bare float32 product ``unit @ unit.T`` (no arg-max, no backward) at the same K:
the floor any exact search over all pairs pays.

Three heads of unit prototypes in D dimensions, measured in the same run (repeats interleaved,
so load changes hit them alike):

* ``healthy``: random directions;
* ``equal``: K prototypes in ``--groups`` equal groups of near-copies 1e-4 apart;
* ``zipf``: the realistic collapsed head: one giant group (3000 near-copies at K = 16384, 20000
  at K = 65536, K / 5 otherwise; ``--giant``) and the rest in groups of Zipf sizes
  (``m / i``: a few hundred down to singletons), members about ``--spacing`` (1e-3) apart,
  index order shuffled. Float32 cannot order the neighbours inside a group: the exact search
  decides them in float64.

    .venv/bin/python benchmarks/bench_koleo.py                 # K = 8192, 16384, 65536; D = 256
    .venv/bin/python benchmarks/bench_koleo.py --sizes 16384 --repeats 3 --json koleo.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, no install

from collapse_probe.koleo import koleo_proto_loss  # noqa: E402

#: The giant group of the realistic collapsed head at the sizes the targets name.
GIANT = {16384: 3000, 65536: 20000}


def dense_koleo(weight: torch.Tensor, delta: float = 1e-8) -> torch.Tensor:
    unit = torch.nn.functional.normalize(weight.float(), dim=1)
    with torch.no_grad():
        sims = unit @ unit.T  # (K, K): the memory the blocked search avoids
        sims.fill_diagonal_(-2.0)
        neighbours = sims.argmax(dim=1)
    dist = (unit - unit[neighbours]).pow(2).sum(dim=1).clamp_min(1e-30).sqrt()
    return -torch.log(dist + delta).mean()


def dense_product(weight: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        unit = torch.nn.functional.normalize(weight.float(), dim=1)
        return unit @ unit.T


def zipf_sizes(num: int, giant: int) -> list[int]:
    """One group of ``giant`` members, the other ``num - giant`` in groups of sizes ``m // i``
    (i = 1, 2, ...; the largest m that fits), the remainder as singletons."""
    rest = num - giant
    low, high = 1, max(rest, 1)
    while low < high:
        m = (low + high + 1) // 2
        total, i = 0, 1
        while total <= rest and m // i >= 1:
            total += m // i
            i += 1
        low, high = (m, high) if total <= rest else (low, m - 1)
    sizes, left, i = [giant], rest, 1
    while left > 0:
        size = min(left, max(1, low // i))
        sizes.append(size)
        left -= size
        i += 1
    return sizes


def zipf_head(num: int, dim: int, giant: int, *, spacing: float = 1e-3, seed: int = 0) -> torch.Tensor:
    """(num, dim) float32: groups of near-copies ``spacing`` apart (typical pair distance)
    around random unit centres, one giant group and Zipf-sized others, rows shuffled."""
    gen = torch.Generator().manual_seed(seed)
    sizes = zipf_sizes(num, giant)
    centres = torch.nn.functional.normalize(torch.randn(len(sizes), dim, generator=gen), dim=1)
    owner = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    owner = owner[torch.randperm(num, generator=gen)]
    # per-coordinate std s gives pairs s * sqrt(2 dim) apart
    return centres[owner] + spacing / (2 * dim) ** 0.5 * torch.randn(num, dim, generator=gen)


def equal_head(num: int, dim: int, groups: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    centres = torch.nn.functional.normalize(torch.randn(groups, dim, generator=gen), dim=1)
    members = torch.randint(0, groups, (num,), generator=gen)
    return centres[members] + 1e-4 * torch.randn(num, dim, generator=gen)


def giant_size(num: int, override: int | None) -> int:
    return override if override is not None else GIANT.get(num, num // 5)


def time_once(fn, weight: torch.Tensor, backward: bool = True) -> float:  # noqa: ANN001
    w = weight.clone().requires_grad_(backward)
    start = time.perf_counter()
    value = fn(w)
    if backward:
        value.backward()
    return time.perf_counter() - start


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[8192, 16384, 65536])
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--groups", type=int, default=1000, help="groups of the equal-groups head")
    parser.add_argument("--giant", type=int, default=None, help="giant group of the zipf head")
    parser.add_argument("--spacing", type=float, default=1e-3, help="distance between near-copies (zipf)")
    parser.add_argument("--heads", nargs="+", default=["healthy", "equal", "zipf"])
    parser.add_argument("--anchors", type=int, default=4096, help="sampled mode: anchors per step")
    parser.add_argument("--no-sampled", action="store_true", help="skip the sampled mode")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many (interleaved)")
    parser.add_argument("--dense-max", type=int, default=16384, help="largest K for the dense baselines")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's); 1 keeps a loaded machine's ratios steadier")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    rows = []
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.processor() or platform.machine()}, load average {load_average()}")
    print(f"{'K':>7} {'head':>9} {'method':>24} {'seconds':>9}")
    for num in args.sizes:
        heads = {"healthy": lambda: torch.randn(num, args.dim, generator=torch.Generator().manual_seed(1)),
                 "equal": lambda: equal_head(num, args.dim, args.groups),
                 "zipf": lambda: zipf_head(num, args.dim, giant_size(num, args.giant), spacing=args.spacing)}
        weights = {name: heads[name]() for name in args.heads}
        cells: list[tuple[str, str, object, torch.Tensor, bool]] = []
        for name, weight in weights.items():
            cells.append((name, "blocked exact", lambda w: koleo_proto_loss(w), weight, True))
            if not args.no_sampled:
                cells.append((name, f"sampled ({args.anchors} anchors)", lambda w: koleo_proto_loss(
                    w, num_anchors=args.anchors, generator=torch.Generator().manual_seed(0)), weight, True))
        if num <= args.dense_max:
            healthy = weights.get("healthy", next(iter(weights.values())))
            cells.append(("healthy", "dense K x K", dense_koleo, healthy, True))
            cells.append(("healthy", "dense product only", dense_product, healthy, False))
        best: dict[tuple[str, str], float] = {}
        for _ in range(args.repeats):  # interleaved: a load spike hits every cell alike
            for name, method, fn, weight, backward in cells:
                seconds = time_once(fn, weight, backward)
                best[(name, method)] = min(seconds, best.get((name, method), float("inf")))
        for (name, method), seconds in best.items():
            rows.append({"K": num, "D": args.dim, "head": name, "method": method, "seconds": seconds,
                         "giant": giant_size(num, args.giant) if name == "zipf" else None})
            print(f"{num:>7} {name:>9} {method:>24} {seconds:>9.3f}", flush=True)
        exact = {name: best[(name, "blocked exact")] for name in weights}
        for name in weights:
            if name != "healthy" and "healthy" in exact:
                print(f"{num:>7} ratio {name}/healthy (blocked exact): {exact[name] / exact['healthy']:.2f}x")
        if ("healthy", "dense product only") in best and "healthy" in exact:
            for name in exact:
                print(f"{num:>7} ratio {name} blocked exact / dense float32 product: "
                      f"{exact[name] / best[('healthy', 'dense product only')]:.2f}x; / dense K x K "
                      f"KoLeo: {exact[name] / best[('healthy', 'dense K x K')]:.2f}x")
        if num > args.dense_max:
            print(f"{num:>7} dense baselines skipped ({4 * num * num / 2**30:.0f} GiB matrix)")
    print(f"load average at the end {load_average()}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
