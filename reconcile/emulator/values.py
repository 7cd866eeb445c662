"""Lead field values by Describe's `dataType`: what Sync Leads accepts, and how Get Leads answers them.

Facts relied on (../shared/marketo-rest-facts.md, "Field types" and "Get Leads"): a value Sync Leads
cannot take for its field's type skips the record with 1001 —
  string, email, phone   text up to the field's length (255); email values ASCII
  text (text area)       up to 30,000 bytes of UTF-8
  integer/percent/score  a whole number
  float, currency        a real number, e.g. `10.4`
  boolean                `true` / `false`
  date                   a W3C date, `2010-05-07`
  datetime               ISO 8601 with an offset, `2010-05-07T15:41:32-05:00`
  url                    a URL including its protocol
and Get Leads answers numbers and booleans as JSON numbers and booleans. The database keeps every
value as text (what the SOAP face reads and writes); a JSON number or boolean sent is kept as its
JSON text.
"""

from __future__ import annotations

import json
import math
import re
from datetime import date, datetime
from typing import Any

TEXT_AREA_BYTES = 30_000
INTEGER_TYPES = frozenset({"integer", "percent", "score"})
REAL_TYPES = frozenset({"float", "currency"})
_INTEGER = re.compile(r"-?[0-9]+\Z")
_REAL = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?\Z")
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
_DATETIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
                       r"(?:Z|[+-][0-9]{2}:[0-9]{2})\Z")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s/?#]+[^\s]*\Z")


def as_text(raw: Any) -> str | None:
    """A JSON scalar as the text the database keeps (None for null and ""); ValueError otherwise."""
    if raw is None:
        return None
    if isinstance(raw, str):
        text = raw
    elif isinstance(raw, (bool, int, float)):
        text = json.dumps(raw)
    else:
        raise ValueError("not a scalar")
    return text or None


def problem(data_type: str, length: int | None, text: str) -> str | None:
    """Why `text` is no value for a field of this type and length, or None when it is one."""
    if data_type in INTEGER_TYPES:
        return None if _INTEGER.match(text) else "a whole number"
    if data_type in REAL_TYPES:
        return None if _REAL.match(text) and math.isfinite(float(text)) else "a real number, e.g. 10.4"
    if data_type == "boolean":
        return None if text.lower() in _BOOLEANS else "true or false"
    if data_type == "date":
        return None if _DATE.match(text) and _parses(date.fromisoformat, text) else "a date, e.g. 2010-05-07"
    if data_type == "datetime":
        return None if _DATETIME.match(text) and _parses(datetime.fromisoformat, text) else \
            "an ISO 8601 date and time with an offset, e.g. 2010-05-07T15:41:32-05:00"
    if data_type == "text":
        return None if len(text.encode("utf-8")) <= TEXT_AREA_BYTES else f"at most {TEXT_AREA_BYTES} bytes"
    if data_type == "email" and not text.isascii():
        return "ASCII only"
    if data_type == "url" and not _URL.match(text):
        return "a URL including its protocol, e.g. https://example.com"
    if length is not None and len(text) > length:
        return f"at most {length} characters"
    return None


def json_value(field: Any, text: str | None) -> Any:
    """A kept value as Get Leads answers it: numbers and booleans as JSON, the rest as text."""
    if text is None:
        return None
    if field.data_type in INTEGER_TYPES and _INTEGER.match(text):
        return int(text)
    if field.data_type in REAL_TYPES and _REAL.match(text) and math.isfinite(float(text)):
        return float(text)
    if field.data_type == "boolean" and text.lower() in _BOOLEANS:
        return _BOOLEANS[text.lower()]
    return text


def _parses(parse: Any, text: str) -> bool:
    try:
        parse(text)
    except ValueError:
        return False
    return True
