"""The real demonstration: DINO with and without KoLeo-Proto on scikit-learn's digits.

Trains the small DINO of ``collapse_probe.demo`` on the bundled 8x8 handwritten digits (real
images, no download), with and without the KoLeo-Proto regulariser, over several seeds, on a
balanced and a long-tailed training split, and prints one table: unique prototypes
(``collapse_probe.sweep``, components, eps 0.025 and 0.1), used prototypes, held-out kNN
accuracy of the frozen teacher backbone (and on the tail classes), the loss, the wall time.

    python benchmarks/koleo_demo.py                      # the full table (~45 min, 2 shared cores)
    python benchmarks/koleo_demo.py --quick              # smoke run (~1 min)
    python benchmarks/koleo_demo.py --out collapse_probe/examples/data   # also write checkpoints
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CHECKPOINT_NAMES = {False: "dino_digits.pth", True: "dino_digits_koleo.pth"}


def _run(task: tuple) -> tuple:
    """One training run in a worker process (1 torch thread): returns (key, RunMetrics)."""
    import torch

    torch.set_num_threads(1)
    from collapse_probe.demo import (
        evaluate_run,
        load_digits_split,
        train_dino,
    )
    from collapse_probe.demo.train import save_dino_checkpoint

    variant, long_tail, koleo_weight, seed, config, out = task
    split = load_digits_split(seed=seed, long_tail=long_tail)
    config = replace(config, seed=seed, koleo_weight=koleo_weight)
    if long_tail is not None:
        # the same number of optimisation steps as the balanced run, on fewer images
        balanced = load_digits_split(seed=seed).train_labels.size
        config = replace(config, epochs=max(1, round(config.epochs * balanced / split.train_labels.size)))
    result = train_dino(split.train_images, config=config)
    if out is not None:
        save_dino_checkpoint(result, Path(out) / CHECKPOINT_NAMES[koleo_weight > 0])
    return (variant, koleo_weight > 0, seed), evaluate_run(result, split), config.epochs


def _baselines(seeds: list[int], long_tail: float | None, config) -> tuple[float, float, float, float]:
    """Raw-pixel kNN and untrained (random-init) backbone kNN: (mean, std) each."""
    import torch

    from collapse_probe.demo import (
        backbone_features,
        build_net,
        knn_accuracy,
        load_digits_split,
    )

    raw, rand = [], []
    for seed in seeds:
        s = load_digits_split(seed=seed, long_tail=long_tail)
        raw.append(knn_accuracy(s.train_images, s.train_labels, s.test_images, s.test_labels).accuracy)
        torch.manual_seed(seed)
        net = build_net(config.num_prototypes, feature_dim=config.feature_dim,
                        hidden_dim=config.hidden_dim, bottleneck_dim=config.bottleneck_dim)
        rand.append(knn_accuracy(backbone_features(net, s.train_images), s.train_labels,
                                 backbone_features(net, s.test_images), s.test_labels).accuracy)
    return float(np.mean(raw)), float(np.std(raw)), float(np.mean(rand)), float(np.std(rand))


def _pm(values: list[float], fmt: str = "{:.1f}") -> str:
    mean, std = float(np.mean(values)), float(np.std(values))
    if math.isnan(mean):
        return "-"
    return f"{fmt.format(mean)} ± {fmt.format(std)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None,
                        help="training epochs (default: TrainConfig's, 120)")
    parser.add_argument("--num-prototypes", type=int, default=1024)
    parser.add_argument("--koleo-weight", type=float, default=0.1, help="KoLeo-Proto lambda")
    parser.add_argument("--long-tail", type=float, default=0.1,
                        help="imbalance ratio of the long-tailed variant (0 to skip it)")
    parser.add_argument("--out", type=Path, default=None,
                        help="write the first seed's balanced checkpoints here")
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel (1 thread each)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 seed, 3 epochs, K=256")
    args = parser.parse_args(argv)
    from collapse_probe.demo import TrainConfig

    if args.quick:
        args.seeds, args.epochs, args.num_prototypes = args.seeds[:1], 3, 256
    if args.epochs is None:
        args.epochs = TrainConfig().epochs
    config = TrainConfig(num_prototypes=args.num_prototypes, epochs=args.epochs)
    variants = [("balanced", None)]
    if args.long_tail > 0:
        variants.append((f"long-tail {args.long_tail:g}", args.long_tail))
    tasks = []
    for variant, long_tail in variants:
        for seed in args.seeds:
            for weight in (0.0, args.koleo_weight):
                out = args.out if (args.out is not None and long_tail is None
                                   and seed == args.seeds[0]) else None
                tasks.append((variant, long_tail, weight, seed, config, out))
    started = time.perf_counter()
    results = {}
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for key, metrics, epochs in pool.map(_run, tasks):
            results[key] = (metrics, epochs)
            # progress on stderr, so a long table run can be followed (stdout keeps the table)
            print(f"done {len(results)}/{len(tasks)}: {key[0]} {'koleo' if key[1] else 'plain'} "
                  f"seed {key[2]}: student {metrics.unique_student}, teacher {metrics.unique_teacher}, "
                  f"kNN {100 * metrics.knn:.1f}%, {metrics.seconds:.0f} s", file=sys.stderr, flush=True)
    wall = time.perf_counter() - started

    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
               platform.processor())
    print(f"DINO on sklearn digits: K={config.num_prototypes}, D={config.bottleneck_dim}, "
          f"seeds {args.seeds}, {args.epochs} epochs (long tail: same step count), "
          f"KoLeo-Proto lambda={args.koleo_weight:g}")
    print(f"machine: {cpu}, {os.cpu_count()} cores; wall time {wall:.0f} s for {len(tasks)} runs")
    print()
    header = ("| data | method | student unique @0.025 | student unique @0.1 | teacher unique @0.025 "
              "| teacher unique @0.1 | used | kNN % | tail kNN % | loss first -> last | s/run |")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for variant, long_tail in variants:
        for koleo in (False, True):
            runs = [results[(variant, koleo, s)][0] for s in args.seeds]
            name = f"DINO + KoLeo-Proto ({args.koleo_weight:g})" if koleo else "DINO"
            print(f"| {variant} | {name} "
                  f"| {_pm([r.unique_student[0] for r in runs])} "
                  f"| {_pm([r.unique_student[1] for r in runs])} "
                  f"| {_pm([r.unique_teacher[0] for r in runs])} "
                  f"| {_pm([r.unique_teacher[1] for r in runs])} "
                  f"| {_pm([r.used for r in runs])} "
                  f"| {_pm([100 * r.knn for r in runs])} "
                  f"| {_pm([100 * r.knn_tail for r in runs]) if long_tail else '-'} "
                  f"| {np.mean([r.first_loss for r in runs]):.2f} -> {_pm([r.final_loss for r in runs], '{:.2f}')} "
                  f"| {np.mean([r.seconds for r in runs]):.0f} |")
    print()
    print(f"of K = {config.num_prototypes}; unique = components at eps (collapse_probe.sweep); "
          "used = teacher prototypes that are the argmax for a held-out image. Per run:")
    for (variant, koleo, seed), (r, epochs) in sorted(results.items()):
        print(f"  {variant:14s} {'koleo' if koleo else 'plain'} seed {seed}: epochs {epochs}, "
              f"student {r.unique_student}, teacher {r.unique_teacher}, used {r.used}, "
              f"kNN {100 * r.knn:.1f}%, loss {r.first_loss:.2f} -> {r.final_loss:.2f} "
              f"(ln K = {math.log(r.num_prototypes):.2f})")
    for variant, long_tail in variants:
        raw_m, raw_s, rnd_m, rnd_s = _baselines(args.seeds, long_tail, config)
        print(f"  {variant}: raw-pixel kNN {100 * raw_m:.1f} ± {100 * raw_s:.1f} %, "
              f"untrained backbone kNN {100 * rnd_m:.1f} ± {100 * rnd_s:.1f} %, chance 10 %")
    if args.out is not None:
        print(f"checkpoints (seed {args.seeds[0]}, balanced): "
              + ", ".join(str(args.out / n) for n in CHECKPOINT_NAMES.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
