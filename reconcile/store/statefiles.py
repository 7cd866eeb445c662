"""State format 2 on disk: a small top file and lead lines sharded by a stable hash of the key.

    reconcile.state.json            the top file: format_version 2, lineage, serial, lead count,
                                    shard count, the last sync stamp, the Marketo instance
    reconcile.state.d/
      .gitignore                    ignores temporary files
      00.jsonl … ff.jsonl           one line per lead, sorted by key (empty shards have no file)
      .pending.json                 only while a write is unfinished (the commit record)

A lead lives in shard `top bits of blake2b(key) × count`; the count is a power of two chosen when the
layout is written in full (≈256 leads a shard, at least 16) and kept until the state outgrows it
4×, so a write rewrites only the few shards holding changed leads and a shard stays small whatever
the state's size.

Commit protocol — a write touches several files, yet a crash at any point leaves the old state or
the new one, never a mix:

1. the *commit record* `.pending.json` is written atomically (temp file, fsync, rename): a first line
   with the new top, the removed keys and a count of the lines that follow, then every changed lead
   line as a shard holds it. Once it is on disk the write has happened;
2. each changed shard is replaced atomically, then the directory is fsync'd. When a write changes
   shards holding nearly every lead (a bulk apply), the record holds *every* line instead (`full`)
   and the shards are overwritten in place: replacing a file frees the old one's blocks, which on
   some file systems is slow, and a full record makes a torn shard harmless;
3. the top file is replaced atomically;
4. the commit record is removed.

A reader that finds a commit record (a crash between 1 and 4) reads the shards and lays the record
over them: lines the record names come from it, the others are the same in the old and new state; a
full record is the whole state, and the shards are not read. A reader that races a writer (`plan`
takes no lock) sees the top file or the record come or go while it reads (`write_marker`), and reads
again.
The next run that locks the state finishes the write (:func:`finish_interrupted_write`). Before step 1
nothing on disk changed. The record is deliberately not git-ignored: a state committed with it (say,
by a workflow after a failed apply) is still the whole new state, never a mix of old and new shards.
A layout written in full (a migration from format 1, or a change of shard count) needs no record
when the top file is still format 1 — the old document stays authoritative until step 3 replaces
it — and puts every line in the record otherwise. The apply journal (`reconcile.store.journal`)
sits above all this: it holds every answer from Marketo until a state write containing it is
committed, so a crash loses no lead ID whichever step it interrupts.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from reconcile.core.model import State, StateLead
from reconcile.errors import Location, StateError
from reconcile.store.commitrecord import pending_bytes, pending_chunks, shard_bytes
from reconcile.store.fs import fsync_directory, overwrite_in_place, write_atomic
from reconcile.store.statecodec import check_lineage, check_serial, lead_line, parse_lead_line, strict_json

FORMAT_VERSION = 2
LEADS_PER_SHARD = 256
MIN_SHARDS = 16
MAX_SHARDS = 65536
IN_PLACE_UNCHANGED_SHARE = 8  # shards are overwritten in place when those left alone hold at most 1/8 of the leads
READ_ATTEMPTS = 3  # a reader racing a writer reads the state this many times at most
PENDING_NAME = ".pending.json"
_TOP_FIELDS = {"format_version", "lineage", "serial", "leads", "shards", "syncedAt", "instance"}
_GITIGNORE = "# reconcile's temporary files while it writes the state: never commit them\n.*.tmp\n"


def shard_dir_for(state_path: Path | str) -> Path:
    """`reconcile.state.json` → `reconcile.state.d` (beside it)."""
    state_path = Path(state_path)
    stem = state_path.name[:-5] if state_path.name.endswith(".json") else state_path.name
    return state_path.with_name(stem + ".d")


def shard_of(key: str, count: int) -> int:
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=4).digest()
    return (int.from_bytes(digest, "big") * count) >> 32


def shard_name(index: int, count: int) -> str:
    width = max(2, len(f"{count - 1:x}"))
    return f"{index:0{width}x}.jsonl"


def shard_count_for(leads: int, current: int | None = None) -> int:
    """The shard count for `leads` leads: `current` while it still fits (within 4× of the target)."""
    if current is not None and MIN_SHARDS <= current <= MAX_SHARDS and current & (current - 1) == 0:
        per_shard = leads / current
        if per_shard <= LEADS_PER_SHARD * 4 and (current == MIN_SHARDS or per_shard >= LEADS_PER_SHARD / 4):
            return current
    count = MIN_SHARDS
    while count < MAX_SHARDS and count * LEADS_PER_SHARD < leads:
        count *= 2
    return count


@dataclass(frozen=True)
class Top:
    """The top file of a format 2 state."""

    lineage: str
    serial: int
    leads: int
    shards: int
    synced_at: str | None = None
    instance: str | None = None

    def to_bytes(self) -> bytes:
        data: dict[str, Any] = {"format_version": FORMAT_VERSION, "lineage": self.lineage, "serial": self.serial,
                                "leads": self.leads, "shards": self.shards}
        if self.synced_at is not None:
            data["syncedAt"] = self.synced_at
        if self.instance is not None:
            data["instance"] = self.instance
        return (json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: Location) -> "Top":
        unknown = set(data) - _TOP_FIELDS
        if unknown:
            raise StateError(f"state file has unknown field(s): {', '.join(sorted(unknown))}", where)
        shards, leads = data.get("shards"), data.get("leads")
        if not isinstance(shards, int) or isinstance(shards, bool) or not MIN_SHARDS <= shards <= MAX_SHARDS \
                or shards & (shards - 1):
            raise StateError(f"state shards must be a power of two from {MIN_SHARDS} to {MAX_SHARDS}", where)
        if not isinstance(leads, int) or isinstance(leads, bool) or leads < 0:
            raise StateError("state leads must be the number of leads", where)
        for name in ("syncedAt", "instance"):
            if data.get(name) is not None and (not isinstance(data[name], str) or len(data[name]) > 200):
                raise StateError(f"state {name} must be a short string", where)
        return cls(lineage=check_lineage(data.get("lineage"), where), serial=check_serial(data.get("serial"), where),
                   leads=leads, shards=shards, synced_at=data.get("syncedAt"), instance=data.get("instance"))


# --------------------------------------------------------------------------------------------------
# Reading


def write_marker(state_path: Path) -> tuple:
    """What a writer changes whenever it starts or ends a write: the top file and the commit record
    (each replaced as a new file, or created, or removed). A read that finds the same marker before
    and after saw one state: shards written meanwhile are covered by a record it read."""
    marker = []
    for path in (Path(state_path), shard_dir_for(state_path) / PENDING_NAME):
        try:
            found = path.stat()
            marker.append((found.st_ino, found.st_mtime_ns, found.st_size))
        except OSError:
            marker.append(None)
    return tuple(marker)


def read_v2(state_path: Path, top_data: Mapping[str, Any]) -> tuple[State, Top]:
    """The format 2 state whose top file parsed as `top_data`, with an unfinished write laid over."""
    where = Location(str(state_path))
    top = Top.from_json(top_data, where)
    directory = shard_dir_for(state_path)
    pending = _read_pending(directory)
    if pending is not None:
        top = pending.top
    leads: dict[str, StateLead] = {}
    if pending is None or not pending.full:
        for index in range(top.shards):
            _read_shard(directory / shard_name(index, top.shards), leads)
    if pending is not None:
        for key in pending.removed:
            leads.pop(key, None)
        leads.update(pending.lines)
    if len(leads) != top.leads:
        raise StateError(f"state lists {top.leads} lead(s) but {directory} holds {len(leads)}; a shard file is "
                         "missing or was edited by hand — restore the state from git", where)
    return State(lineage=top.lineage, serial=top.serial, leads=leads, format_version=FORMAT_VERSION,
                 instance=top.instance), top


def _read_shard(path: Path, leads: dict[str, StateLead]) -> None:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StateError(f"cannot read state shard: {exc.strerror}", Location(str(path))) from exc
    if raw and not raw.endswith(b"\n"):
        raise StateError("state shard does not end with a newline; it may be truncated — restore it from git",
                         Location(str(path), raw.count(b"\n") + 1))
    name = str(path)
    for number, line in enumerate(_lines_of(raw), start=1):
        key, lead = parse_lead_line(line, Location(name, number))
        if key in leads:
            raise StateError(f"state lead {key!r} appears twice", Location(str(path), number))
        leads[key] = lead


def _lines_of(raw: bytes) -> list[str] | list[bytes]:
    """The lines of `raw`, each ended by a newline, as text; as bytes if any is not UTF-8, each then
    decoded alone so that the bad one is named."""
    try:
        return raw.decode("utf-8").split("\n")[:-1]
    except UnicodeDecodeError:
        return raw.split(b"\n")[:-1]


@dataclass(frozen=True)
class _Pending:
    top: Top
    lines: dict[str, StateLead]
    removed: tuple[str, ...]
    full: bool


def _read_pending(directory: Path) -> _Pending | None:
    path = directory / PENDING_NAME
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    head, _, body = raw.partition(b"\n")
    where = Location(str(path), 1)
    data = strict_json(head, where)
    try:
        top = Top.from_json(data["top"], where)
        listed = data["lines"]
        if isinstance(listed, list):  # one JSON document, as reconcile wrote the record before 2026-12
            lines = dict(parse_lead_line(line, where) for line in listed)
        else:
            lines = _pending_lines(body, int(listed), str(path))
        removed = tuple(str(key) for key in data["removed"])
        return _Pending(top=top, lines=lines, removed=removed, full=bool(data["full"]))
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise StateError("the state's commit record is malformed; restore the state from git", where) from exc


def _pending_lines(body: bytes, count: int, name: str) -> dict[str, StateLead]:
    """The record's lead lines, after its first line: exactly `count`, each ending with a newline."""
    if body and not body.endswith(b"\n"):
        raise ValueError("the record's last line does not end with a newline")
    lines = _lines_of(body)
    if len(lines) != count:
        raise ValueError(f"the record says {count} line(s) follow; {len(lines)} do")
    return dict(parse_lead_line(line, Location(name, number)) for number, line in enumerate(lines, start=2))


