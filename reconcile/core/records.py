"""Wire-neutral records: what the apply engine hands a transport, and what a transport hands back.

A transport (SOAP, REST) turns a batch of `LeadRecord`s into calls on its own wire format and the
answers back into one `SyncStatus` per record, in input order. Nothing here knows a wire format.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

CREATED = "CREATED"
UPDATED = "UPDATED"
FAILED = "FAILED"
SYNC_STATUSES = (CREATED, UPDATED, FAILED)


@dataclass(frozen=True)
class LeadRecord:
    """One lead to sync. ``None`` fields are omitted; a ``None`` attribute value is sent as an
    empty value, which clears the field in Marketo.

    ``attributes`` may be given as a mapping or a list of pairs; it is stored as a tuple of pairs.
    """

    lead_id: int | None = None
    email: str | None = None
    foreign_sys_person_id: str | None = None
    foreign_sys_type: str | None = None
    attributes: tuple[tuple[str, str | None], ...] = ()

    def __post_init__(self) -> None:
        attrs: Any = self.attributes
        if type(attrs) is tuple:  # as the package builds them: usually nothing to convert
            for pair in attrs:
                if type(pair) is not tuple or len(pair) != 2:
                    break
            else:
                return
        if isinstance(attrs, Mapping):
            attrs = attrs.items()
        if not isinstance(attrs, tuple) or not all(isinstance(p, tuple) for p in attrs):
            attrs = tuple(tuple(pair) for pair in attrs)
            object.__setattr__(self, "attributes", attrs)
        if any(len(pair) != 2 for pair in attrs):
            raise ValueError("LeadRecord.attributes must be (name, value) pairs")


@dataclass(frozen=True)
class SyncStatus:
    """What Marketo did with one record. `error` carries the reason of a FAILED record."""

    lead_id: int
    status: str  # CREATED | UPDATED | FAILED
    error: str | None = None
