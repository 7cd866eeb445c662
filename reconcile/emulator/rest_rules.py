"""Sync Leads' record-by-record semantics (`POST /rest/v1/leads.json`), on one database transaction.

From Marketo's REST documentation (../shared/marketo-rest-facts.md, "Sync Leads" and the record-level
codes). Each record of `input`, in order, ends `created` or `updated` with its lead id, or `skipped`
with reasons; a skipped record changes nothing:

- not an object -> 1003. A field name the instance does not have -> 1006 "Field 'x' not found";
  a read-only field (createdAt, updatedAt, or `id` when it is not the lookup field) -> 1003.
  A value that is not a scalar, or not one its field's data type takes (see `values`) -> 1001.
- `lookupField: id` with an action other than updateOnly -> 1003 (id is system-managed).
- no value for the lookup field (all actions but createDuplicate) -> 1002.
- a lookup value already seen in this call (emails compared case-insensitively) -> 1036.
- createOrUpdate: update the one lead that matches, or create one; several match -> 1007
  "Multiple leads match the lookup criteria".
  createOnly: create, or 1005 when a lead matches. updateOnly: update the one lead that matches,
  1004 when none does, 1007 when several do. createDuplicate: always create.
- `partitionName` (createOnly / createOrUpdate): a name that is not one of the instance's
  partitions -> 1008 "Access denied to partition"; an empty one -> 1009 "Partition name must be
  specified"; a match in another partition -> 1010 "Partition update not allowed" (the codes of
  Marketo's documentation; which partition errors are 1009 and 1010 is this emulator's reading).
- A null or empty value clears the field. Values are stored as text, exactly as sent (a JSON
  number or boolean as its JSON text), under the field's SOAP name (see `fields`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from reconcile.emulator.config import DEFAULT_PARTITION
from reconcile.emulator.fields import EMAIL, ID, Field, FieldTable
from reconcile.emulator.values import as_text, problem
from reconcile.remote.rest import codes

ACTIONS = ("createOrUpdate", "createOnly", "updateOnly", "createDuplicate")
_INTEGER = re.compile(r"-?[0-9]+\Z")


class Skipped(Exception):
    def __init__(self, code: str, message: str | None = None):
        super().__init__(code)
        self.code = code
        self.message = message or codes.CODES[code].message


@dataclass(frozen=True)
class Partition:
    """The call's `partitionName` (None: not given) and the instance's partitions."""

    name: Any = None
    names: frozenset[str] = frozenset({DEFAULT_PARTITION})

    def refusal(self) -> Skipped | None:
        """Why no record of the call may use the partition named, or None."""
        if self.name is None:
            return None
        if not isinstance(self.name, str) or not self.name.strip():
            return Skipped(codes.PARTITION_NOT_SPECIFIED)
        if self.name not in self.names:
            return Skipped(codes.NO_PARTITION_ACCESS)
        return None


def sync(tx: Any, table: FieldTable, action: str, lookup_field: str, records: list[Any],
         missed: frozenset[str] = frozenset(), partition: Partition = Partition()) -> list[dict]:
    """Apply one Sync Leads call's `input` in order within `tx`; one result entry per record.
    `action` is one of ACTIONS and `lookup_field` a field of `table` (the face checks both). A key
    in `missed` (as `lookup_key` gives it) finds no lead, whatever the database holds now (see
    `races`). New leads go to the partition named (else the default one); a lead of another
    partition is not updated through a named one (1010)."""
    seen: set[str] = set()
    results = []
    refused = partition.refusal()
    for record in records:
        try:
            if refused is not None:
                raise refused
            results.append(_sync_one(tx, table, action, lookup_field, record, seen, missed, partition.name))
        except Skipped as reason:
            results.append({"status": "skipped", "reasons": [{"code": reason.code, "message": reason.message}]})
    return results


def lookup_key(lookup_field: str, raw: Any) -> str | None:
    """A record's lookup value as the rules compare it (emails case-insensitively), or None."""
    if raw is None or isinstance(raw, (dict, list)):
        return None
    text = raw if isinstance(raw, str) else json.dumps(raw)
    if text == "":
        return None
    return text.lower() if lookup_field == EMAIL else text


