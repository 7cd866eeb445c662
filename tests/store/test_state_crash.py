"""Crash safety of the multi-file state: any sequence of applies and crashes leaves a format 2 state
equal to the format 1 state that saw the same events."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconcile.core.model import State, StateLead
from reconcile.errors import StateError
from reconcile.store import journal as journal_mod
from reconcile.store.fs import write_atomic
from reconcile.store.journal import Journal, JournalEntry, ResultEntry
from reconcile.store.state import (finish_interrupted_write, load_state, open_state, shard_dir_for, with_leads,
                                   write_state)
from reconcile.store.statecodec import lead_line, serialize_v1
from reconcile.store import commitrecord, statefiles
from reconcile.store.statefiles import PENDING_NAME

KEYS = [f"email:k{i}@example.com" for i in range(10)] + ["fsp:SFDC:7", "fsp:CUSTOM:a:b", "id:99", "id:100"]


class _Crash(BaseException):
    """kill -9: nothing after it runs."""


@contextmanager
def _crash_after(operations: int):
    """Let `operations` renames, unlinks and in-place shard writes happen, then crash on the next one
    (and on every one after, as cleanup code never runs after a kill). A crash in an in-place write
    tears the file: half the new bytes over the old ones."""
    real_replace, real_unlink, real_overwrite = os.replace, os.unlink, statefiles.overwrite_in_place
    count = [0]

    def guard(real):
        def call(*args, **kwargs):
            count[0] += 1
            if count[0] > operations:
                raise _Crash()
            return real(*args, **kwargs)
        return call

    def overwrite(path, data):
        count[0] += 1
        if count[0] > operations:
            with open(path, "r+b" if os.path.exists(path) else "wb") as torn:
                torn.write(data[: len(data) // 2])
            raise _Crash()
        return real_overwrite(path, data)

    os.replace, os.unlink, statefiles.overwrite_in_place = guard(real_replace), guard(real_unlink), overwrite
    try:
        yield
    finally:
        os.replace, os.unlink, statefiles.overwrite_in_place = real_replace, real_unlink, real_overwrite


def _lead(key: str, value: str, stamp: int) -> StateLead:
    lead_id = int(key[3:]) if key.startswith("id:") else 1000 + KEYS.index(key)
    email = key[6:] if key.startswith("email:") else None
    fsp_type, _, fsp = key[4:].partition(":") if key.startswith("fsp:") else (None, "", None)
    return StateLead(lead_id=lead_id, email=email, foreign_sys_person_id=fsp, foreign_sys_type=fsp_type,
                     attributes={"Title": value, "Empty": None}, synced_at=f"2026-01-01T00:00:{stamp:02d}Z")


_batch = st.lists(st.tuples(st.sampled_from(KEYS), st.sampled_from(["CTO", "VP", "", "Zürich", "a\nb"])),
                  min_size=1, max_size=5, unique_by=lambda item: item[0])
_apply = st.fixed_dictionaries({
    "batches": st.lists(_batch, min_size=1, max_size=4),
    "forget": st.lists(st.sampled_from(KEYS), max_size=2, unique=True),
    # crash while writing the checkpoint after this batch, after this many renames/unlinks (None: no crash)
    "crash": st.none() | st.tuples(st.integers(0, 3), st.integers(0, 8)),
})


class _World:
    """One state on disk with its journal, in format 1 (the reference) or format 2."""

    def __init__(self, directory: Path, format_version: int):
        self.path = directory / "reconcile.state.json"
        self.format_version = format_version

    def write(self, state: State) -> None:
        if self.format_version == 1:
            write_atomic(self.path, serialize_v1(state))
        else:
            write_state(self.path, state)

    def recover(self) -> State:
        """What apply does first: replay a leftover journal onto the state and make it durable."""
        state, report = journal_mod.recover(self.path)
        if report.found:
            if report.changed:
                self.write(state)
            journal_mod.remove_journal(self.path)
        return state


def _events(state: State, batch: list, stamp: int, done: dict) -> list[ResultEntry]:
    results = []
    for key, value in batch:
        lead = _lead(key, value, stamp)
        done[key] = lead
        results.append(ResultEntry(identity=key, state_key=key if key in state.leads else None,
                                   status="UPDATED" if key in state.leads else "CREATED", lead_id=lead.lead_id,
                                   error=None, lead=lead))
    return results


def _run_apply(reference: _World, sharded: _World, apply: dict, stamp: int) -> None:
    """One apply against both worlds, with the same answers; a crash (if any) hits the format 2 write,
    and the format 1 world sees the same outcome: its write happened iff the format 2 one committed."""
    bases = [world.recover() for world in (reference, sharded)]
    assert _same(bases[0], bases[1])
    base = bases[1]
    journals = [Journal.create(world.path, base, dedup_enabled=True, started="s") for world in (reference, sharded)]
    current, done = base, {}
    crash = apply["crash"]
    try:
        for number, batch in enumerate(apply["batches"]):
            results = _events(base, batch, stamp + number, done)
            entries = [JournalEntry(identity=r.identity, state_key=r.state_key, kind="update") for r in results]
            for journal in journals:
                journal.inflight(number + 1, entries, True)
                journal.result(number + 1, results)
            leads = {**base.leads, **done}
            for key in apply["forget"]:
                leads.pop(key, None)
            following = with_leads(current, leads)
            if crash is not None and crash[0] == number:
                try:
                    with _crash_after(crash[1]):
                        sharded.write(following)
                except _Crash:
                    on_disk = load_state(sharded.path)  # never a mix: the old state or the new one
                    committed = on_disk.serial == following.serial
                    assert dict(on_disk.leads) == dict((following if committed else current).leads)
                    if committed:
                        reference.write(following)
                    return  # killed: the journals stay behind for the next apply to recover
                else:
                    reference.write(following)
            else:
                reference.write(following)
                sharded.write(following)
            current = following
        for world in (reference, sharded):
            journal_mod.remove_journal(world.path)
    finally:
        for journal in journals:
            journal.close()


def _same(one: State, other: State) -> bool:
    return (dict(one.leads) == dict(other.leads) and one.serial == other.serial
            and (one.lineage == other.lineage or one.serial == 0))


@contextmanager
def _no_fsync():
    """A simulated crash loses nothing that was written, so durability is not what is tested here,
    and skipping fsync keeps a hundred crash sequences fast."""
    real = os.fsync
    os.fsync = lambda fd: None
    try:
        yield
    finally:
        os.fsync = real


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(applies=st.lists(_apply, min_size=1, max_size=4))
def test_any_applies_and_crashes_leave_v2_equal_to_v1(applies):
    with tempfile.TemporaryDirectory() as scratch, _no_fsync():
        reference = _World(Path(scratch) / "v1", 1)
        sharded = _World(Path(scratch) / "v2", 2)
        reference.path.parent.mkdir()
        sharded.path.parent.mkdir()
        initial = State(lineage="0b7c0d4e-lineage", serial=1, leads={})
        reference.write(initial)
        sharded.write(initial)
        for number, apply in enumerate(applies):
            _run_apply(reference, sharded, apply, stamp=number * 5)
            assert _same(load_state(reference.path), load_state(sharded.path))
        final = [world.recover() for world in (reference, sharded)]
        finish_interrupted_write(sharded.path)  # what the next locked run does first
        assert _same(final[0], final[1])
        assert _same(load_state(reference.path), load_state(sharded.path))
        assert not (shard_dir_for(sharded.path) / PENDING_NAME).exists()  # every write was finished


def test_a_write_interrupted_after_its_commit_record_is_read_as_done_and_finished_by_the_next(tmp_path):
    state_path = tmp_path / "reconcile.state.json"
    leads = {key: _lead(key, "old", 1) for key in KEYS}
    write_state(state_path, State(lineage="l", serial=1, leads=leads))
    changed = {**leads, KEYS[0]: _lead(KEYS[0], "new", 2), KEYS[5]: _lead(KEYS[5], "new", 2)}
    del changed[KEYS[3]]
    with pytest.raises(_Crash):
        with _crash_after(1):  # the commit record is in place; no shard, no top file yet
            write_state(state_path, State(lineage="l", serial=2, leads=changed))
    pending = shard_dir_for(state_path) / PENDING_NAME
    assert pending.exists()
    assert load_state(state_path).leads == changed and load_state(state_path).serial == 2

    current, writer = open_state(state_path)  # the next writer finishes the interrupted write first
    writer.write(with_leads(current, current.leads))
    assert not pending.exists()
    again = load_state(state_path)
    assert again.leads == changed and again.serial == 3


def test_a_write_interrupted_before_its_commit_record_leaves_the_old_state(tmp_path):
    state_path = tmp_path / "reconcile.state.json"
    leads = {key: _lead(key, "old", 1) for key in KEYS}
    write_state(state_path, State(lineage="l", serial=1, leads=leads))
    with pytest.raises(_Crash):
        with _crash_after(0):
            write_state(state_path, State(lineage="l", serial=2, leads={**leads, KEYS[0]: _lead(KEYS[0], "x", 3)}))
    assert load_state(state_path).leads == leads and load_state(state_path).serial == 1


def test_a_bulk_write_torn_mid_shard_is_read_from_its_commit_record_and_finished_by_the_next(tmp_path):
    state_path = tmp_path / "reconcile.state.json"
    leads = {key: _lead(key, "old", 1) for key in KEYS}
    write_state(state_path, State(lineage="l", serial=1, leads=leads))
    bulk = {key: _lead(key, "new value, longer than the old one", 2) for key in KEYS}
    with pytest.raises(_Crash):
        with _crash_after(3):  # the record, two shards written in place, the third torn
            write_state(state_path, State(lineage="l", serial=2, leads=bulk))
    assert (shard_dir_for(state_path) / PENDING_NAME).exists()
    assert load_state(state_path).leads == bulk, "the full record is the state: the torn shard is not read"
    finish_interrupted_write(state_path)
    assert not (shard_dir_for(state_path) / PENDING_NAME).exists()
    assert load_state(state_path).leads == bulk and load_state(state_path).serial == 2


def _torn_bulk_write(state_path: Path, value: str) -> tuple[dict, bytes]:
    """A bulk write killed mid-shard, its commit record taken away: the new leads and the record."""
    leads = {key: _lead(key, "old", 1) for key in KEYS}
    write_state(state_path, State(lineage="l", serial=1, leads=leads))
    bulk = {key: _lead(key, value, 2) for key in KEYS}
    with pytest.raises(_Crash):
        with _crash_after(2):  # the full record, one shard written in place, the next torn
            write_state(state_path, State(lineage="l", serial=2, leads=bulk))
    record = shard_dir_for(state_path) / PENDING_NAME
    held = record.read_bytes()
    record.unlink()
    return bulk, held


def test_a_reader_that_races_a_bulk_write_reads_again_and_sees_the_new_state(tmp_path, monkeypatch):
    state_path = tmp_path / "reconcile.state.json"
    bulk, held = _torn_bulk_write(state_path, "new")  # as long as "old": the torn shard still parses
    record = shard_dir_for(state_path) / PENDING_NAME
    real_read_shard = statefiles._read_shard

    def writer_starts_meanwhile(path, found):  # the reader looked for a record before the writer made it
        if not record.exists():
            record.write_bytes(held)
        real_read_shard(path, found)

    monkeypatch.setattr(statefiles, "_read_shard", writer_starts_meanwhile)
    assert load_state(state_path).leads == bulk, "the record came while it read: it read again"


def test_a_torn_shard_with_no_writer_at_work_is_an_error(tmp_path):
    state_path = tmp_path / "reconcile.state.json"
    _torn_bulk_write(state_path, "a new value, longer than the old one")
    with pytest.raises(StateError, match="state"):
        load_state(state_path)


def test_a_bulk_write_overwrites_its_shards_where_they_are_and_a_small_one_replaces_them(tmp_path):
    """Replacing a file frees the old one's blocks (milliseconds a file on ext4 with online discard):
    a write that touches nearly every lead writes over the shards instead, under a full record."""
    state_path = tmp_path / "reconcile.state.json"
    leads = {key: _lead(key, "old", 1) for key in KEYS}
    write_state(state_path, State(lineage="l", serial=1, leads=leads))
    directory = shard_dir_for(state_path)
    inodes = {path.name: path.stat().st_ino for path in directory.glob("*.jsonl")}
    bulk = {key: _lead(key, "new", 2) for key in KEYS}
    write_state(state_path, State(lineage="l", serial=2, leads=bulk))
    assert {path.name: path.stat().st_ino for path in directory.glob("*.jsonl")} == inodes
    assert load_state(state_path).leads == bulk and not (directory / PENDING_NAME).exists()
    one = {**bulk, KEYS[0]: _lead(KEYS[0], "one more", 3)}
    write_state(state_path, State(lineage="l", serial=3, leads=one))
    after = {path.name: path.stat().st_ino for path in directory.glob("*.jsonl")}
    assert sum(after[name] != inodes[name] for name in inodes) == 1, "one lead changed: its shard replaced"
    assert load_state(state_path).leads == one
    shorter = {key: _lead(key, "x", 4) for key in KEYS}
    write_state(state_path, State(lineage="l", serial=4, leads=shorter))
    assert load_state(state_path).leads == shorter, "a shard written over with less is cut to its new length"


@given(st.lists(st.lists(st.sampled_from(KEYS), max_size=4, unique=True), max_size=4),
       st.lists(st.text(max_size=6), max_size=3), st.booleans())
def test_a_commit_record_written_a_shard_at_a_time_reads_back_as_written(groups, removed, full):
    top = statefiles.Top(lineage="l", serial=2, leads=3, shards=16, synced_at=None, instance=None)
    leads = {key: _lead(key, "v", 1) for group in groups for key in group}
    chunks = [commitrecord.shard_bytes([lead_line(key, leads[key]) for key in group]) for group in groups if group]
    count = sum(map(len, groups))
    with tempfile.TemporaryDirectory() as directory:
        record = Path(directory) / PENDING_NAME
        record.write_bytes(b"".join(commitrecord.pending_chunks(top, chunks, count, removed, full=full)))
        read = statefiles._read_pending(Path(directory))
    assert (read.top, read.lines, read.removed, read.full) == (top, leads, tuple(removed), full)


def test_a_commit_record_as_one_json_document_as_earlier_versions_wrote_it_is_still_read(tmp_path):
    import json

    state_path = tmp_path / "reconcile.state.json"
    leads = {key: _lead(key, "old", 1) for key in KEYS}
    write_state(state_path, State(lineage="l", serial=1, leads=leads))
    changed = {KEYS[0]: _lead(KEYS[0], "new", 2)}
    expected = {**leads, **changed}
    del expected[KEYS[1]]
    top = {**json.loads(state_path.read_text()), "serial": 2, "leads": len(expected)}
    record = {"kind": "reconcile-state-commit", "full": False, "top": top,
              "lines": [lead_line(key, lead) for key, lead in changed.items()], "removed": [KEYS[1]]}
    (shard_dir_for(state_path) / PENDING_NAME).write_text(json.dumps(record) + "\n")
    assert load_state(state_path).leads == expected and load_state(state_path).serial == 2


@pytest.mark.parametrize("lost", ["its last newline", "its last line"])
def test_a_commit_record_that_lost_lines_is_refused(tmp_path, lost):
    state_path = tmp_path / "reconcile.state.json"
    leads = {key: _lead(key, "old", 1) for key in KEYS}
    write_state(state_path, State(lineage="l", serial=1, leads=leads))
    with pytest.raises(_Crash):
        with _crash_after(1):  # the full record is in place
            write_state(state_path, State(lineage="l", serial=2, leads={key: _lead(key, "new", 2) for key in KEYS}))
    record = shard_dir_for(state_path) / PENDING_NAME
    kept = record.read_bytes()
    record.write_bytes(kept[:-1] if lost == "its last newline" else kept[:kept.rstrip(b"\n").rfind(b"\n") + 1])
    with pytest.raises(StateError, match="malformed"):
        load_state(state_path)
