"""Drift: what Marketo holds now against what the state last recorded. Pure; no I/O.

A refresh (`reconcile.apply.refresh`) reads every state lead that has a lead ID, and, for the IDs
Marketo no longer knows, the leads holding their emails. From that and the state this module derives
what changed outside reconcile and the state as Marketo has it (`Drift.refreshed`), which the planner
then diffs against the lead files, so apply restores the declared values.

A lead gone from Marketo was deleted or merged away. Marketo keeps no forwarding address for a merged
lead, but the merge winner keeps (or takes) its email: a lead that holds the same email is where it
went. When none does, the state forgets it, so a declared lead is planned as a create — never silently:
the drift report says which, and why.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Mapping, Sequence

from reconcile.core.membership_drift import MembershipDrift
from reconcile.core.model import AttributeValue, Lead, State, StateLead
from reconcile.errors import InputError, InputErrors

EMAIL = "email"  # the lead's email, compared like a managed attribute (it is the key of email leads)


@dataclass(frozen=True, slots=True)
class MarketoLead:
    """One lead as Marketo answered it: the managed fields in lead-file names, values as text. Every
    field that was asked for is here (null when Marketo left it out of its answer); a field that is
    absent was not read (REST does not know it), so its value is unknown."""

    lead_id: int
    email: str | None
    attributes: Mapping[str, AttributeValue]


@dataclass(frozen=True)
class Observed:
    """What a refresh read: leads by the IDs asked (absent: Marketo has no such lead), and the leads
    holding each email of a missing lead (lower-cased email → leads, lowest ID first)."""

    by_id: Mapping[int, MarketoLead]
    by_email: Mapping[str, Sequence[MarketoLead]] = dataclasses.field(default_factory=dict)
    numeric: frozenset[str] = frozenset()  # fields Marketo keeps as numbers (Describe's data types)


@dataclass(frozen=True, slots=True)
class AttributeDrift:
    name: str
    recorded: AttributeValue  # what the state says reconcile last sent
    current: AttributeValue  # what Marketo holds now


@dataclass(frozen=True, slots=True)
class LeadDrift:
    """One state lead that Marketo no longer holds as the state recorded it."""

    state_key: str
    lead_id: int  # the ID the state knew
    changes: tuple[AttributeDrift, ...] = ()
    merged_into: int | None = None  # gone; the lead with its email now holds it
    deleted: bool = False  # gone, and no lead holds its email: the state forgets it

    @property
    def current_lead_id(self) -> int | None:
        if self.deleted:
            return None
        return self.merged_into if self.merged_into is not None else self.lead_id


@dataclass(frozen=True)
class Drift:
    leads: tuple[LeadDrift, ...]  # by state key
    refreshed: State  # the state as Marketo has it (same lineage and serial as the one refreshed)
    read: int  # state leads that were read (those with a lead ID)
    missing_ids: frozenset[int] = frozenset()  # lead IDs read that Marketo no longer has (deleted or merged)
    memberships: tuple[MembershipDrift, ...] = ()  # static list memberships changed in Marketo

    @property
    def has_drift(self) -> bool:
        return bool(self.leads or self.memberships)

    def changed_in_marketo(self) -> set[tuple[str, str]]:
        """(state key, attribute name) of every value Marketo changed."""
        return {(lead.state_key, change.name) for lead in self.leads for change in lead.changes}

    def by_key(self) -> dict[str, LeadDrift]:
        return {lead.state_key: lead for lead in self.leads}


def check_declared_ids_exist(desired: Sequence[Lead], drift: Drift) -> None:
    """Raise InputErrors at each lead whose declared `leadId` Marketo no longer has."""
    errors = gone_declarations(desired, drift)
    if errors:
        raise InputErrors(errors)


def gone_declarations(desired: Sequence[Lead], drift: Drift) -> list[InputError]:
    """A lead file's `leadId` that Marketo no longer has: an apply would fail on it (1004 Lead not
    found), so it is an input error at plan time, at the lead's place, saying what to do."""
    merged = {lead.lead_id: lead.merged_into for lead in drift.leads if lead.merged_into is not None}
    errors = []
    for lead in desired:
        if lead.lead_id is None or lead.lead_id not in drift.missing_ids:
            continue
        winner = merged.get(lead.lead_id)
        remedy = (f"Marketo merged it into lead {winner}: declare `leadId: {winner}` instead" if winner is not None
                  else "it was deleted or merged away; remove `leadId: "
                       f"{lead.lead_id}` from this lead (with an email, it is then created again) or remove the lead")
        errors.append(InputError(f"leadId {lead.lead_id} is not in Marketo: {remedy}", lead.location))
    return errors


