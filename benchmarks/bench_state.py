"""What the state costs in git: size, bytes per lead, largest file, and the diff of one change.

    python benchmarks/bench_state.py [N ...]        (default: 100000)

For each N, builds the state `reconcile apply` would have written for N generated leads (7 short
attributes each, benchmarks/generate_leads.py; lead IDs as the emulator assigns them), in format 2
and, for comparison, format 1. It commits the format 2 state to a scratch git repository, changes one
attribute of one lead the way an apply does (new value, that lead's syncedAt, serial + 1), writes it
through the same StateWriter a checkpoint uses, and counts the changed lines of `git diff --numstat`
and the bytes the write put on disk. Sizes are exact; the two timings are indicative only.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate_leads import lead_record  # noqa: E402

from reconcile.core.model import State, StateLead  # noqa: E402
from reconcile.store.state import open_state, shard_dir_for, with_leads, write_state  # noqa: E402
from reconcile.store.statecodec import serialize_v1  # noqa: E402


def generated_state(count: int) -> State:
    rng = random.Random(7)
    leads = {}
    for i in range(count):
        record = lead_record(i, rng)
        fsp = record.get("foreignSysPersonId")
        key = f"fsp:SFDC:{fsp}" if fsp else f"email:{record['email']}"
        leads[key] = StateLead(lead_id=1_000_001 + i, email=record["email"], foreign_sys_person_id=fsp,
                               foreign_sys_type=record.get("foreignSysType"), attributes=record["attributes"],
                               synced_at="2026-11-28T19:18:12Z")
    return State(lineage="5d0c6f64-0e8a-4c1b-9a53-1f5f8b2e6d11", serial=1, leads=leads)


def git(cwd: Path, *args: str) -> str:
    env = dict(os.environ, GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@example.com",
               GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@example.com",
               GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_SYSTEM=os.devnull)
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def files_of(state_path: Path) -> list[Path]:
    directory = shard_dir_for(state_path)
    return [state_path] + sorted(p for p in directory.iterdir() if p.is_file())


def measure(count: int) -> dict:
    state = generated_state(count)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        v1 = root / "v1.state.json"
        v1.write_bytes(serialize_v1(state))
        repo = root / "repo"
        repo.mkdir()
        state_path = repo / "reconcile.state.json"
        start = time.perf_counter()
        write_state(state_path, state)
        write_seconds = time.perf_counter() - start
        files = files_of(state_path)
        sizes = [p.stat().st_size for p in files]
        git(repo, "init", "-q")
        git(repo, "add", ".")
        git(repo, "commit", "-q", "-m", "state")

        start = time.perf_counter()
        current, writer = open_state(state_path)
        load_seconds = time.perf_counter() - start
        key = sorted(current.leads)[count // 2]
        old = current.leads[key]
        changed = dict(current.leads)
        changed[key] = StateLead(old.lead_id, old.email, old.foreign_sys_person_id, old.foreign_sys_type,
                                 {**old.attributes, "Title": "Chief Changer"}, "2026-11-29T08:00:00Z")
        report = writer.write(with_leads(current, changed), changed=[key])
        git(repo, "add", "-A", ".")
        numstat = git(repo, "diff", "--cached", "--numstat")
        diff_lines = sum(int(a) + int(r) for a, r, _ in (line.split("\t") for line in numstat.splitlines()))
        return {"leads": count, "v1_bytes": v1.stat().st_size, "v2_bytes": sum(sizes), "files": len(files),
                "largest": max(sizes), "diff_lines": diff_lines, "checkpoint_bytes": report.bytes_written,
                "write_s": write_seconds, "load_s": load_seconds}


def main(argv: list[str]) -> int:
    counts = [int(arg) for arg in argv] or [100_000]
    print(f"{'leads':>9} {'format 1':>10} {'format 2':>10} {'bytes/lead':>10} {'files':>6} {'largest':>9} "
          f"{'diff lines':>10} {'1-change write':>14} {'write':>7} {'load':>7}")
    for count in counts:
        m = measure(count)
        print(f"{m['leads']:>9,} {m['v1_bytes'] / 1e6:>8.1f}MB {m['v2_bytes'] / 1e6:>8.1f}MB "
              f"{m['v2_bytes'] / m['leads']:>10.1f} {m['files']:>6} {m['largest'] / 1e3:>7.1f}kB "
              f"{m['diff_lines']:>10} {m['checkpoint_bytes'] / 1e3:>12.1f}kB {m['write_s']:>6.1f}s "
              f"{m['load_s']:>6.1f}s", flush=True)
    print(f"(format 1 bytes/lead at the last size: {m['v1_bytes'] / m['leads']:.0f}; "
          f"targets: no file over 50 MB, <= 250 bytes/lead, <= 6 diff lines; {os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
