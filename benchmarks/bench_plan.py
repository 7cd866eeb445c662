"""Benchmark `reconcile plan` on generated data, against a floor measured in the same run.

    python benchmarks/bench_plan.py [N] [M] [--repeat R] [--keep DIR] [--reuse] [--state-format 1|2]
                                    [--cases empty,floor,a,b,c,r]

Generates N leads (7 attributes each) over M files and a state "mostly in sync" with them
(benchmarks/generate_leads.py; format 2, the shards apply writes, unless --state-format 1), then
runs each case as its own process of the real CLI,
`python -m reconcile plan --leads leads --state reconcile.state.json`, R times:

  empty  plan of an empty lead directory: the CLI's own start-up, the floor of (b)
  floor  parsing the same files with PyYAML's C loader (yaml.CSafeLoader) and nothing else
  (a)    plan, cold: no cache (the cache directory, $RECONCILE_CACHE_DIR, removed before each run)
  (b)    plan again with nothing changed (warm cache)
  (c)    plan with 1 of the M files changed (a different edit each run)
  (r)    rendering only: the text of a plan of N creates (in one process, CPU time, no I/O)

(--cases runs only some of them; --reuse keeps the data already generated in --keep DIR) and
prints, for each, the best and median wall time, CPU time and peak RSS of the process
(os.wait4's rusage of that child), with ratios against the floor and the targets (issue 14):
(a) <= 0.7 x floor, (b) <= 0.5 s (1M leads: <= 3 s), (c) <= 2 s, (r) <= 1 s, peak RSS <= 3 GB
(issue 23). The caches go to DIR/user-cache (RECONCILE_CACHE_DIR), never under the workspace. Also the machine's load average, since the machine may be shared.
This is a script, not a test: timings on a shared machine are noisy, so it repeats and reports.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

GENERATOR = Path(__file__).resolve().parent / "generate_leads.py"

FLOOR = """
import sys, time, yaml
from pathlib import Path
files = sorted(Path(sys.argv[1]).glob("*.yaml"))
start = time.perf_counter()
for path in files:
    yaml.load(path.read_bytes(), Loader=yaml.CSafeLoader)
print(time.perf_counter() - start)
"""

# The text of a plan of every generated lead as a create: only render_text is timed (CPU time).
RENDER = """
import sys, time
from pathlib import Path
from reconcile.core.model import State
from reconcile.core.planner import plan
from reconcile.core.render import render_text
from reconcile.inputs.validate import load_desired
leads = load_desired(Path(sys.argv[1]), cache_dir=Path(sys.argv[2])).leads
result = plan(leads, State(lineage="bench", serial=1, leads={}))
best = float("inf")
for _ in range(int(sys.argv[3])):
    start = time.process_time()
    text = render_text(result, full=True)  # every action, as `plan --full` prints it
    best = min(best, time.process_time() - start)
print(best, len(text))
"""

TO_FORMAT_2 = """
import sys
from reconcile.store.state import load_state, write_state
write_state(sys.argv[1], load_state(sys.argv[1]))
"""


@dataclass
class Run:
    wall: float
    cpu: float
    rss_mb: float
    stdout: str


def measure(argv: list[str], cwd: Path) -> Run:
    """Run one process: its wall time, and its own CPU time and peak RSS (os.wait4's rusage)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        process = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=err,
                                   env={**os.environ, "RECONCILE_CACHE_DIR": str(cwd / "user-cache")})
        _, status, usage = os.wait4(process.pid, 0)  # reaped here, not by Popen: rusage of this child
        wall = time.perf_counter() - start
        process.returncode = code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if code not in (0, 2):
            sys.exit(f"{' '.join(argv)} failed ({code}):\n{err.read().decode()}")
        return Run(wall=wall, cpu=usage.ru_utime + usage.ru_stime, rss_mb=usage.ru_maxrss / 1024,
                   stdout=out.read().decode())


@dataclass
class Case:
    name: str
    runs: list[Run]

    @property
    def best(self) -> float:
        return min(r.wall for r in self.runs)

    @property
    def median(self) -> float:
        return statistics.median(r.wall for r in self.runs)

    @property
    def cpu(self) -> float:
        return min(r.cpu for r in self.runs)

    @property
    def rss(self) -> float:
        return max(r.rss_mb for r in self.runs)


