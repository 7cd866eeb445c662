"""Apply a plan: batches of lead records → the transport → lead IDs journaled → state.

One wire-neutral LeadRecord per action that sends (see :mod:`.batches`), sent by the scheduler
(:mod:`.schedule`), each answer checked (:mod:`.answers`) and journaled before the state moves on
(:mod:`.ledger`). The engine knows no wire format: it speaks to Marketo only through a
:class:`reconcile.remote.base.Transport`.

The engine never prints or exits: it reports through `on_event` and returns an ApplyReport or raises
a :class:`~reconcile.errors.ReconcileError` that carries the report as `.report`.
"""

from __future__ import annotations

import math
import threading
import time
from concurrent.futures import Future
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Sequence

from reconcile.apply.answers import AnswerChecker
from reconcile.apply.batches import Batch
from reconcile.apply.events import ApplyEvent, ApplyStarted, ApplyWarning, BatchAnswered, BatchFailed
from reconcile.apply.ledger import Ledger, recover
from reconcile.apply.deletions import LeadDeletes, send_deletes
from reconcile.apply.memberships import Memberships, send_list_calls
from reconcile.apply.options import ApplyOptions
from reconcile.apply.report import ApplyReport, Tally, final_error, one_line
from reconcile.apply.schedule import PlannedCalls, Scheduler
from reconcile.apply.unknowns import UnknownOutcomes, unique, unknown_message
from reconcile.core.clock import iso_utc, utc_now
from reconcile.core.gcpause import collect_and_freeze, gc_frozen
from reconcile.core.model import CREATE, DEFAULT_BATCH_SIZE, DELETE, ORPHANED, UPDATE, Plan, State
from reconcile.core.planner import is_adoption, recorded_lead, recorded_lists
from reconcile.core.records import CREATED
from reconcile.errors import ReconcileError, RemoteError, ResponseError, StalePlanError
from reconcile.remote.base import mark_outcome, not_delivered, outcome_unknown
from reconcile.store import journal as journal_store
from reconcile.store.journal import RecoveryReport, ResultEntry
from reconcile.store.state import lineage_and_serial, pending_write

__all__ = ["apply_plan"]

# A full collection of the objects made since the last one walks every state record made from the
# answers: it runs only when the sender knows it will wait at least this long, for the rate window.
_COLLECT_WHEN_FREE_FOR = 1.0


