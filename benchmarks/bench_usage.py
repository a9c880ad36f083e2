"""Throughput and peak memory of data-side usage (blocked argmax assignment) on the CPU.

N samples (D = 256 bottleneck embeddings) against K prototypes of a collapsed head (``--groups``
groups of near-copies). Reports samples per second, the extrapolated time for 1M samples, and
the peak memory numpy allocated (tracemalloc) next to what an N x K score matrix would need.

    python benchmarks/bench_usage.py                       # N = 20000, K = 65536
    python benchmarks/bench_usage.py --num-samples 100000 --block-size 2048
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc

import numpy as np

from collapse_probe.usage import assign, data_usage
from collapse_probe.types import PrototypeSet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-samples", type=int, default=20000)
    parser.add_argument("--num-prototypes", type=int, default=65536)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--groups", type=int, default=1000)
    parser.add_argument("--block-size", type=int, default=4096)
    parser.add_argument("--prototype-block-size", type=int, default=4096)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n, k, d = args.num_samples, args.num_prototypes, args.dim
    centres = rng.standard_normal((args.groups, d)).astype(np.float32)
    owner = np.concatenate([np.arange(args.groups), rng.integers(0, args.groups, k - args.groups)])
    protos = PrototypeSet.from_array(centres[owner] + 1e-4 * rng.standard_normal((k, d)).astype(np.float32) / d ** 0.5)
    samples = centres[rng.integers(0, args.groups, n)] + rng.standard_normal((n, d)).astype(np.float32)

    tracemalloc.start()
    start = time.perf_counter()
    assign(protos.vectors, samples, block_size=args.block_size, prototype_block_size=args.prototype_block_size)
    assign_s = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    start = time.perf_counter()
    report = data_usage(protos, samples, block_size=args.block_size,
                        prototype_block_size=args.prototype_block_size)
    total_s = time.perf_counter() - start
    result = {
        "N": n, "K": k, "D": d, "tile": [args.block_size, args.prototype_block_size],
        "assign_s": assign_s, "samples_per_s": n / assign_s, "extrapolated_1M_s": 1e6 / (n / assign_s),
        "gflops": 2.0 * n * k * d / assign_s / 1e9, "data_usage_s": total_s,
        "peak_traced_mib": peak / 2 ** 20, "dense_scores_mib": n * k * 4 / 2 ** 20,
        "used": report.used, "unique": report.unique, "merged_perplexity": report.merged_perplexity}
    if args.json:
        print(json.dumps(result))
        return
    print(f"N={n} K={k} D={d} tile={args.block_size}x{args.prototype_block_size}")
    print(f"assign: {assign_s:.1f} s, {result['samples_per_s']:.0f} samples/s ({result['gflops']:.0f} GFLOP/s), "
          f"1M samples ~ {result['extrapolated_1M_s'] / 60:.1f} min")
    print(f"peak traced memory {result['peak_traced_mib']:.0f} MiB (an N x K score matrix: "
          f"{result['dense_scores_mib']:.0f} MiB; at 1M samples: {1e6 * k * 4 / 2 ** 30:.0f} GiB)")
    print(f"data_usage (dedup + assign + stats): {total_s:.1f} s; used {report.used}, unique {report.unique}, "
          f"merged perplexity {report.merged_perplexity:.1f}")


if __name__ == "__main__":
    main()
