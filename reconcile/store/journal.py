"""The apply journal: an append-only JSON-lines file beside the state (``<state>.journal``).

While an apply runs, every batch is journaled *before* it is sent (``inflight``: the records' keys)
and its answer *before* the state moves on (``result``: per record the status, Marketo's lead ID and
everything needed to rebuild its state record). Each line is flushed and fsync'd. After a crash
(kill -9, power loss) :func:`recover` replays the journal onto the state: accepted records are
recorded, and batches sent without an answer are reported as *unknown outcome* — the one case where
Marketo may hold leads the state does not know of.

Lines::

    {"type": "begin", "version": 2, "lineage": ..., "serial": 7, "started": ..., "dedup": true,
     "carried": [<unknown-outcome record>, ...]}
    {"type": "inflight", "batch": 3, "dedup": true, "records": [<record keys>, ...]}
    {"type": "result", "batch": 3, "results": [{"identity", "state_key", "status", "leadId",
                                                "error", "line": "<its state line>" | null}, ...]}
    {"type": "failed", "batch": 3, "outcome": "not_sent" | "rejected" | "unknown", "error": "..."}
    {"type": "revoked", "batch": 5, "error": "...", "records": [{"identity", "state_key"}, ...],
     "restore": {<state key>: {<state record>} | null, ...}}
    {"type": "deleted", "batch": 1000000003, "keys": [<state key>, ...]}    (gone from Marketo: forgotten)

``revoked`` takes back results recorded earlier in the same apply (an answer of a later call gave
their lead ID to another lead): the state keys in ``restore`` get back the records they had before.
A static list call's confirmed members are a ``result`` of status ``LISTED`` (their new lines).

``carried``: unknown outcomes of an earlier, interrupted apply that a resend could duplicate (no
Marketo ID), kept until a later apply resolves them.

The journal holds every answer until a state write that contains it has committed (it is removed
only after the final write), and each state write commits at one atomic rename
(:mod:`reconcile.store.statefiles`): whichever step a crash interrupts, replaying the journal onto
the state on disk gives the same state. It holds lead data only: never credentials, keys or signatures.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from reconcile.errors import Location, StateError
from reconcile.core.model import State, StateLead
from reconcile.store.fs import fsync_directory, write_atomic
from reconcile.store.state import lead_to_json, load_state, with_leads, write_state
from reconcile.store.statecodec import lead_line, parse_lead_line

__all__ = ["JOURNAL_VERSION", "Journal", "JournalEntry", "ResultEntry", "UnknownOutcome", "RecoveryReport",
           "journal_path", "recover", "commit_recovery", "remove_journal"]

JOURNAL_VERSION = 2  # 2: a result's lead is its state line; version 1 journals (whole records) are read too
_READABLE_VERSIONS = (1, 2)
NOT_SENT = "not_sent"  # the batch never reached Marketo
REJECTED = "rejected"  # Marketo refused the whole call before applying anything (a fault)
UNKNOWN = "unknown"  # sent, no usable answer


def journal_path(state_path: Path | str) -> Path:
    state_path = Path(state_path)
    return state_path.with_name(state_path.name + ".journal")


# --------------------------------------------------------------------------------------------------
# Entries


@dataclass(frozen=True)
class JournalEntry:
    """One record of a batch as journaled before sending: who it is and the keys it was sent with."""

    identity: str
    state_key: str | None
    kind: str  # "create" | "update"
    lead_id: int | None = None  # the Id key sent, if any
    email: str | None = None
    foreign_sys_person_id: str | None = None
    foreign_sys_type: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"identity": self.identity, "state_key": self.state_key, "kind": self.kind,
                "leadId": self.lead_id, "email": self.email, "foreignSysPersonId": self.foreign_sys_person_id,
                "foreignSysType": self.foreign_sys_type}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "JournalEntry":
        return cls(identity=str(data["identity"]), state_key=data.get("state_key"), kind=str(data.get("kind", "")),
                   lead_id=data.get("leadId"), email=data.get("email"),
                   foreign_sys_person_id=data.get("foreignSysPersonId"),
                   foreign_sys_type=data.get("foreignSysType"))


@dataclass(frozen=True)
class UnknownOutcome:
    """A record sent in a call whose answer never came: Marketo may or may not have applied it."""

    entry: JournalEntry
    batch: int
    dedup_enabled: bool
    started: str | None = None  # when the apply that sent it began

    @property
    def identity(self) -> str:
        return self.entry.identity

    @property
    def may_have_created(self) -> bool:
        """Sent without a Marketo ID: if it was applied, it may have created a lead the state lacks."""
        return self.entry.lead_id is None

    def describe(self) -> str:
        keys = []
        if self.entry.email:
            keys.append(f"email {self.entry.email}")
        if self.entry.foreign_sys_person_id:
            keys.append(f"foreign ID {self.entry.foreign_sys_type or 'CUSTOM'}:{self.entry.foreign_sys_person_id}")
        if self.entry.lead_id is not None:
            keys.append(f"Id {self.entry.lead_id}")
        return f"{self.entry.identity} ({', '.join(keys)})" if keys else self.entry.identity

    def to_json(self) -> dict[str, Any]:
        return {"entry": self.entry.to_json(), "batch": self.batch, "dedup": self.dedup_enabled,
                "started": self.started}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "UnknownOutcome":
        return cls(entry=JournalEntry.from_json(data["entry"]), batch=int(data.get("batch", 0)),
                   dedup_enabled=bool(data.get("dedup", True)), started=data.get("started"))


@dataclass(frozen=True)
class ResultEntry:
    """One record's answer. `lead` is the new state record (CREATED/UPDATED), None when FAILED."""

    identity: str
    state_key: str | None
    status: str
    lead_id: int | None
    error: str | None
    lead: StateLead | None
    line: str | None = field(default=None, compare=False)  # the lead's line, if made already (a template's)

    def to_json(self) -> dict[str, Any]:
        """The lead goes as the very line the state will hold for it (see Journal.result)."""
        line = self.line
        if line is None and self.lead is not None:
            line = lead_line(self.identity, self.lead)
        return {"identity": self.identity, "state_key": self.state_key, "status": self.status,
                "leadId": self.lead_id, "error": self.error, "line": line}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: Location | None = None) -> "ResultEntry":
        identity = str(data["identity"])
        line, raw = data.get("line"), data.get("lead")  # "lead": the whole record, as version 1 wrote it
        lead = None
        if line is not None:
            key, lead = parse_lead_line(line, where or Location("journal"))
            if key != identity:
                raise ValueError(f"a result for {identity!r} holds the line of {key!r}")
        elif raw is not None:
            lead = _lead_from_json(raw)
        return cls(identity=identity, state_key=data.get("state_key"), status=str(data["status"]),
                   lead_id=data.get("leadId"), error=data.get("error"), lead=lead)


