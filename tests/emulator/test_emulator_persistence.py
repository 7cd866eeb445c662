"""The Marketo SOAP emulator's database: it survives a restart, is written before the response, appends
each call's changes to a log folded into the snapshot once it outgrows it (between calls, or by a call
when calls never pause), drops a torn last log line and refuses a corrupt one, rolls a call back with
20011 when the write fails, and refuses a corrupt database rather than overwrite it.
"""

from __future__ import annotations

import json
import time

import pytest

from reconcile.emulator import Emulator, EmulatorConfig
from reconcile.emulator.store import LeadStore, create_database
from reconcile.emulator.store import StoreError
from soap_emulator_helpers import R, persisted, sync, sync_fault

# --------------------------------------------------------------------------------------------------
# Persistence


def test_database_survives_a_restart(tmp_path, emulator_factory):
    db = tmp_path / "state" / "emulator.json"
    first = emulator_factory(db_path=db)
    ids = [s.lead_id for s in sync(first, [R(email="a@example.com", attributes={"Title": "CTO"}),
                                           R(foreign_sys_person_id="F1", email="f@example.com")])]
    snapshot = first.leads()
    first.stop()
    second = emulator_factory(db_path=db)
    assert second.leads() == snapshot
    # keys and ids carry over: dedup and foreign ids find the old leads, new ids continue
    statuses = sync(second, [R(email="A@example.com"), R(foreign_sys_person_id="F1"), R(email="new@example.com")])
    assert [(s.status, s.lead_id) for s in statuses] == \
        [("UPDATED", ids[0]), ("UPDATED", ids[1]), ("CREATED", ids[1] + 1)]
    # and an Emulator object restarted in place reloads from disk too
    second.stop()
    second.start()
    assert len(second.leads()) == 3


def test_database_is_written_before_the_response(tmp_path, emulator_factory):
    db = tmp_path / "emulator.json"
    emu = emulator_factory(db_path=db)
    [status] = sync(emu, [R(email="a@example.com")])
    assert [lead["id"] for lead in persisted(db)] == [status.lead_id]  # right after the response: on disk
    emu.stop()
    assert [lead["id"] for lead in json.loads(db.read_text())["leads"]] == [status.lead_id]
    assert (tmp_path / "emulator.json.log").read_bytes() == b"", "a stopped emulator leaves one complete file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emulator.json", "emulator.json.log"]  # no temp files


def test_a_call_appends_what_it_changed_and_the_log_is_folded_once_it_outgrew_the_snapshot_and_calls_paused(
        tmp_path):
    db = tmp_path / "emulator.json"
    create_database(db, leads=[])
    clock = [0.0]
    store = LeadStore(fields=frozenset({"Title"}), path=db, min_log_bytes=2000, monotonic=lambda: clock[0])
    log = tmp_path / "emulator.json.log"
    snapshot = db.read_bytes()
    store.sync([R(email=f"u{i}@example.com") for i in range(3)], True)
    store.sync([R(email="u1@example.com", attributes=(("Title", "CTO"),))], True)
    assert db.read_bytes() == snapshot, "a call does not rewrite the whole database"
    assert [len(json.loads(line)["leads"]) for line in log.read_text().splitlines()] == [3, 1], \
        "only what each call changed"
    assert persisted(db) == store.leads()
    store.sync([R(email=f"many{i}@example.com", attributes=(("Title", "x" * 50),)) for i in range(30)], True)
    clock[0] += 0.9
    assert not store.fold_when_quiet(quiet=1.0) and log.read_bytes() and db.read_bytes() == snapshot, \
        "the log outgrew the snapshot, but a call wrote under a second ago: no fold stalls the next call"
    clock[0] += 0.2
    assert store.fold_when_quiet(quiet=1.0)
    assert log.read_bytes() == b"" and json.loads(db.read_text())["leads"] == store.leads(), \
        "folded into the snapshot once calls paused"
    lead_lines = [line for line in db.read_text().splitlines() if line.startswith("  {")]
    assert [json.loads(line.rstrip(",")) for line in lead_lines] == store.leads(), "one lead a line, diffable"
    store.sync([R(email="u2@example.com", attributes=(("Title", "CEO"),))], True)
    clock[0] += 5
    assert not store.fold_when_quiet(quiet=1.0) and log.read_bytes(), "a log smaller than the snapshot stays"


