"""(j) `reconcile import` of N existing leads against the emulator, timed against the rate-limit floor.

    python benchmarks/bench_import.py [N=10000] [--rate-calls 100] [--rate-window 20] [--concurrency 4] [--cli]

The emulator runs as its own process (`reconcile emulator --latency 0.05`, 10 calls at once) holding N
leads. The import asks for them by ID, 300 per Get Leads call, so it needs C = ceil(N / 300) reads,
plus one Describe. Marketo's window admits `rate-calls` calls at once and as many again each
`rate-window` seconds, so the reads cannot finish before

    floor = rate-window x (ceil((C + 1) / rate-calls) - 1) + latency

At Marketo's own limits (100 calls / 20 s) 10,000 leads are 34 reads, inside one window: the floor is
one call's latency and the limit never binds. To see the pacing at that size, pass a smaller window
(e.g. --rate-calls 5 --rate-window 2): the client is then given the same limits as the emulator, as
it knows Marketo's. By default the import runs in-process (timing the reads, the lead file and the
state write); --cli runs `reconcile import` as a child process instead (Marketo's limits only).
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_apply import emulator_environment, free_port, wait_until_up  # noqa: E402

CLIENT_ID = "benchmark-client"
CLIENT_SECRET = "benchmark-secret-not-secret"
LATENCY = 0.05
FIRST_ID = 2_000_001


def seed_database(path: Path, count: int) -> list[int]:
    from reconcile.emulator import create_database

    stamp = "2024-01-05T00:00:00Z"
    leads = [{"id": FIRST_ID + n, "email": f"lead{n:06d}@example.com", "foreignSysPersonId": None,
              "foreignSysType": None, "createdAt": stamp, "updatedAt": stamp,
              "attributes": {"FirstName": f"First{n}", "LastName": f"Last{n}", "PostalCode": f"{n % 10000:05d}",
                             "Company": "no" if n % 7 == 0 else f"Company {n % 97}"}}
             for n in range(count)]
    create_database(path, leads)
    return [lead["id"] for lead in leads]


def import_in_process(work: Path, base: str, ids: list[int], args) -> float:
    from reconcile.adopt import ImportRequest
    from reconcile.adopt.importer import ImportSettings, run_import
    from reconcile.inputs.fields import FieldCatalog
    from reconcile.remote.http import RateLimiter
    from reconcile.remote.rest.client import RestClient
    from reconcile.remote.rest.config import RestCredentials
    from reconcile.store.state import load_state

    credentials = RestCredentials(base_url=base, identity_url=f"{base}/identity", client_id=CLIENT_ID,
                                  client_secret=CLIENT_SECRET)
    (work / "leads").mkdir()
    start = time.perf_counter()
    client = RestClient(credentials, max_concurrency=args.concurrency,
                        rate_limiter=RateLimiter(calls=args.rate_calls, window=args.rate_window))
    try:
        settings = ImportSettings(request=ImportRequest(ids=tuple(ids), emails=()), fields=None,
                                  out=work / "leads" / "imported.yaml", state_path=work / "reconcile.state.json",
                                  instance="emulator", concurrency=args.concurrency)
        answered: list[float] = []
        run_import(client, lambda: FieldCatalog(client.describe()), settings, [],
                   load_state(work / "reconcile.state.json"),
                   on_event=lambda event: answered.append(time.perf_counter()))
        print(f"  reads done after {answered[-1] - start:.2f} s, first answer after {answered[0] - start:.2f} s")
    finally:
        client.close()
    return time.perf_counter() - start


def import_cli(work: Path, base: str, ids: list[int], args) -> float:
    (work / "leads").mkdir()
    (work / "ids.txt").write_text("\n".join(map(str, ids)) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKETO_") and k != "RECONCILE_API"}
    env.update({"MARKETO_REST_ENDPOINT": base, "MARKETO_CLIENT_ID": CLIENT_ID, "MARKETO_CLIENT_SECRET": CLIENT_SECRET})
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "reconcile", "import", "--out", "leads/imported.yaml", "--ids-from",
                           "ids.txt", "--concurrency", str(args.concurrency)], cwd=work, env=env,
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"import failed with exit {done.returncode}:\n{done.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", nargs="?", type=int, default=10_000)
    parser.add_argument("--rate-calls", type=int, default=100)
    parser.add_argument("--rate-window", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--cli", action="store_true")
    args = parser.parse_args()
    if args.cli and (args.rate_calls, args.rate_window) != (100, 20.0):
        raise SystemExit("--cli measures at Marketo's own limits only (the CLI's client knows no others)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ids = seed_database(work / "emulator-db.json", args.count)
        port = free_port()
        emulator = subprocess.Popen(
            [sys.executable, "-m", "reconcile", "emulator", "--port", str(port), "--db", str(work / "emulator-db.json"),
             "--latency", str(LATENCY), "--client-id", CLIENT_ID,
             "--rate-calls", str(args.rate_calls), "--rate-window", str(args.rate_window)],
            env=emulator_environment(client_secret=CLIENT_SECRET), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_until_up(f"{base}/_emulator/leads")
            elapsed = (import_cli if args.cli else import_in_process)(work, base, ids, args)
            imported = (work / "leads" / "imported.yaml").read_text().count("  - leadId: ")
        finally:
            emulator.terminate()
            emulator.wait(timeout=30)
    reads = math.ceil(args.count / 300)
    floor = args.rate_window * max(0, math.ceil((reads + 1) / args.rate_calls) - 1) + LATENCY
    print(f"import {args.count} leads by ID ({'CLI' if args.cli else 'in-process'}), concurrency {args.concurrency}, "
          f"{LATENCY * 1000:.0f} ms latency, {args.rate_calls} calls / {args.rate_window:g} s")
    print(f"  leads in the lead file:   {imported}")
    print(f"  rate-limit floor ({reads} reads + 1 Describe): {floor:.2f} s")
    print(f"  import wall time:         {elapsed:.2f} s  ({elapsed / floor:.2f}x floor)")


if __name__ == "__main__":
    main()
