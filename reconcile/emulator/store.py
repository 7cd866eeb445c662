"""The emulated lead database: one set of leads that every API face reads and writes.

A lead is `{"id", "email", "foreignSysPersonId", "foreignSysType", "attributes", "createdAt",
"updatedAt", "partition"}`, its attributes keyed by SOAP field name (see `fields`), `partition` the
name of its lead partition. Writes happen in a
`Transaction`: one call's changes, applied in order (each sees the ones before it), persisted as a
whole before the call is answered, or rolled back as a whole.

On disk: the database file (`path`, a JSON snapshot) and beside it `<path>.log`, one JSON line per
committed transaction with the leads it changed and deleted, fsync'd before the call is answered.
A call costs what it changed, not the size of the database. Loading replays the log over the
snapshot (a line torn by a crash is the unanswered last call and is dropped). Once the log outgrows
the snapshot it is folded into it when no call has written for a moment (`fold_when_quiet`, which
the server looks at between requests), so the fold, which rewrites the whole database, does not
stall calls; a log that grows far past that with never a quiet moment is folded by the call that
grows it. A closed store is folded too, so a stopped emulator leaves one complete JSON file.

What a write means is each API's business: `soap_rules` (syncMultipleLeads) and `rest_rules` (Sync
Leads) drive a transaction; the admin endpoints edit, merge and delete through one too.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import logging
import os
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from reconcile.core.clock import iso_utc
from reconcile.emulator.config import DEFAULT_PARTITION
from reconcile.emulator import soap_rules
from reconcile.emulator.soap_rules import Outcome, RecordLike
from reconcile.store.fs import write_atomic

log = logging.getLogger("reconcile.emulator")

DB_FORMAT_VERSION = 1
MIN_LOG_BYTES = 1024 * 1024  # the log is folded into the snapshot once it outgrows this and the snapshot
QUIET_SECONDS = 5.0  # ... when no call has written for this long (not in the pause between a client's
# rate windows, nor while the client writes its own files after its last call)
FOLD_IN_CALL_PAST = 16  # ... or by the call that takes it this many times past that size


class StoreError(Exception):
    """The database file cannot be read or written."""


class Transaction:
    """One call's changes to the database, undone as a whole if the call fails.

    Read a lead with `lead`, call `change` before altering one, and alter keys only through
    `set_email` / `set_fsp` / `set_attribute` so the indices follow.
    """

    def __init__(self, store: "LeadStore", stamp: str):
        self._store = store
        self.stamp = stamp
        self.fields = store.fields
        self._next_id = store._next_id
        self._originals: dict[int, dict[str, Any] | None] = {}  # None: created in this transaction

    @property
    def changed(self) -> bool:
        return bool(self._originals)

    def changes(self) -> dict[str, Any]:
        """What this transaction did, as one line of the database's log."""
        leads = self._store._leads
        return {"next_id": self._store._next_id,
                "leads": [leads[i] for i in sorted(self._originals) if i in leads],
                "deleted": sorted(i for i in self._originals if i not in leads)}

    def lead(self, lead_id: int) -> dict[str, Any] | None:
        return self._store._leads.get(lead_id)

    def ids_by_email(self, email: str) -> list[int]:
        return list(self._store._by_email.get(email.lower(), ()))

    def id_by_fsp(self, fsp_type: str, fsp: str) -> int | None:
        return self._store._by_fsp.get((fsp_type, fsp))

    def ids_by_attribute(self, name: str, value: str) -> list[int]:
        return list(self._store._attribute_index(name).get(value, ()))

    def create(self) -> dict[str, Any]:
        store = self._store
        lead = {"id": store._next_id, "email": None, "foreignSysPersonId": None, "foreignSysType": None,
                "attributes": {}, "createdAt": self.stamp, "updatedAt": self.stamp, "partition": DEFAULT_PARTITION}
        store._next_id += 1
        store._leads[lead["id"]] = lead
        self._originals[lead["id"]] = None
        return lead

    def change(self, lead: dict[str, Any]) -> None:
        if lead["id"] not in self._originals:
            self._originals[lead["id"]] = _copy(lead)
        lead["updatedAt"] = self.stamp

    def set_email(self, lead: dict[str, Any], email: str | None) -> None:
        self._store._set_email(lead, email)

    def set_fsp(self, lead: dict[str, Any], fsp: str | None, fsp_type: str | None) -> None:
        self._store._set_fsp(lead, fsp, fsp_type)

    def set_attribute(self, lead: dict[str, Any], name: str, value: str | None) -> None:
        self._store._set_attribute(lead, name, value)

    def set_partition(self, lead: dict[str, Any], partition: str) -> None:
        lead["partition"] = partition

    def set_attributes(self, lead: dict[str, Any], pairs: Iterable[tuple[str, str | None]]) -> None:
        """`set_attribute` for each (name, value), in order."""
        store = self._store
        indexed, attributes = store._by_attribute, lead["attributes"]
        for name, value in pairs:
            if name in indexed:
                store._set_attribute(lead, name, value)
            else:  # no index to follow (the common case): a plain write
                attributes[name] = value

    def delete(self, lead_id: int) -> None:
        store = self._store
        lead = store._leads[lead_id]
        if lead_id not in self._originals:
            self._originals[lead_id] = _copy(lead)
        store._set_email(lead, None)
        store._set_fsp(lead, None, None)
        for name in list(lead["attributes"]):
            store._set_attribute(lead, name, None)
        del store._leads[lead_id]

    def rollback(self) -> None:
        store = self._store
        for lead_id, original in self._originals.items():
            if original is None:
                store._leads.pop(lead_id, None)
            else:
                store._leads[lead_id] = original
        store._next_id = self._next_id
        store._reindex()


