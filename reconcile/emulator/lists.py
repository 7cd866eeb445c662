"""The emulated instance's static lists and their members, over the same leads as `store`.

A static list is `{"id", "name", "folder": {"id", "type"}, "description", "createdAt", "updatedAt"}`
and a set of lead IDs. Names are matched exactly (case-sensitive); two lists may share a name, as
lists in different programs can in Marketo, so a lookup by name answers every list it matches.

What a lead's deletion means here: the faces delete leads through the lead store and then call
`forget_leads`, so a deleted lead is on no list. Readers also skip members the lead store no longer
holds, which covers a crash between the two writes.

On disk (when the lead database has a path): `<db>.lists.json` beside it, a JSON snapshot, and
`<db>.lists.json.log`, one JSON line per change, fsync'd before the call that made it is answered.
Loading replays the log over the snapshot (a torn last line is a call never answered, and dropped);
the log is folded into the snapshot when it outgrows it, and on close.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from reconcile.core.clock import iso_utc
from reconcile.emulator import store as lead_store
from reconcile.store.fs import write_atomic

FORMAT_VERSION = 1
FIRST_LIST_ID = 1001
DEFAULT_FOLDER = {"id": 12, "type": "Folder"}  # "Group Lists" in a new instance's Lead Database
MAX_NAME_LENGTH = 255
_MIN_LOG_BYTES = 1024 * 1024

# An instance as a new user meets it: lists the examples can put leads on.
DEMO_LISTS: tuple[str, ...] = ("VIP Customers", "Webinar 2026-12")


class ListStoreError(Exception):
    """The list database cannot be read or written."""


def lists_path(db_path: Path) -> Path:
    """Where the lists of the lead database at `db_path` live."""
    return db_path.with_name(db_path.stem + ".lists.json")


def _log_path(path: Path) -> Path:
    return path.with_name(path.name + ".log")


class ListStore:
    """Static lists and memberships. Every method is atomic; a change is on disk before it returns."""

    def __init__(self, path: Path | None = None, now: Callable[[], datetime] | None = None):
        self._path = path
        self._now = now or (lambda: datetime.now(timezone.utc))
        self._lock = threading.Lock()
        self._lists: dict[int, dict[str, Any]] = {}
        self._members: dict[int, set[int]] = {}
        self._next_id = FIRST_LIST_ID
        self._snapshot_bytes = 0
        self._log_bytes = 0
        if path is not None:
            self._load(path)

    # -- reading ------------------------------------------------------------------------------------

    def lists(self) -> list[dict[str, Any]]:
        """Every list (without its members), sorted by id."""
        with self._lock:
            return [dict(self._lists[i]) for i in sorted(self._lists)]

    def get(self, list_id: int) -> dict[str, Any] | None:
        with self._lock:
            found = self._lists.get(list_id)
            return None if found is None else dict(found)

    def named(self, name: str) -> list[dict[str, Any]]:
        """The lists called exactly `name`, sorted by id."""
        with self._lock:
            return [dict(self._lists[i]) for i in sorted(self._lists) if self._lists[i]["name"] == name]

    def members(self, list_id: int) -> list[int]:
        """The lead IDs on the list, ascending (empty for an unknown list)."""
        with self._lock:
            return sorted(self._members.get(list_id, ()))

    def is_member(self, list_id: int, lead_id: int) -> bool:
        with self._lock:
            return lead_id in self._members.get(list_id, ())

    # -- writing ------------------------------------------------------------------------------------

    def create(self, name: str, folder: dict[str, Any] | None = None, description: str | None = None) -> dict:
        with self._lock:
            stamp = iso_utc(self._now())
            created = {"id": self._next_id, "name": name, "folder": dict(folder or DEFAULT_FOLDER),
                       "description": description, "createdAt": stamp, "updatedAt": stamp}
            self._write({"op": "create", "list": created})
            return dict(created)

    def add(self, list_id: int, lead_ids: Iterable[int]) -> None:
        """Put the leads on the list (those already on it stay, once)."""
        self._change("add", list_id, lead_ids)

    def remove(self, list_id: int, lead_ids: Iterable[int]) -> None:
        self._change("remove", list_id, lead_ids)

    def forget_leads(self, lead_ids: Iterable[int]) -> None:
        """Take deleted leads off every list."""
        ids = sorted(set(lead_ids))
        with self._lock:
            if ids and any(not members.isdisjoint(ids) for members in self._members.values()):
                self._write({"op": "forget", "leads": ids})

    def transfer(self, loser_id: int, winner_id: int) -> None:
        """A merge: the winner joins every list the loser was on, and the loser leaves them all."""
        with self._lock:
            if any(loser_id in members for members in self._members.values()):
                self._write({"op": "transfer", "loser": loser_id, "winner": winner_id})

    def _change(self, op: str, list_id: int, lead_ids: Iterable[int]) -> None:
        ids = sorted(set(lead_ids))
        with self._lock:
            if list_id not in self._lists:
                raise KeyError(list_id)
            if ids:
                self._write({"op": op, "list": list_id, "leads": ids})

    def _write(self, change: dict[str, Any]) -> None:
        """Log the change (when on disk), then apply it: a change the log lacks never happened."""
        if self._path is not None:
            self._append(self._path, change)
        _apply(change, self._lists, self._members)
        self._next_id = max([self._next_id, *(i + 1 for i in self._lists)])
        if self._path is not None and self._log_bytes > max(_MIN_LOG_BYTES, self._snapshot_bytes):
            self._save(self._path)

    def close(self) -> None:
        with self._lock:
            if self._path is not None and _log_path(self._path).exists():
                self._save(self._path)

    # -- persistence --------------------------------------------------------------------------------

    def _load(self, path: Path) -> None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = None
        except OSError as exc:
            raise ListStoreError(f"cannot read the emulator's list database {path}: {exc}") from exc
        try:
            if text is not None:
                self._snapshot_bytes = len(text)
                data = json.loads(text)
                if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
                    raise ValueError(f"not a format_version {FORMAT_VERSION} list database")
                for entry in data["lists"]:
                    members = entry.pop("members")
                    _apply({"op": "create", "list": entry}, self._lists, self._members)
                    _apply({"op": "add", "list": entry["id"], "leads": members}, self._lists, self._members)
            self._replay(_log_path(path))
        except (ValueError, KeyError, TypeError) as exc:
            raise ListStoreError(f"the emulator's list database {path} is corrupt: {exc}") from exc
        self._next_id = max([FIRST_LIST_ID, *(i + 1 for i in self._lists)])

    def _replay(self, log_path: Path) -> None:
        try:
            raw = log_path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise ListStoreError(f"cannot read {log_path}: {exc}") from exc
        self._log_bytes = len(raw)
        for line in raw.split(b"\n")[:-1]:  # after the last newline: nothing, or a line cut short by a crash
            _apply(json.loads(line), self._lists, self._members)

    def _append(self, path: Path, change: dict[str, Any]) -> None:
        line = (json.dumps(change, ensure_ascii=False) + "\n").encode("utf-8")
        log_path = _log_path(path)
        try:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(log_path, "ab") as log:
                size = log.tell()
                try:
                    log.write(line)
                    log.flush()
                    os.fsync(log.fileno())
                except BaseException:
                    log.truncate(size)  # a change the call does not answer must not replay later
                    raise
        except OSError as exc:
            raise ListStoreError(f"cannot write {log_path}: {exc}") from exc
        self._log_bytes = size + len(line)

    def _save(self, path: Path) -> None:
        """The snapshot first, then an empty log: a crash in between replays changes it already holds."""
        document = {"format_version": FORMAT_VERSION, "lists": [
            {**self._lists[i], "members": sorted(self._members[i])} for i in sorted(self._lists)]}
        payload = json.dumps(document, ensure_ascii=False, sort_keys=True).encode("utf-8")
        try:
            write_atomic(path, payload)
            with open(_log_path(path), "wb") as log:
                os.fsync(log.fileno())
        except OSError as exc:
            raise ListStoreError(f"cannot write the emulator's list database {path}: {exc}") from exc
        self._snapshot_bytes, self._log_bytes = len(payload), 0


def _apply(change: dict[str, Any], lists: dict[int, dict[str, Any]], members: dict[int, set[int]]) -> None:
    """One logged change, applied; every change is idempotent, so a replay after a fold is harmless."""
    op = change["op"]
    if op == "create":
        entry = change["list"]
        if not isinstance(entry["id"], int) or not isinstance(entry["name"], str):
            raise ValueError("a list needs an integer id and a text name")
        lists[entry["id"]] = dict(entry)
        members.setdefault(entry["id"], set())
    elif op in ("add", "remove"):
        on_list = members[change["list"]]
        ids = [int(i) for i in change["leads"]]
        if op == "add":
            on_list.update(ids)
        else:
            on_list.difference_update(ids)
    elif op == "forget":
        for on_list in members.values():
            on_list.difference_update(change["leads"])
    elif op == "transfer":
        for on_list in members.values():
            if change["loser"] in on_list:
                on_list.discard(change["loser"])
                on_list.add(change["winner"])
    else:
        raise ValueError(f"unknown change {op!r}")


def create_list_database(db_path: Path, names: Iterable[str] = DEMO_LISTS,
                         now: Callable[[], datetime] | None = None) -> bool:
    """Create the lists beside the lead database at `db_path`, unless a list database is there."""
    path = lists_path(db_path)
    if path.exists():
        return False
    _log_path(path).unlink(missing_ok=True)  # a log without its snapshot belongs to no database
    store = ListStore(path, now=now)
    for name in names:
        store.create(name)
    store.close()
    if not path.exists():  # no names: still leave an (empty) database behind
        store._save(path)
    return True


def create_database(path: Path, leads: Iterable[dict[str, Any]] = lead_store.DEMO_LEADS,
                    first_lead_id: int = 1_000_001) -> bool:
    """The demo instance at `path`: its leads (see `store.create_database`) and, beside them, the demo
    lists (also for a lead database made before lists existed). True if the lead database was created."""
    created = lead_store.create_database(path, leads, first_lead_id)
    create_list_database(path)
    return created
