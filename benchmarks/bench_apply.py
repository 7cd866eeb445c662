"""(d) apply N creates against the emulator with Marketo's real limits and 50 ms latency.

    python benchmarks/bench_apply.py [N=90000] [CONCURRENCY=10] [--api soap|rest] [--after-plan]
    python benchmarks/bench_apply.py [N=90000] [CONCURRENCY=10] --lists   (see bench_lists.py)

The emulator runs as its own process (`reconcile emulator`: 100 calls in any 20 s, 10 concurrent, 300
records per call, --latency 0.05), so client and server do not share an interpreter.

The floor is what Marketo's rate window allows and nothing else: it admits the first 100 calls at
once, the next 100 twenty seconds later, and so on, so C calls cannot finish before
20 s x (ceil(C / 100) - 1), plus one call's latency. (Not C / 5 per second: 100 calls have a floor of
about zero, and a benchmark that divides by 5 calls/s measures the client's CPU, not the limit.)

With --after-plan, `reconcile plan` runs first (untimed), as a user runs it before applying: the apply
then finds the lead files already parsed in the cache beside the state. Without it, the apply reads
every file cold, as on a fresh CI runner.

Prints wall time and its ratio to the floor, the apply process's CPU (user + sys, its worker
processes included) per call, the emulator's CPU per call, and the apply process's peak RSS.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate_leads import generate  # noqa: E402

KEY = "benchmark-key-not-secret"
USER = "benchmark-user"
CACHE_DIR = tempfile.mkdtemp(prefix="reconcile-bench-cache-")
CLIENT_ID = "benchmark-client"
CLIENT_SECRET = "benchmark-secret-not-secret"
FOREIGN_ID_FIELD = "ForeignSysId"
LATENCY = 0.05
WINDOW_CALLS, WINDOW_SECONDS, RECORDS_PER_CALL = 100, 20.0, 300


def limiter_floor(calls: int) -> float:
    """Seconds Marketo's sliding window needs for `calls` calls: 100 at once, then 100 per 20 s."""
    return WINDOW_SECONDS * max(0, math.ceil(calls / WINDOW_CALLS) - 1) + LATENCY


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"emulator did not come up at {url}")


def run_measured(argv: list[str], env: dict[str, str], log: Path) -> tuple[int, float, float, float, dict]:
    """Run a child to completion: (exit status, wall s, CPU s of it and its children, peak RSS MB, split).

    wait4 counts the children the child waited for (the apply reaps its envelope workers); `split`
    has the apply process's own CPU and its workers', sampled from /proc while it runs."""
    with log.open("wb") as out:
        start = time.perf_counter()
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        split: dict[str, float] = {"apply process": 0.0}
        workers: dict[int, float] = {}
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.25):
                try:
                    split["apply process"] = own_cpu_seconds(process.pid)
                    for child in children_of(process.pid):
                        workers[child] = max(workers.get(child, 0.0), own_cpu_seconds(child))
                except (OSError, ValueError, IndexError):
                    pass

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - start
        done.set()
        sampler.join()
    split["workers (last sample)"] = sum(workers.values())
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, split


def sending_seconds(summary: str) -> float | None:
    """The seconds the apply spent sending, from its last line ("... call(s) in 41.2 s.")."""
    match = re.search(r"call\(s\) in ([0-9.]+) s\.", summary)
    return float(match.group(1)) if match else None


def own_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime stime