class LeadStore:
    def __init__(self, *, fields: frozenset[str], first_lead_id: int = 1_000_001,
                 path: Path | None = None, now: Callable[[], datetime] | None = None,
                 min_log_bytes: int = MIN_LOG_BYTES, monotonic: Callable[[], float] = time.monotonic):
        self.fields = fields  # SOAP names of the attributes a lead may have
        self._first_id = first_lead_id
        self._path = path
        self._now = now or (lambda: datetime.now(timezone.utc))
        self._lock = threading.Lock()
        self._leads: dict[int, dict[str, Any]] = {}
        self._by_fsp: dict[tuple[str, str], int] = {}
        self._by_email: dict[str, list[int]] = {}
        self._by_attribute: dict[str, dict[str, list[int]]] = {}  # built on first lookup by a field
        self._next_id = first_lead_id
        self._snapshot_bytes = 0
        self._log_bytes = 0
        self._min_log_bytes = min_log_bytes
        self._monotonic = monotonic
        self._last_write = monotonic()
        if path is not None:
            self._load(path)

    # -- reading ------------------------------------------------------------------------------------

    def leads(self) -> list[dict[str, Any]]:
        """A deep snapshot of the database, sorted by lead id."""
        with self._lock:
            return [_copy(self._leads[i]) for i in sorted(self._leads)]

    def __len__(self) -> int:
        with self._lock:
            return len(self._leads)

    def select(self, key: str, values: Iterable[Any]) -> list[dict[str, Any]]:
        """Copies of the leads whose `key` ("id", "email" or an attribute's SOAP name) has one of
        `values`, each lead once, sorted by id. Emails match case-insensitively, ids as integers."""
        with self._lock:
            found: set[int] = set()
            for value in values:
                if key == "id":
                    if isinstance(value, int) and value in self._leads:
                        found.add(value)
                elif key == "email":
                    found.update(self._by_email.get(str(value).lower(), ()))
                else:
                    found.update(self._attribute_index(key).get(str(value), ()))
            return [_copy(self._leads[i]) for i in sorted(found)]

    def seed(self, leads: Iterable[dict[str, Any]]) -> bool:
        """Fill an empty in-memory database with `leads` (the demo instance). False, and nothing
        changed, when it already holds leads or is persisted to a file (see `create_database`)."""
        with self._lock:
            if self._leads or self._path is not None:
                return False
            self._leads = {lead["id"]: _validated(lead) for lead in leads}
            self._next_id = max([self._next_id, *(i + 1 for i in self._leads)])
            self._reindex()
            return True

    # -- writing ------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """Serialize one call's changes; persist them on success, undo them on any exception
        (StoreError when the file cannot be written)."""
        with self._lock:
            tx = Transaction(self, iso_utc(self._now()))
            try:
                yield tx
                if tx.changed and self._path is not None:
                    self._append(self._path, tx.changes())
            except BaseException:
                tx.rollback()
                raise

    def close(self) -> None:
        """Fold the log into the snapshot, leaving one complete database file."""
        with self._lock:
            if self._path is not None and _log_path(self._path).exists():
                self._compact(self._path)

    def fold_when_quiet(self, quiet: float | None = None) -> bool:
        """Fold the log into the snapshot if it outgrew it and no call has written for `quiet` seconds
        (`QUIET_SECONDS`); never waits for a call in progress. True if it folded."""
        quiet = QUIET_SECONDS if quiet is None else quiet
        if self._path is None or not self._log_outgrew() or self._monotonic() - self._last_write < quiet:
            return False
        if not self._lock.acquire(blocking=False):
            return False
        try:
            return self._log_outgrew() and self._fold(self._path)
        finally:
            self._lock.release()

    def _log_outgrew(self, times: int = 1) -> bool:
        return self._log_bytes > times * max(self._min_log_bytes, self._snapshot_bytes)

    def sync(self, records: Iterable[RecordLike], dedup_enabled: bool | None) -> list[Outcome]:
        """syncMultipleLeads: one call's records by `soap_rules`, one outcome per record, in order."""
        with self.transaction() as tx:
            return soap_rules.sync(tx, records, dedup_enabled)

    # -- indices ------------------------------------------------------------------------------------

    def _set_email(self, lead: dict[str, Any], email: str | None) -> None:
        old = lead["email"]
        if old is not None:
            _unindex(self._by_email, old.lower(), lead["id"])
        lead["email"] = email
        if email is not None:
            bisect.insort(self._by_email.setdefault(email.lower(), []), lead["id"])

    def _set_fsp(self, lead: dict[str, Any], fsp: str | None, fsp_type: str | None) -> None:
        old = (lead["foreignSysType"], lead["foreignSysPersonId"])
        if old[1] is not None and self._by_fsp.get(old) == lead["id"]:
            del self._by_fsp[old]
        lead["foreignSysPersonId"], lead["foreignSysType"] = fsp, fsp_type
        if fsp is not None:
            self._by_fsp[(fsp_type, fsp)] = lead["id"]

    def _set_attribute(self, lead: dict[str, Any], name: str, value: str | None) -> None:
        index = self._by_attribute.get(name)
        if index is not None:
            old = lead["attributes"].get(name)
            if old is not None:
                _unindex(index, old, lead["id"])
            if value is not None:
                bisect.insort(index.setdefault(value, []), lead["id"])
        lead["attributes"][name] = value

    def _attribute_index(self, name: str) -> dict[str, list[int]]:
        index = self._by_attribute.get(name)
        if index is None:
            index = {}
            for lead_id in sorted(self._leads):
                value = self._leads[lead_id]["attributes"].get(name)
                if value is not None:
                    index.setdefault(value, []).append(lead_id)
            self._by_attribute[name] = index
        return index

    def _reindex(self) -> None:
        self._by_fsp.clear()
        self._by_email.clear()
        self._by_attribute.clear()
        for lead_id in sorted(self._leads):
            lead = self._leads[lead_id]
            if lead["foreignSysPersonId"] is not None:
                self._by_fsp[(lead["foreignSysType"], lead["foreignSysPersonId"])] = lead_id
            if lead["email"] is not None:
                self._by_email.setdefault(lead["email"].lower(), []).append(lead_id)

    # -- persistence --------------------------------------------------------------------------------

    def _load(self, path: Path) -> None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = None
        except OSError as exc:
            raise StoreError(f"cannot read emulator database {path}: {exc}") from exc
        leads: dict[int, dict[str, Any]] = {}
        next_id = 0
        if text is not None:
            try:
                data = json.loads(text)
                if not isinstance(data, dict) or data.get("format_version") != DB_FORMAT_VERSION:
                    raise ValueError(f"not a format_version {DB_FORMAT_VERSION} emulator database")
                for raw in data["leads"]:
                    lead = _validated(raw)
                    if lead["id"] in leads:
                        raise ValueError(f"lead id {lead['id']} appears twice")
                    leads[lead["id"]] = lead
                next_id = int(data.get("next_id", 0))
            except (ValueError, KeyError, TypeError) as exc:
                raise StoreError(f"emulator database {path} is corrupt: {exc}") from exc
            self._snapshot_bytes = len(text)
        try:
            self._log_bytes = _log_path(path).stat().st_size
        except FileNotFoundError:
            self._log_bytes = 0
        next_id = _replay(_log_path(path), leads, next_id)
        self._leads = leads
        self._next_id = max([next_id, self._first_id, *(i + 1 for i in leads)])
        self._reindex()

    def _append(self, path: Path, changes: dict[str, Any]) -> None:
        # keys as the leads hold them (unsorted): the line is only replayed, and sorting is a fifth of its cost
        line = (json.dumps(changes, ensure_ascii=False) + "\n").encode("utf-8")
        log_path = _log_path(path)
        try:
            self._log_bytes = append_durably(log_path, line)
        except OSError as exc:
            raise StoreError(f"cannot write emulator database log {log_path}: {exc}") from exc
        finally:
            self._last_write = self._monotonic()
        if self._log_outgrew(FOLD_IN_CALL_PAST):
            self._fold(path)

    def _fold(self, path: Path) -> bool:
        try:
            self._compact(path)
        except StoreError:  # every change is in the log already: a failed fold is retried later
            log.warning("emulator: could not fold the database log into %s; will retry", path, exc_info=True)
            return False
        return True

    def _compact(self, path: Path) -> None:
        """The snapshot first, then an empty log: a crash in between replays changes it already holds."""
        self._save(path)
        try:
            with open(_log_path(path), "r+b") as log:
                log.truncate(0)
                os.fsync(log.fileno())
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StoreError(f"cannot reset emulator database log {_log_path(path)}: {exc}") from exc
        self._log_bytes = 0

    def _save(self, path: Path) -> None:
        payload = _snapshot_text(self._next_id, [self._leads[i] for i in sorted(self._leads)])
        self._snapshot_bytes = len(payload)
        try:
            write_atomic(path, payload.encode("utf-8"))
        except OSError as exc:
            raise StoreError(f"cannot write emulator database {path}: {exc}") from exc


