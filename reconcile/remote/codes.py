"""What a client does with a Marketo error code: the vocabulary shared by every API's code table."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Handling(enum.Enum):
    RETRY = "retry"  # transient and certainly not applied: back off and resend
    UNKNOWN = "unknown"  # a server failure: the call may have been applied; resend only if safe
    THROTTLED = "throttled"  # a rate or concurrency limit: back off longer, not applied
    RESIGN = "resign"  # the request's signature or token is stale: renew it and resend at once
    QUOTA = "quota"  # the daily quota is used up: stop and say when it resets
    STOP = "stop"  # nothing more can be sent: stop with a remote failure
    RECORD = "record"  # a record-level reason: that record FAILED, the rest of the call stands


@dataclass(frozen=True)
class Code:
    code: str
    message: str
    handling: Handling


def table(*codes: Code) -> dict[str, Code]:
    return {entry.code: entry for entry in codes}


def handling_in(codes: dict[str, Code], code: str | None) -> Handling:
    """What to do with `code` by `codes`. Unknown codes stop: retrying what we do not understand could
    repeat a harmful call."""
    entry = codes.get(code or "")
    return entry.handling if entry else Handling.STOP
