"""syncMultipleLeads' record-by-record semantics, applied to one database transaction.

Rules (Marketo's, from the syncMultipleLeads/syncLead documentation), for each record in order:

1. No `Id`, no `ForeignSysPersonId`, no `Email` -> FAILED "20101 - Lead Key Required" (leadId 0).
2. `Id` present: it takes precedence. The lead must exist, else FAILED "20103 - Lead Not Found"
   (leadId = the requested Id). The lead's ForeignSysPersonId/Type is set when given (a foreign ID
   that already belongs to another lead -> FAILED "20102 - Lead Key Bad"). The `Email` element is a
   key here, not an update: the email changes only through an `Email` attribute.
3. No `Id`, `ForeignSysPersonId` (+ `ForeignSysType`, default CUSTOM) present: a unique key. Update
   the lead holding it, or create one (the `Email` element then sets the new lead's email). As with
   `Id`, the `Email` element never changes an existing lead's email.
4. Only `Email`: with `dedupEnabled` true or absent, update the lowest-id lead whose email matches
   case-insensitively, else create; with `dedupEnabled` false, always create (duplicates).
5. Any attribute name outside the configured fields (case-sensitive API names) -> the whole record
   FAILED "20105 - Lead Attribute Bad: <name>" (leadId of the target, or 0); nothing of it applied.
6. Attributes: an empty `attrValue` clears the field (stored as null); an `Email` attribute sets the
   lead's email (empty clears it). New lead IDs are increasing integers from `first_lead_id`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Protocol

from reconcile.core.records import CREATED, FAILED, UPDATED
from reconcile.remote.soap import codes

DEFAULT_FOREIGN_SYS_TYPE = "CUSTOM"


def _error(code: str, detail: str | None = None) -> str:
    text = f"{code} - {codes.message(code)}"
    return f"{text}: {detail}" if detail else text


class RecordLike(Protocol):
    """What the rules need of a request record (core.records.LeadRecord has it)."""

    lead_id: int | None
    email: str | None
    foreign_sys_person_id: str | None
    foreign_sys_type: str | None
    attributes: tuple[tuple[str, str | None], ...]


@dataclass(frozen=True)
class Outcome:
    lead_id: int
    status: str
    error: str | None = None


def _blank_to_none(value: str | None) -> str | None:
    if value is None:
        return None
    return value if value.strip() else None


def sync(tx: Any, records: Iterable[RecordLike], dedup_enabled: bool | None) -> list[Outcome]:
    """Apply one call's records in order within the transaction `tx`; one outcome per record."""
    return [_sync_one(tx, record, dedup_enabled) for record in records]


def _sync_one(tx: Any, record: RecordLike, dedup_enabled: bool | None) -> Outcome:
    lead_id = record.lead_id
    email = _blank_to_none(record.email)
    fsp = _blank_to_none(record.foreign_sys_person_id)
    fsp_type = (record.foreign_sys_type or DEFAULT_FOREIGN_SYS_TYPE) if fsp is not None else None
    attributes = tuple(record.attributes or ())

    # Resolve the target lead by key precedence: Id > ForeignSysPersonId(+Type) > Email.
    target: dict[str, Any] | None
    if lead_id is not None:
        target = tx.lead(lead_id)
        if target is None:
            return Outcome(lead_id, FAILED, _error(codes.LEAD_NOT_FOUND))
    elif fsp is not None:
        owner = tx.id_by_fsp(fsp_type, fsp)
        target = tx.lead(owner) if owner is not None else None
    elif email is not None:
        target = None
        if dedup_enabled is not False:
            matches = tx.ids_by_email(email)
            if matches:
                target = tx.lead(matches[0])
    else:
        return Outcome(0, FAILED, _error(codes.LEAD_KEY_REQUIRED))
    target_id = target["id"] if target is not None else 0

    for name, _value in attributes:
        if name not in tx.fields and name != "Email":
            return Outcome(target_id, FAILED, _error(codes.LEAD_ATTRIBUTE_BAD, name))
    if lead_id is not None and fsp is not None:
        owner = tx.id_by_fsp(fsp_type, fsp)
        if owner is not None and owner != target_id:
            return Outcome(target_id, FAILED, _error(codes.LEAD_KEY_BAD, "ForeignSysPersonId already in use"))

    if target is None:
        target = tx.create()
        tx.set_email(target, email)
        tx.set_fsp(target, fsp, fsp_type)
        status = CREATED
    else:
        tx.change(target)
        if lead_id is not None and fsp is not None:
            tx.set_fsp(target, fsp, fsp_type)
        status = UPDATED

    for name, value in attributes:
        value = value if value else None  # an empty attrValue clears the field
        if name == "Email":
            tx.set_email(target, value)
        else:
            tx.set_attribute(target, name, value)
    return Outcome(target["id"], status, None)