def test_a_log_that_grows_far_past_the_snapshot_with_no_pause_is_folded_by_the_call(tmp_path):
    db = tmp_path / "emulator.json"
    store = LeadStore(fields=frozenset({"Title"}), path=db, min_log_bytes=200, monotonic=lambda: 0.0)
    log = tmp_path / "emulator.json.log"
    for i in range(200):
        store.sync([R(email=f"u{i}@example.com", attributes=(("Title", "x" * 40),))], True)
        assert log.stat().st_size <= 16 * max(200, db.stat().st_size if db.exists() else 0) + 200
    assert db.exists() and persisted(db) == store.leads()


def test_the_server_folds_the_log_between_calls_once_they_pause(tmp_path, emulator_factory, monkeypatch):
    monkeypatch.setattr("reconcile.emulator.store.QUIET_SECONDS", 0.3)
    emu = emulator_factory(db_path=tmp_path / "emulator.json")
    sync(emu, [R(email=f"u{i}@example.com", attributes={"Title": "t" * 40}) for i in range(40)])
    log = tmp_path / "emulator.json.log"
    assert log.stat().st_size > 0
    emu.store._min_log_bytes = 100  # the log has outgrown the snapshot now
    deadline = time.monotonic() + 10
    while log.stat().st_size and time.monotonic() < deadline:
        time.sleep(0.05)
    assert log.stat().st_size == 0, "calls paused: the server folded the log"
    assert [lead["email"] for lead in persisted(tmp_path / "emulator.json")][:2] == ["u0@example.com", "u1@example.com"]


def test_a_torn_last_log_line_is_dropped_and_a_corrupt_one_refused(tmp_path):
    db = tmp_path / "emulator.json"
    store = LeadStore(fields=frozenset(), path=db)
    store.sync([R(email="kept@example.com")], True)
    log = tmp_path / "emulator.json.log"
    with open(log, "ab") as handle:
        handle.write(b'{"deleted": [], "leads": [{"id": 1000002, "ema')  # a crash mid-write
    assert [lead["email"] for lead in persisted(db)] == ["kept@example.com"]
    log.write_bytes(b'{"not": "a change"}\n' + log.read_bytes())
    with pytest.raises(StoreError, match="corrupt at line 1"):
        persisted(db)


def test_failed_write_rolls_the_call_back_and_faults_20011(tmp_path, emulator_factory, monkeypatch):
    emu = emulator_factory(db_path=tmp_path / "emulator.json")
    sync(emu, [R(email="a@example.com", attributes={"Title": "Old"})])

    def broken(path):
        raise StoreError("disk full")

    monkeypatch.setattr(emu.store, "_append", lambda path, changes: broken(path))
    assert sync_fault(emu, [R(email="a@example.com", attributes={"Title": "New"}), R(email="b@example.com")]) == "20011"
    assert [(lead["email"], lead["attributes"]) for lead in emu.leads()] == [("a@example.com", {"Title": "Old"})]
    monkeypatch.undo()
    assert sync(emu, [R(email="b@example.com")])[0].lead_id == 1000002  # the id was not consumed


def test_corrupt_database_is_refused_not_overwritten(tmp_path):
    db = tmp_path / "emulator.json"
    db.write_text('{"format_version": 1, "leads": [{"id": "x"}]}')
    with pytest.raises(StoreError, match="corrupt"):
        Emulator(EmulatorConfig(db_path=db))
    assert db.read_text().startswith('{"format_version": 1')
