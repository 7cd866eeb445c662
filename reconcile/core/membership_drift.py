"""Membership drift: which of the static lists the state records (and the lead files name) Marketo has
the state's leads on now, against what the state recorded. Pure; no I/O.

`plan --refresh` reads the members of each list and plans against the state as Marketo has it, so a
lead taken off a list in Marketo's UI is put back, and one put on a list the lead files name for other
leads is taken off; `apply --refresh-only` records it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Mapping

from reconcile.core.model import State


@dataclass(frozen=True, slots=True)
class MembershipDrift:
    state_key: str
    lead_id: int
    ref: str  # the list as the lead files (or the state) name it
    list_id: int
    member: bool  # True: on the list in Marketo, not recorded; False: recorded, not on it any more


def lists_to_read(state: State, declared: Mapping[str, int]) -> dict[int, str]:
    """Each list to read (by ID) with the name the state or the lead files give it: every list the
    state records a member of, and every list the lead files name (`declared`: name → ID)."""
    found: dict[int, str] = {}
    for lead in state.leads.values():
        for ref, list_id in lead.lists.items():
            found.setdefault(list_id, ref)
    for ref, list_id in declared.items():
        found.setdefault(list_id, ref)
    return found


def membership_drift(state: State, members: Mapping[int, frozenset[int]], names: Mapping[int, str]
                     ) -> tuple[tuple[MembershipDrift, ...], State]:
    """The drift of every state lead with a lead ID in the lists read (`members`: list ID → lead IDs),
    and the state with the memberships Marketo has."""
    drifts: list[MembershipDrift] = []
    leads = dict(state.leads)
    for key in sorted(state.leads):
        record = state.leads[key]
        if record.lead_id is None:
            continue
        recorded = {list_id: ref for ref, list_id in record.lists.items()}
        lists = dict(record.lists)
        for list_id in sorted(members):
            on_list = record.lead_id in members[list_id]
            if on_list == (list_id in recorded):
                continue
            ref = recorded.get(list_id, names[list_id])
            drifts.append(MembershipDrift(key, record.lead_id, ref, list_id, on_list))
            if on_list:
                lists[ref] = list_id
            else:
                del lists[ref]
        if lists != record.lists:
            leads[key] = dataclasses.replace(record, lists=dict(sorted(lists.items())))
    return tuple(drifts), dataclasses.replace(state, leads=leads)


def drift_line(drift: MembershipDrift, quote) -> str:
    if drift.member:
        return (f"~ {drift.state_key} (leadId {drift.lead_id}): on list {quote(drift.ref)} in Marketo, "
                "which the state did not record")
    return f"~ {drift.state_key} (leadId {drift.lead_id}): no longer on list {quote(drift.ref)} in Marketo"
