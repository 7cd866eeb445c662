"""The emulated lead database and syncMultipleLeads' record-by-record semantics.

Rules (Marketo's, from the syncMultipleLeads/syncLead documentation), applied to each record in
order, each call atomically (all records see the effects of the ones before them; the call is
persisted as a whole before it is answered, or rolled back as a whole):

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

import bisect
import json
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

from reconcile.core.clock import iso_utc
from reconcile.store.fs import write_atomic

CREATED = "CREATED"
UPDATED = "UPDATED"
FAILED = "FAILED"
DEFAULT_FOREIGN_SYS_TYPE = "CUSTOM"
DB_FORMAT_VERSION = 1

ERR_KEY_REQUIRED = "20101 - Lead Key Required"
ERR_KEY_BAD = "20102 - Lead Key Bad"
ERR_NOT_FOUND = "20103 - Lead Not Found"
ERR_ATTRIBUTE_BAD = "20105 - Lead Attribute Bad"


class RecordLike(Protocol):
    """What the store needs of a request record (soap.LeadRecord has it)."""

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


class StoreError(Exception):
    """The database file cannot be read or written."""


def _blank_to_none(value: str | None) -> str | None:
    if value is None:
        return None
    return value if value.strip() else None


class _Undo:
    def __init__(self, next_id: int):
        self.next_id = next_id
        self.originals: dict[int, dict[str, Any] | None] = {}  # None: created by this call

    @property
    def changed(self) -> bool:
        return bool(self.originals)


class LeadStore:
    def __init__(self, *, fields: frozenset[str], first_lead_id: int = 1_000_001,
                 path: Path | None = None, now: Callable[[], datetime] | None = None):
        self._fields = fields
        self._first_id = first_lead_id
        self._path = path
        self._now = now or (lambda: datetime.now(timezone.utc))
        self._lock = threading.Lock()
        self._leads: dict[int, dict[str, Any]] = {}
        self._by_fsp: dict[tuple[str, str], int] = {}
        self._by_email: dict[str, list[int]] = {}
        self._next_id = first_lead_id
        if path is not None:
            self._load(path)

    # -- reading ------------------------------------------------------------------------------------

    def leads(self) -> list[dict[str, Any]]:
        """A deep snapshot of the database, sorted by lead id."""
        with self._lock:
            return [_copy(self._leads[i]) for i in sorted(self._leads)]

    def __len__(self) -> int:
        with self._lock:
            return len(self._leads)

    # -- syncMultipleLeads --------------------------------------------------------------------------

    def sync(self, records: Iterable[RecordLike], dedup_enabled: bool | None) -> list[Outcome]:
        """Apply one call's records in order, persist, and return one outcome per record.

        Raises StoreError (with nothing applied) when the database file cannot be written.
        """
        with self._lock:
            undo = _Undo(self._next_id)
            stamp = iso_utc(self._now())
            try:
                outcomes = [self._sync_one(r, dedup_enabled, stamp, undo) for r in records]
                if undo.changed and self._path is not None:
                    self._save(self._path)
            except BaseException:
                self._rollback(undo)
                raise
            return outcomes

    def _sync_one(self, record: RecordLike, dedup_enabled: bool | None, stamp: str,
                  undo: _Undo) -> Outcome:
        lead_id = record.lead_id
        email = _blank_to_none(record.email)
        fsp = _blank_to_none(record.foreign_sys_person_id)
        fsp_type = (record.foreign_sys_type or DEFAULT_FOREIGN_SYS_TYPE) if fsp is not None else None
        attributes = tuple(record.attributes or ())

        # Resolve the target lead by key precedence: Id > ForeignSysPersonId(+Type) > Email.
        target: dict[str, Any] | None
        if lead_id is not None:
            target = self._leads.get(lead_id)
            if target is None:
                return Outcome(lead_id, FAILED, ERR_NOT_FOUND)
        elif fsp is not None:
            owner = self._by_fsp.get((fsp_type, fsp))
            target = self._leads[owner] if owner is not None else None
        elif email is not None:
            target = None
            if dedup_enabled is not False:
                matches = self._by_email.get(email.lower())
                if matches:
                    target = self._leads[matches[0]]
        else:
            return Outcome(0, FAILED, ERR_KEY_REQUIRED)
        target_id = target["id"] if target is not None else 0

        for name, _value in attributes:
            if name not in self._fields and name != "Email":
                return Outcome(target_id, FAILED, f"{ERR_ATTRIBUTE_BAD}: {name}")
        if lead_id is not None and fsp is not None:
            owner = self._by_fsp.get((fsp_type, fsp))
            if owner is not None and owner != target_id:
                return Outcome(target_id, FAILED, f"{ERR_KEY_BAD}: ForeignSysPersonId already in use")

        if target is None:
            new_id = self._next_id
            self._next_id += 1
            target = {"id": new_id, "email": None, "foreignSysPersonId": None, "foreignSysType": None,
                      "attributes": {}, "createdAt": stamp, "updatedAt": stamp}
            self._leads[new_id] = target
            undo.originals[new_id] = None
            self._set_email(target, email)
            self._set_fsp(target, fsp, fsp_type)
            status = CREATED
        else:
            if target["id"] not in undo.originals:
                undo.originals[target["id"]] = _copy(target)
            if lead_id is not None and fsp is not None:
                self._set_fsp(target, fsp, fsp_type)
            status = UPDATED

        for name, value in attributes:
            value = value if value else None  # an empty attrValue clears the field
            if name == "Email":
                self._set_email(target, value)
            else:
                target["attributes"][name] = value
        target["updatedAt"] = stamp
        return Outcome(target["id"], status, None)

    # -- indices ------------------------------------------------------------------------------------

    def _set_email(self, lead: dict[str, Any], email: str | None) -> None:
        old = lead["email"]
        if old is not None:
            ids = self._by_email.get(old.lower())
            if ids is not None:
                position = bisect.bisect_left(ids, lead["id"])
                if position < len(ids) and ids[position] == lead["id"]:
                    del ids[position]
                if not ids:
                    del self._by_email[old.lower()]
        lead["email"] = email
        if email is not None:
            bisect.insort(self._by_email.setdefault(email.lower(), []), lead["id"])

    def _set_fsp(self, lead: dict[str, Any], fsp: str | None, fsp_type: str | None) -> None:
        old = (lead["foreignSysType"], lead["foreignSysPersonId"])
        if old[1] is not None and self._by_fsp.get(old) == lead["id"]:
            del self._by_fsp[old]
        lead["foreignSysPersonId"], lead["foreignSysType"] = fsp, fsp_type
        if fsp is not None:
            self._by_fsp[(fsp_type, fsp)] = lead["id"]

    def _reindex(self) -> None:
        self._by_fsp.clear()
        self._by_email.clear()
        for lead_id in sorted(self._leads):
            lead = self._leads[lead_id]
            if lead["foreignSysPersonId"] is not None:
                self._by_fsp[(lead["foreignSysType"], lead["foreignSysPersonId"])] = lead_id
            if lead["email"] is not None:
                self._by_email.setdefault(lead["email"].lower(), []).append(lead_id)

    def _rollback(self, undo: _Undo) -> None:
        for lead_id, original in undo.originals.items():
            if original is None:
                self._leads.pop(lead_id, None)
            else:
                self._leads[lead_id] = original
        self._next_id = undo.next_id
        self._reindex()

    # -- persistence --------------------------------------------------------------------------------

    def _load(self, path: Path) -> None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StoreError(f"cannot read emulator database {path}: {exc}") from exc
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("format_version") != DB_FORMAT_VERSION:
                raise ValueError(f"not a format_version {DB_FORMAT_VERSION} emulator database")
            leads = {}
            for raw in data["leads"]:
                lead = _validated(raw)
                if lead["id"] in leads:
                    raise ValueError(f"lead id {lead['id']} appears twice")
                leads[lead["id"]] = lead
            next_id = int(data.get("next_id", 0))
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"emulator database {path} is corrupt: {exc}") from exc
        self._leads = leads
        self._next_id = max([next_id, self._first_id, *(i + 1 for i in leads)])
        self._reindex()

    def _save(self, path: Path) -> None:
        document = {"format_version": DB_FORMAT_VERSION, "next_id": self._next_id,
                    "leads": [self._leads[i] for i in sorted(self._leads)]}
        payload = json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
        try:
            write_atomic(path, payload.encode("utf-8"))
        except OSError as exc:
            raise StoreError(f"cannot write emulator database {path}: {exc}") from exc


def _copy(lead: dict[str, Any]) -> dict[str, Any]:
    copied = dict(lead)
    copied["attributes"] = dict(lead["attributes"])
    return copied


def _validated(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ValueError("a lead is not an object")
    lead_id = raw["id"]
    if not isinstance(lead_id, int) or isinstance(lead_id, bool) or lead_id < 1:
        raise ValueError(f"bad lead id {lead_id!r}")
    lead = {"id": lead_id}
    for key in ("email", "foreignSysPersonId", "foreignSysType", "createdAt", "updatedAt"):
        value = raw.get(key)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"lead {lead_id}: {key} is not a string")
        lead[key] = value
    attributes = raw.get("attributes") or {}
    if not isinstance(attributes, dict) or not all(
        isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in attributes.items()
    ):
        raise ValueError(f"lead {lead_id}: attributes must map names to strings or null")
    lead["attributes"] = dict(attributes)
    return lead


# An instance as a new user meets it: one lead that already exists in "Marketo", so the example
# lead files can show adopting a lead by its Marketo ID (leads/adopted.yaml).
DEMO_LEADS: tuple[dict[str, Any], ...] = (
    {"id": 1090238, "email": "legacy.lead@example.com", "foreignSysPersonId": None, "foreignSysType": None,
     "attributes": {"FirstName": "Lee", "LastName": "Gacy", "Title": "Partnerships"},
     "createdAt": "2013-08-01T18:22:30-07:00", "updatedAt": "2013-08-01T18:22:30-07:00"},
)


def create_database(path: Path, leads: Iterable[dict[str, Any]] = DEMO_LEADS,
                    first_lead_id: int = 1_000_001) -> bool:
    """Create an emulator database holding `leads`, unless one exists. True if it was created."""
    if path.exists():
        return False
    store = LeadStore(fields=frozenset(), first_lead_id=first_lead_id)
    store._leads = {lead["id"]: _validated(lead) for lead in leads}
    store._next_id = max([first_lead_id, *(i + 1 for i in store._leads)])
    store._save(path)
    return True
