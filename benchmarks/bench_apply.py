"""(d) apply N creates against the emulator with Marketo's real limits and 50 ms latency.

    python benchmarks/bench_apply.py [N=30000] [CONCURRENCY=10] [API=soap|rest] [LATENCY=0.05]

The emulator runs as its own process (`reconcile emulator`, 100 calls / 20 s, 10 concurrent, 300 per
call, --latency 0.05) so client and server do not share an interpreter. Floor: ceil(N/300) calls at
Marketo's sustained rate of 5 calls per second. Prints wall time, calls, the ratio to the floor and the
apply process's peak RSS.
"""

from __future__ import annotations

import math
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate_leads import generate  # noqa: E402

KEY = "benchmark-key-not-secret"
USER = "benchmark-user"


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


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 30_000
    concurrency = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    api = sys.argv[3] if len(sys.argv) > 3 else "soap"
    latency = sys.argv[4] if len(sys.argv) > 4 else "0.05"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        generate(work / "leads", count, max(1, count // 5000))
        port = free_port()
        emulator = subprocess.Popen(
            [sys.executable, "-m", "reconcile", "emulator", "--port", str(port), "--user-id", USER,
             "--encryption-key", KEY, "--client-secret", KEY, "--latency", latency, "--field", "ForeignId"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_until_up(f"{base}/_emulator/leads")
            env = {name: value for name, value in os.environ.items() if not name.startswith("MARKETO_")}
            if api == "rest":
                env.update(MARKETO_REST_ENDPOINT=base, MARKETO_CLIENT_ID="reconcile-emulator-client",
                           MARKETO_CLIENT_SECRET=KEY, RECONCILE_API="rest", RECONCILE_FOREIGN_ID_FIELD="ForeignId")
            else:
                env.update(MARKETO_SOAP_ENDPOINT=f"{base}/soap/mktows/2_1", MARKETO_USER_ID=USER,
                           MARKETO_ENCRYPTION_KEY=KEY, RECONCILE_API="soap")
            start = time.perf_counter()
            result = subprocess.run(
                [sys.executable, "-m", "reconcile", "apply", "--auto-approve", "--leads", str(work / "leads"),
                 "--state", str(work / "reconcile.state.json"), "--concurrency", str(concurrency)],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            elapsed = time.perf_counter() - start
            rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            if result.returncode != 0:
                print(result.stderr[-2000:], file=sys.stderr)
                raise SystemExit(f"apply failed with exit {result.returncode}")
            summary = [line for line in result.stdout.splitlines() if line.startswith("Apply complete")]
            created = len(urllib.request.urlopen(f"{base}/_emulator/leads").read().split(b'"id"')) - 1
        finally:
            emulator.terminate()
            emulator.wait(timeout=30)
    calls = math.ceil(count / 300)
    floor = calls / 5.0
    # The limiter's own floor: 100 calls in any 20 s, so calls 1-100 start at once, 101-200 after 20 s...
    window_floor = 20.0 * (math.ceil(calls / 100) - 1) + float(latency)
    print(f"apply {count} creates through {api}, concurrency {concurrency}, {latency} s latency, Marketo limits")
    print(f"  {summary[0] if summary else ''}")
    print(f"  leads in the emulator: {created}")
    print(f"  floor ({calls} calls at 5 calls/s): {floor:.1f} s")
    print(f"  floor ({calls} calls, 100 in any 20 s): {window_floor:.1f} s")
    print(f"  apply wall time:                   {elapsed:.1f} s  ({elapsed / floor:.2f}x floor, "
          f"{elapsed / window_floor:.2f}x the window floor)")
    print(f"  peak RSS (largest child):          {rss_mb:.0f} MB")


if __name__ == "__main__":
    main()