def edit_one_file(path: Path, serial: int) -> None:
    """A valid edit that changes one lead's title: the file's content (and hash) differs every time,
    also from every earlier run's (a cached plan of that content would be measured otherwise)."""
    text = path.read_text(encoding="utf-8")
    marker = "      Title: "
    at = text.index(marker) + len(marker)
    end = text.index("\n", at)
    path.write_text(text[:at] + f"Edited Title {serial} {os.urandom(4).hex()}" + text[end:], encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", nargs="?", type=int, default=100_000, help="leads (default 100000)")
    parser.add_argument("files", nargs="?", type=int, default=20, help="files (default 20)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (default 3)")
    parser.add_argument("--keep", type=Path, help="generate into (and keep) this directory")
    parser.add_argument("--state-format", type=int, choices=(1, 2), default=2,
                        help="the state's format (default 2: what apply writes)")
    parser.add_argument("--cases", default=",".join(CASES), help=f"which cases (default all: {','.join(CASES)})")
    parser.add_argument("--reuse", action="store_true", help="with --keep: use the data generated there before")
    args = parser.parse_args(argv)
    cases = set(args.cases.split(","))
    if not cases <= set(CASES):
        parser.error(f"--cases: choose from {','.join(CASES)}")
    if args.reuse and args.keep is None:
        parser.error("--reuse needs --keep DIR")

    work = args.keep or Path(tempfile.mkdtemp(prefix="reconcile-bench-"))
    try:
        return bench(work, args.count, args.files, args.repeat, args.state_format, cases, args.reuse)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


CASES = ("empty", "floor", "a", "b", "c", "r")


def bench(work: Path, count: int, files: int, repeat: int, state_format: int = 2, cases: set[str] = set(CASES),
          reuse: bool = False) -> int:
    leads, state = work / "leads", work / "reconcile.state.json"
    started = time.perf_counter()
    if not (reuse and state.exists() and len(list(leads.glob("*.yaml"))) == files):
        shutil.rmtree(leads, ignore_errors=True)
        # In a child process: a child's peak RSS counts the parent's pages it was forked from, so this
        # process stays small for the measurements to be the children's own.
        subprocess.run([sys.executable, str(GENERATOR), str(leads), str(count), str(files), "--state", str(state)],
                       check=True, stdout=subprocess.DEVNULL)
        if state_format == 2:
            subprocess.run([sys.executable, "-c", TO_FORMAT_2, str(state)], check=True, cwd=work)
    paths = sorted(leads.glob("*.yaml"))
    size = sum(p.stat().st_size for p in paths)
    state_size = sum(p.stat().st_size for p in [state, *work.glob("reconcile.state.d/*")] if p.is_file())
    print(f"{count} leads over {files} files ({size / 1e6:.1f} MB), state format {state_format} "
          f"{state_size / 1e6:.1f} MB, generated in {time.perf_counter() - started:.1f} s; {repeat} runs per case; "
          f"{os.cpu_count()} CPUs; Python {sys.version.split()[0]}; load average {_load()}")

    python = sys.executable
    plan = [python, "-m", "reconcile", "plan", "--leads", "leads", "--state", "reconcile.state.json"]
    cache = work / "user-cache"
    results = []
    if "empty" in cases:
        (work / "empty").mkdir(exist_ok=True)
        results.append(Case("empty: plan of no leads (start-up)", [
            measure([python, "-m", "reconcile", "plan", "--leads", "empty", "--state", "none.json"], work)
            for _ in range(repeat)]))
    floor, one_file_parse = None, None
    if "floor" in cases:
        floor_runs = [measure([python, "-c", FLOOR, str(leads)], work) for _ in range(repeat)]
        results.append(Case("floor: C-loader parse only", floor_runs))
        floor = results[-1].best
        print(f"floor: {min(float(r.stdout) for r in floor_runs):.2f} s of parsing inside a {floor:.2f} s process")
    if "c" in cases:
        one_file = [python, "-c", FLOOR.replace('glob("*.yaml")', 'glob("leads-000.yaml")'), str(leads)]
        one_file_parse = min(float(measure(one_file, work).stdout) for _ in range(repeat))
        print(f"one file alone parses in {one_file_parse:.2f} s")
    if "a" in cases:
        cold = []
        for _ in range(repeat):
            shutil.rmtree(cache, ignore_errors=True)
            cold.append(measure(plan, work))
        results.append(Case("(a) plan, cold", cold))
    if cases & {"b", "c"}:
        measure(plan, work)  # warm the cache
    if "b" in cases:
        results.append(Case("(b) plan, nothing changed", [measure(plan, work) for _ in range(repeat)]))
        print(next((line for line in results[-1].runs[-1].stdout.splitlines() if line.startswith("Plan:")), ""))
    if "c" in cases:
        changed = []
        for serial in range(repeat):
            edit_one_file(paths[0], serial)
            changed.append(measure(plan, work))
        results.append(Case(f"(c) plan, 1 of {files} files changed", changed))
    if "r" in cases:
        render = measure([python, "-c", RENDER, str(leads), str(cache / "render"), str(repeat)], work)
        render_cpu, render_chars = render.stdout.split()
        print(f"(r) render_text of {count} creates: {float(render_cpu):.2f} s CPU ({int(render_chars) / 1e6:.0f} MB "
              "of text; target <= 1 s)")
    print(f"load average now {_load()}\n")
    return report(results, count, floor, one_file_parse)


def report(results: list[Case], count: int, floor: float | None, one_file_parse: float | None) -> int:
    warm_target = 0.5 if count <= 100_000 else 3.0
    targets = {"(b)": (warm_target, f"<= {warm_target} s")}
    if floor is not None:
        targets["(a)"] = (0.7 * floor, "<= 0.7x floor")
    targets["(c)"] = (2.0, "<= 2 s")
    header = f"{'case':36s} {'best':>8s} {'median':>8s} {'cpu':>8s} {'peak RSS':>9s} {'x floor':>8s}  target"
    print(header)
    print("-" * len(header))
    failures = 0
    for case in results:
        target, wording = targets.get(case.name[:3], (None, ""))
        ok = target is None or case.best <= target
        rss_ok = case.rss <= 3072
        failures += (not ok) + (not rss_ok)
        verdict = "" if target is None else ("ok" if ok else "MISSED")
        ratio = f"{case.best / floor:7.2f}x" if floor else f"{'-':>8s}"
        print(f"{case.name:36s} {case.best:7.2f}s {case.median:7.2f}s {case.cpu:7.2f}s {case.rss:7.0f}MB "
              f"{ratio}  {wording} {verdict}{'' if rss_ok else ' (RSS over 3 GB)'}")
    return 1 if failures else 0


def _load() -> str:
    try:
        return " ".join(f"{value:.1f}" for value in os.getloadavg())
    except OSError:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
