"""What the list and delete calls of either API answer, per lead, in terms neither API owns.

REST (Add to / Remove from List, Delete Leads: `remote.rest.lists`) and SOAP (listOperation:
`remote.soap.lists`) both report one `LeadOutcome` per lead ID sent, so the code that plans and
journals memberships and deletions never reads a wire format.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Iterable


class Outcome(enum.Enum):
    ADDED = "added"  # the lead is on the list now
    REMOVED = "removed"  # the lead was on the list, and is not any more
    DELETED = "deleted"  # the lead no longer exists
    MEMBER = "member"  # (a membership check) the lead is on the list
    NOT_MEMBER = "not member"  # (a membership check) the lead is not on the list
    NOT_ON_LIST = "not on the list"  # (a removal) nothing to remove: the lead was not on the list
    LEAD_NOT_FOUND = "lead not found"  # no lead has this ID
    FAILED = "failed"  # anything else the API said; see `reason`


@dataclass(frozen=True)
class LeadOutcome:
    lead_id: int
    outcome: Outcome
    reason: str | None = None  # the API's code and message, for FAILED (and skipped leads)


@dataclass(frozen=True)
class StaticList:
    id: int
    name: str
    folder_id: int | None = None


def distinct(lead_ids: Iterable[int]) -> list[int]:
    """The IDs once each, in their first order (one ID twice in a call would get two answers)."""
    return list(dict.fromkeys(lead_ids))


def chunked(lead_ids: list[int], size: int) -> list[list[int]]:
    return [lead_ids[start:start + size] for start in range(0, len(lead_ids), size)]
