"""Start-up cost of the CLI against a bare ``import torch, numpy``, measured in one run.

Each command runs ``--repeats`` times, interleaved (so a change of machine load hits all of
them alike); the median wall time and its ratio to the bare import are printed.

    python benchmarks/bench_startup.py --repeats 7
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

COMMANDS: dict[str, list[str]] = {
    "python -c 'import torch, numpy'": ["-c", "import torch, numpy"],
    "collapse-probe --help": ["-m", "collapse_probe", "--help"],
    "collapse-probe audit --example": ["-m", "collapse_probe", "audit", "--example"],
}
BASELINE = "python -c 'import torch, numpy'"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    for _ in range(args.repeats):
        for name, argv in COMMANDS.items():
            start = time.perf_counter()
            done = subprocess.run([sys.executable, *argv], env=env, cwd=ROOT, capture_output=True)
            times[name].append(time.perf_counter() - start)
            if done.returncode != 0:
                raise SystemExit(f"{name} failed: {done.stderr.decode()[-500:]}")
    base = statistics.median(times[BASELINE])
    print(f"{'command':34} {'median s':>9} {'min s':>7} {'x import':>9}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:34} {median:>9.2f} {min(values):>7.2f} {median / base:>9.2f}")
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
