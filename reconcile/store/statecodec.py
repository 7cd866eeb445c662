"""Text ⇄ State for both state formats, strictly: a state file is trusted input to `apply`, so every
value is checked before it can reach a Marketo call.

Format 1 is one pretty-printed JSON document. Format 2 is a small top file plus one JSON line per lead
(see :mod:`reconcile.store.statefiles` for the layout). JSON is parsed with duplicate keys refused and
integers capped at 30 digits, so a hostile or mangled file is an error with a location, never a
"last key wins" surprise or a 5,000-digit number that Python refuses to convert.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping

from reconcile.core.model import FOREIGN_SYS_TYPES, State, StateLead
from reconcile.errors import Location, StateError

MAX_LEAD_ID = 2**31 - 1  # Marketo lead IDs are xs:int
MAX_SERIAL = 2**63 - 1
_MAX_INT_DIGITS = 30
_LEAD_FIELDS_V1 = {"leadId", "email", "foreignSysPersonId", "foreignSysType", "attributes", "syncedAt", "lists"}
# Format 2 lead lines: the identity maps to the attributes; these fields follow, in this order, only
# when they differ from what the identity already says (see `implied_by_key`). `lists` (the static
# lists the lead is on, by name as the lead file gives it, to the list's ID) only when there are any:
# states written before memberships existed read the same.
LINE_FIELDS = ("leadId", "email", "foreignSysPersonId", "foreignSysType", "lists", "syncedAt")
_MAX_LIST_REF = 1000


class _Refused(ValueError):
    """Raised inside the JSON parser's hooks; turned into a StateError by the caller."""


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Refused(f"duplicate key {key!r}")
            seen.add(key)
    return result


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        raise _Refused(f"a number of {len(text)} digits")
    return int(text)


def _no_constant(name: str) -> Any:
    raise _Refused(f"{name} is not JSON")


# One decoder for every document: building one per call costs more than parsing a lead's line.
_DECODER = json.JSONDecoder(object_pairs_hook=_unique_object, parse_int=_bounded_int, parse_constant=_no_constant)


def strict_json(text: str | bytes, where: Location) -> Any:
    """json.loads, refusing duplicate keys, NaN/Infinity and absurdly long integers."""
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        return _DECODER.decode(text)
    except UnicodeDecodeError as exc:
        raise StateError("state file is not UTF-8 text", where) from exc
    except json.JSONDecodeError as exc:
        line = where.line if where.line is not None else exc.lineno
        raise StateError(f"state file is not valid JSON ({exc.msg}, column {exc.colno}); "
                         "it may be truncated — restore it from git", Location(where.file, line)) from exc
    except _Refused as exc:
        raise StateError(f"state file holds {exc}; refusing to guess which is meant", where) from exc
    except RecursionError as exc:
        raise StateError("state file is nested too deeply", where) from exc


def check_serial(serial: Any, where: Location) -> int:
    if not isinstance(serial, int) or isinstance(serial, bool) or not 0 <= serial <= MAX_SERIAL:
        raise StateError("state serial must be a non-negative 64-bit integer", where)
    return serial


def check_lineage(lineage: Any, where: Location) -> str:
    if not isinstance(lineage, str) or not lineage or len(lineage) > 200:
        raise StateError("state lineage must be a non-empty string", where)
    return lineage


# --------------------------------------------------------------------------------------------------
# Format 1


def parse_v1(data: Mapping[str, Any], where: Location) -> State:
    unknown = set(data) - {"format_version", "lineage", "serial", "leads"}
    if unknown:
        raise StateError(f"state file has unknown field(s): {', '.join(sorted(unknown))}", where)
    lineage = check_lineage(data.get("lineage"), where)
    serial = check_serial(data.get("serial"), where)
    leads = data.get("leads")
    if not isinstance(leads, dict):
        raise StateError("state leads must be an object", where)
    return State(lineage=lineage, serial=serial,
                 leads={key: lead_from_fields(key, value, where) for key, value in leads.items()})


def lead_to_json(lead: StateLead) -> dict[str, Any]:
    """A lead as format 1 (and `state show`, and the journal) spell it: every field, always, and its
    static lists when it is on any."""
    spelled = {"leadId": lead.lead_id, "email": lead.email, "foreignSysPersonId": lead.foreign_sys_person_id,
               "foreignSysType": lead.foreign_sys_type, "attributes": dict(lead.attributes),
               "syncedAt": lead.synced_at}
    if lead.lists:
        spelled["lists"] = dict(lead.lists)
    return spelled


