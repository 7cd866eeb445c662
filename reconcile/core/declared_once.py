"""One Marketo lead, declared once. Pure; checked before planning.

Two declarations with different identities can still be one Marketo lead: a lead the state knows
by its foreign ID (lead 1090241) and another file declaring `leadId: 1090241`; or an email-only
declaration whose address the state records for a lead another declaration keeps by its foreign ID
(Marketo dedups such a record by email onto that lead). Planned as two leads, each apply would
overwrite the other's fields. The state's lead IDs say which Marketo lead each declaration is.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Iterator, Mapping, Sequence

from reconcile.core.model import DEFAULT_FOREIGN_SYS_TYPE, Lead, State, StateLead
from reconcile.core.planner import match_state
from reconcile.errors import InputError, InputErrors


def check_declared_once(desired: Sequence[Lead], state: State) -> None:
    """Raise InputErrors naming both places and the lead ID for each Marketo lead declared twice."""
    errors = declared_twice(desired, state)
    if errors:
        raise InputErrors(errors)


def declared_twice(desired: Sequence[Lead], state: State) -> list[InputError]:
    if _each_known_by_its_own_distinct_record(desired, state.leads):
        return []
    return _declared_twice(desired, state)


def _each_known_by_its_own_distinct_record(desired: Sequence[Lead], records: Mapping[str, StateLead]) -> bool:
    """The common case, decided in bulk: every declaration has a state record under its own identity,
    and no two of those records share a lead ID."""
    found = list(map(records.get, map(attrgetter("identity"), desired)))
    if None in found:
        return False
    lead_ids = list(map(attrgetter("lead_id"), found))
    distinct = set(lead_ids)
    distinct.discard(None)
    return len(distinct) == len(lead_ids) - lead_ids.count(None)


def _declared_twice(desired: Sequence[Lead], state: State) -> list[InputError]:
    records = state.leads
    first_claims: dict[int, Lead] = {}
    later_claims: dict[int, list[tuple[Lead, str | None]]] = {}  # only where a lead ID is claimed again
    keys: dict[tuple[int, int], str] = {}  # (id(lead), lead ID) -> state key, for leads without their own
    pending: list[Lead] = []

    get_record, claim_first = records.get, first_claims.setdefault
    for lead in desired:
        lead_id = lead.lead_id
        if lead_id is None:
            record = get_record(lead.identity)
            if record is None:
                pending.append(lead)
                continue
            lead_id = record.lead_id
            if lead_id is None:
                continue
        if claim_first(lead_id, lead) is not lead:
            later_claims.setdefault(lead_id, []).append((lead, _own_key(lead)))
    if pending and records:  # with no records (a first apply), only a declared leadId names a lead
        resolver = _Resolver(desired, records, match_state(desired, state))
        for lead in pending:
            for lead_id, key in resolver.marketo_ids(lead):
                keys[(id(lead), lead_id)] = key
                if claim_first(lead_id, lead) is not lead:
                    later_claims.setdefault(lead_id, []).append((lead, key))
    errors: list[InputError] = []
    reported: set[int] = set()
    for lead_id in sorted(later_claims):
        first = first_claims[lead_id]
        claims = [(first, keys.get((id(first), lead_id), _own_key(first))), *later_claims[lead_id]]
        unique = list({id(lead): (lead, key) for lead, key in reversed(claims)}.values())
        unique.sort(key=lambda claim: (claim[0].location.file, claim[0].location.line or 0))
        (first, first_key), rest = unique[0], unique[1:]
        for lead, key in rest:
            if id(lead) in reported:
                continue
            reported.add(id(lead))
            errors.append(InputError(
                f"Marketo lead {lead_id} is declared twice: as {lead.identity} here ({_reason(lead_id, key)}) and "
                f"as {first.identity} at {first.location} ({_reason(lead_id, first_key)}); declare each Marketo "
                "lead once", lead.location))
    return errors


def _own_key(lead: Lead) -> str | None:
    """The state key that gives a lead its ID when it has a record of its own; None for a declared leadId."""
    return None if lead.lead_id is not None else lead.identity


def _reason(lead_id: int, key: str | None) -> str:
    return "its leadId" if key is None else f"the state records {key} as lead {lead_id}"


class _Resolver:
    """Which Marketo lead IDs a declaration resolves to, through its own key and the state."""

    def __init__(self, desired: Sequence[Lead], leads: Mapping[str, StateLead], matched: Mapping[str, str]):
        self.leads = leads
        self.matched = matched
        self.claimed_by = {key: identity for identity, key in matched.items()}
        self.declared = {lead.identity: lead for lead in desired}
        self._by_email: dict[str, list[str]] | None = None
        self._by_foreign: dict[tuple[str, str], list[str]] | None = None

    def marketo_ids(self, lead: Lead) -> Iterator[tuple[int, str]]:
        """(lead ID, the state key that gives it) for a declaration with no leadId and no record of its own."""
        key = self.matched.get(lead.identity)
        if key is not None and self.leads[key].lead_id is not None:
            yield self.leads[key].lead_id, key
        for other in self._same_key(lead):
            if other != key and self.leads[other].lead_id is not None and not self._moves_away(lead, other):
                yield self.leads[other].lead_id, other

    def _same_key(self, lead: Lead) -> list[str]:
        """State records Marketo would match this declaration to: by foreign ID if it has one (unique in
        Marketo), else by email (what dedup matches on)."""
        if lead.foreign_sys_person_id is not None:
            if self._by_foreign is None:
                self._by_foreign = {}
                for key, record in self.leads.items():
                    if record.foreign_sys_person_id is not None:
                        foreign = (record.foreign_sys_type or DEFAULT_FOREIGN_SYS_TYPE, record.foreign_sys_person_id)
                        self._by_foreign.setdefault(foreign, []).append(key)
            return sorted(self._by_foreign.get((lead.effective_foreign_sys_type, lead.foreign_sys_person_id), []))
        if lead.email is None:
            return []
        if self._by_email is None:
            self._by_email = {}
            for key, record in self.leads.items():
                if record.email is not None:
                    self._by_email.setdefault(record.email.lower(), []).append(key)
        return sorted(self._by_email.get(lead.email.lower(), []))

    def _moves_away(self, lead: Lead, key: str) -> bool:
        """Whether the declaration holding state record `key` gives that lead another email, so this
        email no longer finds it."""
        holder = self.declared.get(self.claimed_by.get(key, ""))
        return (lead.foreign_sys_person_id is None and holder is not None and holder.email is not None
                and lead.email is not None and holder.email.lower() != lead.email.lower())
