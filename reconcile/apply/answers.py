"""Checking Marketo's answers before anything is recorded.

An answer that contradicts its request (a status count that differs from the record count, a lead
ID other than the `Id` sent, an unknown status, no lead ID) cannot be matched to the leads: no record
of that call is trusted, and the call counts as sent without an answer.

One Marketo lead ID given to two different leads — in one answer, across the calls of one apply, or
an ID the state already records for another lead — is a conflict: neither claimant is recorded under
it (they stay pending), and the apply ends with exit 5 naming both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

from reconcile.apply.batches import Batch
from reconcile.core.model import Action, StateLead
from reconcile.core.records import CREATED, FAILED, UPDATED, LeadRecord, SyncStatus
from reconcile.errors import ResponseError

__all__ = ["Accepted", "CheckedAnswer", "AnswerChecker"]


@dataclass(frozen=True)
class Accepted:
    index: int  # position of the action in the plan
    action: Action
    record: LeadRecord
    status: str  # CREATED | UPDATED
    lead_id: int


@dataclass
class CheckedAnswer:
    accepted: list[Accepted] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (identity, Marketo's error)
    refused: list[tuple[Accepted, str]] = field(default_factory=list)  # answered, not recorded: why
    revoke: list[tuple[int, Action, str]] = field(default_factory=list)  # recorded earlier; taken back: why


def _named(action: Action) -> str:
    return f"{action.identity} ({action.lead.location})" if action.lead is not None else action.identity


class AnswerChecker:
    """Checks each answer against its request and against every lead ID claimed so far."""

    def __init__(self, state_leads: Mapping[str, StateLead]):
        self._state_owner: dict[int, str] = {}
        for key in sorted(state_leads):
            lead_id = state_leads[key].lead_id
            if lead_id is not None:
                self._state_owner.setdefault(lead_id, key)
        self._claims: dict[int, list[tuple[int, Action]]] = {}  # lead ID -> every claimant in this apply
        self._recorded: set[int] = set()  # plan positions currently recorded

    def check(self, batch: Batch, statuses: Sequence[SyncStatus]) -> CheckedAnswer:
        if len(statuses) != batch.size:
            raise ResponseError(f"Marketo answered call {batch.number} with {len(statuses)} status(es) for "
                                f"{batch.size} record(s); the answers cannot be matched to the leads")
        checked = CheckedAnswer()
        answered: list[Accepted] = []
        for index, action, record, status in zip(batch.indexes, batch.actions, batch.records, statuses):
            if status.status in (CREATED, UPDATED):
                answered.append(Accepted(index, action, record, status.status, self._lead_id(action, record, status)))
            elif status.status == FAILED:
                checked.failed.append((_named(action), status.error or "FAILED (Marketo gave no reason)"))
            else:
                raise ResponseError(f"Marketo answered {action.identity} with an unknown status {status.status!r}")
        in_this_answer: dict[int, list[Action]] = {}
        for item in answered:
            in_this_answer.setdefault(item.lead_id, []).append(item.action)
        for item in answered:
            reason = self._conflict(item, in_this_answer[item.lead_id], checked)
            self._claims.setdefault(item.lead_id, []).append((item.index, item.action))
            if reason is None:
                checked.accepted.append(item)
                self._recorded.add(item.index)
            else:
                checked.refused.append((item, reason))
        return checked

    @staticmethod
    def _lead_id(action: Action, record: LeadRecord, status: SyncStatus) -> int:
        lead_id = status.lead_id
        if isinstance(lead_id, bool) or not isinstance(lead_id, int) or lead_id <= 0:
            raise ResponseError(f"Marketo answered {status.status} for {action.identity} without a lead ID "
                                f"({lead_id!r}); no answer of this call is recorded")
        if record.lead_id is not None and lead_id != record.lead_id:
            raise ResponseError(f"Marketo answered {_named(action)}, sent as Id {record.lead_id}, with lead ID "
                                f"{lead_id}; an answer that contradicts its request is not trusted for any lead "
                                "of the call, and none is recorded")
        return lead_id

    def _conflict(self, item: Accepted, same_answer: Sequence[Action], checked: CheckedAnswer) -> str | None:
        """Why `item` may not be recorded under its lead ID (None: it may). Takes back earlier claims."""
        me = item.action
        claims = self._claims.get(item.lead_id)
        owner = self._state_owner.get(item.lead_id)
        held_by_other = owner not in (None, me.state_key, me.identity)
        if not claims and len(same_answer) == 1 and not held_by_other:
            return None  # as nearly always: a lead ID given once in this apply, to this lead alone
        earlier = [(i, a) for i, a in claims or () if a.identity != me.identity]
        others = [a for _, a in earlier] + [a for a in same_answer if a.identity != me.identity]
        if not others and not held_by_other:
            return None
        names = list(dict.fromkeys(_named(a) for a in others))
        if held_by_other:
            names.append(f"{owner} (recorded in the state)")
        reason = (f"Marketo gave lead ID {item.lead_id} to {_named(me)} and to {' and '.join(names)}: "
                  "two declarations reach one Marketo lead, so neither is recorded under that ID")
        for index, action in earlier:
            if index in self._recorded:
                self._recorded.discard(index)
                checked.revoke.append((index, action, reason))
        return reason