def _lead_from_json(raw: Mapping[str, Any]) -> StateLead:
    return StateLead(lead_id=raw.get("leadId"), email=raw.get("email"),
                     foreign_sys_person_id=raw.get("foreignSysPersonId"), foreign_sys_type=raw.get("foreignSysType"),
                     attributes=dict(raw.get("attributes") or {}), synced_at=raw.get("syncedAt"),
                     lists=dict(raw.get("lists") or {}))


# --------------------------------------------------------------------------------------------------
# Writing


class Journal:
    """The journal of one apply. Every append is flushed and fsync'd before returning."""

    def __init__(self, path: Path, handle: Any):
        self.path = path
        self._handle = handle

    @classmethod
    def create(cls, state_path: Path | str, state: State, *, dedup_enabled: bool, started: str,
               carried: Sequence[UnknownOutcome] = (), replace: bool = False) -> "Journal":
        """Start a journal for an apply of `state`.

        A leftover journal must be recovered first; `replace=True` atomically replaces one that holds
        nothing but carried unknown outcomes (pass them on in `carried`).
        """
        path = journal_path(state_path)
        if path.exists() and not replace:
            raise StateError(f"a journal from an earlier apply is still present ({path}); "
                             "it must be recovered first", Location(str(path)))
        begin = {"type": "begin", "version": JOURNAL_VERSION, "lineage": state.lineage, "serial": state.serial,
                 "started": started, "dedup": dedup_enabled, "carried": [c.to_json() for c in carried]}
        write_atomic(path, _line(begin))
        handle = open(path, "ab", buffering=0)
        return cls(path, handle)

    def _append(self, record: Mapping[str, Any]) -> None:
        self.append_line(_line(record))

    def inflight(self, batch: int, entries: Sequence[JournalEntry], dedup_enabled: bool) -> None:
        self.append_line(inflight_line(batch, entries, dedup_enabled))

    def append_line(self, line: bytes) -> None:
        """Append a record already encoded (by `inflight_line`, ahead of sending)."""
        if self._handle is None:
            raise RuntimeError("the journal is closed")
        self._handle.write(line)
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def result(self, batch: int, results: Sequence[ResultEntry]) -> dict[str, tuple[StateLead, str]]:
        """Journal the answers of `batch`; returns each recorded lead with the state line written for
        it, by state key, so that the state's next write need not encode those leads again
        (StateWriter.remember)."""
        entries = [r.to_json() for r in results]
        self._append({"type": "result", "batch": batch, "results": entries})
        return {result.identity: (result.lead, entry["line"]) for result, entry in zip(results, entries)
                if result.lead is not None}

    def failed(self, batch: int, outcome: str, error: str) -> None:
        if outcome not in (NOT_SENT, REJECTED, UNKNOWN):
            raise ValueError(f"unknown batch outcome {outcome!r}")
        self._append({"type": "failed", "batch": batch, "outcome": outcome, "error": error})

    def deleted(self, batch: int, keys: Sequence[str]) -> None:  # gone from Marketo: the state forgets them
        self._append({"type": "deleted", "batch": batch, "keys": list(keys)})

    def revoked(self, batch: int, revoked: Sequence[tuple[str, str | None]],
                restore: Mapping[str, StateLead | None], error: str) -> None:
        """Take back results journaled earlier: (identity, state_key) pairs, and the records their
        state keys held before this apply (None: no record)."""
        self._append({"type": "revoked", "batch": batch, "error": error,
                      "records": [{"identity": identity, "state_key": key} for identity, key in revoked],
                      "restore": {key: lead_to_json(lead) if lead is not None else None
                                  for key, lead in restore.items()}})

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def remove(self) -> None:
        """Close and delete the journal (after the state holding all of it has been written)."""
        self.close()
        _unlink_durably(self.path)

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def inflight_line(batch: int, entries: Sequence[JournalEntry], dedup_enabled: bool) -> bytes:
    """The journal record that a batch is about to be sent: a pure function of the batch, so that it
    can be encoded while the sender waits, before the call goes out."""
    return _line({"type": "inflight", "batch": batch, "dedup": dedup_enabled,
                  "records": [e.to_json() for e in entries]})


