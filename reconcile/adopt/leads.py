"""Marketo's Get Leads rows as the leads of an imported lead file.

Field names come out in lead-file form (the SOAP names Describe gives); values as exact text, as
Marketo holds them. Real Marketo answers typed JSON (numbers, booleans) and leaves out fields that
are empty, so an absent field reads as empty; numbers are written in plain decimal notation
(`1000`, not `1000.0` or `1e3`) and booleans as `true`/`false`, which is how a lead file sends them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from reconcile.adopt.request import MAX_LEAD_ID, ImportRequest
from reconcile.adopt.yamlout import LeadEntry
from reconcile.core.drift import marketo_text
from reconcile.core.safetext import visible
from reconcile.errors import UsageError

# The standard person fields: what an import reads when --fields is not given (those of them the
# instance has and lets a lead file set).
DEFAULT_FIELDS = ("Salutation", "FirstName", "MiddleName", "LastName", "Title", "Department", "Company", "Phone",
                  "MobilePhone", "Address", "City", "State", "PostalCode", "Country")
EMAIL_FIELD = "email"  # REST name of the lead's email: a key of the lead file, not an attribute

# What the lead-file schema lets an attribute value and an email hold (schemas/leads.schema.json),
# and no lone surrogate (JSON can escape one; no UTF-8 file holds it).
_NOT_XML_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_NOT_KEY_TEXT = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")


@dataclass(frozen=True)
class FieldChoice:
    """The fields an import reads: lead-file name -> REST name, in the order the file lists them."""

    names: Mapping[str, str]
    explicit: bool  # named with --fields: written even when empty (`null`, managed as empty)

    @property
    def rest_fields(self) -> list[str]:
        return [EMAIL_FIELD, *self.names.values()]


def choose_fields(catalog: Any, asked: Sequence[str] | None) -> FieldChoice:
    """--fields (lead-file or REST names) checked against the instance's fields, or the default."""
    if asked is None:
        names = {name: catalog.fields[name].rest_name for name in DEFAULT_FIELDS
                 if name in catalog.fields and catalog.fields[name].rest_name and not catalog.fields[name].read_only}
        return FieldChoice(names, explicit=False)
    by_rest = {spec.rest_name: spec for spec in catalog.fields.values() if spec.rest_name}
    names: dict[str, str] = {}
    for name in asked:
        spec = catalog.fields.get(name) or by_rest.get(name)
        if spec is None:
            hint = catalog.suggestion(name)
            raise UsageError(f"--fields: {name!r} is not a lead field of {catalog.instance or 'the instance'}"
                             + (f"; did you mean {hint!r}?" if hint else "") + " (see `reconcile fields`)")
        if spec.rest_name == EMAIL_FIELD:
            continue  # always read: it is the lead file's `email`
        if spec.read_only or spec.rest_name is None:
            raise UsageError(f"--fields: {spec.name!r} is read-only in Marketo; a lead file cannot set it")
        names.setdefault(spec.name, spec.rest_name)
    return FieldChoice(names, explicit=True)


@dataclass(frozen=True)
class Adopted:
    entries: tuple[LeadEntry, ...]  # by lead ID
    missing_ids: tuple[int, ...]
    missing_emails: tuple[str, ...]
    problems: tuple[str, ...]  # values left out of the file, one line each


def entries_of(rows: Iterable[Mapping[str, Any]], choice: FieldChoice) -> tuple[list[LeadEntry], list[str]]:
    """The leads of one Get Leads answer, and a line for each value left out of the file."""
    entries: list[LeadEntry] = []
    problems: list[str] = []
    for row in rows:
        lead_id = row.get("id")
        if isinstance(lead_id, bool) or not isinstance(lead_id, int) or not 1 <= lead_id <= MAX_LEAD_ID:
            problems.append(f"Marketo answered a lead with the ID {visible(str(lead_id)[:40])}; it is left out")
        else:
            entries.append(_entry(lead_id, row, choice, problems))
    return entries, problems


def adopt(answers: Iterable[tuple[Sequence[LeadEntry], Sequence[str]]], request: ImportRequest) -> Adopted:
    """Every call's leads, each lead once (asked by ID and by email, it is read twice), by lead ID."""
    entries: dict[int, LeadEntry] = {}
    problems: list[str] = []
    asked_ids, asked_emails = set(request.ids), {email.lower() for email in request.emails}
    unasked = 0
    for found, left_out in answers:
        problems.extend(left_out)
        for entry in found:
            if entry.lead_id in asked_ids or (entry.email is not None and entry.email.lower() in asked_emails):
                entries.setdefault(entry.lead_id, entry)
            else:
                unasked += 1
    if unasked:
        problems.append(f"Marketo answered {unasked} lead(s) that were not asked for; they are left out")
    found_emails = {entry.email.lower() for entry in entries.values() if entry.email is not None}
    return Adopted(entries=tuple(entries[key] for key in sorted(entries)),
                   missing_ids=tuple(lead_id for lead_id in request.ids if lead_id not in entries),
                   missing_emails=tuple(email for email in request.emails if email.lower() not in found_emails),
                   problems=tuple(problems))


def _entry(lead_id: int, row: Mapping[str, Any], choice: FieldChoice, problems: list[str]) -> LeadEntry:
    email = row.get(EMAIL_FIELD)
    if email is not None and not (isinstance(email, str) and len(email) <= 255 and _EMAIL.fullmatch(email)
                                  and not _NOT_KEY_TEXT.search(email)):
        problems.append(f"lead {lead_id}: its email {visible(str(email)[:80])!r} is not one a lead file can hold; "
                        "the file leaves it out (not managed)")
        email = None
    attributes: dict[str, str | None] = {}
    for name, rest_name in choice.names.items():
        value, problem = text_of(row.get(rest_name))
        if problem is not None:
            problems.append(f"lead {lead_id}: {name} {problem}; the file leaves it out (not managed)")
        elif value is not None or choice.explicit:
            attributes[name] = value
    return LeadEntry(lead_id=lead_id, email=email, attributes=attributes)


def text_of(value: Any) -> tuple[str | None, str | None]:
    """(the value as a lead file writes it, None) or (None, why it cannot be written)."""
    if value is None or isinstance(value, str):
        if value is not None and _NOT_XML_TEXT.search(value):
            return None, "holds control characters or lone surrogates that no lead file (nor SOAP) can carry"
        return value, None
    if isinstance(value, float) and not math.isfinite(value):
        return None, "is not a finite number"
    if isinstance(value, (bool, int, float)):
        return marketo_text(value), None  # the text refresh reads back, so import then plan is empty
    return None, f"is a {type(value).__name__}, not a single value"