def serialize_v1(state: State) -> bytes:
    data = {"format_version": 1, "lineage": state.lineage, "serial": state.serial,
            "leads": {key: lead_to_json(lead) for key, lead in state.leads.items()}}
    return (json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def lead_from_fields(key: Any, value: Any, where: Location) -> StateLead:
    """A state lead from its fields (format 1's object, or format 2's line once expanded), checked."""
    def bad(message: str) -> StateError:
        return StateError(f"state lead {key!r}: {message}", where)

    # Written for speed as much as for strictness: it runs once per lead of a million-lead state.
    if type(key) is not str or not key.startswith(("id:", "fsp:", "email:")):
        raise bad("key must start with id:, fsp: or email:")
    if type(value) is not dict:
        raise bad("must be an object")
    if not _LEAD_FIELDS_V1.issuperset(value):
        raise bad(f"unknown field(s): {', '.join(sorted(set(value) - _LEAD_FIELDS_V1))}")
    get = value.get
    lead_id = get("leadId")
    if lead_id is not None and (type(lead_id) is not int or lead_id <= 0):
        raise bad("leadId must be a positive integer or null")
    if lead_id is not None and lead_id > MAX_LEAD_ID:
        raise bad(f"leadId {lead_id} is out of range: Marketo lead IDs are xs:int, at most {MAX_LEAD_ID}")
    email, fsp, fsp_type, synced_at = get("email"), get("foreignSysPersonId"), get("foreignSysType"), get("syncedAt")
    for name, text in (("email", email), ("foreignSysPersonId", fsp), ("foreignSysType", fsp_type),
                       ("syncedAt", synced_at)):
        if text is not None and type(text) is not str:
            raise bad(f"{name} must be a string or null")
    if fsp_type is not None and fsp_type not in FOREIGN_SYS_TYPES:
        raise bad(f"foreignSysType must be one of {', '.join(FOREIGN_SYS_TYPES)}")
    attributes = get("attributes", {})
    if type(attributes) is not dict or not all(type(v) is str or v is None for v in attributes.values()):
        raise bad("attributes must map names to strings or null")
    lists = get("lists")
    if lists is None:
        return StateLead(lead_id, email, fsp, fsp_type, attributes, synced_at)
    return StateLead(lead_id, email, fsp, fsp_type, attributes, synced_at, _checked_lists(lists, bad))


def _checked_lists(lists: Any, bad: Callable[[str], StateError]) -> dict[str, int]:
    """A lead's memberships: list names (as the lead files give them) to positive list IDs."""
    if type(lists) is not dict:
        raise bad("lists must map list names to list IDs")
    for ref, list_id in lists.items():
        if not ref or len(ref) > _MAX_LIST_REF:
            raise bad("a list name must be non-empty text")
        if type(list_id) is not int or not 0 < list_id <= MAX_LEAD_ID:
            raise bad(f"list {ref!r}: its ID must be a positive integer")
    return lists


# --------------------------------------------------------------------------------------------------
# Format 2 lead lines


def implied_by_key(key: str) -> dict[str, Any]:
    """What a state key already says about its lead: a line leaves these fields out when they agree."""
    if key.startswith("id:"):
        digits = key[3:]
        if digits.isascii() and digits.isdigit() and len(digits) <= 10 and not digits.startswith("0"):
            return {"leadId": int(digits)}
    elif key.startswith("fsp:"):
        kind, sep, foreign_id = key[4:].partition(":")
        if sep:
            return {"foreignSysType": kind, "foreignSysPersonId": foreign_id}
    elif key.startswith("email:"):
        return {"email": key[6:]}
    return {}


_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # json.dumps's, made once, not a lead


def lead_line(key: str, lead: StateLead) -> str:
    """One lead as one line: `{"<key>":{<attributes, sorted>},<fields that the key does not imply>}`.

    The key comes first so a line reads as "this lead has these values", and an attribute change is a
    one-line diff. Exactly invertible by :func:`parse_lead_line`.
    """
    implied = implied_by_key(key)
    line: dict[str, Any] = {key: dict(sorted(lead.attributes.items()))}
    for name, value in zip(LINE_FIELDS, (lead.lead_id, lead.email, lead.foreign_sys_person_id,
                                         lead.foreign_sys_type, dict(lead.lists) or None, lead.synced_at)):
        if value != implied.get(name):
            line[name] = value
    return _COMPACT.encode(line)  # one call: it runs once a lead written


# Placeholders a template is made with: a lead ID no lead has, and a stamp no clock gives.
_PROBE_LEAD_ID = 9_876_543_210
_PROBE_SYNCED_AT = "probe:synced-at"


class LeadLineTemplate:
    """A lead's state line with its lead ID and sync stamp left open: `fill` gives what `lead_line`
    gives for the lead with those two values, without encoding the lead again (an apply makes the
    template while it waits for the rate window, and fills it in when Marketo answers)."""

    __slots__ = ("_head", "_middle")

    def __init__(self, head: str, middle: str):
        self._head, self._middle = head, middle

    def fill(self, lead_id: int, synced_at_json: str) -> str:
        """`synced_at_json`: the stamp as JSON text (`compact_json(stamp)`), encoded once for many leads."""
        return f"{self._head}{lead_id}{self._middle}{synced_at_json}}}"


def lead_line_template(key: str, lead: StateLead) -> LeadLineTemplate | None:
    """The template of `lead`'s line whatever its lead ID and stamp, or None where the line's shape
    depends on them: an `id:` key leaves out a lead ID that agrees with it."""
    if key.startswith("id:"):
        return None
    line = lead_line(key, StateLead(_PROBE_LEAD_ID, lead.email, lead.foreign_sys_person_id, lead.foreign_sys_type,
                                    lead.attributes, _PROBE_SYNCED_AT, lead.lists))
    lead_id = f',"leadId":{_PROBE_LEAD_ID}'
    stamp = f',"syncedAt":{compact_json(_PROBE_SYNCED_AT)}}}'
    if line.count(lead_id) != 1 or not line.endswith(stamp):
        return None
    head, _, rest = line.partition(lead_id)
    return LeadLineTemplate(head + ',"leadId":', rest[:-len(stamp)] + ',"syncedAt":')


def compact_json(value: Any) -> str:
    return _COMPACT.encode(value)


def parse_lead_line(line: str | bytes, where: Location) -> tuple[str, StateLead]:
    data = strict_json(line, where)
    if not isinstance(data, dict):
        raise StateError("a state line must be a JSON object", where)
    keys = [name for name in data if name not in LINE_FIELDS]
    if len(keys) != 1:
        raise StateError("a state line must hold exactly one lead key (id:…, fsp:… or email:…)", where)
    key = keys[0]
    fields = dict(implied_by_key(key)) if isinstance(key, str) else {}
    fields.update((name, data[name]) for name in LINE_FIELDS if name in data)
    fields["attributes"] = data[key]
    return key, lead_from_fields(key, fields, where)
