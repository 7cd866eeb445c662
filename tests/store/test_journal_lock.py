"""journal.py (crash recovery) and lock.py (one run at a time)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reconcile.store import lock
from reconcile.errors import ExitStatus, InputError, LockedError, StateError, UsageError
from reconcile.store.journal import (Journal, JournalEntry, ResultEntry, UnknownOutcome, commit_recovery, journal_path,
                               recover)
from reconcile.core.model import State, StateLead
from reconcile.store.state import load_state, write_state

ROOT = Path(__file__).resolve().parents[2]


# -- lock -----------------------------------------------------------------------------------------


def test_lock_file_holds_who_and_why_and_is_removed_on_release(tmp_path):
    state_path = tmp_path / "reconcile.state.json"
    with lock.acquire(state_path, "apply") as held:
        data = json.loads(lock.lock_path(state_path).read_text())
        assert data["id"] == held.id and len(data["id"]) == 36
        assert data["pid"] == os.getpid() and data["host"] == socket.gethostname()
        assert data["holder"].endswith("@" + socket.gethostname()) and data["operation"] == "apply"
        assert data["created"]
        assert held.takeover_warning is None
    assert not lock.lock_path(state_path).exists()


def test_a_second_run_is_refused_naming_the_holder_and_the_lock_id(tmp_path):
    state_path = tmp_path / "s.json"
    with lock.acquire(state_path, "apply") as held:
        with pytest.raises(LockedError) as info:
            lock.acquire(state_path, "apply")
        assert info.value.exit_status == ExitStatus.LOCKED
        assert held.id in str(info.value) and held.info.holder in str(info.value)
        assert f"reconcile force-unlock {held.id}" in str(info.value)
    lock.acquire(state_path).release()  # free again


def test_the_lock_is_released_when_the_block_raises(tmp_path):
    state_path = tmp_path / "s.json"
    with pytest.raises(RuntimeError):
        with lock.acquire(state_path):
            raise RuntimeError("boom")
    assert lock.read_lock(state_path) is None


def _write_lock(state_path, **fields):
    info = {"id": "11111111-2222-3333-4444-555555555555", "holder": "someone@" + socket.gethostname(),
            "host": socket.gethostname(), "pid": 1, "created": "2026-01-01T00:00:00+00:00", "operation": "apply"}
    info.update(fields)
    lock.lock_path(state_path).write_text(json.dumps(info))
    return info


def _dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=60)
    return child.pid


def test_a_lock_left_by_a_dead_process_on_this_host_is_taken_over_with_a_warning(tmp_path):
    state_path = tmp_path / "s.json"
    stale = _write_lock(state_path, pid=_dead_pid())
    warnings = []
    with lock.acquire(state_path, on_warning=warnings.append) as held:
        assert held.id != stale["id"]
        assert held.takeover_warning and stale["id"] in held.takeover_warning
        assert warnings == [held.takeover_warning]
        assert lock.read_lock(state_path).id == held.id
    assert not lock.lock_path(state_path).exists()


def test_a_lock_of_another_host_is_never_taken_over(tmp_path):
    state_path = tmp_path / "s.json"
    _write_lock(state_path, host="elsewhere.example.com", holder="ci@elsewhere.example.com", pid=_dead_pid())
    with pytest.raises(LockedError, match="ci@elsewhere.example.com"):
        lock.acquire(state_path)


_HOLDER = """
import sys, time
from pathlib import Path
from reconcile.store import lock
held = lock.acquire(Path(sys.argv[1]), "apply")
print(held.id, flush=True)
time.sleep(60)
"""


def _child_env():
    return dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def test_a_live_holder_keeps_its_lock_until_it_is_killed(tmp_path):
    state_path = tmp_path / "s.json"
    child = subprocess.Popen([sys.executable, "-c", _HOLDER, str(state_path)], stdout=subprocess.PIPE, text=True,
                             env=_child_env())
    try:
        held_id = child.stdout.readline().strip()
        with pytest.raises(LockedError, match=held_id) as info:
            lock.acquire(state_path)
        assert info.value.exit_status == ExitStatus.LOCKED
        child.kill()  # kill -9: no cleanup ran, the lock file stays behind, the kernel drops the flock
        child.wait(timeout=60)
        assert lock.read_lock(state_path).id == held_id
        with lock.acquire(state_path) as mine:
            assert held_id in mine.takeover_warning
    finally:
        child.kill()
        child.wait(timeout=60)


def test_a_lock_whose_pid_now_belongs_to_another_live_process_is_taken_over(tmp_path):
    state_path = tmp_path / "s.json"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:  # the holder died and its pid went to this unrelated process, started just after the lock
        now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() - 0.5))
        stale = _write_lock(state_path, pid=other.pid, created=now)
        warnings = []
        with lock.acquire(state_path, on_warning=warnings.append) as held:
            assert held.id != stale["id"] and stale["id"] in warnings[0]
    finally:
        other.kill()
        other.wait(timeout=60)


def test_a_lock_file_unlinked_by_its_releasing_holder_is_not_a_lock(tmp_path):
    # A racer opened the lock file just before its holder released it (unlink, then drop the flock):
    # a flock on that unlinked file would exclude nobody, so the racer must start over.
    state_path = tmp_path / "s.json"
    first = lock.acquire(state_path)
    fd = os.open(lock.lock_path(state_path), os.O_RDWR)
    try:
        first.release()
        with lock.acquire(state_path) as second:
            assert lock._lock_opened_file(fd, state_path, "apply") is None
            assert lock.read_lock(state_path).id == second.id
    finally:
        os.close(fd)


def test_an_unreadable_lock_file_is_locked_only_while_someone_holds_it(tmp_path):
    state_path = tmp_path / "s.json"
    child = subprocess.Popen([sys.executable, "-c", _HOLDER, str(state_path)], stdout=subprocess.PIPE, text=True,
                             env=_child_env())
    try:
        child.stdout.readline()
        lock.lock_path(state_path).write_text("{not json")  # the holder's description, mangled
        with pytest.raises(LockedError, match="unreadable"):
            lock.acquire(state_path)
    finally:
        child.kill()
        child.wait(timeout=60)
    with lock.acquire(state_path) as held:  # nobody holds it now: a leftover, taken over
        assert "unreadable" in held.takeover_warning


def test_force_unlock_needs_the_matching_lock_id(tmp_path):
    state_path = tmp_path / "s.json"
    with pytest.raises(UsageError, match="not locked"):
        lock.force_unlock(state_path, "whatever")
    held = lock.acquire(state_path)
    with pytest.raises(UsageError, match="does not match"):
        lock.force_unlock(state_path, "00000000-0000-0000-0000-000000000000")
    assert lock.read_lock(state_path).id == held.id
    removed = lock.force_unlock(state_path, held.id)
    assert removed.id == held.id and lock.read_lock(state_path) is None
    other = lock.acquire(state_path)  # someone else locks it now
    held.release()  # the force-unlocked holder must not remove the new lock
    assert lock.read_lock(state_path).id == other.id
    other.release()


_RACER = """
import sys, time
from pathlib import Path
from reconcile.store import lock
from reconcile.errors import LockedError
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.005)
try:
    held = lock.acquire(Path(sys.argv[1]), "apply")