class _Apply:
    """One apply: wires the ledger, the scheduler, the answer checks and the tally together."""

    # made by run() once check_state() has settled which state the apply starts from
    ledger: Ledger
    checker: AnswerChecker

    def __init__(self, plan: Plan, state: State, state_path: Path, transport: Any, options: ApplyOptions,
                 clock: Callable[[], datetime], monotonic: Callable[[], float],
                 on_event: Callable[[ApplyEvent], None] | None, stop: threading.Event | None,
                 calls: PlannedCalls | None = None, memberships: Memberships | None = None,
                 deletes: LeadDeletes | None = None):
        self.plan, self.state, self.state_path = plan, state, state_path
        self.memberships, self.deletes = memberships, deletes
        self.calls = calls
        self.transport, self.options, self.clock, self.monotonic = transport, options, clock, monotonic
        self._on_event = on_event
        self.started_at = iso_utc(clock())
        self.tally = Tally()
        self.scheduler = Scheduler(transport, options, self, monotonic,
                                   stop if stop is not None else threading.Event())
        stats = getattr(transport, "stats", None)
        self._stats_start = (getattr(stats, "attempts", 0), getattr(stats, "retries", 0))
        self._handled = 0
        self._collected_after = 0  # answers handled at the last collection made while the sender was free
        self.recovered: RecoveryReport | None = None  # a leftover journal this apply replayed
        self.unknowns = UnknownOutcomes((), dedup_enabled=options.dedup_enabled, started=self.started_at)

    # -- the scheduler's handler --------------------------------------------------------------------

    def emit(self, event: ApplyEvent) -> None:
        if self._on_event is not None:
            self._on_event(event)

    def built(self, batch: Batch) -> None:
        self.ledger.prepare_sending(batch, self.options.dedup_enabled)

    def before_send(self, batch: Batch) -> None:
        self.ledger.sending(batch, self.options.dedup_enabled)

    def tick(self, free_for: float = math.inf) -> None:
        started = self.monotonic()
        self.ledger.checkpoint(free_for)
        if free_for - (self.monotonic() - started) >= _COLLECT_WHEN_FREE_FOR and self._handled > self._collected_after:
            self._collected_after = self._handled
            collect_and_freeze()

    def finished(self, batch: Batch, future: Future) -> None:
        self._handled += 1
        error = future.exception()
        if error is None:
            try:
                self.record_answer(batch, future.result())
                return
            except ResponseError as exc:
                error = mark_outcome(exc, True)  # an answer we cannot match: as good as none
        self.batch_failed(batch, error)

    # -- preparation --------------------------------------------------------------------------------

    def check_state(self) -> None:
        """Settle a leftover journal and make sure the plan was made from the state on disk."""
        if _nothing_to_recover(self.state_path):
            _refuse_another_state(self.state_path, self.state, lineage_and_serial(self.state_path))
            return
        recovered, report = recover(self.state_path, commit=True, on_event=self.emit)
        if report.found and report.activity:
            self.recovered = report
            if report.changed:
                raise StalePlanError("an interrupted apply was recovered from its journal and changed the "
                                     "state this plan was made from; run plan (or apply) again")
        if report.found:
            self.unknowns = UnknownOutcomes(report.may_have_created, dedup_enabled=self.options.dedup_enabled,
                                            started=self.started_at)
        if self.state_path.exists():
            _refuse_another_state(self.state_path, self.state, (recovered.lineage, recovered.serial))
        elif report.found and (recovered.lineage, recovered.serial) != (self.state.lineage, self.state.serial):
            self.state = State(lineage=recovered.lineage, serial=recovered.serial, leads=self.state.leads)

    def record_without_calls(self) -> None:
        synced_now = iso_utc(self.clock())
        for index, action in enumerate(self.plan.actions):
            if action.kind == UPDATE and not action.sends_record:
                previous = self.state.leads.get(action.state_key or action.identity)
                synced_at = previous.synced_at if previous is not None and previous.synced_at else synced_now
                self.ledger.record(index, action, recorded_lead(action, None, synced_at,
                                                                recorded_lists(action, self.state.leads)))
                if not action.list_changes:  # those are counted as list calls
                    self.tally.state_only.append(action.identity)
            elif action.kind == ORPHANED and self.options.forget_orphans:
                self.ledger.forget(action.identity)
                self.tally.forgotten.append(action.identity)

    # -- the run ------------------------------------------------------------------------------------

    def run(self) -> ApplyReport:
        t0 = self.monotonic()
        self.check_state()
        options = self.options
        self.ledger = Ledger(self.state_path, self.state, monotonic=self.monotonic,
                             checkpoint_interval=options.checkpoint_interval, emit=self.emit,
                             expected_leads=len(self.state.leads) + self.plan.summary[CREATE])
        self.checker = AnswerChecker(self.state.leads)
        calls = self.calls if self.calls is not None else PlannedCalls.of(self.plan, self.transport, options)
        batches = calls.batches
        self.record_without_calls()
        blocked = self.unknowns.blocked(batches)
        if blocked:
            raise RemoteError(unknown_message(blocked, earlier=True))
        self.emit(ApplyStarted(records=sum(b.size for b in batches), batches=len(batches),
                               state_only=len(self.tally.state_only), forget=len(self.tally.forgotten),
                               concurrency=options.concurrency))
        with gc_frozen():  # the final write too: the first full collection after the send walks everything
            try:
                lists = self.memberships is not None and self.plan.has_list_changes
                deleting = self.deletes is not None and bool(self.plan.count(DELETE))
                if batches or lists or deleting:
                    self.ledger.open(dedup_enabled=options.dedup_enabled, started=self.started_at,
                                     carried=self.unknowns.carried)
                if batches:
                    self.send(batches, calls.building)
                if (lists or deleting) and self.scheduler.first_error is None and not self.scheduler.interrupted:
                    self.after_records(lists, deleting)
            finally:
                self.ledger.write()
                self.ledger.settle(self.unknowns.to_keep(), dedup_enabled=options.dedup_enabled,
                                   started=self.started_at)
        return self.finish(t0)

    def send(self, batches: Sequence[Batch], building: dict[int, Future]) -> None:
        sent = self.scheduler.run(batches, building)
        for batch in sent.unanswered:  # still "inflight" in the journal: its outcome is unknown
            self.unknowns.sent_without_answer(batch)
        for batch in sent.not_sent:
            self.tally.not_sent.extend(a.identity for a in batch.actions)

    def after_records(self, lists: bool, deleting: bool) -> None:
        """Static list membership, then deletions, once the leads' records (and IDs) are recorded. A
        checkpoint between their calls waits for a pause of the rate window, as between Sync Leads calls."""
        window_opens_in = getattr(self.transport, "window_opens_in", lambda: 0.0)

        def between_calls() -> None:
            self.tick(window_opens_in())

        stop = self.scheduler.stop  # Ctrl-C: no further call starts, the answers in flight are recorded
        try:
            if lists:
                send_list_calls(self.plan.actions, self.ledger, self.tally, self.memberships, between_calls, stop)
            if deleting and not stop.is_set():
                send_deletes(self.plan.actions, self.ledger, self.tally, self.deletes, between_calls, stop)
        except ReconcileError as exc:  # the calls confirmed before it are journaled and recorded
            if not (stop.is_set() and not_delivered(exc)):  # one abandoned for the stop is no error of its own
                self.scheduler.fail(exc)
        self.scheduler.interrupted |= stop.is_set()

    # -- answers ------------------------------------------------------------------------------------

    def record_answer(self, batch: Batch, statuses: Sequence[Any]) -> None:
        checked = self.checker.check(batch, statuses)
        synced_at = iso_utc(self.clock())
        for index, action, why in checked.revoke:
            self.tally.take_back(action.identity, why)
        self.ledger.revoke(batch, [index for index, _, _ in checked.revoke],
                           "; ".join(dict.fromkeys(why for _, _, why in checked.revoke)))
        results, recorded = [], []
        line_of = self.ledger.lines_for(batch, synced_at)
        for item in checked.accepted:
            lead = recorded_lead(item.action, item.lead_id, synced_at, recorded_lists(item.action, self.state.leads))
            recorded.append((item, lead))
            identity = item.action.identity
            results.append(ResultEntry(identity=identity, state_key=item.action.state_key, status=item.status,
                                       lead_id=item.lead_id, error=None, lead=lead, line=line_of(identity, lead)))
        for identity, message in checked.failed:
            results.append(ResultEntry(identity=identity, state_key=None, status="FAILED", lead_id=None,
                                       error=message, lead=None))
        for item, why in checked.refused:
            results.append(ResultEntry(identity=item.action.identity, state_key=item.action.state_key,
                                       status="REFUSED", lead_id=None, error=why, lead=None))
        self.ledger.answered(batch, results)  # durable before the state moves on
        counts = {"created": 0, "updated": 0, "adopted": 0}
        for item, lead in recorded:
            self.ledger.record(item.index, item.action, lead)
            self.unknowns.answered(item.action)
            kind = "adopted" if is_adoption(item.action) else "created" if item.status == CREATED else "updated"
            getattr(self.tally, kind).append(item.action.identity)
            counts[kind] += 1
        for item, why in checked.refused:
            self.unknowns.answered(item.action)  # applied in Marketo, if not recorded
            self.tally.refused.append((item.action.identity, why))
        self.tally.failed.extend(checked.failed)
        self.tally.batches += 1
        self.emit(BatchAnswered(batch=batch.number, records=batch.size, failed=len(checked.failed),
                                refused=len(checked.refused), **counts))

    def batch_failed(self, batch: Batch, error: BaseException) -> None:
        unknown = outcome_unknown(error) or not isinstance(error, ReconcileError)
        if unknown:
            # A plain exception (a bug) after the call went out: the call may have been applied, and
            # the apply's final error must say so as for any other unknown outcome.
            error = mark_outcome(error, True)
            outcome = journal_store.UNKNOWN
        else:
            outcome = journal_store.NOT_SENT if not_delivered(error) else journal_store.REJECTED
        self.ledger.failed(batch, outcome, one_line(error))
        if unknown:
            self.unknowns.sent_without_answer(batch)
        else:
            self.tally.not_sent.extend(a.identity for a in batch.actions)
        self.emit(BatchFailed(batch=batch.number, records=batch.size, error=one_line(error),
                              outcome_unknown=unknown))
        if self.scheduler.interrupted and not_delivered(error):
            return  # stopped before sending: not an error of its own
        self.scheduler.fail(error)

    # -- the end ------------------------------------------------------------------------------------

    def finish(self, t0: float) -> ApplyReport:
        stats = getattr(self.transport, "stats", None)
        if stats is not None:
            calls = getattr(stats, "attempts", 0) - self._stats_start[0] - self.tally.list_calls
            retries = getattr(stats, "retries", 0) - self._stats_start[1]
        else:
            calls, retries = self._handled, 0
        scheduler, tally = self.scheduler, self.tally
        still = self.unknowns.unresolved(self.unknowns.carried)
        if still and scheduler.first_error is None and not scheduler.interrupted:
            self.warn(f"{len(still)} lead(s) sent by an earlier, interrupted apply never got an answer and are "
                      f"no longer declared: {', '.join(u.describe() for u in still[:10])}"
                      f"{' ...' if len(still) > 10 else ''}; if they exist in Marketo, declare their leadId "
                      f"(remembered in {journal_store.journal_path(self.state_path)})")
        report = ApplyReport(
            created=tuple(tally.created), updated=tuple(tally.updated), adopted=tuple(tally.adopted),
            failed=tuple(tally.failed), refused=tuple(tally.refused), state_only=tuple(tally.state_only),
            forgotten=tuple(tally.forgotten), unknown=tuple(unique(self.unknowns.new + still)),
            not_sent=tuple(tally.not_sent), calls=calls, batches=tally.batches, retries=retries,
            elapsed=self.monotonic() - t0, state_serial=self.ledger.current.serial,
            state_written=self.ledger.written, warnings=tuple(tally.warnings), recovered=self.recovered,
            call_name=getattr(self.transport, "call_name", None) or "syncMultipleLeads",
            list_added=tally.list_added, list_removed=tally.list_removed, list_calls=tally.list_calls,
            deleted=tuple(tally.deleted))
        error = final_error(report, interrupted=scheduler.interrupted, first_error=scheduler.first_error,
                            dedup_enabled=self.options.dedup_enabled, unknown=self.unknowns.new)
        if error is not None:
            error.report = report  # type: ignore[attr-defined]
            raise error
        return report

    def warn(self, message: str) -> None:
        self.tally.warnings.append(message)
        self.emit(ApplyWarning(message))


