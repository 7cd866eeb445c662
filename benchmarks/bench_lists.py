"""`bench_apply.py --lists`: with N declared leads already created, put them all on one static list.

    python benchmarks/bench_apply.py [N=90000] [CONCURRENCY=10] --lists

The leads are created first (untimed), then every lead file gains `lists: [Benchmark]` and the apply
is timed: N / 300 Add to List calls through REST, against the floor Marketo's rate window sets for that
many calls (bench_apply.limiter_floor). The plan is timed too, with and without the lists declared,
cold (no parse or plan cache of this run) and again warm, the median of 3 each, in the steady state
(the state records what the files declare) and with the N list additions pending.
"""

from __future__ import annotations

import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import bench_apply as bench
from generate_leads import generate

LIST_NAME = "Benchmark"
MAX_IDS = 300  # lead IDs per Add to List call


def _reconcile(work: Path, env: dict[str, str], *args: str) -> tuple[int, float, str]:
    status, seconds, _, output = _reconcile_measured(work, env, *args)
    return status, seconds, output


def _reconcile_measured(work: Path, env: dict[str, str], *args: str) -> tuple[int, float, float, str]:
    """(exit status, wall seconds, CPU seconds of the process, its output)."""
    start, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-m", "reconcile", *args, "--leads", str(work / "leads"),
                           "--state", str(work / "reconcile.state.json")], env=env, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return done.returncode, time.perf_counter() - start, cpu, done.stdout + done.stderr


def _plan_seconds(work: Path, env: dict[str, str], repeat: int = 3) -> dict[str, float]:
    """The median wall and CPU seconds of `repeat` runs of `reconcile plan --api rest`, cold (no cache
    of this run) and warm (with the caches the plan before it left): {"cold", "cold cpu", "warm",
    "warm cpu"}. A cold plan fetches the instance's lists (one call) when the lead files name some:
    the rate window of the calls before it closes first, so that call is timed, not a wait for it."""
    time.sleep(bench.WINDOW_SECONDS + 1.5)
    runs: dict[str, list[float]] = {"cold": [], "cold cpu": [], "warm": [], "warm cpu": []}
    for _ in range(repeat):
        shutil.rmtree(env["RECONCILE_CACHE_DIR"], ignore_errors=True)  # every cache of this run: a cold plan
        for kind in ("cold", "warm"):
            status, seconds, cpu, output = _reconcile_measured(work, env, "plan", "--api", "rest")
            if status != 0:
                raise SystemExit(f"plan failed ({status}): {output[-1500:]}")
            runs[kind].append(seconds)
            runs[f"{kind} cpu"].append(cpu)
    return {kind: statistics.median(values) for kind, values in runs.items()}


def _declare_lists(work: Path) -> None:
    for path in sorted((work / "leads").glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace("    attributes:\n", f"    lists: [{LIST_NAME}]\n    attributes:\n"),
                        encoding="utf-8")


def run(count: int, concurrency: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        generate(work / "leads", count, max(1, count // 5000))
        port = bench.free_port()
        emulator = subprocess.Popen(
            [sys.executable, "-m", "reconcile", "emulator", "--port", str(port), "--db", str(work / "emulator-db.json"),
             "--latency", str(bench.LATENCY), "--user-id", bench.USER,
             "--client-id", bench.CLIENT_ID, "--field", bench.FOREIGN_ID_FIELD],
            env=bench.emulator_environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            bench.wait_until_up(f"{base}/_emulator/leads")
            env = bench.environment_for("rest", base)
            bench.warm_describe_cache(work / "reconcile.state.json", env)
            status, seconds, output = _reconcile(work, env, "apply", "--auto-approve", "--api", "rest",
                                                 "--concurrency", str(concurrency))
            if status != 0:
                raise SystemExit(f"creating the leads failed ({status}): {output[-1500:]}")
            print(f"created {count} leads (untimed): {seconds:.1f} s")
            without = _plan_seconds(work, env)

            request = urllib.request.Request(f"{base}/_emulator/lists", data=json.dumps({"name": LIST_NAME}).encode(),
                                             method="POST", headers={"Content-Type": "application/json"})
            list_id = json.loads(urllib.request.urlopen(request).read())["id"]
            _declare_lists(work)
            pending = _plan_seconds(work, env)
            time.sleep(bench.WINDOW_SECONDS + 1.5)  # the cold plan's call: its window closes before the timed apply

            load = os.getloadavg()
            status, elapsed, cpu, rss_mb, _ = bench.run_measured(
                [sys.executable, "-m", "reconcile", "apply", "--auto-approve", "--api", "rest",
                 "--leads", str(work / "leads"), "--state", str(work / "reconcile.state.json"),
                 "--concurrency", str(concurrency)], env, work / "apply.log")
            log = (work / "apply.log").read_text()
            if status != 0:
                raise SystemExit(f"the list apply failed ({status}): {log[-1500:]}")
            members = json.loads(urllib.request.urlopen(f"{base}/_emulator/lists/{list_id}").read())["members"]
            busy_before = bench.own_cpu_seconds(emulator.pid)
            steady = _plan_seconds(work, env)
            emulator_busy = bench.own_cpu_seconds(emulator.pid) - busy_before  # its work beside those plans
        finally:
            emulator.terminate()
            emulator.wait(timeout=30)
    calls = math.ceil(count / MAX_IDS)
    floor = bench.limiter_floor(calls)
    summary = [line for line in log.splitlines() if line.startswith("Apply")]
    print(f"put {count} existing leads on one list over rest, {bench.LATENCY * 1000:.0f} ms latency, Marketo "
          f"limits, {os.cpu_count()} cores, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at the start")
    print(f"  {summary[-1] if summary else ''}")
    print(f"  members of the list:      {len(members)}")
    print(f"  limiter floor ({calls} calls): {floor:.1f} s")
    print(f"  apply wall time:          {elapsed:.1f} s  ({elapsed / floor:.2f}x floor); CPU {cpu:.1f} s; "
          f"peak RSS {rss_mb:.0f} MB")
    print(f"  emulator CPU while the plans with lists applied ran: {emulator_busy:.2f} s")
    for name, plans in (("plan without lists", without), ("plan with lists, applied", steady),
                        (f"plan with {count} list additions pending", pending)):
        print(f"  {name}: " + ", ".join(_against(plans, without, kind) for kind in ("cold", "warm")))


def _against(plans: dict[str, float], without: dict[str, float], kind: str) -> str:
    """`cold 6.04 s (1.20x), CPU 5.90 s (1.18x)`: medians, and their ratio to the plan without lists."""
    wall, cpu = plans[kind], plans[f"{kind} cpu"]
    if plans is without:
        return f"{kind} {wall:.2f} s, CPU {cpu:.2f} s"
    return f"{kind} {wall:.2f} s ({wall / without[kind]:.2f}x), CPU {cpu:.2f} s ({cpu / without[kind + ' cpu']:.2f}x)"
