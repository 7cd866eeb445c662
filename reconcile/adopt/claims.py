"""Refusing to import a lead that is already declared: one Marketo lead, declared once.

A lead is declared elsewhere when a lead file (other than the one the import replaces) declares its
lead ID, declares a key the state records for it, or declares its email with no lead ID known yet
(apply would find it by that email). Pure: lead files and state in, errors and state records out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping, Sequence

from reconcile.adopt.yamlout import LeadEntry
from reconcile.core.model import Lead, State, StateLead, identity_of
from reconcile.core.planner import match_state
from reconcile.errors import InputError, InputErrors


class Claims:
    """Which Marketo leads the lead files outside `replaced` already declare, and where."""

    def __init__(self, desired: Sequence[Lead], state: State, replaced: Path):
        target = replaced.resolve()
        replacing = {name for name in {lead.location.file for lead in desired} if Path(name).resolve() == target}
        self._state = state
        self._kept = [lead for lead in desired if lead.location.file not in replacing]
        self.replaced = [lead for lead in desired if lead.location.file in replacing]
        matched = match_state(self._kept, state)
        self._claimed_keys = set(matched.values())
        self._by_id: dict[int, tuple[Lead, str]] = {}
        self._by_email: dict[str, Lead] = {}
        for lead in self._kept:
            if lead.lead_id is not None:
                self._by_id.setdefault(lead.lead_id, (lead, "its leadId"))
                continue
            key = matched.get(lead.identity)
            recorded = state.leads[key].lead_id if key is not None else None
            if recorded is not None:
                self._by_id.setdefault(recorded, (lead, f"the state records {key} as lead {recorded}"))
            elif lead.email is not None:
                self._by_email.setdefault(lead.email.lower(), lead)

    def check(self, ids: Iterable[int] = (), emails: Iterable[str] = (),
              found: Iterable[LeadEntry] = ()) -> None:
        """InputErrors (exit 3) naming the place of every asked or found lead already declared."""
        errors: dict[tuple[str, int | None, str], InputError] = {}
        for lead_id in ids:
            self._check_id(lead_id, errors)
        for email in emails:
            self._check_email(email, None, errors)
        for entry in found:
            self._check_id(entry.lead_id, errors)
            if entry.email is not None:
                self._check_email(entry.email, entry.lead_id, errors)
        if errors:
            raise InputErrors(list(errors.values()))

    def _check_id(self, lead_id: int, errors: dict) -> None:
        claim = self._by_id.get(lead_id)
        if claim is not None:
            lead, reason = claim
            error = InputError(f"Marketo lead {lead_id} is already declared here as {lead.identity} ({reason}); "
                               "import declares each lead once: leave this lead out of the import, or remove "
                               "this declaration first", lead.location)
            errors.setdefault((lead.location.file, lead.location.line, lead.identity), error)

    def _check_email(self, email: str, lead_id: int | None, errors: dict) -> None:
        lead = self._by_email.get(email.lower())
        if lead is not None:
            which = f"Marketo lead {lead_id}" if lead_id is not None else f"the lead with email {email}"
            error = InputError(f"{which} is already declared here by its email, as {lead.identity} (apply finds "
                               "it by that email); import declares each lead once: leave this lead out of the "
                               "import, or remove this declaration first", lead.location)
            errors.setdefault((lead.location.file, lead.location.line, lead.identity), error)

    def leads_after(self, entries: Iterable[LeadEntry], synced_at: str,
                    lists: Mapping[int, Mapping[str, int]] | None = None) -> dict[str, StateLead]:
        """The state's leads with the imported ones recorded under `id:<leadId>`, replacing any record
        of the same lead that no kept declaration holds (an orphan, or one of the replaced file);
        `lists`: their static list memberships (import --lists)."""
        entries = list(entries)
        imported = {entry.lead_id for entry in entries}
        leads: dict[str, StateLead] = {
            key: record for key, record in self._state.leads.items()
            if record.lead_id not in imported or key in self._claimed_keys}
        for entry in entries:
            leads[identity_of(entry.lead_id, None, None, None)] = StateLead(
                lead_id=entry.lead_id, email=entry.email, foreign_sys_person_id=None, foreign_sys_type=None,
                attributes=dict(entry.attributes), synced_at=synced_at,
                lists=dict(sorted((lists or {}).get(entry.lead_id, {}).items())))
        return leads

    def no_longer_declared(self, entries: Iterable[LeadEntry]) -> list[Lead]:
        """Leads of the replaced file that the new one does not declare again."""
        imported = {identity_of(entry.lead_id, None, None, None) for entry in entries}
        return [lead for lead in self.replaced if lead.identity not in imported]