def _line(record: Mapping[str, Any]) -> bytes:
    return (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def remove_journal(state_path: Path | str) -> None:
    _unlink_durably(journal_path(state_path))


def _unlink_durably(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        return
    fsync_directory(path.parent if str(path.parent) else Path("."))


# --------------------------------------------------------------------------------------------------
# Recovery


@dataclass(frozen=True)
class RecoveryReport:
    """What a leftover journal held. `found` is False when there was none (everything else empty)."""

    found: bool = False
    path: Path | None = None
    started: str | None = None
    recorded: tuple[str, ...] = ()  # identities whose CREATED/UPDATED results were replayed
    failed: tuple[tuple[str, str], ...] = ()  # (identity, Marketo's error) of FAILED records
    unknown: tuple[UnknownOutcome, ...] = ()  # sent, never answered (and not resolved since)
    changed: bool = False  # replaying changed the state (it must be written)
    torn_tail: bool = False  # the last line was cut short by the crash (ignored)
    batches_answered: int = 0
    batches_unknown: int = 0

    @property
    def activity(self) -> bool:
        """Whether the journal held anything beyond carried-over unknown outcomes."""
        return bool(self.recorded or self.failed or self.batches_answered or self.batches_unknown)

    @property
    def may_have_created(self) -> tuple[UnknownOutcome, ...]:
        return tuple(u for u in self.unknown if u.may_have_created)

    def summary(self) -> str:
        if not self.found:
            return "no interrupted apply to recover"
        parts = ["recovered the journal of an interrupted apply"
                 + (f" (started {self.started})" if self.started else "")
                 + f": {len(self.recorded)} lead(s) recorded from {self.batches_answered} answered call(s)"]
        if self.failed:
            parts.append(f"{len(self.failed)} record(s) had FAILED")
        if self.unknown:
            parts.append(f"{len(self.unknown)} record(s) in {self.batches_unknown or 'earlier'} call(s) "
                         "were sent without an answer (outcome unknown)")
        return "; ".join(parts)


def _read_lines(path: Path) -> tuple[list[dict[str, Any]], bool]:
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    records: list[dict[str, Any]] = []
    torn = False
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line.decode("utf-8"))
            if not isinstance(record, dict) or "type" not in record:
                raise ValueError("not a journal record")
        except (ValueError, UnicodeDecodeError):
            is_last = all(not rest.strip() for rest in lines[number:])
            if is_last and not raw.endswith(b"\n") and _could_be_torn(line):
                torn = True  # the crash cut the last append short: that batch was never acted on
                break
            raise StateError(f"journal line {number} is corrupt; move the file aside and check the leads "
                             "of the interrupted apply in Marketo", Location(str(path), number)) from None
        records.append(record)
    return records, torn


def _could_be_torn(line: bytes) -> bool:
    """Whether `line` may be the start of an append cut short: our lines are JSON objects, and a
    crash may also leave the end of a file zero-filled. Anything else was written by someone else."""
    text = line.rstrip(b"\0")
    return not text.strip() or text.lstrip().startswith(b"{")


def recover(state_path: Path | str) -> tuple[State, RecoveryReport]:
    """The state with a leftover journal replayed onto it, and what was found. Writes nothing.

    Without a journal: the state as loaded and an empty report. The caller writes the state when
    `report.changed` and then settles the journal (see :func:`commit_recovery`).
    """
    state_path = Path(state_path)
    path = journal_path(state_path)
    if not path.exists():
        return load_state(state_path), RecoveryReport()
    records, torn = _read_lines(path)
    if not records or records[0].get("type") != "begin":
        if torn and not records:  # crashed while writing the begin line itself: nothing was sent
            return load_state(state_path), RecoveryReport(found=True, path=path, torn_tail=True)
        raise StateError("journal does not start with a begin record", Location(str(path), 1))
    begin = records[0]
    if begin.get("version") not in _READABLE_VERSIONS:
        raise StateError(f"journal version {begin.get('version')!r} is not understood by this reconcile",
                         Location(str(path), 1))
    state = _state_for(state_path, begin, path)
    replay = _Replay(state, begin)
    try:
        for record in records[1:]:
            replay.apply(record)
    except (KeyError, TypeError, ValueError, StateError) as exc:
        raise StateError(f"journal is malformed ({exc}); move it aside and check the leads of the "
                         "interrupted apply in Marketo", Location(str(path))) from None
    return replay.finish(path, torn)


class _Replay:
    """A journal's records played onto the state, one at a time."""

    def __init__(self, state: State, begin: Mapping[str, Any]):
        self.state = state
        self.started = begin.get("started")
        self.unknown: dict[str, UnknownOutcome] = {}
        for raw in begin.get("carried") or []:
            carried = UnknownOutcome.from_json(raw)
            self.unknown[carried.identity] = carried
        self.inflight: dict[int, tuple[list[JournalEntry], bool]] = {}
        self.settled: set[int] = set()
        self.leads = dict(state.leads)
        self.recorded: dict[str, None] = {}  # identities, in the order first recorded
        self.failed: list[tuple[str, str]] = []
        self.answered = 0

    def apply(self, record: Mapping[str, Any]) -> None:
        kind = record["type"]
        if kind == "inflight":
            entries = [JournalEntry.from_json(e) for e in record["records"]]
            self.inflight[int(record["batch"])] = (entries, bool(record.get("dedup", True)))
        elif kind == "result":
            self.settled.add(int(record["batch"]))
            self.answered += 1
            for item in record["results"]:
                self._result(ResultEntry.from_json(item))
        elif kind == "failed":
            if record.get("outcome") in (NOT_SENT, REJECTED):
                self.settled.add(int(record["batch"]))
        elif kind == "deleted":
            self.answered += 1
            for key in record["keys"]:
                self.leads.pop(str(key), None)
        elif kind == "revoked":
            error = str(record.get("error") or "revoked")
            for item in record["records"]:
                identity = str(item["identity"])
                self.recorded.pop(identity, None)
                self.failed.append((identity, error))
            for key, raw in dict(record["restore"]).items():
                if raw is None:
                    self.leads.pop(key, None)
                else:
                    self.leads[key] = _lead_from_json(raw)
        # unknown record types from a newer writer are skipped

    def _result(self, result: ResultEntry) -> None:
        if result.lead is None:
            self.failed.append((result.identity, result.error or result.status))
            return
        if result.state_key is not None and result.state_key != result.identity:
            self.leads.pop(result.state_key, None)
        self.leads[result.identity] = result.lead
        self.recorded.setdefault(result.identity, None)
        self.unknown.pop(result.identity, None)

    def finish(self, path: Path, torn: bool) -> tuple[State, RecoveryReport]:
        unanswered = 0
        for batch in sorted(self.inflight):
            if batch in self.settled:
                continue
            unanswered += 1
            entries, dedup = self.inflight[batch]
            for entry in entries:
                if entry.identity not in self.recorded:
                    self.unknown[entry.identity] = UnknownOutcome(entry=entry, batch=batch, dedup_enabled=dedup,
                                                                  started=self.started)
        changed = self.leads != dict(self.state.leads)
        new_state = with_leads(self.state, self.leads) if changed else self.state
        report = RecoveryReport(found=True, path=path, started=self.started, recorded=tuple(self.recorded),
                                failed=tuple(self.failed), unknown=tuple(self.unknown[k] for k in sorted(self.unknown)),
                                changed=changed, torn_tail=torn, batches_answered=self.answered,
                                batches_unknown=unanswered)
        return new_state, report


def _state_for(state_path: Path, begin: Mapping[str, Any], path: Path) -> State:
    lineage = begin.get("lineage")
    serial = begin.get("serial")
    if not isinstance(lineage, str) or not isinstance(serial, int):
        raise StateError("journal begin record lacks the state lineage/serial", Location(str(path), 1))
    if not state_path.exists():
        # The interrupted apply was the first one: its state file was never written. Keep its lineage.
        return State(lineage=lineage, serial=serial, leads={})
    state = load_state(state_path)
    if state.lineage != lineage:
        raise StateError(f"journal {path} belongs to state lineage {lineage}, but {state_path} has lineage "
                         f"{state.lineage}; it is not this state's journal — move it aside",
                         Location(str(path), 1))
    return state


def commit_recovery(state_path: Path | str, state: State, report: RecoveryReport,
                    keep_unknown: Iterable[UnknownOutcome] | None = None,
                    write: Callable[[Path, State], None] = write_state) -> None:
    """Make a recovery durable: write `state` if it changed, then replace the journal.

    Unknown outcomes that a resend could duplicate (sent without a Marketo ID) are carried into a
    fresh journal so a later apply still knows of them; without any, the journal is removed.
    """
    if not report.found:
        return
    state_path = Path(state_path)
    if report.changed:
        write(state_path, state)
    carry = list(report.may_have_created if keep_unknown is None else keep_unknown)
    if not carry:
        remove_journal(state_path)
    else:
        Journal.create(state_path, state, dedup_enabled=True, started=report.started or "",
                       carried=carry, replace=True).close()


def carried_only(report: RecoveryReport) -> bool:
    """The journal held nothing but carried-over unknown outcomes (no interrupted apply)."""
    return report.found and not report.activity
