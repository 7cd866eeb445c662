"""The checks of a lead's `lists` and `deleted` that the schema cannot make: a tombstone holds keys and
nothing else, and a list named by ID has a positive number after `id:`."""

from __future__ import annotations

import re
from typing import Any, Callable

from reconcile.errors import InputError, Location

_LIST_ID = re.compile(r"id:[1-9][0-9]{0,9}")
TOMBSTONE_FIELDS = frozenset({"leadId", "email", "foreignSysPersonId", "foreignSysType", "deleted"})


def is_true(value: Any) -> bool:
    """`deleted: true` as the lead file reader gives it: the text "true" (it reads no booleans)."""
    return value is True or (type(value) is str and value == "true")


def lifecycle_error(entry: dict, index: int, locate: Callable[[tuple], Location],
                    shown: Callable[[Any], str]) -> InputError | None:
    """What is wrong with the `deleted` and `lists` of lead `index` (None: nothing)."""
    if is_true(entry.get("deleted")) and not TOMBSTONE_FIELDS.issuperset(entry):
        extra = next(name for name in entry if name not in TOMBSTONE_FIELDS)
        return InputError(f"leads[{index}]: a tombstone (deleted: true) holds the lead's keys and nothing else, "
                          f"not {extra!r}: the lead is deleted, so nothing else can be applied",
                          locate(("leads", index, extra)))
    lists = entry.get("lists") or ()
    bad = next((ref for ref in lists if ref.startswith("id:") and not _LIST_ID.fullmatch(ref)), None)
    if bad is not None:
        return InputError(f"leads[{index}].lists: {shown(bad)} names a list by ID: write id: and the list's ID, "
                          "a positive number (e.g. id:1021)", locate(("leads", index, "lists", lists.index(bad))))
    return None