def children_of(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.extend(int(c) for c in (task / "children").read_text().split())
    return found


def process_cpu_seconds(pid: int) -> float:
    """user + sys of a live process (and its reaped children), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def warm_describe_cache(state: Path, env: dict[str, str]) -> None:
    """Run `reconcile fields` first, as the README's setup does: its Describe answer is cached beside the
    state, so the apply makes its 300 Sync Leads calls and no Describe. (With a cold cache the Describe
    is a 301st call in the same rate window, and the floor is one window more.) Then wait out that
    call's window, so that it does not count against the apply."""
    subprocess.run([sys.executable, "-m", "reconcile", "fields", "--state", str(state)], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(WINDOW_SECONDS + 1.5)


def plan_first(work: Path, api: str, env: dict[str, str]) -> None:
    """`reconcile plan`, untimed: it leaves the lead files parsed in the cache beside the state. Its
    writes are flushed to disk before the apply starts, so the apply does not pay for them."""
    subprocess.run([sys.executable, "-m", "reconcile", "plan", "--api", api, "--leads", str(work / "leads"),
                    "--state", str(work / "reconcile.state.json")], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.sync()


def emulator_environment(key: str = KEY, client_secret: str = CLIENT_SECRET) -> dict[str, str]:
    """The emulator takes its secrets from the environment only (argv is visible to every user)."""
    return {**os.environ, "MARKETO_ENCRYPTION_KEY": key, "MARKETO_CLIENT_SECRET": client_secret}


def environment_for(api: str, base: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKETO_") and k != "RECONCILE_API"}
    env.setdefault("RECONCILE_CACHE_DIR", CACHE_DIR)  # the caches: never the user's own, never the workspace
    if api == "rest":
        return {**env, "MARKETO_REST_ENDPOINT": base, "MARKETO_CLIENT_ID": CLIENT_ID,
                "MARKETO_CLIENT_SECRET": CLIENT_SECRET, "RECONCILE_FOREIGN_ID_FIELD": FOREIGN_ID_FIELD}
    return {**env, "MARKETO_SOAP_ENDPOINT": f"{base}/soap/mktows/2_1", "MARKETO_USER_ID": USER,
            "MARKETO_ENCRYPTION_KEY": KEY}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", nargs="?", type=int, default=90_000)
    parser.add_argument("concurrency", nargs="?", type=int, default=10)
    parser.add_argument("--api", choices=("soap", "rest"), default="soap")
    parser.add_argument("--after-plan", action="store_true",
                        help="run `reconcile plan` first, untimed, as a user does before applying")
    parser.add_argument("--lists", action="store_true",
                        help="create the leads untimed, then time putting them all on one static list (REST)")
    args = parser.parse_args()
    if args.lists:
        import bench_lists

        bench_lists.run(args.count, args.concurrency)
        return
    emulator_flags = ["--latency", str(LATENCY), "--user-id", USER]
    if args.api == "rest":
        # the generated leads carry foreign IDs: REST writes them to a custom field
        emulator_flags += ["--client-id", CLIENT_ID, "--field", FOREIGN_ID_FIELD]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        generate(work / "leads", args.count, max(1, args.count // 5000))
        port = free_port()
        emulator = subprocess.Popen([sys.executable, "-m", "reconcile", "emulator", "--port", str(port),
                                     "--db", str(work / "emulator-db.json"), *emulator_flags],
                                    env=emulator_environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_until_up(f"{base}/_emulator/leads")
            if args.api == "rest":
                warm_describe_cache(work / "reconcile.state.json", environment_for(args.api, base))
            if args.after_plan:
                plan_first(work, args.api, environment_for(args.api, base))
            emulator_cpu_before = process_cpu_seconds(emulator.pid)
            status, elapsed, client_cpu, rss_mb, split = run_measured(
                [sys.executable, "-m", "reconcile", "apply", "--auto-approve",
                 "--api", args.api,
                 "--leads", str(work / "leads"), "--state", str(work / "reconcile.state.json"),
                 "--concurrency", str(args.concurrency)],
                environment_for(args.api, base), work / "apply.log")
            emulator_cpu = process_cpu_seconds(emulator.pid) - emulator_cpu_before
            if status != 0:
                print((work / "apply.log").read_text()[-2000:], file=sys.stderr)
                raise SystemExit(f"apply failed with exit {status}")
            summary = [line for line in (work / "apply.log").read_text().splitlines() if line.startswith("Apply")]
            created = len(urllib.request.urlopen(f"{base}/_emulator/leads").read().split(b'"id"')) - 1
        finally:
            emulator.terminate()
            emulator.wait(timeout=30)
    calls = math.ceil(args.count / RECORDS_PER_CALL)
    floor = limiter_floor(calls)
    print(f"apply {args.count} creates over {args.api}, concurrency {args.concurrency}, "
          f"{LATENCY * 1000:.0f} ms latency, Marketo limits, {os.cpu_count()} cores, "
          + ("after a plan of the same files" if args.after_plan else "lead files read cold"))
    print(f"  {summary[-1] if summary else ''}")
    print(f"  leads in the emulator:    {created}")
    sending = sending_seconds(summary[-1] if summary else "")
    print(f"  limiter floor ({calls} calls): {floor:.1f} s")
    print(f"  apply wall time:          {elapsed:.1f} s  ({elapsed / floor:.2f}x floor)")
    if sending is not None:
        print(f"    of which before the first call (read, check, plan, print): {elapsed - sending:.1f} s;"
              f" sending: {sending:.1f} s ({sending / floor:.2f}x floor)")
    print(f"  client CPU per call:      {client_cpu / calls * 1000:.0f} ms  (user+sys, workers included)")
    for name, seconds in split.items():
        print(f"    of which {name + ':':<22}{seconds / calls * 1000:.0f} ms")
    print(f"  emulator CPU per call:    {emulator_cpu / calls * 1000:.0f} ms")
    print(f"  apply peak RSS:           {rss_mb:.0f} MB")


if __name__ == "__main__":
    main()
