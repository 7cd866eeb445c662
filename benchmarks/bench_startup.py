"""Benchmark the tool's own start-up: `reconcile --help`, best of N runs (target: <= 0.3 s).

    python benchmarks/bench_startup.py [--runs N]

Also times `python -m reconcile --help` and a bare `python -c pass` (the interpreter's own start-up,
the floor nothing can go below), and lists the slowest imports of `reconcile --help`
(python -X importtime), so a heavy module imported at start-up shows up by name.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET = 0.3


def timed(argv: list[str], runs: int) -> tuple[float, float]:
    """(best, median) wall time of `argv` over `runs` runs (after one warm-up run)."""
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def slowest_imports(argv: list[str], top: int = 8) -> list[tuple[int, str]]:
    """(cumulative microseconds, module) of the slowest top-level imports, from -X importtime."""
    env = dict(os.environ, PYTHONPROFILEIMPORTTIME="1")
    result = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    rows = []
    for line in result.stderr.splitlines():
        parts = line[len("import time:"):].split("|") if line.startswith("import time:") else []
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        name = parts[2]
        if len(name) - len(name.lstrip()) == 1:  # one space: imported at top level, not by another import
            rows.append((int(parts[1]), name.strip()))
    return sorted(rows, reverse=True)[:top]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="runs per command (default 10)")
    args = parser.parse_args(argv)

    script = shutil.which("reconcile") or str(Path(sys.executable).with_name("reconcile"))
    commands = [("python -c pass (interpreter floor)", [sys.executable, "-c", "pass"]),
                ("python -m reconcile --help", [sys.executable, "-m", "reconcile", "--help"])]
    if Path(script).exists():
        commands.append(("reconcile --help", [script, "--help"]))
    else:
        print(f"(no `reconcile` console script next to {sys.executable}; timing python -m only)")

    target_name = commands[-1][0]  # `reconcile --help`, or python -m without the console script
    print(f"best of {args.runs} runs; target for `{target_name}`: <= {TARGET} s\n")
    print(f"{'command':36s} {'best':>7s} {'median':>7s}")
    missed = False
    for name, command in commands:
        best, median = timed(command, args.runs)
        mark = ""
        if name == target_name:
            missed = best > TARGET
            mark = "  MISSED" if missed else "  ok"
        print(f"{name:36s} {best:6.3f}s {median:6.3f}s{mark}")

    print("\nslowest top-level imports of `python -m reconcile --help` (cumulative, ms):")
    for micros, module in slowest_imports([sys.executable, "-m", "reconcile", "--help"]):
        print(f"  {micros / 1000:7.1f}  {module}")
    return int(missed)


if __name__ == "__main__":
    sys.exit(main())