def _nothing_to_recover(state_path: Path) -> bool:
    """No journal to replay and no state write to finish: which state is on disk is all there is to
    check, and its top file says."""
    journal = journal_store.journal_path(state_path)
    return not journal.exists() and not journal.is_symlink() and not pending_write(state_path)


def _refuse_another_state(state_path: Path, state: State, on_disk: tuple[str, int] | None) -> None:
    """StalePlanError unless the state on disk (its lineage and serial; None: no state file) is `state`."""
    if on_disk is not None and on_disk != (state.lineage, state.serial):
        raise StalePlanError(f"the state file {state_path} changed since this plan was made "
                             f"(serial {state.serial} → {on_disk[1]}); plan again")


def apply_plan(plan: Plan, state: State, state_path: Path | str, transport: Any, *,
               batch_size: int = DEFAULT_BATCH_SIZE, concurrency: int = 4, dedup_enabled: bool = True,
               forget_orphans: bool = False, options: ApplyOptions | None = None,
               clock: Callable[[], datetime] = utc_now, monotonic: Callable[[], float] = time.monotonic,
               on_event: Callable[[ApplyEvent], None] | None = None,
               stop: threading.Event | None = None, calls: PlannedCalls | None = None,
               memberships: Memberships | None = None, deletes: LeadDeletes | None = None) -> ApplyReport:
    """Apply `plan` (made from `state`, the state at `state_path`) through `transport`.

    Hold the state lock around planning and applying, and call :func:`recover_state` before planning.
    Returns an ApplyReport; raises (with the report as `.report`, after recording every answer and
    writing the state): RecordsFailed/PartialApplyError (exit 5) when records FAILED or were answered
    with a lead ID another lead holds, the transport's RemoteError (exit 4) when calls failed as a
    whole or an answer contradicted its request, RemoteError when --no-dedup creates may have been
    applied without an answer, Interrupted (exit 130) when `stop` was set, StalePlanError (6) when
    the state changed since the plan, UsageError (64) for a bad batch size or concurrency.

    `calls`: the plan's calls as made (and perhaps begun) by :meth:`PlannedCalls.of` with the same
    transport and options, before the plan was shown.
    """
    if options is None:
        options = ApplyOptions(batch_size=batch_size, concurrency=concurrency, dedup_enabled=dedup_enabled,
                               forget_orphans=forget_orphans)
    if calls is not None and calls.options != options:
        raise ValueError("the planned calls were made with other options than this apply's")
    return _Apply(plan, state, Path(state_path), transport, options, clock, monotonic, on_event, stop,
                  calls, memberships, deletes).run()
