"""Benchmark the deduplication engine against faiss range_search and a numpy brute force.

Each (case, contender) runs in its own child process, so peak memory (VmHWM, reset through
/proc/self/clear_refs after the data is built) covers faiss and BLAS buffers too.

    python benchmarks/bench_dedup.py                       # the standard cases
    python benchmarks/bench_dedup.py --cases a-collapsed b-healthy
    python benchmarks/bench_dedup.py --input head.npy      # a real head (K, D)
    python benchmarks/bench_dedup.py --cases b-healthy --eps 0.025 --only engine
    python benchmarks/bench_dedup.py --crossover           # dense vs search path by K and D
    python benchmarks/bench_dedup.py --kernels             # candidate-pass kernels side by side
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SWEEP_EPS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5)
BASELINE_EPS = 0.025
#: Baselines are skipped above this K (they take many minutes: ~K^2 D work).
BASELINE_MAX_K = 65536

CASES: dict[str, dict] = {
    "a-collapsed-65k": {"num": 65536, "kind": "collapsed", "groups": 1000, "largest": 20000},
    "b-healthy-65k": {"num": 65536, "kind": "healthy"},
    "c-collapsed-262k": {"num": 262144, "kind": "collapsed", "groups": 2500, "largest": 80000},
    "d-collapsed-1m": {"num": 1048576, "kind": "collapsed", "groups": 4000, "largest": 300000},
    "d-healthy-1m": {"num": 1048576, "kind": "healthy", "eps": (0.01,)},
    # How time grows with eps and K on healthy heads (one threshold per run).
    "healthy-65k-e0.01": {"num": 65536, "kind": "healthy", "eps": (0.01,)},
    "healthy-65k-e0.025": {"num": 65536, "kind": "healthy", "eps": (0.025,)},
    "healthy-65k-e0.1": {"num": 65536, "kind": "healthy", "eps": (0.1,)},
    "healthy-65k-e0.5": {"num": 65536, "kind": "healthy", "eps": (0.5,)},
    "healthy-16k-e0.5": {"num": 16384, "kind": "healthy", "eps": (0.5,)},
    "healthy-262k-e0.01": {"num": 262144, "kind": "healthy", "eps": (0.01,)},
}
#: Cases run by default (the scaling cases are run by name).
DEFAULT_CASES = ("a-collapsed-65k", "b-healthy-65k", "c-collapsed-262k", "d-collapsed-1m", "d-healthy-1m")


def make_head(case: dict, dim: int, seed: int) -> np.ndarray:
    """A synthetic head: skewed collapsed groups with small noise, or random directions."""
    rng = np.random.default_rng(seed)
    num = case["num"]
    if case["kind"] == "healthy":
        x = rng.standard_normal((num, dim), dtype=np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)
    groups, largest = case["groups"], case["largest"]
    # Skewed sizes: one group of `largest`, the rest Zipf-like, every group non-empty.
    weights = 1.0 / np.arange(1, groups) ** 0.9
    rest = num - largest - (groups - 1)
    sizes = np.concatenate([[largest], 1 + np.floor(weights / weights.sum() * rest).astype(int)])
    sizes[1] += num - sizes.sum()
    owner = np.repeat(np.arange(groups), sizes)
    rng.shuffle(owner)
    centres = rng.standard_normal((groups, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    # Member-to-centre distance per group: mostly near-exact copies, some looser groups.
    spread = rng.choice([1e-3, 3e-3, 1e-2, 3e-2], p=[0.6, 0.2, 0.1, 0.1], size=groups).astype(np.float32)
    spread[0] = 2e-3
    out = np.empty((num, dim), dtype=np.float32)
    for start in range(0, num, 65536):
        own = owner[start:start + 65536]
        noise = rng.standard_normal((own.size, dim), dtype=np.float32) / np.float32(np.sqrt(dim))
        block = centres[own] + spread[own, None] * noise
        out[start:start + 65536] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


# ------------------------------------------------------------------ child side
def _peak_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return -1


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def _union_unique(num: int, edge_blocks) -> int:
    """Components of a graph given as blocks of edges, merged block by block (bounded memory)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    labels = np.arange(num)  # each prototype's representative: a prototype of its component
    for rows, cols in edge_blocks:
        r, c = labels[rows], labels[cols]
        graph = coo_matrix((np.ones(r.size, dtype=np.int8), (r, c)), shape=(num, num))
        count, comp = connected_components(graph, directed=False)
        rep = np.full(count, num)
        np.minimum.at(rep, comp, np.arange(num))
        labels = rep[comp[labels]]
    return int(np.unique(labels).size)


