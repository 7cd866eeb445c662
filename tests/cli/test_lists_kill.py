"""kill -9 at random moments of an apply that creates leads, changes static list memberships and deletes
leads: after another apply, Marketo (the emulator, read through its admin side) and the state agree
with the lead files exactly: no lead lost or made twice, every membership as declared, the deleted
leads gone."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clirunner import invoke

LISTS = ("VIP Customers", "Webinar 2026-12", "Partners", "Newsletter")
KEPT = 12  # leads created first, then kept with other lists
DOOMED = 6  # leads created first, then declared deleted
NEW = 30  # leads created by the apply that is killed


def env_for(emulator) -> dict[str, str]:
    return {"MARKETO_REST_ENDPOINT": emulator.rest_endpoint, "MARKETO_CLIENT_ID": emulator.config.client_id,
            "MARKETO_CLIENT_SECRET": emulator.config.client_secret, "RECONCILE_API": "rest"}


def lead_yaml(email: str, lists: tuple[str, ...] = (), deleted: bool = False) -> str:
    if deleted:
        return f"  - email: {email}\n    deleted: true\n"
    listed = f"    lists: [{', '.join(lists)}]\n" if lists else ""
    return f"  - email: {email}\n    attributes: {{Company: Co {email[:4]}}}\n{listed}"


def first_files() -> str:
    body = [lead_yaml(f"k{n}@example.com", (LISTS[n % 4],)) for n in range(KEPT)]
    body += [lead_yaml(f"d{n}@example.com", (LISTS[0],)) for n in range(DOOMED)]
    return "leads:\n" + "".join(body)


def declared_lists() -> dict[str, tuple[str, ...]]:
    """What the second lead files say each lead's lists are (the doomed leads: none, they are gone)."""
    wanted = {f"k{n}@example.com": (LISTS[(n + 1) % 4], LISTS[(n + 2) % 4]) for n in range(KEPT)}
    wanted.update({f"n{n}@example.com": tuple(LISTS[:1 + n % 4]) for n in range(NEW)})
    return wanted


def second_files() -> str:
    body = [lead_yaml(email, lists) for email, lists in declared_lists().items()]
    body += [lead_yaml(f"d{n}@example.com", deleted=True) for n in range(DOOMED)]
    return "leads:\n" + "".join(body)


def apply_in_subprocess(workspace: Path, emulator) -> subprocess.Popen:
    environ = {**os.environ, **env_for(emulator), "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen([sys.executable, "-m", "reconcile", "apply", "--auto-approve", "--allow-delete",
                             "--batch-size", "5", "--concurrency", "2"], cwd=workspace, env=environ,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def check_marketo_and_state(workspace: Path, emulator, list_ids: dict[str, int]) -> None:
    leads = emulator.leads()
    emails = [lead["email"] for lead in leads]
    assert len(emails) == len(set(emails)), "a lead was created twice"
    wanted = declared_lists()
    assert set(emails) == set(wanted), "lost, or not deleted"
    id_of = {lead["email"]: lead["id"] for lead in leads}
    for name, list_id in list_ids.items():
        expected = sorted(id_of[email] for email, lists in wanted.items() if name in lists)
        assert sorted(emulator.lists.members(list_id)) == expected, name
    plan = invoke("plan", "--detailed-exitcode", environ=env_for(emulator))
    assert plan.exit_code == 0, plan.stdout  # the state records exactly what Marketo has


# The apply killed makes 16 calls (7 Sync Leads, 8 list calls, 1 Delete Leads): it is killed after
# this many have been answered, at a random moment (by seed) of the call that follows.
@pytest.mark.parametrize("kill_after", [1, 4, 7, 9, 11, 13, 15])
def test_kill_9_mid_apply_loses_and_duplicates_nothing(tmp_path, monkeypatch, emulator, kill_after) -> None:
    rng = random.Random(kill_after)
    list_ids = {name: emulator.lists.create(name)["id"] for name in LISTS}
    (tmp_path / "leads").mkdir()
    (tmp_path / "leads" / "people.yaml").write_text(first_files())
    monkeypatch.chdir(tmp_path)
    assert invoke("apply", "--auto-approve", environ=env_for(emulator)).exit_code == 0
    (tmp_path / "leads" / "people.yaml").write_text(second_files())
    emulator.faults.update(latency=0.05)  # each call takes a while: the kill lands in one, or just after

    calls_before = len(emulator.calls)
    process = apply_in_subprocess(tmp_path, emulator)
    deadline = time.monotonic() + 60
    while len(emulator.calls) < calls_before + kill_after and process.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(rng.uniform(0.0, 0.04))
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL, "the apply ended before it was killed"

    emulator.faults.update(latency=0.0)
    finished = invoke("apply", "--auto-approve", "--allow-delete", environ=env_for(emulator))
    assert finished.exit_code == 0, finished.stderr
    check_marketo_and_state(tmp_path, emulator, list_ids)
