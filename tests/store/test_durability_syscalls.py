"""The write protocol's fsyncs, checked at the system-call level.

A recording layer over `os` (open, fsync, replace, unlink, pwrite) logs, in order, every durable step
the state files and the journal take during a real apply, with the path behind each file
descriptor. A crash or power cut between any two steps must leave something recoverable, so:

- the journal is fsync'd with the batch's inflight line before the call is sent;
- a file is fsync'd before it is renamed over its target;
- the directory is fsync'd after the commit record's rename, before any shard changes;
- the directory is fsync'd after the shards' renames, before the top file is replaced;
- the journal goes only after the new top file's rename is durable.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from reconcile.apply import apply_plan, recover_state
from reconcile.core.model import Lead
from reconcile.core.planner import plan as make_plan
from reconcile.errors import Location
from reconcile.remote.soap.envelope import SyncStatus
from reconcile.store.journal import journal_path
from reconcile.store.state import load_state, shard_dir_for
from reconcile.store.statefiles import PENDING_NAME


class SyscallLog:
    """Wraps os.open/fsync/replace/unlink/pwrite; `events` lists (what, path, detail) for files under `root`."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch):
        self.root = str(root)
        self.events: list[tuple[str, str, Any]] = []
        self._lock = threading.Lock()
        real_fsync, real_replace, real_unlink, real_pwrite = os.fsync, os.replace, os.unlink, os.pwrite

        def fsync(fd: int) -> None:
            path = self._path_of(fd)
            real_fsync(fd)
            self._log("fsync", path, os.fstat(fd).st_size)

        def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
            real_replace(src, dst, *args, **kwargs)
            self._log("replace", os.path.abspath(dst), os.path.abspath(src))

        def unlink(path: Any, *args: Any, **kwargs: Any) -> None:
            real_unlink(path, *args, **kwargs)
            self._log("unlink", os.path.abspath(path), None)

        def pwrite(fd: int, data: Any, offset: int) -> int:
            written = real_pwrite(fd, data, offset)
            self._log("pwrite", self._path_of(fd), offset)
            return written

        for name, wrapper in (("fsync", fsync), ("replace", replace), ("unlink", unlink), ("pwrite", pwrite)):
            monkeypatch.setattr(os, name, wrapper)

    @staticmethod
    def _path_of(fd: int) -> str:
        return os.readlink(f"/proc/self/fd/{fd}")

    def _log(self, what: str, path: str, detail: Any) -> None:
        if path.startswith(self.root):
            with self._lock:
                self.events.append((what, path, detail))

    def mark(self, what: str, detail: Any = None) -> None:
        with self._lock:
            self.events.append((what, "", detail))


class CheckingTransport:
    """Answers every record; before each call, checks that the journal on disk is durable as it is."""

    stats = None

    def __init__(self, log: SyscallLog, journal: Path, first_id: int):
        self.log, self.journal, self.next_id = log, journal, first_id

    def send(self, records, dedup_enabled=True, **kwargs):
        size = self.journal.stat().st_size
        synced = [detail for what, path, detail in self.log.events if what == "fsync" and path == str(self.journal)]
        assert synced and synced[-1] == size, "the journal's inflight line was not fsync'd before sending"
        assert b'"type":"inflight"' in self.journal.read_bytes().splitlines()[-1]
        self.log.mark("send", len(records))
        statuses = []
        for record in records:
            lead_id = record.lead_id if record.lead_id is not None else self._new_id()
            statuses.append(SyncStatus(lead_id, "UPDATED" if record.lead_id is not None else "CREATED"))
        return statuses

    def _new_id(self) -> int:
        self.next_id += 1
        return self.next_id


def desired(count: int, title: str) -> list[Lead]:
    return [Lead(location=Location("leads/a.yaml", 2 + n), email=f"u{n:03d}@example.com",
                 attributes={"Title": title if n < 3 else "same"}) for n in range(count)]


def check_write_protocol(events: list[tuple[str, str, Any]], state_path: Path) -> None:
    directory = str(shard_dir_for(state_path))
    parent = str(state_path.parent)
    pending = os.path.join(directory, PENDING_NAME)
    for number, (what, path, source) in enumerate(events):
        if what != "replace":
            continue
        synced = [i for i, (w, p, _) in enumerate(events[:number]) if w == "fsync" and p == source]
        assert synced, f"{source} renamed over {path} without an fsync of its own"
        target_dir = os.path.dirname(path)
        later = events[number + 1:]
        dir_sync = next((i for i, (w, p, _) in enumerate(later) if w == "fsync" and p == target_dir), None)
        assert dir_sync is not None, f"no fsync of {target_dir} after the rename of {path}"
        if path == pending:  # the commit record: durable before any shard or the top file changes
            changes = [i for i, (w, p, _) in enumerate(later) if w in ("replace", "unlink", "pwrite")]
            assert not changes or dir_sync < changes[0], "a shard changed before the commit record was durable"
        elif path.endswith(".jsonl"):  # a shard: durable before the top file names the new state
            top = next((i for i, (w, p, _) in enumerate(later) if w == "replace" and p == str(state_path)), None)
            assert top is not None and dir_sync < top, f"the top file replaced before the rename of {path} was durable"
        elif path == str(state_path):  # the top file: durable before the journal goes
            gone = next((i for i, (w, p, _) in enumerate(later)
                         if w in ("unlink", "replace") and p == str(journal_path(state_path))), None)
            assert gone is None or dir_sync < gone, "the journal went before the new state was durable"
    assert any(w == "fsync" and p == parent for w, p, _ in events)


def test_an_apply_takes_its_durable_steps_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state_path = tmp_path / "reconcile.state.json"
    log = SyscallLog(tmp_path, monkeypatch)
    state, _ = recover_state(state_path)
    apply_plan(make_plan(desired(300, "first"), state), state, state_path,
               CheckingTransport(log, journal_path(state_path), 1000), batch_size=100, concurrency=1)
    events = list(log.events)
    monkeypatch.undo()
    assert [d for w, _, d in events if w == "send"] == [100, 100, 100]
    check_write_protocol(events, state_path)
    assert len(load_state(state_path).leads) == 300

    # A small change to a state of many shards: a commit record, a few shard renames, the top file.
    log = SyscallLog(tmp_path, monkeypatch)
    state, _ = recover_state(state_path)
    apply_plan(make_plan(desired(300, "second"), state), state, state_path,
               CheckingTransport(log, journal_path(state_path), 5000), batch_size=100, concurrency=1)
    events = list(log.events)
    monkeypatch.undo()
    assert [d for w, _, d in events if w == "send"] == [3]
    shard_renames = [p for w, p, _ in events if w == "replace" and p.endswith(".jsonl")]
    assert 1 <= len(shard_renames) <= 3 and any(p.endswith(PENDING_NAME) for w, p, _ in events if w == "replace")
    check_write_protocol(events, state_path)
    assert not journal_path(state_path).exists()
    assert {load_state(state_path).leads[f"email:u{n:03d}@example.com"].attributes["Title"] for n in range(3)} \
        == {"second"}
