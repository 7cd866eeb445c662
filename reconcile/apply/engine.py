"""Apply a plan: batches of lead records → syncMultipleLeads → lead IDs journaled → state.

One :class:`soap.LeadRecord` per action that sends (:func:`record_for`, pure), at most `batch_size`
per call and a lead never twice in one call; up to `concurrency` calls in flight while the next
envelopes are built, so XML work overlaps the network. Every batch is journaled before it is sent
and its answer before the state moves on (see :mod:`reconcile.store.journal`); the state file is rewritten
atomically at the end and every few seconds during long applies.

The applier never prints or exits: it reports through `on_event` and returns an :class:`ApplyReport`
or raises a :class:`~reconcile.errors.ReconcileError` that carries the report as `.report`.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from reconcile.core.clock import iso_utc, utc_now
from reconcile.store import journal as journal_mod
from reconcile.errors import (Interrupted, Location, PartialApplyError, ReconcileError, RemoteError,
                              ResponseError, StalePlanError, StateError, UsageError)
from reconcile.store.journal import Journal, JournalEntry, RecoveryReport, ResultEntry, UnknownOutcome
from reconcile.core.model import CREATE, MAX_BATCH_SIZE, ORPHANED, UPDATE, Action, Plan, State, StateLead
from reconcile.core.planner import forget, record_outcomes, recorded_lead
from reconcile.core.records import LeadRecord, SyncStatus
from reconcile.store.state import with_leads, write_state

__all__ = [
    "ApplyOptions", "ApplyReport", "ApplyEvent", "JournalRecovered", "ApplyStarted", "BatchSent",
    "BatchRetrying", "BatchAnswered", "BatchFailed", "StateWritten", "ApplyWarning", "RecordsFailed",
    "apply_plan", "record_for", "recover_state", "plan_batches", "Batch",
]

MAX_CONCURRENCY = 10
CHECKPOINT_INTERVAL = 5.0  # seconds between state writes during a long apply
STOP_GRACE = 10.0  # seconds to wait for answers to calls in flight after a stop request
_POLL = 0.1


# --------------------------------------------------------------------------------------------------
# Events (for a progress display). All are delivered on the thread that called apply_plan.


@dataclass(frozen=True)
class ApplyEvent:
    pass


@dataclass(frozen=True)
class JournalRecovered(ApplyEvent):
    report: RecoveryReport


@dataclass(frozen=True)
class ApplyStarted(ApplyEvent):
    records: int  # lead records to send
    batches: int  # syncMultipleLeads calls planned
    state_only: int  # updates recorded without a call
    forget: int  # orphans to forget
    concurrency: int


@dataclass(frozen=True)
class BatchSent(ApplyEvent):
    batch: int  # 1-based
    records: int


@dataclass(frozen=True)
class BatchRetrying(ApplyEvent):
    batch: int
    attempt: int  # the failed attempt
    delay: float
    reason: str


@dataclass(frozen=True)
class BatchAnswered(ApplyEvent):
    batch: int
    records: int
    created: int
    updated: int
    failed: int


@dataclass(frozen=True)
class BatchFailed(ApplyEvent):
    batch: int
    records: int
    error: str
    outcome_unknown: bool


@dataclass(frozen=True)
class StateWritten(ApplyEvent):
    serial: int
    leads: int


@dataclass(frozen=True)
class ApplyWarning(ApplyEvent):
    message: str


# --------------------------------------------------------------------------------------------------
# Options and report


@dataclass(frozen=True)
class ApplyOptions:
    batch_size: int = MAX_BATCH_SIZE
    concurrency: int = 4
    dedup_enabled: bool = True
    forget_orphans: bool = False
    checkpoint_interval: float = CHECKPOINT_INTERVAL
    stop_grace: float = STOP_GRACE

    def __post_init__(self) -> None:
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) \
                or not 1 <= self.batch_size <= MAX_BATCH_SIZE:
            raise UsageError(f"--batch-size must be between 1 and {MAX_BATCH_SIZE} "
                             f"(Marketo accepts at most {MAX_BATCH_SIZE} records a call), not {self.batch_size}")
        if isinstance(self.concurrency, bool) or not isinstance(self.concurrency, int) \
                or not 1 <= self.concurrency <= MAX_CONCURRENCY:
            raise UsageError(f"--concurrency must be between 1 and {MAX_CONCURRENCY} "
                             f"(Marketo allows at most {MAX_CONCURRENCY} calls at once), not {self.concurrency}")


@dataclass(frozen=True)
class ApplyReport:
    created: tuple[str, ...] = ()  # identities Marketo answered CREATED
    updated: tuple[str, ...] = ()  # identities answered UPDATED
    failed: tuple[tuple[str, str], ...] = ()  # (identity, Marketo's error) of FAILED records
    state_only: tuple[str, ...] = ()  # updates recorded without a call
    forgotten: tuple[str, ...] = ()  # orphans removed from the state
    unknown: tuple[UnknownOutcome, ...] = ()  # sent without an answer (may or may not be applied)
    not_sent: tuple[str, ...] = ()  # identities never sent (stopped early)
    calls: int = 0  # HTTP requests made (including retries)
    batches: int = 0  # batches answered
    retries: int = 0
    elapsed: float = 0.0
    state_serial: int = 0
    state_written: bool = False
    warnings: tuple[str, ...] = ()
    recovered: RecoveryReport | None = None

    @property
    def applied(self) -> int:
        return len(self.created) + len(self.updated)

    def summary(self) -> str:
        text = (f"Apply complete: {len(self.created)} created, {len(self.updated)} updated, "
                f"{len(self.failed)} failed")
        if self.state_only:
            text += f", {len(self.state_only)} recorded without a call"
        if self.forgotten:
            text += f", {len(self.forgotten)} orphan(s) forgotten"
        return text + f"; {self.calls} syncMultipleLeads call(s) in {self.elapsed:.1f} s."


class RecordsFailed(PartialApplyError):
    """Some records FAILED in Marketo; everything else was applied and recorded (exit 5)."""

    def __init__(self, failed: Sequence[tuple[str, str]], applied: int):
        self.failed = tuple(failed)
        super().__init__(f"{len(self.failed)} lead(s) FAILED in Marketo and were not recorded; "
                         f"{applied} other(s) were applied and recorded")

    def lines(self) -> list[str]:
        return [self.message] + [f"  {identity}: {error}" for identity, error in self.failed]


# --------------------------------------------------------------------------------------------------
# Records


def record_for(action: Action) -> LeadRecord:
    """The LeadRecord that applies `action` (a create, or an update that sends something). Pure.

    create: the declared keys — `Id` if a leadId is declared, else ForeignSysPersonId/Type and/or
    Email — with every declared attribute (None clears the field). Keyed by Id or foreign ID, the
    declared email is sent as an `Email` attribute (Marketo does not update the email from the key).
    update of a lead with a known leadId: keyed by `Id` only, with only the changed attributes, plus
    `Email` as an attribute when the email changed and ForeignSysPersonId/Type when the foreign ID
    changed. update without a known leadId: the declared keys, with the changed attributes.
    """
    lead = action.lead
    if lead is None or action.kind not in (CREATE, UPDATE):
        raise ValueError(f"{action.identity}: a {action.kind} action sends no record")
    if action.kind == CREATE:
        return _declared_keys(lead, list(lead.attributes.items()), email_attribute=True)
    changed = [(change.name, change.new) for change in action.attribute_changes]
    key_names = {change.name for change in action.key_changes}
    email_changed = "email" in key_names and lead.email is not None
    if action.known_lead_id is not None:
        fsp_changed = bool(key_names & {"foreignSysPersonId", "foreignSysType"}) \
            and lead.foreign_sys_person_id is not None
        attributes = changed + ([("Email", lead.email)] if email_changed else [])
        return LeadRecord(lead_id=action.known_lead_id,
                          foreign_sys_person_id=lead.foreign_sys_person_id if fsp_changed else None,
                          foreign_sys_type=lead.effective_foreign_sys_type if fsp_changed else None,
                          attributes=tuple(attributes))
    return _declared_keys(lead, changed, email_attribute=email_changed)


def _declared_keys(lead, attributes: list, *, email_attribute: bool) -> LeadRecord:
    def with_email() -> tuple:
        if email_attribute and lead.email is not None and not any(name == "Email" for name, _ in attributes):
            return tuple(attributes) + (("Email", lead.email),)
        return tuple(attributes)

    if lead.lead_id is not None:
        return LeadRecord(lead_id=lead.lead_id, foreign_sys_person_id=lead.foreign_sys_person_id,
                          foreign_sys_type=lead.effective_foreign_sys_type, attributes=with_email())
    if lead.foreign_sys_person_id is not None:
        return LeadRecord(email=lead.email, foreign_sys_person_id=lead.foreign_sys_person_id,
                          foreign_sys_type=lead.effective_foreign_sys_type, attributes=with_email())
    return LeadRecord(email=lead.email, attributes=tuple(attributes))


@dataclass(frozen=True)
class Batch:
    number: int  # 1-based, in sending order
    wave: int  # batches of a later wave are sent only after every earlier one is answered
    indexes: tuple[int, ...]  # positions of the actions in the plan
    actions: tuple[Action, ...]
    records: tuple[LeadRecord, ...]


def _conflict_keys(action: Action, record: LeadRecord, dedup_enabled: bool) -> list[tuple]:
    keys: list[tuple] = [("identity", action.identity)]
    if record.lead_id is not None:
        keys.append(("id", record.lead_id))
    if record.foreign_sys_person_id is not None:
        keys.append(("fsp", record.foreign_sys_type or "CUSTOM", record.foreign_sys_person_id))
    elif record.lead_id is None and record.email is not None and dedup_enabled:
        keys.append(("email", record.email.lower()))  # email-keyed records dedupe on the email
    return keys


def plan_batches(plan: Plan, batch_size: int = MAX_BATCH_SIZE, dedup_enabled: bool = True) -> list[Batch]:
    """The calls that apply `plan`: at most `batch_size` records each, a lead never twice in a call.

    Records that would reach the same Marketo lead (same Id, same foreign ID, or — with dedup — the
    same email as the only key) go to a later wave, sent after the earlier one is answered.
    """
    waves: dict[int, list[tuple[int, Action, LeadRecord]]] = {}
    last_wave: dict[tuple, int] = {}
    for index, action in enumerate(plan.actions):
        if not action.sends_record:
            continue
        record = record_for(action)
        keys = _conflict_keys(action, record, dedup_enabled)
        wave = max((last_wave[k] + 1 for k in keys if k in last_wave), default=0)
        for key in keys:
            last_wave[key] = wave
        waves.setdefault(wave, []).append((index, action, record))
    batches: list[Batch] = []
    for wave in sorted(waves):
        items = waves[wave]
        for start in range(0, len(items), batch_size):
            chunk = items[start:start + batch_size]
            batches.append(Batch(number=len(batches) + 1, wave=wave, indexes=tuple(i for i, _, _ in chunk),
                                 actions=tuple(a for _, a, _ in chunk), records=tuple(r for _, _, r in chunk)))
    return batches


# --------------------------------------------------------------------------------------------------
# Recovery before planning


def recover_state(state_path: Path | str,
                  on_event: Callable[[ApplyEvent], None] | None = None) -> tuple[State, RecoveryReport]:
    """Load the state for planning an apply, first replaying a journal an interrupted apply left.

    Call under the state lock, before planning. A recovered journal is made durable (state written,
    journal settled) and reported through `on_event` as JournalRecovered.
    """
    state, report = journal_mod.recover(state_path)
    if report.found and report.activity:
        journal_mod.commit_recovery(state_path, state, report)
        if on_event is not None:
            on_event(JournalRecovered(report))
    return state, report


# --------------------------------------------------------------------------------------------------
# The apply


class _DaemonPool:
    """A minimal thread pool of daemon threads: an interrupted apply never waits at exit for a call."""

    def __init__(self, workers: int):
        self._workers = workers
        self._queue: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        self._queue.put((future, fn, args, kwargs))
        if len(self._threads) < self._workers:
            thread = threading.Thread(target=self._run, name=f"reconcile-apply-{len(self._threads) + 1}",
                                      daemon=True)
            self._threads.append(thread)
            thread.start()
        return future

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            future, fn, args, kwargs = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # delivered to the applying thread
                future.set_exception(exc)

    def shutdown(self) -> None:
        for _ in self._threads:
            self._queue.put(None)


def _is_outcome_unknown(error: BaseException) -> bool:
    from reconcile.remote.base import outcome_unknown

    return outcome_unknown(error)


def _not_delivered(error: BaseException) -> bool:
    from reconcile.remote.base import NotDelivered

    return isinstance(error, NotDelivered)


def _one_line(error: BaseException) -> str:
    if isinstance(error, ReconcileError):
        return " ".join(error.lines())
    return f"{type(error).__name__}: {error}"


class _Apply:
    def __init__(self, plan: Plan, state: State, state_path: Path, transport: Any, options: ApplyOptions,
                 clock: Callable[[], datetime], monotonic: Callable[[], float],
                 on_event: Callable[[ApplyEvent], None] | None, stop: threading.Event | None):
        self.plan = plan
        self.state = state
        self.state_path = state_path
        self.transport = transport
        self.options = options
        self.clock = clock
        self.monotonic = monotonic
        self._on_event = on_event
        self.stop = stop if stop is not None else threading.Event()
        self.halt = threading.Event()  # no new attempts: a stop request or a fatal error
        self.events: "queue.SimpleQueue[ApplyEvent]" = queue.SimpleQueue()
        self.outcomes: dict[int, tuple[Action, StateLead]] = {}
        self.created: list[str] = []
        self.updated: list[str] = []
        self.failed: list[tuple[str, str]] = []
        self.state_only: list[str] = []
        self.forgotten: list[str] = []
        self.unknown: list[UnknownOutcome] = []
        self.carried: list[UnknownOutcome] = []
        self.answered: list[tuple[Action, LeadRecord]] = []  # records Marketo accepted in this apply
        self.not_sent: list[str] = []
        self.warnings: list[str] = []
        self.batches_answered = 0
        self.calls_fallback = 0
        self.first_error: BaseException | None = None
        self.interrupted = False
        self.state_written = False
        self.started_at = iso_utc(clock())
        self.recovered: RecoveryReport | None = None
        stats = getattr(transport, "stats", None)
        self._stats_start = (getattr(stats, "attempts", 0), getattr(stats, "retries", 0))

    # -- events -------------------------------------------------------------------------------------

    def emit(self, event: ApplyEvent) -> None:
        if self._on_event is not None:
            self._on_event(event)

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        self.emit(ApplyWarning(message))

    def drain_events(self) -> None:
        while True:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return
            self.emit(event)

    # -- state --------------------------------------------------------------------------------------

    def current_leads(self) -> dict[str, StateLead]:
        leads = record_outcomes(self.state.leads, [self.outcomes[i] for i in sorted(self.outcomes)])
        return forget(leads, self.forgotten)

    def write_state(self) -> None:
        leads = self.current_leads()
        if leads == dict(self.current.leads):
            return
        following = with_leads(self.current, leads)
        try:
            write_state(self.state_path, following)
        except OSError as exc:
            # the journal keeps every answer: it is not removed, and the next apply recovers from it
            raise StateError(f"cannot write the state file: {exc.strerror or exc}; the answers received so far "
                             f"are kept in {journal_mod.journal_path(self.state_path)} and are recovered by "
                             "the next apply", Location(str(self.state_path))) from exc
        self.current = following
        self.state_written = True
        self.last_write = self.monotonic()
        self.emit(StateWritten(serial=self.current.serial, leads=len(leads)))

    # -- preparation --------------------------------------------------------------------------------

    def check_state(self) -> None:
        """Settle a leftover journal and make sure the plan was made from the state on disk."""
        recovered, report = journal_mod.recover(self.state_path)
        if report.found and report.activity:
            journal_mod.commit_recovery(self.state_path, recovered, report)
            self.recovered = report
            self.emit(JournalRecovered(report))
            if report.changed:
                raise StalePlanError("an interrupted apply was recovered from its journal and changed the "
                                     "state this plan was made from; run plan (or apply) again")
            recovered, report = journal_mod.recover(self.state_path)  # now at most carried unknowns
        if report.found:
            self.carried = list(report.unknown)
        if self.state_path.exists() or report.found:
            if recovered.lineage != self.state.lineage or recovered.serial != self.state.serial:
                if self.state_path.exists():
                    raise StalePlanError(f"the state file {self.state_path} changed since this plan was made "
                                         f"(serial {self.state.serial} → {recovered.serial}); plan again")
                self.state = State(lineage=recovered.lineage, serial=recovered.serial, leads=self.state.leads)

    def blocked_by_unknown(self, batches: Sequence[Batch]) -> list[UnknownOutcome]:
        """Carried unknown-outcome leads that this apply would resend in a way that could duplicate them."""
        if not self.carried:
            return []
        blocked: dict[str, UnknownOutcome] = {}
        for batch in batches:
            for action, record in zip(batch.actions, batch.records):
                if record.lead_id is not None:
                    continue  # keyed by Marketo ID: cannot create anything
                for carried in self.carried:
                    if not _same_lead(carried, action, record):
                        continue
                    entry = carried.entry
                    if record.foreign_sys_person_id is not None:
                        safe = _fsp_key(entry.foreign_sys_type, entry.foreign_sys_person_id) \
                            == _fsp_key(record.foreign_sys_type, record.foreign_sys_person_id)
                    else:
                        safe = self.options.dedup_enabled
                    if not safe:
                        blocked[carried.identity] = carried
        return [blocked[k] for k in sorted(blocked)]

    def unresolved(self, unknown: Iterable[UnknownOutcome]) -> list[UnknownOutcome]:
        """The unknown outcomes that no record answered in this apply accounts for (see _same_lead)."""
        identities, emails, fsps = set(), set(), set()
        for action, record in self.answered:
            identities.add(action.identity)
            email = action.lead.email if action.lead is not None else record.email
            if email:
                emails.add(email.lower())
            fsp = _fsp_key(record.foreign_sys_type, record.foreign_sys_person_id)
            if fsp is not None:
                fsps.add(fsp)
        return [u for u in unknown
                if u.identity not in identities
                and not (u.entry.email and u.entry.email.lower() in emails)
                and _fsp_key(u.entry.foreign_sys_type, u.entry.foreign_sys_person_id) not in fsps]

    # -- the run ------------------------------------------------------------------------------------

    def run(self) -> ApplyReport:
        t0 = self.monotonic()
        self.last_write = t0
        self.check_state()
        self.current = self.state
        options = self.options
        batches = plan_batches(self.plan, options.batch_size, options.dedup_enabled)
        synced_now = iso_utc(self.clock())
        for index, action in enumerate(self.plan.actions):
            if action.kind == UPDATE and not action.sends_record:
                previous = self.state.leads.get(action.state_key or action.identity)
                synced_at = previous.synced_at if previous is not None and previous.synced_at else synced_now
                self.outcomes[index] = (action, recorded_lead(action, None, synced_at))
                self.state_only.append(action.identity)
            elif action.kind == ORPHANED and options.forget_orphans:
                self.forgotten.append(action.identity)
        blocked = self.blocked_by_unknown(batches)
        if blocked:
            raise RemoteError(_unknown_message(blocked, earlier=True))
        self.emit(ApplyStarted(records=sum(len(b.records) for b in batches), batches=len(batches),
                               state_only=len(self.state_only), forget=len(self.forgotten),
                               concurrency=options.concurrency))
        journal = None
        try:
            if batches:
                journal = Journal.create(self.state_path, self.current, dedup_enabled=options.dedup_enabled,
                                         started=self.started_at, carried=self.carried, replace=True)
                self.send_all(batches, journal)
        finally:
            self.drain_events()
            self.write_state()
            if journal is not None:
                self.settle_journal(journal)
        return self.finish(t0)

    def settle_journal(self, journal: Journal) -> None:
        keep = self.unresolved(self.carried + [u for u in self.unknown if u.may_have_created])
        journal.close()
        if keep:
            # the state holds every answer; only the unresolved unknown outcomes need to survive
            Journal.create(self.state_path, self.current, dedup_enabled=self.options.dedup_enabled,
                           started=self.started_at, carried=_unique(keep), replace=True).close()
        else:
            journal.remove()

    def send_all(self, batches: list[Batch], journal: Journal) -> None:
        options = self.options
        pool = _DaemonPool(options.concurrency)
        pending: deque[Batch] = deque(batches)
        inflight: dict[Future, Batch] = {}
        prepared: dict[int, Any] = {}
        prepare = getattr(self.transport, "prepare", None)
        try:
            try:
                while pending or inflight:
                    if self.stop.is_set() and not self.interrupted:
                        self.interrupted = True
                        self.halt.set()
                    if self.halt.is_set():
                        break
                    while (pending and len(inflight) < options.concurrency and not self.halt.is_set()
                           and all(b.wave >= pending[0].wave for b in inflight.values())):
                        batch = pending[0]
                        call = prepared.pop(batch.number, None)
                        if call is None:
                            call = self.prepare(prepare, batch)
                        journal.inflight(batch.number, _journal_entries(batch), options.dedup_enabled)
                        pending.popleft()
                        future = pool.submit(self.send_one, batch, call)
                        inflight[future] = batch
                        self.emit(BatchSent(batch=batch.number, records=len(batch.records)))
                    if pending and prepare is not None and pending[0].number not in prepared \
                            and not self.halt.is_set():
                        # build the next envelope while the calls in flight are on the network
                        prepared[pending[0].number] = self.prepare(prepare, pending[0])
                    if not inflight:
                        continue
                    done, _ = wait(list(inflight), timeout=_POLL, return_when=FIRST_COMPLETED)
                    self.drain_events()
                    for future in sorted(done, key=lambda f: inflight[f].number):
                        self.handle(inflight.pop(future), future, journal)
                    if self.monotonic() - self.last_write >= options.checkpoint_interval:
                        self.write_state()
            except KeyboardInterrupt:
                self.interrupted = True
            except Exception as exc:  # e.g. an envelope that fails the XSD (a bug) or a journal write
                if self.first_error is None:
                    self.first_error = exc
            self.halt.set()
            self.wind_down(inflight, journal)
        finally:
            pool.shutdown()
        for batch in pending:
            self.not_sent.extend(a.identity for a in batch.actions)

    def wind_down(self, inflight: dict[Future, Batch], journal: Journal) -> None:
        """After a stop or a fatal error: collect the answers still coming, within limits."""
        deadline = self.monotonic() + (self.options.stop_grace if self.interrupted else 3600.0)
        try:
            while inflight:
                remaining = deadline - self.monotonic()
                if remaining <= 0:
                    break
                done, _ = wait(list(inflight), timeout=min(_POLL, remaining), return_when=FIRST_COMPLETED)
                self.drain_events()
                for future in sorted(done, key=lambda f: inflight[f].number):
                    self.handle(inflight.pop(future), future, journal)
                if self.stop.is_set() and not self.interrupted:
                    self.interrupted = True
                    deadline = min(deadline, self.monotonic() + self.options.stop_grace)
        except KeyboardInterrupt:
            self.interrupted = True
        for batch in sorted(inflight.values(), key=lambda b: b.number):
            # still unanswered: it stays "inflight" in the journal; its outcome is unknown
            self.unknown.extend(UnknownOutcome(entry=e, batch=batch.number,
                                               dedup_enabled=self.options.dedup_enabled,
                                               started=self.started_at) for e in _journal_entries(batch))
        inflight.clear()

    def prepare(self, prepare: Callable[..., Any] | None, batch: Batch) -> Any:
        if prepare is None:
            return batch.records
        return prepare(batch.records, self.options.dedup_enabled)

    def send_one(self, batch: Batch, call: Any) -> list[SyncStatus]:
        def on_retry(info: Any) -> None:
            self.events.put(BatchRetrying(batch=batch.number, attempt=info.attempt, delay=info.delay,
                                          reason=info.reason))

        return self.transport.send(call, self.options.dedup_enabled, stop=self.halt, on_retry=on_retry)

    # -- answers ------------------------------------------------------------------------------------

    def handle(self, batch: Batch, future: Future, journal: Journal) -> None:
        self.calls_fallback += 1
        error = future.exception()
        if error is None:
            try:
                self.record_answer(batch, future.result(), journal)
                return
            except ResponseError as exc:
                exc.outcome_unknown = True  # type: ignore[attr-defined]
                error = exc
        self.batch_failed(batch, error, journal)

    def record_answer(self, batch: Batch, statuses: Sequence[SyncStatus], journal: Journal) -> None:
        if len(statuses) != len(batch.records):
            raise ResponseError(f"Marketo answered call {batch.number} with {len(statuses)} status(es) for "
                                f"{len(batch.records)} record(s); the answers cannot be matched to the leads")
        synced_at = iso_utc(self.clock())
        results: list[ResultEntry] = []
        new: list[tuple[int, Action, LeadRecord, StateLead, str]] = []
        failed: list[tuple[str, str]] = []
        for index, action, record, status in zip(batch.indexes, batch.actions, batch.records, statuses):
            if status.status in ("CREATED", "UPDATED"):
                if not isinstance(status.lead_id, int) or status.lead_id <= 0:
                    raise ResponseError(f"Marketo answered {status.status} for {action.identity} "
                                        f"without a lead ID ({status.lead_id!r})")
                if record.lead_id is not None and status.lead_id != record.lead_id:
                    raise ResponseError(f"Marketo answered {action.identity} (sent as Id {record.lead_id}) "
                                        f"with lead ID {status.lead_id}")
                lead = recorded_lead(action, status.lead_id, synced_at)
                new.append((index, action, record, lead, status.status))
                results.append(ResultEntry(identity=action.identity, state_key=action.state_key,
                                           status=status.status, lead_id=status.lead_id, error=None, lead=lead))
            elif status.status == "FAILED":
                message = status.error or "FAILED (Marketo gave no reason)"
                failed.append((action.identity, message))
                results.append(ResultEntry(identity=action.identity, state_key=action.state_key,
                                           status="FAILED", lead_id=status.lead_id or None, error=message,
                                           lead=None))
            else:
                raise ResponseError(f"Marketo answered {action.identity} with an unknown status {status.status!r}")
        journal.result(batch.number, results)  # durable before the state moves on
        created = updated = 0
        for index, action, record, lead, status in new:
            self.outcomes[index] = (action, lead)
            self.answered.append((action, record))
            if status == "CREATED":
                self.created.append(action.identity)
                created += 1
            else:
                self.updated.append(action.identity)
                updated += 1
        self.failed.extend(failed)
        self.batches_answered += 1
        self.emit(BatchAnswered(batch=batch.number, records=len(batch.records), created=created,
                                updated=updated, failed=len(failed)))

    def batch_failed(self, batch: Batch, error: BaseException, journal: Journal) -> None:
        unknown = _is_outcome_unknown(error) or not isinstance(error, ReconcileError)
        if isinstance(error, ReconcileError) and not unknown:
            outcome = journal_mod.NOT_SENT if _not_delivered(error) else journal_mod.REJECTED
        else:
            outcome = journal_mod.UNKNOWN
        journal.failed(batch.number, outcome, _one_line(error))
        entries = _journal_entries(batch)
        if outcome == journal_mod.UNKNOWN:
            self.unknown.extend(UnknownOutcome(entry=e, batch=batch.number, dedup_enabled=self.options.dedup_enabled,
                                               started=self.started_at) for e in entries)
        if outcome != journal_mod.UNKNOWN:
            self.not_sent.extend(a.identity for a in batch.actions)
        self.emit(BatchFailed(batch=batch.number, records=len(batch.records), error=_one_line(error),
                              outcome_unknown=outcome == journal_mod.UNKNOWN))
        if self.interrupted and _not_delivered(error):
            return  # stopped before sending: not an error of its own
        if self.first_error is None:
            self.first_error = error
        self.halt.set()

    # -- the end ------------------------------------------------------------------------------------

    def finish(self, t0: float) -> ApplyReport:
        stats = getattr(self.transport, "stats", None)
        if stats is not None:
            calls = getattr(stats, "attempts", 0) - self._stats_start[0]
            retries = getattr(stats, "retries", 0) - self._stats_start[1]
        else:
            calls, retries = self.calls_fallback, 0
        still = self.unresolved(self.carried)
        if still and self.first_error is None and not self.interrupted:
            self.warn(f"{len(still)} lead(s) sent by an earlier, interrupted apply never got an answer and are "
                      f"no longer declared: {', '.join(u.describe() for u in still[:10])}"
                      f"{' ...' if len(still) > 10 else ''}; if they exist in Marketo, declare their leadId "
                      f"(remembered in {journal_mod.journal_path(self.state_path)})")
        unknown = _unique(self.unknown + still)
        report = ApplyReport(created=tuple(self.created), updated=tuple(self.updated), failed=tuple(self.failed),
                             state_only=tuple(self.state_only), forgotten=tuple(self.forgotten),
                             unknown=tuple(unknown), not_sent=tuple(self.not_sent), calls=calls,
                             batches=self.batches_answered, retries=retries,
                             elapsed=self.monotonic() - t0, state_serial=self.current.serial,
                             state_written=self.state_written, warnings=tuple(self.warnings),
                             recovered=self.recovered)
        error = self._final_error(report)
        if error is not None:
            error.report = report  # type: ignore[attr-defined]
            raise error
        return report

    def _final_error(self, report: ApplyReport) -> BaseException | None:
        done = f"{report.applied} lead(s) applied and recorded"
        if self.interrupted:
            parts = [f"interrupted: {done}"]
            if report.not_sent:
                parts.append(f"{len(report.not_sent)} not sent")
            if self.unknown:
                parts.append(f"{len(self.unknown)} sent without an answer (recorded in the journal)")
            return Interrupted("; ".join(parts) + "; run apply again to finish")
        error = self.first_error
        if error is not None:
            if _is_outcome_unknown(error) and not self.options.dedup_enabled:
                risky = [u for u in self.unknown if u.may_have_created]
                if risky:
                    return RemoteError(_unknown_message(risky, earlier=False, cause=_one_line(error)))
            if isinstance(error, ReconcileError):
                if report.applied:
                    error.message = f"{error.message} ({done} before it stopped)"
                    error.args = (error.message,)
                return error
            return error
        if self.failed:
            return RecordsFailed(self.failed, report.applied)
        return None


def _fsp_key(fsp_type: str | None, fsp: str | None) -> tuple[str, str] | None:
    return None if fsp is None else (fsp_type or "CUSTOM", fsp)


def _same_lead(carried: UnknownOutcome, action: Action, record: LeadRecord) -> bool:
    """Whether `record` (for `action`) may address the lead an unknown-outcome record may have created."""
    entry = carried.entry
    if carried.identity == action.identity:
        return True
    email = action.lead.email if action.lead is not None else record.email
    if email and entry.email and email.lower() == entry.email.lower():
        return True
    fsp = _fsp_key(entry.foreign_sys_type, entry.foreign_sys_person_id)
    return fsp is not None and fsp == _fsp_key(record.foreign_sys_type, record.foreign_sys_person_id)


def _unique(items: Iterable[UnknownOutcome]) -> list[UnknownOutcome]:
    seen: dict[str, UnknownOutcome] = {}
    for item in items:
        seen.setdefault(item.identity, item)
    return [seen[k] for k in sorted(seen)]


def _journal_entries(batch: Batch) -> list[JournalEntry]:
    entries = []
    for action, record in zip(batch.actions, batch.records):
        lead = action.lead
        entries.append(JournalEntry(
            identity=action.identity, state_key=action.state_key, kind=action.kind, lead_id=record.lead_id,
            email=lead.email if lead is not None else record.email,
            foreign_sys_person_id=record.foreign_sys_person_id or (lead.foreign_sys_person_id if lead else None),
            foreign_sys_type=record.foreign_sys_type or (lead.effective_foreign_sys_type if lead else None)))
    return entries


def _unknown_message(unknown: Sequence[UnknownOutcome], *, earlier: bool, cause: str | None = None) -> str:
    shown = ", ".join(u.describe() for u in unknown[:20])
    more = f" and {len(unknown) - 20} more" if len(unknown) > 20 else ""
    when = ("an earlier apply sent them and never got an answer" if earlier
            else f"the call that sent them got no usable answer ({cause})")
    return (f"{len(unknown)} lead(s) may now exist in Marketo although the state does not record them: "
            f"{shown}{more} — {when}, and with --no-dedup resending them could create duplicates, so they "
            "are not resent. To resolve: find each lead in Marketo (by its email) and declare its leadId in "
            "the lead files, or run apply without --no-dedup so they are matched by email")


# --------------------------------------------------------------------------------------------------
# Entry point


def apply_plan(plan: Plan, state: State, state_path: Path | str, transport: Any, *,
               batch_size: int = MAX_BATCH_SIZE, concurrency: int = 4, dedup_enabled: bool = True,
               forget_orphans: bool = False, options: ApplyOptions | None = None,
               clock: Callable[[], datetime] = utc_now, monotonic: Callable[[], float] = time.monotonic,
               on_event: Callable[[ApplyEvent], None] | None = None,
               stop: threading.Event | None = None) -> ApplyReport:
    """Apply `plan` (made from `state`, the state at `state_path`) through `transport`.

    Hold the state lock around planning and applying, and call :func:`recover_state` before planning.
    Returns an ApplyReport; raises (with the report as `.report`, after recording every answer and
    writing the state): RecordsFailed/PartialApplyError (exit 5) when records FAILED, the transport's
    RemoteError (exit 4) when calls failed as a whole, RemoteError when --no-dedup creates may have
    been applied without an answer, Interrupted (exit 130) when `stop` was set, StalePlanError (6)
    when the state changed since the plan, UsageError (64) for a bad batch size or concurrency.
    """
    if options is None:
        options = ApplyOptions(batch_size=batch_size, concurrency=concurrency, dedup_enabled=dedup_enabled,
                               forget_orphans=forget_orphans)
    return _Apply(plan, state, Path(state_path), transport, options, clock, monotonic, on_event, stop).run()