def fingerprint_parts(state_path: Path) -> list[tuple[str, bytes]]:
    """(name, bytes) of every file the state is made of, for hashing the whole state."""
    return [(name, path.read_bytes()) for name, path in part_paths(state_path)]


def part_paths(state_path: Path) -> list[tuple[str, Path]]:
    """(name, path) of every file the state is made of: the top file first (FileNotFoundError when
    there is none), then the shards and an unfinished write, by name."""
    state_path = Path(state_path)
    if not state_path.exists():
        raise FileNotFoundError(state_path)
    parts = [("top", state_path)]
    directory = shard_dir_for(state_path)
    try:
        names = sorted(entry.name for entry in os.scandir(directory)
                       if entry.name.endswith(".jsonl") or entry.name == PENDING_NAME)
    except (FileNotFoundError, NotADirectoryError):
        return parts
    return parts + [(name, directory / name) for name in names]


# --------------------------------------------------------------------------------------------------
# Writing


@dataclass
class WriteReport:
    """What one write did: for the CLI's notices and for tests that count the cost of a checkpoint."""

    wrote: bool = False
    migrated: bool = False  # the state on disk was format 1 before this write
    resharded: bool = False
    files: list[str] = field(default_factory=list)
    bytes_written: int = 0


class StateWriter:
    """Writes successive versions of one state, rewriting only the shards whose leads changed.

    Start one from the state as loaded (`on_disk`, or None when there is no state file yet) and call
    :meth:`write` with each new version — every checkpoint of an apply, and the final write.
    """

    def __init__(self, state_path: Path | str, on_disk: State | None, top: Top | None = None):
        self.path = Path(state_path)
        self.directory = shard_dir_for(self.path)
        self._written = on_disk
        self._top = top
        self._migrating = on_disk is not None and top is None  # a format 1 file: the first write migrates
        self._members: list[set[str]] | None = None
        # Each lead's line as last written, with the lead it encodes: a shard rewritten because one of
        # its leads changed re-encodes only that lead (encoding is most of a checkpoint's CPU).
        self._lines: dict[str, tuple[StateLead, str]] = {}
        self._expected = 0  # leads the state will hold: shards are sized for them from the first write
        # An interrupted write (its commit record still there) is finished by rewriting every shard once.
        self._redo = top is not None and (self.directory / PENDING_NAME).exists()

    def write(self, state: State, changed: Iterable[str] | None = None) -> WriteReport:
        """Make `state` the state on disk. `changed`: the keys that may differ from the last write
        (found by comparison when not given)."""
        report = WriteReport(migrated=self._migrating)
        self.finish(report)
        previous = self._written
        count = shard_count_for(max(len(state.leads), self._expected), self._top.shards if self._top else None)
        full = self._top is None or count != self._top.shards
        keys = set(state.leads) if full else self._changed_keys(previous, state, changed)
        top = Top(lineage=state.lineage, serial=state.serial, leads=len(state.leads), shards=count,
                  synced_at=_latest_stamp(self._top.synced_at if self._top else None, state, keys),
                  instance=state.instance if state.instance is not None else
                  (self._top.instance if self._top else None))
        if not keys and self._top == top:
            return report
        self.directory.mkdir(parents=True, exist_ok=True)
        self._ensure_gitignore(report)
        if full:
            self._write_full(state, top, count, report)
        else:
            self._write_changes(state, top, keys, report)
        self._written, self._top, self._migrating = state, top, False
        report.wrote = True
        return report

    def remember(self, lines: Mapping[str, tuple[StateLead, str]]) -> None:
        """Lines already encoded for these leads (by state key), as the journal wrote them: they are
        written as they are when these very leads are written."""
        self._lines.update(lines)

    def expect(self, leads: int) -> None:
        """The state will grow to about `leads` leads (an apply that creates them): choose the shard
        count for that size now, instead of rewriting every shard each time the count doubles."""
        self._expected = leads

    def finish(self, report: WriteReport | None = None) -> bool:
        """Complete the write a crash interrupted, if any (rewriting every shard once); True if there was one."""
        if not self._redo or self._written is None or self._top is None:
            return False
        self._write_full(self._written, self._top, self._top.shards, report or WriteReport())
        self._redo = False
        return True

    def _changed_keys(self, previous: State | None, state: State, changed: Iterable[str] | None) -> set[str]:
        old = previous.leads if previous is not None else {}
        if changed is not None:
            keys = set(changed)
        else:
            new = state.leads
            keys = {key for key, lead in new.items() if old.get(key) is not lead and old.get(key) != lead}
            keys.update(key for key in old if key not in new)
        return keys

    def _members_by_shard(self, count: int) -> list[set[str]]:
        if self._members is None or len(self._members) != count:
            members: list[set[str]] = [set() for _ in range(count)]
            for key in (self._written.leads if self._written is not None else ()):
                members[shard_of(key, count)].add(key)
            self._members = members
        return self._members

    def _write_changes(self, state: State, top: Top, keys: set[str], report: WriteReport) -> None:
        members = self._members_by_shard(top.shards)
        touched: set[int] = set()
        for key in keys:
            index = shard_of(key, top.shards)
            touched.add(index)
            if key in state.leads:
                members[index].add(key)
            else:
                members[index].discard(key)
        for key in keys:
            if key not in state.leads:
                self._lines.pop(key, None)
        if touched and self._in_place_pays(members, touched, len(state.leads)):
            self._write_in_place(state, top, members, touched, report)
        elif touched:
            lines = [self._line(key, state.leads[key]) for key in sorted(keys) if key in state.leads]
            removed = sorted(key for key in keys if key not in state.leads)
            self._put(self.directory / PENDING_NAME, pending_bytes(top, lines, removed, full=False), report)
            for index in sorted(touched):
                self._write_shard(index, top.shards, members[index], state, report)
        if touched:
            fsync_directory(self.directory)
        self._put(self.path, top.to_bytes(), report)
        self._finish(touched)

    @staticmethod
    def _in_place_pays(members: list[set[str]], touched: set[int], leads: int) -> bool:
        """Whether to overwrite the touched shards in place under a full commit record: when the shards
        left alone hold few leads, so the record costs little more than the shards themselves."""
        unchanged = sum(len(keys) for index, keys in enumerate(members) if index not in touched)
        return unchanged * IN_PLACE_UNCHANGED_SHARE <= leads

    def _write_in_place(self, state: State, top: Top, members: list[set[str]], touched: set[int],
                        report: WriteReport) -> None:
        """A full commit record, then each touched shard written over where it is (see the module's
        docstring): a crash mid-shard leaves a torn file that readers of the record never look at."""
        leads, line = state.leads, self._line
        shards = {index: shard_bytes([line(key, leads[key]) for key in sorted(keys)])
                  for index, keys in enumerate(members) if keys}
        record = pending_chunks(top, (shards[index] for index in sorted(shards)), sum(map(len, members)), [],
                                 full=True)
        self._put(self.directory / PENDING_NAME, record, report)
        for index in sorted(touched):
            if index in shards:
                self._put(self.directory / shard_name(index, top.shards), shards[index], report, in_place=True)
            else:
                self._write_shard(index, top.shards, set(), state, report)  # emptied: removed

    def _write_full(self, state: State, top: Top, count: int, report: WriteReport) -> None:
        report.resharded = self._top is not None and self._top.shards != count
        self._members = None
        members = self._members_by_shard_of(state, count)
        self._lines = {key: cached for key, cached in self._lines.items() if key in state.leads}
        if self._top is not None:  # format 2 already: shards are rewritten in place, so record them all first
            lines = [self._line(key, state.leads[key]) for key in sorted(state.leads)]
            self._put(self.directory / PENDING_NAME, pending_bytes(top, lines, [], full=True), report)
        keep = set()
        for index in range(count):
            if members[index]:
                keep.add(self._write_shard(index, count, members[index], state, report))
        for entry in os.scandir(self.directory):
            if entry.name.endswith(".jsonl") and entry.name not in keep:
                os.unlink(entry.path)
        fsync_directory(self.directory)
        self._put(self.path, top.to_bytes(), report)
        self._members = members
        self._finish({0})

    def _members_by_shard_of(self, state: State, count: int) -> list[set[str]]:
        members: list[set[str]] = [set() for _ in range(count)]
        for key in state.leads:
            members[shard_of(key, count)].add(key)
        return members

    def _write_shard(self, index: int, count: int, keys: set[str], state: State, report: WriteReport) -> str:
        path = self.directory / shard_name(index, count)
        if not keys:
            try:
                os.unlink(path)
                report.files.append(path.name)
            except FileNotFoundError:
                pass
            return path.name
        leads, line = state.leads, self._line
        self._put(path, shard_bytes([line(key, leads[key]) for key in sorted(keys)]), report, sync_directory=False)
        return path.name

    def _line(self, key: str, lead: StateLead) -> str:
        cached = self._lines.get(key)
        if cached is not None and cached[0] is lead:
            return cached[1]
        line = lead_line(key, lead)
        self._lines[key] = (lead, line)
        return line

    def _put(self, path: Path, data: bytes | Iterable[bytes], report: WriteReport,
             sync_directory: bool = True, in_place: bool = False) -> None:
        """Write `data` to `path` atomically, or over the file where it is (`in_place`: only under a full
        commit record, see the module's docstring), and count it in `report`."""
        if in_place:
            assert isinstance(data, bytes)
            written = overwrite_in_place(path, data)
        else:
            written = write_atomic(path, data, sync_directory=sync_directory)
        report.files.append(path.name)
        report.bytes_written += written

    def _finish(self, touched: set[int]) -> None:
        pending = self.directory / PENDING_NAME
        if touched or pending.exists():
            try:
                os.unlink(pending)
            except FileNotFoundError:
                return
            fsync_directory(self.directory)
        self._redo = False

    def _ensure_gitignore(self, report: WriteReport) -> None:
        marker = self.directory / ".gitignore"
        if not marker.exists():
            self._put(marker, _GITIGNORE.encode(), report)


def _latest_stamp(current: str | None, state: State, keys: Iterable[str]) -> str | None:
    """The top file's sync stamp: the newest syncedAt among the leads this write changed."""
    stamps = [lead.synced_at for key in keys if (lead := state.leads.get(key)) is not None and lead.synced_at]
    if current:
        stamps.append(current)
    return max(stamps) if stamps else None

