"""The emulated instance's lead fields: what Describe answers, and the one SOAP <-> REST name map.

The database keeps each lead field under its SOAP name (what syncMultipleLeads' `attrName` uses);
the REST face translates through this table, so a lead written through one API reads back through
the other. Standard fields follow Marketo's naming (SOAP `FirstName` <-> REST `firstName`); custom
fields (`EmulatorConfig.extra_fields`) keep one name in both APIs, as Marketo's custom fields do.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping

EMAIL = "email"  # REST name of the field kept as the lead's email, not among its attributes
ID = "id"
SYSTEM_REST_NAMES = ("id", "email", "createdAt", "updatedAt")

_IRREGULAR_REST_NAMES = {"DateofBirth": "dateOfBirth", "SICCode": "sicCode", "AnonymousIP": "anonymousIP"}
_TYPES = {
    "Phone": "phone", "MobilePhone": "phone", "Fax": "phone", "MainPhone": "phone",
    "Website": "url", "LinkedInProfileURL": "url",
    "AnnualRevenue": "currency",
    "NumberOfEmployees": "integer", "LeadScore": "integer", "RelativeScore": "integer",
    "AcquisitionProgramId": "integer",
    "Unsubscribed": "boolean", "DoNotCall": "boolean", "EmailInvalid": "boolean",
    "MarketingSuspended": "boolean", "BlackListed": "boolean",
    "DateofBirth": "date",
    "CompanyNotes": "text", "PersonNotes": "text",
}
STRING_LENGTH = 255
_FREE_TEXT_TYPES = frozenset({"string", "phone"})  # any text up to the length (a url needs its protocol)
_LENGTHS = {"string": STRING_LENGTH, "email": STRING_LENGTH, "phone": STRING_LENGTH, "url": STRING_LENGTH}


@dataclass(frozen=True)
class Field:
    id: int
    soap_name: str
    rest_name: str
    display_name: str
    data_type: str
    length: int | None
    read_only: bool = False
    # Usable as Get Leads' filterType and Sync Leads' lookupField: id, email and custom fields; other
    # standard fields answer 1011 "Field '…' not supported"
    searchable: bool = False
    # The length up to which any non-empty string is a valid value as it is; None where a value needs
    # checking (numbers, booleans, emails, which must be ASCII).
    text_up_to: int | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "text_up_to", self.length if self.data_type in _FREE_TEXT_TYPES else None)

    def describe(self) -> dict:
        """This field as one entry of Describe's `result`."""
        entry: dict = {"id": self.id, "displayName": self.display_name, "dataType": self.data_type}
        if self.length is not None:
            entry["length"] = self.length
        entry["rest"] = {"name": self.rest_name, "readOnly": self.read_only}
        entry["soap"] = {"name": self.soap_name, "readOnly": self.read_only}
        return entry


def rest_name_of(soap_name: str) -> str:
    """Marketo's REST name of a standard field: the SOAP name with its leading capitals lowered."""
    if soap_name in _IRREGULAR_REST_NAMES:
        return _IRREGULAR_REST_NAMES[soap_name]
    match = re.match(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]+", soap_name)
    if match is None:
        return soap_name
    return match.group().lower() + soap_name[match.end():]


def _display_name(soap_name: str) -> str:
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", soap_name)


class FieldTable:
    """Every lead field of the instance, found by its SOAP or its REST name (both case-sensitive)."""

    def __init__(self, standard: Iterable[str], custom: Iterable[str] = ()):
        fields = [
            Field(1, "Id", ID, "Id", "integer", None, read_only=True, searchable=True),
            Field(2, "Email", EMAIL, "Email Address", "email", STRING_LENGTH, searchable=True),
            Field(3, "CreatedAt", "createdAt", "Created At", "datetime", None, read_only=True),
            Field(4, "UpdatedAt", "updatedAt", "Updated At", "datetime", None, read_only=True),
        ]
        for soap_name in sorted(set(standard) - {"Email"}):
            data_type = _TYPES.get(soap_name, "string")
            fields.append(Field(len(fields) + 1, soap_name, rest_name_of(soap_name), _display_name(soap_name),
                                data_type, _LENGTHS.get(data_type)))
        for name in sorted(set(custom) - set(standard) - {"Email"}):
            fields.append(Field(len(fields) + 1, name, name, _display_name(name), "string", STRING_LENGTH,
                                searchable=True))
        self.fields: tuple[Field, ...] = tuple(fields)
        self._by_rest = {f.rest_name: f for f in fields}
        self._by_soap = {f.soap_name: f for f in fields}

    def by_rest(self, name: str) -> Field | None:
        return self._by_rest.get(name)

    @property
    def rest_names(self) -> Mapping[str, Field]:
        """Every field by its REST name (`by_rest` as a mapping, for loops over many records)."""
        return self._by_rest

    def by_any(self, name: str) -> Field | None:
        """The field with this SOAP or REST name (the admin endpoints accept either)."""
        return self._by_soap.get(name) or self._by_rest.get(name)

    def describe(self) -> list[dict]:
        return [f.describe() for f in self.fields]
