"""The durable record of an apply: the journal, recovery from it, and every write of the state.

Every batch is journaled before it is sent and its answer before the state moves on; the state file
is rewritten atomically at the end and every few seconds during long applies (checkpoints). All of
those writes, and the write that makes a recovery durable, go through :func:`persist_state`.

A leftover journal is replayed by :func:`recover` — the one recovery routine. `plan` calls it
read-only (`commit=False`) to show what apply will recover; apply and `state rm` make it durable.
A journal that git tracks is never replayed: it came from the repository, not from a crash here.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Iterable, Sequence

from reconcile.apply.batches import Batch
from reconcile.apply.events import ApplyEvent, JournalRecovered, StateWritten
from reconcile.core.model import Action, State, StateLead
from reconcile.core.planner import forget, record_outcomes, recorded_lead, recorded_lists
from reconcile.errors import Location, StateError
from reconcile.store import journal as journal_store
from reconcile.store.git import is_tracked_by_git
from reconcile.store.journal import (Journal, JournalEntry, RecoveryReport, ResultEntry, UnknownOutcome,
                                    inflight_line)
from reconcile.store.state import StateWriter, with_leads, write_state, writer_for
from reconcile.store.statecodec import LeadLineTemplate, compact_json, lead_line_template

_CHECKPOINT_SHARE = 20  # the wait after a checkpoint, in multiples of what that checkpoint took
_BUSY_PATIENCE = 6  # a checkpoint due while calls are going out waits for a pause, this many times as long
_WRITE_MARGIN = 1.5  # a pause fits a write if it is this many times what the last write took

__all__ = ["persist_state", "recover", "recover_state", "recovery_lines", "journal_entries", "Ledger"]


def persist_state(state_path: Path, state: State, writer: StateWriter | None = None,
                  changed: Iterable[str] | None = None) -> None:
    """Write the state. The only place an apply (or its recovery) writes the state; `writer` continues
    from the last write, rewriting only the shards whose leads changed (`changed`: the keys that may
    differ from its last write, when the caller knows them)."""
    try:
        if writer is not None:
            writer.write(state, changed)
        else:
            write_state(state_path, state)
    except OSError as exc:
        # the journal keeps every answer: it is not removed, and the next apply recovers from it
        raise StateError(f"cannot write the state file: {exc.strerror or exc}; the answers received so far "
                         f"are kept in {journal_store.journal_path(state_path)} and are recovered by "
                         "the next apply", Location(str(state_path))) from exc


def _refuse_tracked_journal(state_path: Path) -> None:
    path = journal_store.journal_path(state_path)
    if path.is_symlink():
        raise StateError("a symbolic link; reconcile never follows one for its own files",
                         Location(str(path)))
    if path.exists() and is_tracked_by_git(path):
        raise StateError("this apply journal is tracked by git, so it came from the repository, not from an "
                         "interrupted apply here, and is not replayed; remove it from git "
                         f"(git rm --cached {path.name}) and check what it claims", Location(str(path)))


def recover(state_path: Path | str, *, commit: bool,
            on_event: Callable[[ApplyEvent], None] | None = None) -> tuple[State, RecoveryReport]:
    """The state with a leftover journal replayed onto it, and what the journal held.

    With `commit`, a journal of an interrupted apply is made durable (state written, journal settled
    down to the unknown outcomes a later apply must still know of) and reported as JournalRecovered.
    Without, nothing is written. Refuses (exit 3) a journal that git tracks.
    """
    state_path = Path(state_path)
    _refuse_tracked_journal(state_path)
    state, report = journal_store.recover(state_path)
    if commit and report.found and report.activity:
        journal_store.commit_recovery(state_path, state, report, write=persist_state)
        if on_event is not None:
            on_event(JournalRecovered(report))
    return state, report


def recover_state(state_path: Path | str,
                  on_event: Callable[[ApplyEvent], None] | None = None) -> tuple[State, RecoveryReport]:
    """Load the state for planning an apply, first replaying a journal an interrupted apply left.

    Call under the state lock, before planning.
    """
    return recover(state_path, commit=True, on_event=on_event)


def recovery_lines(before: State, after: State, report: RecoveryReport) -> list[str]:
    """What replaying a journal changes, a line per lead, for showing before a plan."""
    if not report.found or not report.activity:
        return []
    lines = [f"The journal {report.path} of an interrupted apply is recovered first: {report.summary()}."]
    for identity in report.recorded:
        lead = after.leads.get(identity)
        previous = before.leads.get(identity)
        lead_id = lead.lead_id if lead is not None else None
        if previous is None:
            lines.append(f"  + {identity}: recorded with leadId {lead_id}")
        elif previous.lead_id != lead_id:
            lines.append(f"  ~ {identity}: leadId {previous.lead_id} → {lead_id}")
        else:
            lines.append(f"  ~ {identity}: leadId {lead_id}, attributes as last sent")
    for identity, error in report.failed:
        lines.append(f"  ! {identity}: not recorded ({error})")
    for unknown in report.unknown:
        lines.append(f"  ? {unknown.describe()}: sent without an answer (outcome unknown)")
    return lines


def _no_line(identity: str, lead: StateLead) -> None:
    return None


def _inflight_line(batch: Batch, dedup_enabled: bool) -> bytes:
    return inflight_line(batch.number, journal_entries(batch), dedup_enabled)


def journal_entries(batch: Batch) -> list[JournalEntry]:
    entries = []
    for action, record in zip(batch.actions, batch.records):
        lead = action.lead
        entries.append(JournalEntry(
            identity=action.identity, state_key=action.state_key, kind=action.kind, lead_id=record.lead_id,
            email=lead.email if lead is not None else record.email,
            foreign_sys_person_id=record.foreign_sys_person_id or (lead.foreign_sys_person_id if lead else None),
            foreign_sys_type=record.foreign_sys_type or (lead.effective_foreign_sys_type if lead else None)))
    return entries


class Ledger:
    """The journal and the state of one apply. `record`/`revoke`/`forget` change what the state will
    hold; `write` (at checkpoints and at the end) makes it durable."""

    def __init__(self, state_path: Path, state: State, *, monotonic: Callable[[], float],
                 checkpoint_interval: float, emit: Callable[[ApplyEvent], None], expected_leads: int = 0):
        self.state_path = state_path
        self.base = state
        self.current = state
        self.written = False
        self._monotonic = monotonic
        self._interval = checkpoint_interval
        self._emit = emit
        self._last_write = monotonic()
        self._next_interval = checkpoint_interval
        self._last_write_seconds = 0.0  # what the last write took: about what the next will
        self._touched: set[str] = set()  # state keys recorded, revoked or forgotten since the last write
        self._outcomes: dict[int, tuple[Action, StateLead]] = {}  # by position in the plan
        self._forgotten: list[str] = []
        self._journal: Journal | None = None
        self._writer: StateWriter | None = None
        self._expected_leads = expected_leads  # what the state holds if every create succeeds
        self._lines: dict[str, tuple[StateLead, str]] = {}  # journaled since the last write: its lines
        self._inflight_lines: dict[int, bytes] = {}  # by batch: journal records encoded ahead of sending
        self._line_templates: dict[int, dict[str, LeadLineTemplate | None]] = {}  # by batch, by identity

    # -- the journal ----------------------------------------------------------------------------------

    def open(self, *, dedup_enabled: bool, started: str, carried: Sequence[UnknownOutcome]) -> None:
        self._journal = Journal.create(self.state_path, self.current, dedup_enabled=dedup_enabled,
                                       started=started, carried=carried, replace=True)

    def prepare_sending(self, batch: Batch, dedup_enabled: bool) -> None:
        """Encode the journal record of `batch` going out now, and the state lines its answer will
        give (but for the lead IDs and stamp), while there is time: `sending` only appends the record
        then, and recording the answer only fills in the lines (`lines_for`)."""
        self._inflight_lines[batch.number] = _inflight_line(batch, dedup_enabled)
        self._line_templates[batch.number] = {
            action.identity: lead_line_template(action.identity,
                                                recorded_lead(action, None, "", recorded_lists(action, self.base.leads)))
            for action in batch.actions}

    def lines_for(self, batch: Batch, synced_at: str) -> Callable[[str, StateLead], str | None]:
        """For the answer to `batch`: (identity, its new record) → its state line, made from the
        templates `prepare_sending` made (None where there is none: the journal encodes the lead)."""
        templates = self._line_templates.pop(batch.number, None)
        if not templates:
            return _no_line
        stamp = compact_json(synced_at)

        def line(identity: str, lead: StateLead) -> str | None:
            template = templates.get(identity)
            if template is None or type(lead.lead_id) is not int or lead.synced_at != synced_at:
                return None
            return template.fill(lead.lead_id, stamp)
        return line

    def sending(self, batch: Batch, dedup_enabled: bool) -> None:
        line = self._inflight_lines.pop(batch.number, None)
        self._require().append_line(line if line is not None else _inflight_line(batch, dedup_enabled))

    def answered(self, batch: Batch, results: Sequence[ResultEntry]) -> None:
        self._lines.update(self._require().result(batch.number, results))

    def listed(self, number: int, results: Sequence[ResultEntry]) -> None:
        """Journal the leads whose static list membership call `number` confirmed."""
        self._lines.update(self._require().result(number, results))

    def deleted(self, number: int, keys: Sequence[str]) -> None:
        """Journal the leads delete call `number` removed from Marketo (or found gone), then forget them."""
        self._require().deleted(number, keys)
        for key in keys:
            self.forget(key)

    def failed(self, batch: Batch, outcome: str, message: str) -> None:
        self._line_templates.pop(batch.number, None)
        self._require().failed(batch.number, outcome, message)

    def settle(self, keep: Sequence[UnknownOutcome], *, dedup_enabled: bool, started: str) -> None:
        """After the final state write: keep only the unknown outcomes a later apply must know of."""
        if self._journal is None:
            return
        self._journal.close()
        if keep:
            Journal.create(self.state_path, self.current, dedup_enabled=dedup_enabled, started=started,
                           carried=keep, replace=True).close()
        else:
            self._journal.remove()
        self._journal = None

    def _require(self) -> Journal:
        if self._journal is None:
            raise RuntimeError("the apply journal is not open")
        return self._journal

    # -- what the state will hold -----------------------------------------------------------------------

    def record(self, index: int, action: Action, lead: StateLead) -> None:
        self._outcomes[index] = (action, lead)
        self._touch(action)

    def _touch(self, action: Action) -> None:
        self._touched.add(action.identity)
        if action.state_key is not None:
            self._touched.add(action.state_key)

    def revoke(self, batch: Batch, indexes: Iterable[int], error: str) -> None:
        """Take back results recorded earlier in this apply, in the journal first."""
        taken = [self._outcomes[i][0] for i in sorted(set(indexes)) if i in self._outcomes]
        if not taken:
            return
        restore: dict[str, StateLead | None] = {}
        for action in taken:
            for key in (action.identity, action.state_key):
                if key is not None:
                    restore[key] = self.base.leads.get(key)
        self._require().revoked(batch.number, [(a.identity, a.state_key) for a in taken], restore, error)
        for index in indexes:
            self._outcomes.pop(index, None)
        for action in taken:
            self._touch(action)

    def forget(self, identity: str) -> None:
        self._forgotten.append(identity)
        self._touched.add(identity)

    def leads(self) -> dict[str, StateLead]:
        leads = record_outcomes(self.base.leads, [self._outcomes[i] for i in sorted(self._outcomes)])
        return forget(leads, self._forgotten)

    # -- writing the state ------------------------------------------------------------------------------

    def checkpoint(self, free_for: float = math.inf) -> None:
        """Write the state if a checkpoint is due. `free_for`: how long the sender has nothing to do. A
        write (a second or more for a large state) that would not fit in that holds calls back: the
        checkpoint waits for a long enough pause, up to `_BUSY_PATIENCE` intervals (the journal keeps
        every answer meanwhile)."""
        fits = free_for > _WRITE_MARGIN * self._last_write_seconds
        due = self._next_interval * (1 if fits else _BUSY_PATIENCE)
        if self._monotonic() - self._last_write >= due:
            self.write()

    def write(self) -> None:
        if not self._touched:
            return  # building the leads costs O(state): not every tick of a long wait
        started = self._monotonic()
        leads = self.leads()
        touched, before = self._touched, self.current.leads
        if all(leads.get(key) == before.get(key) for key in touched):
            self._touched = set()
            return
        following = with_leads(self.current, leads)
        if self._writer is None:
            self._writer = writer_for(self.state_path, self.current)
            self._writer.expect(self._expected_leads)
        self._writer.remember(self._lines)
        self._lines = {}
        persist_state(self.state_path, following, self._writer, changed=touched)
        self._touched = set()
        self.current = following
        self.written = True
        self._last_write = self._monotonic()
        self._last_write_seconds = self._last_write - started
        # Creates spread over every shard, so a checkpoint of a large state rewrites most of it:
        # space them so they take at most a twentieth of the apply (the journal keeps every answer).
        self._next_interval = max(self._interval, _CHECKPOINT_SHARE * self._last_write_seconds)
        self._emit(StateWritten(serial=following.serial, leads=len(leads)))
