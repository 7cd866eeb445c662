"""Recovering a journal an interrupted apply left: the situations a crash or a lost answer build.

Each journal here is written through the Journal class, as an apply writes it, and then replayed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reconcile.apply import apply_plan, recover_state
from reconcile.core.model import Lead, State, StateLead
from reconcile.core.planner import plan as make_plan
from reconcile.errors import Location, RemoteError, StateError
from reconcile.remote.soap.envelope import SyncStatus
from reconcile.store import journal as journal_store
from reconcile.store.journal import Journal, JournalEntry, ResultEntry, UnknownOutcome, journal_path, recover
from reconcile.store.state import load_state

ADA = JournalEntry(identity="email:ada@example.com", state_key=None, kind="create", email="ada@example.com")
GRACE = JournalEntry(identity="email:grace@example.com", state_key=None, kind="create", email="grace@example.com")
STARTED = "2026-12-01T10:00:00Z"


def created(entry: JournalEntry, lead_id: int) -> ResultEntry:
    lead = StateLead(lead_id=lead_id, email=entry.email, foreign_sys_person_id=None, foreign_sys_type=None,
                     attributes={"FirstName": "Ada"}, synced_at=STARTED)
    return ResultEntry(identity=entry.identity, state_key=None, status="CREATED", lead_id=lead_id, error=None,
                       lead=lead)


def start(tmp_path: Path, carried=()) -> tuple[Path, Journal]:
    state_path = tmp_path / "reconcile.state.json"
    empty = State(lineage="0c1d2e3f-0000-4000-8000-000000000000", serial=0, leads={})
    return state_path, Journal.create(state_path, empty, dedup_enabled=False, started=STARTED, carried=carried)


# -- a corrupt last line ------------------------------------------------------------------------------


def test_a_corrupt_last_line_that_ends_with_a_newline_is_refused_not_taken_as_torn(tmp_path: Path) -> None:
    state_path, journal = start(tmp_path)
    with journal:
        journal.inflight(1, [ADA], dedup_enabled=False)
        journal.result(1, [created(ADA, 1001)])
    path = journal_path(state_path)
    complete = path.read_bytes()
    # A torn append never ends with its newline: a whole line that does not parse was damaged otherwise.
    path.write_bytes(complete + b'{"type":"result","batch":2,"res\n')
    with pytest.raises(StateError, match="journal line 4 is corrupt") as refused:
        recover(state_path)
    assert refused.value.location is not None and refused.value.location.line == 4
    assert path.read_bytes() == complete + b'{"type":"result","batch":2,"res\n', "the journal is left as it is"
    assert not state_path.exists()

    path.write_bytes(complete + b'{"type":"result","batch":2,"res')  # the same bytes, cut short: torn
    state, report = recover(state_path)
    assert report.torn_tail and report.recorded == ("email:ada@example.com",)
    assert state.leads["email:ada@example.com"].lead_id == 1001


# -- a failed call whose outcome is unknown -----------------------------------------------------------


def test_a_failed_call_whose_outcome_is_unknown_stays_in_the_may_have_been_created_list(tmp_path: Path) -> None:
    state_path, journal = start(tmp_path)
    with journal:
        journal.inflight(1, [ADA, GRACE], dedup_enabled=False)
        journal.failed(1, journal_store.UNKNOWN, "the connection was reset after the call was sent")
    state, report = recover(state_path)
    assert [u.identity for u in report.may_have_created] == ["email:ada@example.com", "email:grace@example.com"]
    assert report.batches_unknown == 1 and state.leads == {}

    # Made durable, the list is carried on, so that a resend without dedup is refused before sending.
    state, report = recover_state(state_path)
    assert journal_path(state_path).exists()
    carried, again = recover(state_path)
    assert [u.identity for u in again.may_have_created] == ["email:ada@example.com", "email:grace@example.com"]
    transport = _Recording()
    desired = [Lead(location=Location("leads/a.yaml", 2 + n), email=email, attributes={"FirstName": "Ada"})
               for n, email in enumerate(["ada@example.com", "grace@example.com"])]
    with pytest.raises(RemoteError, match="may now exist in Marketo"):
        apply_plan(make_plan(desired, state), state, state_path, transport, dedup_enabled=False)
    assert transport.sent == [], "a resend without dedup could duplicate both leads"


class _Recording:
    """A transport that records what it is asked to send and answers every record CREATED."""

    stats = None

    def __init__(self) -> None:
        self.sent: list = []

    def send(self, records, dedup_enabled=True, **kwargs):
        self.sent.append(list(records))
        return [SyncStatus(2000 + n, "CREATED") for n in range(len(records))]


@pytest.mark.parametrize("outcome", [journal_store.NOT_SENT, journal_store.REJECTED])
def test_a_call_that_never_reached_marketo_is_not_an_unknown_outcome(tmp_path: Path, outcome: str) -> None:
    state_path, journal = start(tmp_path)
    with journal:
        journal.inflight(1, [ADA], dedup_enabled=False)
        journal.failed(1, outcome, "refused before anything was applied")
    _, report = recover(state_path)
    assert report.unknown == () and report.batches_unknown == 0


# -- an unknown outcome that a later answer resolves --------------------------------------------------


def test_an_unanswered_call_resolved_by_a_later_answer_for_the_same_lead(tmp_path: Path) -> None:
    state_path, journal = start(tmp_path)
    with journal:
        journal.inflight(1, [ADA, GRACE], dedup_enabled=False)
        journal.failed(1, journal_store.UNKNOWN, "no answer")
        journal.inflight(2, [ADA], dedup_enabled=True)  # sent again, with dedup, and answered
        journal.result(2, [created(ADA, 1001)])
    state, report = recover(state_path)
    assert [u.identity for u in report.unknown] == ["email:grace@example.com"]
    assert report.recorded == ("email:ada@example.com",)
    assert state.leads["email:ada@example.com"].lead_id == 1001


def test_an_unknown_outcome_carried_from_an_earlier_apply_is_resolved_by_an_answer(tmp_path: Path) -> None:
    earlier = [UnknownOutcome(entry=ADA, batch=4, dedup_enabled=False, started="2026-11-30T09:00:00Z"),
               UnknownOutcome(entry=GRACE, batch=4, dedup_enabled=False, started="2026-11-30T09:00:00Z")]
    state_path, journal = start(tmp_path, carried=earlier)
    with journal:
        journal.inflight(1, [ADA], dedup_enabled=True)
        journal.result(1, [created(ADA, 1001)])
    state, report = recover_state(state_path)
    assert [u.identity for u in report.unknown] == ["email:grace@example.com"]
    assert load_state(state_path).leads["email:ada@example.com"].lead_id == 1001
    _, carried = recover(state_path)
    assert [u.identity for u in carried.may_have_created] == ["email:grace@example.com"]