except LockedError:
    print("locked")
else:
    print("won")
    time.sleep(0.8)
    held.release()
"""


@pytest.mark.parametrize("leftover", [False, True], ids=["free", "stale-lock-takeover"])
def test_racing_processes_exactly_one_wins(tmp_path, leftover):
    state_path, go = tmp_path / "s.json", tmp_path / "go"
    if leftover:  # every racer finds a lock left by a dead run and tries to take it over
        _write_lock(state_path, pid=_dead_pid())
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    racers = [subprocess.Popen([sys.executable, "-c", _RACER, str(state_path), str(go)], stdout=subprocess.PIPE,
                               text=True, env=env) for _ in range(6)]
    time.sleep(0.3)
    go.touch()
    outputs = sorted(p.communicate(timeout=30)[0].strip() for p in racers)
    assert outputs == ["locked"] * 5 + ["won"]
    assert lock.read_lock(state_path) is None


# -- journal --------------------------------------------------------------------------------------


def _lead(lead_id, email, **attributes):
    return StateLead(lead_id=lead_id, email=email, foreign_sys_person_id=None, foreign_sys_type=None,
                     attributes=attributes, synced_at="2026-01-02T03:04:05Z")


def _entry(identity, email=None, lead_id=None, state_key=None, kind="create"):
    return JournalEntry(identity=identity, state_key=state_key, kind=kind, lead_id=lead_id, email=email)


def _journal(state_path, state, dedup=True):
    return Journal.create(state_path, state, dedup_enabled=dedup, started="2026-01-02T03:04:00Z")


def test_recover_replays_results_and_lists_unanswered_batches(tmp_path):
    state_path = tmp_path / "s.json"
    base = State(lineage="lin-1", serial=4, leads={"email:old@example.com": _lead(7, "old@example.com", A="1")})
    write_state(state_path, base)
    with _journal(state_path, base) as journal:
        journal.inflight(1, [_entry("email:a@example.com", "a@example.com"),
                             _entry("id:7", lead_id=7, state_key="email:old@example.com", kind="update"),
                             _entry("email:bad@example.com", "bad@example.com")], True)
        journal.result(1, [
            ResultEntry("email:a@example.com", None, "CREATED", 11, None, _lead(11, "a@example.com", B="2")),
            ResultEntry("id:7", "email:old@example.com", "UPDATED", 7, None, _lead(7, "old@example.com", A="3")),
            ResultEntry("email:bad@example.com", None, "FAILED", None, "20105 - Lead Attribute Bad: X", None)])
        journal.inflight(2, [_entry("email:b@example.com", "b@example.com")], True)
        journal.failed(2, "not_sent", "interrupted before the batch was sent")
        journal.inflight(3, [_entry("email:c@example.com", "c@example.com")], True)
        journal.failed(3, "rejected", "Marketo fault 20014: Authentication failed")
        journal.inflight(4, [_entry("email:d@example.com", "d@example.com"),
                             _entry("id:9", lead_id=9, state_key="id:9", kind="update")], True)
    state, report = recover(state_path)
    assert state.lineage == "lin-1" and state.serial == 5
    assert sorted(state.leads) == ["email:a@example.com", "id:7"]  # the state key migrated to id:7
    assert state.leads["id:7"].attributes == {"A": "3"}
    assert report.recorded == ("email:a@example.com", "id:7")
    assert report.failed == (("email:bad@example.com", "20105 - Lead Attribute Bad: X"),)
    assert [u.identity for u in report.unknown] == ["email:d@example.com", "id:9"]
    assert [u.identity for u in report.may_have_created] == ["email:d@example.com"]
    assert report.batches_answered == 1 and report.batches_unknown == 1 and report.changed

    commit_recovery(state_path, state, report)
    assert load_state(state_path) == state
    again, carried = recover(state_path)  # only the unknown create that a resend could duplicate remains
    assert again == state and not carried.activity and not carried.changed
    assert [u.identity for u in carried.unknown] == ["email:d@example.com"]


def test_a_journal_written_by_the_previous_version_is_still_recovered(tmp_path):
    """Version 1 journaled a recorded lead as its whole record; version 2 as its state line."""
    state_path = tmp_path / "s.json"
    lines = [
        {"type": "begin", "version": 1, "lineage": "lin", "serial": 2, "started": "2026-01-01T00:00:00Z",
         "dedup": True, "carried": []},
        {"type": "inflight", "batch": 1, "dedup": True,
         "records": [{"identity": "email:a@example.com", "state_key": None, "kind": "create", "leadId": None,
                      "email": "a@example.com", "foreignSysPersonId": None, "foreignSysType": None}]},
        {"type": "result", "batch": 1, "results": [
            {"identity": "email:a@example.com", "state_key": None, "status": "CREATED", "leadId": 11, "error": None,
             "lead": {"leadId": 11, "email": "a@example.com", "foreignSysPersonId": None, "foreignSysType": None,
                      "attributes": {"Title": "CTO"}, "syncedAt": "2026-01-01T00:00:01Z"}}]}]
    journal_path(state_path).write_text("".join(json.dumps(line) + "\n" for line in lines))
    state, report = recover(state_path)
    assert state.leads == {"email:a@example.com": StateLead(11, "a@example.com", None, None, {"Title": "CTO"},
                                                            "2026-01-01T00:00:01Z")}
    assert report.recorded == ("email:a@example.com",)


def _journal_of_one_answer(state_path):
    """A journal (no state file yet) whose one call created email:a@example.com as lead 5."""
    with _journal(state_path, State(lineage="lin", serial=0, leads={})) as journal:
        journal.inflight(1, [_entry("email:a@example.com", "a@example.com")], True)
        journal.result(1, [ResultEntry("email:a@example.com", None, "CREATED", 5, None, _lead(5, "a@example.com"))])
    return journal_path(state_path)


def test_a_result_line_for_another_lead_makes_the_journal_malformed(tmp_path):
    state_path = tmp_path / "s.json"
    path = _journal_of_one_answer(state_path)
    path.write_text(path.read_text().replace('\\"email:a@example.com\\"', '\\"email:b@example.com\\"'))
    assert "email:b@example.com" in path.read_text()
    with pytest.raises(StateError, match="malformed.*email:b@example.com"):
        recover(state_path)


def test_no_journal_means_nothing_to_recover(tmp_path):
    state, report = recover(tmp_path / "s.json")
    assert not report.found and state.leads == {} and report.summary() == "no interrupted apply to recover"


def test_a_torn_last_line_is_ignored_but_a_corrupt_middle_line_is_an_error(tmp_path):
    state_path = tmp_path / "s.json"
    path = _journal_of_one_answer(state_path)
    path.write_bytes(path.read_bytes() + b'{"type": "inflight", "batch": 2, "rec')
    state, report = recover(state_path)
    assert report.torn_tail and list(state.leads) == ["email:a@example.com"] and report.unknown == ()
    assert state.lineage == "lin"  # no state file yet: the journal's lineage is kept
    lines = path.read_bytes().split(b"\n")
    path.write_bytes(b"\n".join([lines[0], b"garbage", *lines[1:]]))
    with pytest.raises(StateError, match="line 2"):
        recover(state_path)


def test_a_journal_of_another_lineage_is_refused(tmp_path):
    state_path = tmp_path / "s.json"
    _journal(state_path, State(lineage="one", serial=0, leads={})).close()
    write_state(state_path, State(lineage="two", serial=3, leads={}))
    with pytest.raises(StateError, match="lineage") as info:
        recover(state_path)
    assert info.value.exit_status == ExitStatus.INVALID_INPUT


def test_a_new_journal_never_overwrites_a_leftover_one(tmp_path):
    state_path = tmp_path / "s.json"
    state = State(lineage="l", serial=0, leads={})
    _journal(state_path, state).close()
    with pytest.raises(StateError, match="recovered first"):
        _journal(state_path, state)
    carried = [UnknownOutcome(entry=_entry("email:x@example.com", "x@example.com"), batch=1, dedup_enabled=False)]
    Journal.create(state_path, state, dedup_enabled=True, started="s", carried=carried, replace=True).close()
    _, report = recover(state_path)
    assert [u.identity for u in report.unknown] == ["email:x@example.com"] and not report.unknown[0].dedup_enabled


def test_a_lock_file_cannot_put_a_line_break_into_the_message(tmp_path):
    state_path = tmp_path / "s.json"
    child = subprocess.Popen([sys.executable, "-c", _HOLDER, str(state_path)], stdout=subprocess.PIPE, text=True,
                             env=_child_env())
    try:
        child.stdout.readline()
        data = json.loads(lock.lock_path(state_path).read_text())
        data["holder"] = "x\n::add-mask::y\r"
        lock.lock_path(state_path).write_text(json.dumps(data))
        with pytest.raises(LockedError) as info:
            lock.acquire(state_path)
        assert "\n" not in str(info.value) and "\r" not in str(info.value)
        assert "x\\n::add-mask::y\\r" in str(info.value)
    finally:
        child.kill()
        child.wait(timeout=60)


def test_a_lock_that_is_a_symlink_is_refused_and_its_target_untouched(tmp_path):
    target = tmp_path / "outside.txt"
    target.write_text("precious\n")
    state = tmp_path / "reconcile.state.json"
    lock.lock_path(state).symlink_to(target)
    with pytest.raises(InputError) as raised:
        lock.acquire(state, "apply")
    assert raised.value.exit_status == ExitStatus.INVALID_INPUT
    assert "reconcile.state.json.lock: a symbolic link" in list(raised.value.lines())[0]
    assert target.read_text() == "precious\n"
    assert lock.lock_path(state).is_symlink(), "the link is left for the user to look at"


def test_a_journal_that_is_a_symlink_is_never_replayed(tmp_path):
    from reconcile.apply import ledger

    elsewhere = tmp_path / "elsewhere.journal"
    elsewhere.write_text(json.dumps({"type": "begin", "version": 1, "lineage": "l", "serial": 0,
                                     "started": "2026-01-01T00:00:00+00:00", "dedup": True}) + "\n")
    state = tmp_path / "reconcile.state.json"
    journal_path(state).symlink_to(elsewhere)
    with pytest.raises(StateError, match="a symbolic link"):
        ledger.recover(state, commit=False)