def _snapshot_text(next_id: int, leads: list[dict[str, Any]]) -> str:
    """The database as JSON with one lead a line: readable and diffable, and written by json's C
    encoder (an indented dump goes through its pure-Python one, which cost the emulator most of its
    CPU in a 90k-lead apply, folding the log into ever larger snapshots)."""
    dump = json.dumps
    rows = ",\n".join("  " + dump(lead, sort_keys=True, ensure_ascii=False) for lead in leads)
    listed = f"[\n{rows}\n ]" if leads else "[]"
    return f'{{\n "format_version": {DB_FORMAT_VERSION},\n "leads": {listed},\n "next_id": {dump(next_id)}\n}}\n'


def _log_path(path: Path) -> Path:
    return path.with_name(path.name + ".log")


def _replay(log_path: Path, leads: dict[int, dict[str, Any]], next_id: int) -> int:
    """Apply the log's transactions to `leads` in order; return the next id they leave."""
    try:
        lines = log_path.read_bytes().split(b"\n")
    except FileNotFoundError:
        return next_id
    except OSError as exc:
        raise StoreError(f"cannot read emulator database log {log_path}: {exc}") from exc
    complete = lines[:-1]  # after the last newline: nothing, or a line a crash cut short (never answered)
    for number, line in enumerate(complete, 1):
        try:
            change = json.loads(line)
            for raw in change["leads"]:
                lead = _validated(raw)
                leads[lead["id"]] = lead
            for lead_id in change["deleted"]:
                leads.pop(lead_id, None)
            next_id = max(next_id, int(change["next_id"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"emulator database log {log_path} is corrupt at line {number}: {exc}") from exc
    return next_id


def _unindex(index: dict[str, list[int]], key: str, lead_id: int) -> None:
    ids = index.get(key)
    if ids is None:
        return
    position = bisect.bisect_left(ids, lead_id)
    if position < len(ids) and ids[position] == lead_id:
        del ids[position]
    if not ids:
        del index[key]


def _copy(lead: dict[str, Any]) -> dict[str, Any]:
    copied = dict(lead)
    copied["attributes"] = dict(lead["attributes"])
    return copied


def _validated(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ValueError("a lead is not an object")
    lead_id = raw["id"]
    if not isinstance(lead_id, int) or isinstance(lead_id, bool) or lead_id < 1:
        raise ValueError(f"bad lead id {lead_id!r}")
    lead = {"id": lead_id}
    for key in ("email", "foreignSysPersonId", "foreignSysType", "createdAt", "updatedAt", "partition"):
        value = raw.get(key)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"lead {lead_id}: {key} is not a string")
        lead[key] = value
    lead["partition"] = lead["partition"] or DEFAULT_PARTITION  # a database from before partitions
    attributes = raw.get("attributes") or {}
    if not isinstance(attributes, dict) or not all(
        isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in attributes.items()
    ):
        raise ValueError(f"lead {lead_id}: attributes must map names to strings or null")
    lead["attributes"] = dict(attributes)
    return lead


# An instance as a new user meets it: one lead that already exists in "Marketo", so the example
# lead files can show adopting a lead by its Marketo ID (leads/adopted.yaml).
DEMO_LEADS: tuple[dict[str, Any], ...] = (
    {"id": 1090238, "email": "legacy.lead@example.com", "foreignSysPersonId": None, "foreignSysType": None,
     "attributes": {"FirstName": "Lee", "LastName": "Gacy", "Title": "Partnerships"},
     "createdAt": "2013-08-01T18:22:30-07:00", "updatedAt": "2013-08-01T18:22:30-07:00"},
)


def create_database(path: Path, leads: Iterable[dict[str, Any]] = DEMO_LEADS,
                    first_lead_id: int = 1_000_001) -> bool:
    """Create an emulator database holding `leads`, unless one exists. True if it was created."""
    if path.exists():
        return False
    _log_path(path).unlink(missing_ok=True)  # a log without its snapshot belongs to no database
    store = LeadStore(fields=frozenset(), first_lead_id=first_lead_id)
    store._leads = {lead["id"]: _validated(lead) for lead in leads}
    store._next_id = max([first_lead_id, *(i + 1 for i in store._leads)])
    store._save(path)
    return True


def append_durably(log_path: Path, line: bytes) -> int:
    """Append one line to a change log and fsync it; the log's size after. A line that could not be
    written whole is cut off again: a change the call does not answer must not replay later."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        size = log.tell()
        try:
            log.write(line)
            log.flush()
            os.fsync(log.fileno())
        except BaseException:
            log.truncate(size)
            raise
    return size + len(line)