def _sync_one(tx: Any, table: FieldTable, action: str, lookup_field: str, record: Any,
              seen: set[str], missed: frozenset[str], partition: str | None) -> dict:
    if not isinstance(record, dict):
        raise Skipped(codes.INVALID_DATA, "Invalid data: a lead must be a JSON object")
    if lookup_field == ID and action != "updateOnly":
        raise Skipped(codes.INVALID_DATA, "Invalid data: lookupField 'id' may only be used with updateOnly")
    values = _values(table, record, lookup_field)
    if action == "createDuplicate":
        return _create(tx, values, partition)
    key = values[lookup_field][1] if lookup_field in values else None
    if key is None:
        raise Skipped(codes.MISSING_VALUE, f"Missing value for lookup field '{lookup_field}'")
    normalized = lookup_key(lookup_field, key)
    if normalized in seen:
        raise Skipped(codes.DUPLICATE_IN_INPUT)
    seen.add(normalized)
    matches = [] if normalized in missed else _matches(tx, table.by_rest(lookup_field), key)
    if len(matches) > 1 and action != "createOnly":
        raise Skipped(codes.MULTIPLE_MATCHES)
    if action == "createOnly":
        if matches:
            raise Skipped(codes.LEAD_EXISTS)
        return _create(tx, values, partition)
    if not matches:
        if action == "updateOnly":
            raise Skipped(codes.LEAD_NOT_FOUND)
        return _create(tx, values, partition)
    lead = tx.lead(matches[0])
    if partition is not None and lead["partition"] != partition:
        raise Skipped(codes.PARTITION_UPDATE_NOT_ALLOWED)
    tx.change(lead)
    _write(tx, lead, values, skip=ID)
    return {"id": lead["id"], "status": "updated"}


def _values(table: FieldTable, record: dict, lookup_field: str) -> dict[str, tuple[Field, str | None]]:
    """The record's fields and values as text, by REST name, checked against the field table."""
    values: dict[str, tuple[Field, str | None]] = {}
    by_rest = table.rest_names.get
    for name, raw in record.items():
        field = by_rest(name) if type(name) is str else None
        if field is None:
            raise Skipped(codes.FIELD_NOT_FOUND, f"Field '{str(name)[:100]}' not found")
        if field.read_only and not (name == ID and lookup_field == ID):
            raise Skipped(codes.INVALID_DATA, f"Invalid data: field '{name[:100]}' is read-only")
        # most values are short text for a text field: taken as they are, without `_text`'s checks
        plain = type(raw) is str and raw and field.text_up_to is not None and len(raw) <= field.text_up_to
        values[name] = (field, raw if plain else checked_text(field, raw))
    return values


def checked_text(field: Any, raw: Any) -> str | None:
    """`raw` as the text the database keeps, or Skipped 1001 when its field cannot take it (see `values`)."""
    try:
        text = as_text(raw)
    except ValueError:
        raise Skipped(codes.INVALID_VALUE, f"Invalid value for field '{field.rest_name}': not a scalar") from None
    if text is None:
        return None
    why = problem(field.data_type, field.length, text)
    if why is not None:
        raise Skipped(codes.INVALID_VALUE, f"Invalid value for field '{field.rest_name}' ({field.data_type}: {why})")
    return text


def _matches(tx: Any, field: Field, key: str) -> list[int]:
    if field.rest_name == ID:
        if not _INTEGER.match(key):
            raise Skipped(codes.INVALID_VALUE, "Invalid value for field 'id' (integer)")
        return [int(key)] if tx.lead(int(key)) is not None else []
    if field.rest_name == EMAIL:
        return tx.ids_by_email(key)
    return tx.ids_by_attribute(field.soap_name, key)


def _create(tx: Any, values: dict[str, tuple[Field, str | None]], partition: str | None = None) -> dict:
    lead = tx.create()
    if partition is not None:
        tx.set_partition(lead, partition)
    _write(tx, lead, values)
    return {"id": lead["id"], "status": "created"}


def _write(tx: Any, lead: dict, values: dict[str, tuple[Field, str | None]], skip: str | None = None) -> None:
    email = values.get(EMAIL)
    if email is not None and skip != EMAIL:
        tx.set_email(lead, email[1])
    tx.set_attributes(lead, [(field.soap_name, value) for name, (field, value) in values.items()
                             if name != EMAIL and name != skip])
