"""Static list membership, applied after the lead records: Add to List / Remove from List calls (or
SOAP listOperation), each answer journaled before the state records it.

A lead joins a list only once Marketo has given its ID (the Sync Leads call that creates it has
answered). Removals go first, then additions, one call per list and at most `max_ids` leads a call.
The state records a membership only when Marketo confirmed it: a kill -9 between a call and its
journal line loses nothing, the next apply sends that call again (adding a member twice, or removing
one that is gone, leaves the list as it should be).
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from typing import Callable, Mapping, Protocol, Sequence

from reconcile.apply.inflight import answered_in_turn
from reconcile.core.model import Action, ListChange, StateLead
from reconcile.core.planner import with_memberships
from reconcile.remote.membership import LeadOutcome, Outcome

# Journal batch numbers of list calls: far above those of Sync Leads calls, so the two never meet.
FIRST_LIST_CALL = 1_000_000_000
LISTED = "LISTED"  # the journal status of a lead whose membership Marketo confirmed

_CONFIRMS = {True: frozenset({Outcome.ADDED, Outcome.MEMBER}),
             False: frozenset({Outcome.REMOVED, Outcome.NOT_ON_LIST, Outcome.NOT_MEMBER})}


@dataclass(frozen=True)
class ListTarget:
    """A static list as the calls name it: REST by ID, SOAP by name."""

    id: int
    name: str


class ListCalls(Protocol):
    """What a transport offers for static lists (see reconcile.app.lists for the adapters)."""

    max_ids: int  # lead IDs one call may carry

    def add(self, target: ListTarget, lead_ids: Sequence[int], *,
            stop: threading.Event | None = None) -> list[LeadOutcome]: ...

    def remove(self, target: ListTarget, lead_ids: Sequence[int], *,
               stop: threading.Event | None = None) -> list[LeadOutcome]: ...


@dataclass(frozen=True)
class Memberships:
    """The list calls of one apply: how to make them, and the lists the lead files name, resolved."""

    calls: ListCalls
    lists: Mapping[str, ListTarget]  # by the name as the lead files give it ("VIP Customers", "id:1021")
    by_id: Mapping[int, ListTarget] = field(default_factory=dict)  # every list known, for removals
    concurrency: int = 1  # calls in flight at once

    def target(self, change: ListChange) -> ListTarget:
        if change.add:
            return self.lists[change.ref]
        assert change.list_id is not None, "a removal names the list the state recorded"
        return self.by_id.get(change.list_id) or ListTarget(change.list_id, change.ref)


@dataclass
class _Member:
    index: int  # the action's position in the plan
    action: Action
    lead_id: int
    change: ListChange  # with the list's ID


@dataclass
class ListOutcome:
    """What the list calls did: confirmed memberships by lead, and the leads that failed."""

    calls: int = 0
    added: int = 0
    removed: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)


def pending_calls(actions: Sequence[Action], records: Mapping[str, StateLead], memberships: Memberships
                  ) -> list[tuple[ListTarget, bool, list[_Member]]]:
    """(list, add?, members) for each list call group, removals first. A lead is in them only once
    the state records it with a lead ID, and only for changes the state does not record yet."""
    groups: dict[tuple[int, bool], tuple[ListTarget, list[_Member]]] = {}
    for index, action in enumerate(actions):
        if not action.list_changes:
            continue
        record = records.get(action.identity)
        if record is None or record.lead_id is None:
            continue  # its record was not accepted: the next apply plans its lists again
        for change in action.list_changes:
            if change.add == (change.ref in record.lists):
                continue  # already as wanted (recovered from a journal)
            target = memberships.target(change)
            resolved = ListChange(change.ref, change.add, target.id)
            groups.setdefault((target.id, change.add), (target, []))[1].append(
                _Member(index, action, record.lead_id, resolved))
    ordered = sorted(groups.items(), key=lambda item: (item[0][1], item[0][0]))  # removals, then by list ID
    return [(target, add, members) for (_, add), (target, members) in ordered]


def run_list_calls(groups: Sequence[tuple[ListTarget, bool, list[_Member]]], memberships: Memberships,
                   records: dict[str, StateLead],
                   confirmed: Callable[[int, list[tuple[_Member, StateLead]]], None],
                   between_calls: Callable[[], None], stop: threading.Event | None = None) -> ListOutcome:
    """Send the calls, `memberships.concurrency` at once: every removal, then every addition (a list
    named two ways is left, then joined). As each call answers, hand its confirmed members and their
    new records to `confirmed` (with the call's number, for the journal). A call that fails as a whole
    stops the list work once the calls in flight have answered, and so does `stop` (Ctrl-C): the rest is
    left for the next apply."""
    outcome = ListOutcome()
    size = max(1, memberships.calls.max_ids)

    def send(call: tuple[ListTarget, bool, list[_Member]]) -> list[LeadOutcome]:
        target, add, chunk = call
        ids = list(dict.fromkeys(member.lead_id for member in chunk))
        return (memberships.calls.add if add else memberships.calls.remove)(target, ids, stop=stop)

    for adding in (False, True):
        calls = [(target, add, members[start:start + size]) for target, add, members in groups if add == adding
                 for start in range(0, len(members), size)]
        with contextlib.closing(answered_in_turn(calls, send, memberships.concurrency, stop)) as answers:
            for (target, add, chunk), answered in answers:
                outcome.calls += 1
                accepted = _accepted(target, add, chunk, answered, records, outcome)
                if accepted:
                    confirmed(FIRST_LIST_CALL + outcome.calls, accepted)
                between_calls()
    return outcome


def _accepted(target: ListTarget, add: bool, chunk: list[_Member], answered: list[LeadOutcome],
              records: dict[str, StateLead], outcome: ListOutcome) -> list[tuple[_Member, StateLead]]:
    """The members of one call that Marketo confirmed, with their new records; the others in `outcome`."""
    answers = {answer.lead_id: answer for answer in answered}
    accepted: list[tuple[_Member, StateLead]] = []
    for member in chunk:
        answer = answers.get(member.lead_id)
        if answer is not None and answer.outcome in _CONFIRMS[add]:
            identity = member.action.identity
            records[identity] = with_memberships(records[identity], (member.change,))
            accepted.append((member, records[identity]))
        else:
            why = (answer.reason or answer.outcome.value) if answer is not None else "no answer for this lead"
            verb = "adding it to" if add else "removing it from"
            outcome.failed.append((member.action.identity, f"{verb} list {target.name!r}: {why}"))
    if add:
        outcome.added += len(accepted)
    else:
        outcome.removed += len(accepted)
    return accepted


def send_list_calls(actions: Sequence[Action], ledger, tally, memberships: Memberships,
                    between_calls: Callable[[], None], stop: threading.Event | None = None) -> None:
    """The plan's membership changes through `memberships`, each call's confirmed members journaled
    (`ledger.listed`) and then recorded (`ledger.record`) as its answer comes; counted in `tally`."""
    from reconcile.store.journal import ResultEntry

    records = ledger.leads()
    groups = pending_calls(actions, records, memberships)
    if not groups:
        return

    def confirmed(number: int, accepted: list[tuple[_Member, StateLead]]) -> None:
        ledger.listed(number, [ResultEntry(identity=m.action.identity, state_key=m.action.state_key, status=LISTED,
                                           lead_id=m.lead_id, error=None, lead=lead) for m, lead in accepted])
        for member, lead in accepted:
            ledger.record(member.index, member.action, lead)

    outcome = run_list_calls(groups, memberships, records, confirmed, between_calls, stop)
    tally.failed.extend(outcome.failed)
    tally.list_calls += outcome.calls
    tally.list_added, tally.list_removed = outcome.added, outcome.removed