def run_child(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT))
    if args.input:
        from collapse_probe.types import PrototypeSet

        x = PrototypeSet.from_array(np.load(args.input)).vectors
    else:
        x = make_head(CASES[args.case], args.dim, args.seed)
    eps_values = tuple(args.eps)
    if not args.input and "eps" in CASES[args.case]:
        eps_values = CASES[args.case]["eps"]
    num = x.shape[0]
    import gc

    gc.collect()
    rss_before = _rss_kib()
    Path("/proc/self/clear_refs").write_text("5")
    result: dict = {"num": num, "dim": x.shape[1], "matrix_mib": x.nbytes / 2**20}
    start = time.perf_counter()
    cpu_start = time.process_time()
    if args.contender == "engine":
        from collapse_probe.dedup import sweep

        res = sweep(x, eps=eps_values, method="components", block_size=args.block_size)
        result["unique"] = {f"{r.eps:g}": r.unique for r in res}
    elif args.contender == "faiss":
        import faiss

        faiss.omp_set_num_threads(os.cpu_count() or 1)
        index = faiss.IndexFlatIP(x.shape[1])
        index.add(x)
        t = 1.0 - BASELINE_EPS ** 2 / 2.0
        pairs = [0]

        def blocks():
            for s in range(0, num, 4096):
                lims, _, idx = index.range_search(x[s:s + 4096], t)
                rows = np.repeat(np.arange(s, min(s + 4096, num)), np.diff(lims).astype(np.int64))
                pairs[0] += idx.size
                yield rows, idx

        result["unique"] = {f"{BASELINE_EPS:g}": _union_unique(num, blocks())}
        result["pairs"] = pairs[0]
    else:  # numpy blocked brute force
        t = 1.0 - BASELINE_EPS ** 2 / 2.0

        def blocks():
            for s in range(0, num, 1024):
                r, c = np.nonzero(x[s:s + 1024] @ x.T > t)
                yield r + s, c

        result["unique"] = {f"{BASELINE_EPS:g}": _union_unique(num, blocks())}
    result["seconds"] = time.perf_counter() - start
    result["cpu_seconds"] = time.process_time() - cpu_start
    result["peak_mib"] = (_peak_kib() - rss_before) / 1024
    print(json.dumps(result))


