"""Sync Leads request bodies: one call per (action, lookupField) group, lead-file names → REST names.

Facts relied on (../shared/marketo-rest-facts.md, "Sync Leads"): the body is
`{"action", "lookupField", "input": [...]}`; `lookupField: id` is allowed only with `updateOnly`;
`createDuplicate` takes no lookup field; at most 300 records and 1 MB per call; REST has no
foreignSysPersonId, so a foreign system's ID travels in a custom field used as the lookup field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from operator import itemgetter
from typing import Mapping, Sequence

from reconcile.core.callsize import ENVELOPE_BYTES, MAX_CALL_BYTES  # noqa: F401 (the transport's limits)
from reconcile.core.records import LeadRecord
from reconcile.errors import ConfigError, InputError

MAX_RECORDS = 300

UPDATE_ONLY = "updateOnly"
CREATE_OR_UPDATE = "createOrUpdate"
CREATE_DUPLICATE = "createDuplicate"

# Lead-file (SOAP-style) names that are keys, not attributes, in a REST record.
_KEY_ATTRIBUTES = {"Email": "email", "Id": "id"}


@dataclass(frozen=True, order=True)
class Group:
    """The action and lookup field every record of one Sync Leads call shares."""

    action: str
    lookup_field: str | None

    def __str__(self) -> str:
        return f"{self.action}/{self.lookup_field}" if self.lookup_field else self.action


class FieldNames:
    """Lead-file attribute names → REST field names, from the instance's Describe answer.

    `foreign_id_field` is the REST name of the custom field that carries foreignSysPersonId, or None.
    """

    def __init__(self, soap_to_rest: Mapping[str, str], foreign_id_field: str | None = None):
        self._map = dict(soap_to_rest)
        self._known = {**self._map, **_KEY_ATTRIBUTES}  # `rest_name` as one lookup, for every record sent
        self.foreign_id_field = foreign_id_field
        self.longest = max(map(len, [*self._map.values(), *_KEY_ATTRIBUTES.values(), foreign_id_field or ""]))

    @property
    def known(self) -> Mapping[str, str]:
        """`rest_name` as a mapping, for loops over every record sent; a name it lacks is refused by
        `rest_name`."""
        return self._known

    def rest_name(self, name: str) -> str:
        known = _KEY_ATTRIBUTES.get(name) or self._map.get(name)
        if known is None:
            raise InputError(f"attribute {name!r} is not a lead field of this Marketo instance (per its "
                             "Describe answer); run `reconcile fields --refresh` and check the lead files")
        return known


class _AsWritten(dict):
    """A name it does not hold maps to itself."""

    def __missing__(self, name: str) -> str:
        return name


def names_as_written(foreign_id_field: str | None) -> FieldNames:
    """Lead-file names standing in for the REST names (about as long): how `plan`, which has no
    Describe answer to hand, sizes the calls apply will make."""
    names = FieldNames({}, foreign_id_field)
    names._known = _AsWritten(names.known)
    return names


def size_bound_as_written(record: LeadRecord, names: FieldNames) -> int:
    """`size_bound_of` for `names_as_written`: each attribute's name counted as written."""
    try:
        texts = sum(map(len, filter(None, map(_VALUE, record.attributes))))
    except TypeError:  # a value that is not text: no shortcut
        return size_of(record, names)
    texts += sum(len(name) for name, _ in record.attributes)
    if record.email is not None:
        texts += len(record.email) + len("email")
    if record.foreign_sys_person_id is not None:
        texts += len(record.foreign_sys_person_id) + names.longest
    return 2 + 1 + _ID_MEMBER + (len(record.attributes) + 3) * _MEMBER_FRAME + _JSON_BYTES_A_CHAR * texts


# Made once, not once a record: planning asks for the group of every lead it sends.
_BY_ID = Group(UPDATE_ONLY, "id")
_BY_EMAIL = Group(CREATE_OR_UPDATE, "email")
_AS_DUPLICATE = Group(CREATE_DUPLICATE, None)
_BY_FOREIGN_ID: dict[str, Group] = {}


def group_of(record: LeadRecord, dedup_enabled: bool, foreign_id_field: str | None) -> Group:
    """Which call a record may travel in: by Marketo ID, by foreign ID (a custom field), or by email."""
    if record.lead_id is not None:
        return _BY_ID
    if record.foreign_sys_person_id is not None:
        if not foreign_id_field:
            raise ConfigError(missing_foreign_id_field_message(1))
        group = _BY_FOREIGN_ID.get(foreign_id_field)
        if group is None:
            group = _BY_FOREIGN_ID[foreign_id_field] = Group(CREATE_OR_UPDATE, foreign_id_field)
        return group
    if not dedup_enabled:
        return _AS_DUPLICATE
    return _BY_EMAIL


def missing_foreign_id_field_message(count: int, where: str = "") -> str:
    """`where`: the leads' files and lines, when known."""
    return (f"{count} lead(s) are keyed by foreignSysPersonId{f' ({where})' if where else ''}, which Marketo's "
            "REST API does not have: "
            "name the custom lead field that carries it with --foreign-id-field NAME (or "
            "RECONCILE_FOREIGN_ID_FIELD), or apply them with --api soap")


def lead_input(record: LeadRecord, names: FieldNames) -> dict[str, object]:
    """One REST input record. Values go as written: text stays text, None (null) clears the field."""
    item: dict[str, object] = {}
    if record.lead_id is not None:
        item["id"] = record.lead_id
    if record.email is not None:
        item["email"] = record.email
    if record.foreign_sys_person_id is not None and names.foreign_id_field:
        item[names.foreign_id_field] = record.foreign_sys_person_id
    known = names.known
    try:
        for name, value in record.attributes:
            item[known[name]] = value
    except KeyError:
        names.rest_name(name)  # raises: not a field of the instance
        raise
    return item


def body_for(records: Sequence[LeadRecord], group: Group, names: FieldNames) -> bytes:
    payload: dict[str, object] = {"action": group.action}
    if group.lookup_field is not None:
        payload["lookupField"] = group.lookup_field
    payload["input"] = [lead_input(record, names) for record in records]
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def size_of(record: LeadRecord, names: FieldNames) -> int:
    """Bytes the record adds to a call body (its JSON and a separating comma)."""
    return len(json.dumps(lead_input(record, names), ensure_ascii=False, separators=(",", ":"))
               .encode("utf-8")) + 1


_VALUE = itemgetter(1)
_JSON_BYTES_A_CHAR = 6  # the longest form of one character in JSON text: \u001f
_MEMBER_FRAME = 10  # two quotes around the name, a colon, a comma, and a value's quotes or `null`
_ID_MEMBER = 32  # "id": and an integer


def size_bound_of(record: LeadRecord, names: FieldNames) -> int:
    """At least `size_of(record, names)`, found without encoding: every character of a name or a value
    counted as its longest JSON form, every attribute's name as the longest REST name. Planning sums
    these, and counts a call's real bytes only when they say it might not fit."""
    try:
        texts = sum(map(len, filter(None, map(_VALUE, record.attributes))))
    except TypeError:  # a value that is not text: no shortcut
        return size_of(record, names)
    if record.email is not None:
        texts += len(record.email) + len("email")
    if record.foreign_sys_person_id is not None:
        texts += len(record.foreign_sys_person_id) + names.longest
    members = len(record.attributes) + 3
    return (2 + 1 + _ID_MEMBER + members * _MEMBER_FRAME
            + _JSON_BYTES_A_CHAR * (texts + len(record.attributes) * names.longest))