def marketo_text(value: Any) -> AttributeValue:
    """A JSON value of a Get Leads answer as lead-file text: Marketo answers numbers and booleans as
    JSON (`42`, `1500.5`, `false`), a lead file holds them as text a person writes (`1000`, never
    `1000.0` or `1e3`)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return number_text(value)
    return value if isinstance(value, str) else str(value)


def number_text(value: float) -> str:
    """A finite float in plain decimal notation, without exponent or trailing zeros (`1e3` → `1000`)."""
    text = format(Decimal(repr(value)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def same_value(recorded: AttributeValue, current: AttributeValue, numeric: bool = False) -> bool:
    """Whether Marketo still holds what was recorded: a cleared field reads back as null or "", and a
    number field gives back its number, not the text sent (`1.50` → 1.5)."""
    if (recorded or None) is None or (current or None) is None:
        return (recorded or None) is None and (current or None) is None
    if recorded == current:
        return True
    if not numeric:
        return False
    try:
        return float(recorded) == float(current)
    except ValueError:
        return False


def compute_drift(state: State, observed: Observed) -> Drift:
    """The drift of every state lead with a lead ID, and the state as Marketo has it."""
    drifts: list[LeadDrift] = []
    leads: dict[str, StateLead] = dict(state.leads)
    read = 0
    for key in sorted(state.leads):
        record = state.leads[key]
        if record.lead_id is None:
            continue
        read += 1
        drift, refreshed = _lead_drift(key, record, observed)
        if drift is not None:
            drifts.append(drift)
        if refreshed is None:
            del leads[key]
        else:
            leads[key] = refreshed
    return Drift(leads=tuple(drifts), refreshed=dataclasses.replace(state, leads=leads), read=read)


def _lead_drift(key: str, record: StateLead, observed: Observed) -> tuple[LeadDrift | None, StateLead | None]:
    assert record.lead_id is not None
    current = observed.by_id.get(record.lead_id)
    merged_into = None
    if current is None:
        holders = observed.by_email.get(record.email.lower(), ()) if record.email else ()
        if not holders:
            return LeadDrift(state_key=key, lead_id=record.lead_id, deleted=True), None
        current = min(holders, key=lambda lead: lead.lead_id)
        merged_into = current.lead_id
    changes = tuple(_changes(record, current, observed.numeric))
    refreshed = dataclasses.replace(
        record, lead_id=current.lead_id, email=current.email if current.email is not None else record.email,
        attributes={name: (current.attributes[name] if name in current.attributes else value)
                    for name, value in record.attributes.items()})
    if not changes and merged_into is None:
        return None, refreshed
    return LeadDrift(state_key=key, lead_id=record.lead_id, changes=changes, merged_into=merged_into), refreshed


def _changes(record: StateLead, current: MarketoLead, numeric: frozenset[str]) -> list[AttributeDrift]:
    changes = []
    if record.email is not None and current.email is not None and record.email.lower() != current.email.lower():
        changes.append(AttributeDrift(EMAIL, record.email, current.email))
    for name in sorted(record.attributes):
        if name in current.attributes and not same_value(record.attributes[name], current.attributes[name],
                                                         name in numeric):
            changes.append(AttributeDrift(name, record.attributes[name], current.attributes[name]))
    return changes