def crossover(args: argparse.Namespace) -> None:
    """Time the engine's dense and search paths on small heads (in process, best of repeats).

    Prints each path's seconds next to the dense cost model's estimate and which path ``auto``
    picks, on healthy and collapsed heads: the data behind ``dedup.dense`` and ``engine`` constants.
    """
    sys.path.insert(0, str(ROOT))
    from collapse_probe.dedup.dense import dense_seconds
    from collapse_probe.dedup.engine import choose_path, group_labels
    from collapse_probe.thresholds import resolve_thresholds

    thresholds = resolve_thresholds(tuple(args.eps))
    print(f"{'head':9} {'K':>6} {'D':>4} {'dense s':>9} {'model s':>9} {'search s':>9} "
          f"{'search/dense':>12} {'auto':>7}")
    for dim in (64, 256):
        for num in (256, 512, 1024, 2048, 4096, 8192):
            for kind in ("healthy", "collapsed"):
                case = {"num": num, "kind": kind, "groups": max(2, num // 64), "largest": num // 4}
                x = make_head(case, dim, args.seed)
                times = {}
                for path in ("dense", "search"):
                    best = float("inf")
                    for _ in range(args.repeats):
                        start = time.perf_counter()
                        group_labels(x, thresholds, method="components", path=path)
                        best = min(best, time.perf_counter() - start)
                    times[path] = best
                auto = choose_path(x.shape, len(thresholds))
                print(f"{kind:9} {num:>6} {dim:>4} {times['dense']:>9.4f} "
                      f"{dense_seconds(num, dim, len(thresholds)):>9.4f} {times['search']:>9.4f} "
                      f"{times['search'] / times['dense']:>12.2f} {auto:>7}", flush=True)


def kernels(args: argparse.Namespace) -> None:
    """Time the kernels a candidate pass can use, per million pairs, on a healthy head.

    Rows: one block of 2048 representatives against 16384 others (D = 256), in one process:
    numpy float32 product + row max (the engine's float32 tiles), the same on 97 bound
    directions, torch bfloat16 (the engine's bound pass where the CPU has bf16), faiss
    ``IndexFlatIP.search`` k = 2 (a fused product + top-k) and ``range_search`` at eps 0.025.
    """
    import faiss
    import torch

    x = make_head({"num": 2048 + 16384, "kind": "healthy"}, args.dim, args.seed)
    rows, cols = x[:2048], x[2048:]
    low_r, low_c = rows[:, :97].copy(), cols[:, :97].copy()
    index = faiss.IndexFlatIP(args.dim)
    index.add(cols)
    t_rows, t_cols = torch.from_numpy(rows).bfloat16(), torch.from_numpy(cols).bfloat16()
    b_rows, b_cols = torch.from_numpy(low_r).bfloat16(), torch.from_numpy(low_c).bfloat16()
    cut = 1.0 - 0.025 ** 2 / 2.0
    contenders = {
        "numpy float32, D dims": lambda: (rows @ cols.T).max(axis=1),
        "numpy float32, 97 dims": lambda: (low_r @ low_c.T).max(axis=1),
        "torch bfloat16, D dims": lambda: (t_rows @ t_cols.T).amax(dim=1),
        "torch bfloat16, 97 dims": lambda: (b_rows @ b_cols.T).amax(dim=1),
        "faiss search k=2, D dims": lambda: index.search(rows, 2),
        "faiss range_search, D dims": lambda: index.range_search(rows, cut),
    }
    pairs = rows.shape[0] * cols.shape[0] / 1e6
    print(f"torch threads {torch.get_num_threads()}, faiss threads {faiss.omp_get_max_threads()}")
    print(f"{'kernel':28} {'ms per 1M pairs':>16}")
    for name, run in contenders.items():
        run()
        best = float("inf")
        for _ in range(args.repeats):
            start = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - start)
        print(f"{name:28} {best * 1e3 / pairs:>16.3f}", flush=True)


# ------------------------------------------------------------------ parent side
def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    load = os.getloadavg()
    return (f"{model}, {os.cpu_count()} cores, {mem_kib / 2**20:.0f} GiB RAM, "
            f"load average {load[0]:.1f} at start, Python {platform.python_version()}")


def run_case(case: str, contender: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", "--case", case, "--contender", contender,
           "--dim", str(args.dim), "--seed", str(args.seed), "--block-size", str(args.block_size),
           "--eps", *[str(e) for e in args.eps]]
    if args.input:
        cmd += ["--input", args.input]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="*", default=list(DEFAULT_CASES), choices=list(CASES))
    parser.add_argument("--input", help="a real head as .npy (K, D); replaces the synthetic cases")
    parser.add_argument("--eps", nargs="*", type=float, default=list(SWEEP_EPS))
    parser.add_argument("--only", choices=["engine", "faiss", "numpy"], nargs="*")
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--block-size", type=int, default=2048)
    parser.add_argument("--baseline-max-k", type=int, default=BASELINE_MAX_K)
    parser.add_argument("--crossover", action="store_true",
                        help="time the dense and search paths on small heads instead")
    parser.add_argument("--kernels", action="store_true",
                        help="time the candidate-pass kernels (numpy, torch bf16, faiss) instead")
    parser.add_argument("--repeats", type=int, default=3, help="repeats per cell of --crossover")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--contender", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args)
        return
    if args.crossover or args.kernels:
        print(f"machine: {machine()}")
        (crossover if args.crossover else kernels)(args)
        return
    print(f"machine: {machine()}")
    print(f"sweep eps: {', '.join(f'{e:g}' for e in args.eps)} (components); baselines at eps {BASELINE_EPS:g}")
    cases = ["input"] if args.input else args.cases
    print("vs engine: baseline time / engine time, wall/cpu (the engine runs the whole sweep, "
          "the baselines one threshold)")
    header = (f"{'case':18} {'contender':9} {'K':>8} {'wall s':>8} {'cpu s':>8} {'peak MiB':>9} "
              f"{'x matrix':>8} {'unique at 0.025':>15} {'vs engine':>9}")
    print(header)
    print("-" * len(header))
    for case in cases:
        engine_time = None
        engine_unique = None
        for contender in args.only or ["engine", "faiss", "numpy"]:
            num = CASES[case]["num"] if case in CASES else None
            if contender != "engine" and num is not None and num > args.baseline_max_k:
                print(f"{case:18} {contender:9} {num:>8} {'skipped: ~K^2 D work, minutes':>45}")
                continue
            res = run_case(case, contender, args)
            if "error" in res:
                print(f"{case:18} {contender:9} error: {res['error']}")
                continue
            unique = res["unique"].get(f"{BASELINE_EPS:g}", "-")
            ratio = ""
            if contender == "engine":
                engine_time, engine_unique = res["seconds"], unique
                engine_cpu = res["cpu_seconds"]
            elif engine_time:
                ratio = f"{res['seconds'] / engine_time:.1f}x/{res['cpu_seconds'] / engine_cpu:.1f}x"
                if engine_unique != "-" and unique != engine_unique:
                    ratio += " MISMATCH"
            print(f"{case:18} {contender:9} {res['num']:>8} {res['seconds']:>8.2f} {res['cpu_seconds']:>8.2f} "
                  f"{res['peak_mib']:>9.0f} "
                  f"{res['peak_mib'] / res['matrix_mib']:>8.2f} {str(unique):>15} {ratio:>9}", flush=True)
            if contender == "engine":
                if case in CASES and "eps" in CASES[case]:
                    print(f"{'':18} (this case runs eps {CASES[case]['eps']} only)")
                sweep_line = ", ".join(f"{k}: {v}" for k, v in res["unique"].items())
                print(f"{'':18} unique per eps: {sweep_line}", flush=True)


if __name__ == "__main__":
    main()
