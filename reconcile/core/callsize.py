"""The one limit a lead can break on its own: Marketo refuses a Sync Leads call whose body passes
1 MB (HTTP 413). Calls are cut to fit; a lead whose record alone does not fit any call is invalid
input, found when the lead files are read, with the lead's file and line.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

MAX_CALL_BYTES = 1_000_000  # Marketo answers HTTP 413 above 1 MB
# The envelope around the records: `{"action":"createOrUpdate","lookupField":"...","input":[]}`.
ENVELOPE_BYTES = 256
MAX_RECORD_BYTES = MAX_CALL_BYTES - ENVELOPE_BYTES
_JSON_BYTES_A_CHAR = 6  # the longest form of one character in JSON text: \u001f
_FOREIGN_ID_FIELD_ROOM = 64  # the custom field that carries a foreign ID through REST: a long name


def record_bytes(lead_id: int | None, email: str | None, foreign_id: str | None,
                 attributes: Mapping[str, Any]) -> int:
    """About the bytes the lead's record takes in a call body (attribute names as the lead file
    spells them; a foreign ID under a long field name); at least what it takes when small enough."""
    quick = sum(len(value) for value in attributes.values() if isinstance(value, str)) \
        + sum(map(len, attributes)) + len(email or "") + len(foreign_id or "")
    bound = _JSON_BYTES_A_CHAR * quick + 16 * len(attributes) + 128
    if bound <= MAX_RECORD_BYTES:
        return bound  # fits, whatever the exact figure: the JSON is not encoded
    item: dict[str, Any] = {"id": lead_id, "email": email, "f" * _FOREIGN_ID_FIELD_ROOM: foreign_id}
    item.update(attributes)
    return len(json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode("utf-8")) + 1


def too_big_message(index: int, size: int, attributes: Mapping[str, Any]) -> tuple[tuple, str]:
    """The path of the lead's largest value and what to say about it."""
    texts = {name: value for name, value in attributes.items() if isinstance(value, str)}
    largest = max(texts, key=lambda name: len(texts[name])) if texts else None
    path = ("leads", index, "attributes", largest) if largest is not None else ("leads", index)
    where = f" ({largest}: {len(texts[largest]):,} characters)" if largest is not None else ""
    return path, (f"this lead's record is about {size:,} bytes{where}, more than one Sync Leads call may carry "
                  f"({MAX_RECORD_BYTES:,} bytes of records in a 1 MB call): no call can send it; shorten its values")
