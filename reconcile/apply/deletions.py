"""Deleting leads: Delete Leads calls, after every other change, each answer journaled before the state
forgets the leads it confirmed.

Deletion cannot be undone (the lead's activity history goes with it), so the application asks before
it (see reconcile.app.apply). A lead Marketo no longer has counts as deleted: the state forgets it
either way. A kill -9 between a call and its journal line loses nothing: the next apply plans the same
deletions, and Marketo answers "not found" for the leads already gone.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

from reconcile.apply.inflight import answered_in_turn
from reconcile.core.model import DELETE, Action
from reconcile.remote.membership import LeadOutcome, Outcome

# Journal batch numbers of delete calls: above those of Sync Leads and static list calls.
FIRST_DELETE_CALL = 2_000_000_000
_GONE = frozenset({Outcome.DELETED, Outcome.LEAD_NOT_FOUND})


class LeadDeletes(Protocol):
    max_ids: int  # lead IDs one call may carry
    concurrency: int  # calls in flight at once

    def delete(self, lead_ids: Sequence[int], *, stop: threading.Event | None = None) -> list[LeadOutcome]: ...


@dataclass
class DeleteOutcome:
    calls: int = 0
    deleted: list[str] = field(default_factory=list)  # identities
    failed: list[tuple[str, str]] = field(default_factory=list)


def run_deletes(actions: Sequence[Action], deletes: LeadDeletes,
                confirmed: Callable[[int, list[Action]], None], between_calls: Callable[[], None],
                stop: threading.Event | None = None) -> DeleteOutcome:
    """Delete the leads of the plan's delete actions, `max_ids` a call, `concurrency` calls at once; as
    each call answers, hand the actions Marketo confirmed to `confirmed` (with the call's number). A
    call that fails as a whole stops the deletions once the calls in flight have answered, and so does
    `stop` (Ctrl-C)."""
    outcome = DeleteOutcome()
    doomed = [action for action in actions if action.kind == DELETE]
    for action in doomed:
        if action.known_lead_id is None:
            outcome.failed.append((action.identity, "no Marketo lead ID is recorded for it: nothing to delete by"))
    with_ids = [action for action in doomed if action.known_lead_id is not None]
    size = max(1, deletes.max_ids)
    chunks = [with_ids[start:start + size] for start in range(0, len(with_ids), size)]

    def send(chunk: list[Action]) -> list[LeadOutcome]:
        return deletes.delete([action.known_lead_id for action in chunk], stop=stop)

    with contextlib.closing(answered_in_turn(chunks, send, deletes.concurrency, stop)) as answers:
        for chunk, answered in answers:
            outcome.calls += 1
            gone = _gone(chunk, {answer.lead_id: answer for answer in answered}, outcome)
            if gone:
                confirmed(FIRST_DELETE_CALL + outcome.calls, gone)
                outcome.deleted.extend(action.identity for action in gone)
            between_calls()
    return outcome


def _gone(chunk: list[Action], answers: dict[int, LeadOutcome], outcome: DeleteOutcome) -> list[Action]:
    """The actions of one call whose leads Marketo confirmed gone; the others into `outcome.failed`."""
    gone = []
    for action in chunk:
        answer = answers.get(action.known_lead_id)
        if answer is not None and answer.outcome in _GONE:
            gone.append(action)
        else:
            why = (answer.reason or answer.outcome.value) if answer is not None else "no answer for this lead"
            outcome.failed.append((action.identity, f"not deleted: {why}"))
    return gone


def send_deletes(actions: Sequence[Action], ledger, tally, deletes: LeadDeletes,
                 between_calls: Callable[[], None], stop: threading.Event | None = None) -> None:
    """The plan's deletions, last: the state forgets each lead Marketo confirmed gone, once journaled."""
    def confirmed(number: int, gone: list[Action]) -> None:
        ledger.deleted(number, [action.state_key or action.identity for action in gone])

    outcome = run_deletes(actions, deletes, confirmed, between_calls, stop)
    tally.failed.extend(outcome.failed)
    tally.deleted.extend(outcome.deleted)
    tally.list_calls += outcome.calls
