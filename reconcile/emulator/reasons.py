"""Why the emulator refuses or fails a call, in no API's words.

Limits and fault injection raise these neutral reasons; each face (SOAP, REST) maps every reason to
its own code from its API's one code table (`remote/soap/codes.py`, `remote/rest/codes.py`).
"""

from __future__ import annotations

import enum


class Reason(enum.Enum):
    RATE_LIMIT = "rate"  # more calls in the sliding window than the instance allows
    CONCURRENCY_LIMIT = "concurrency"  # more calls in flight than the instance allows
    DAILY_QUOTA = "quota"  # the day's call quota is used up
    BAD_PARAMETER = "bad-parameter"  # a call-level parameter is out of range (e.g. too many records)
    INTERNAL_ERROR = "internal"  # the server failed; nothing was applied
    UNAVAILABLE = "unavailable"  # the API is temporarily unavailable
    TIMEOUT = "timeout"  # the server gave up on the request
    TRANSIENT = "transient"  # a transient failure worth retrying
    ACCESS_DENIED = "access-denied"  # the caller may not use the API
    AUTH_FAILED = "auth"  # the caller's credentials were refused


class Refused(Exception):
    """A call the emulator will not serve, for a neutral `reason`."""

    def __init__(self, reason: Reason, detail: str | None = None):
        super().__init__(detail or reason.value)
        self.reason = reason
        self.detail = detail
