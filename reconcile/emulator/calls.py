"""The call log: every API call the emulator saw, which face and operation, and how it ended."""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
from typing import Any, Callable

log = logging.getLogger("reconcile.emulator")

OK = "ok"
FAULT = "fault"  # answered with an API error (a SOAP fault, or a REST `success: false`)
HTTP_ERROR = "http_error"
DROPPED = "dropped"
ABORTED = "aborted"

SOAP = "soap"
REST = "rest"
ADMIN = "admin"

WRITE = "write"  # changes leads (syncMultipleLeads, Sync Leads, an admin edit/merge/delete)
READ = "read"  # reads leads or fields (Get Leads, Describe)
TOKEN = "token"  # asks for an access token

_CALL_LOG_SIZE = 100_000


@dataclasses.dataclass(frozen=True)
class CallRecord:
    """One API call, as the emulator saw it (times from `config.monotonic`).

    `start` is when the call was admitted (took its concurrency slot) or, for a call refused before
    that, when it was received; `end` is when its concurrency slot was released, just before the
    response was written (or the connection dropped): a client that has its answer finds the call
    logged, and its next call is not refused for a slot that is still being freed.
    """

    received: float
    start: float
    end: float
    outcome: str  # "ok" | "fault" | "http_error" | "dropped" | "aborted" (client went away)
    code: str | None  # the API's error code of a refused or failed call
    records: int  # records in the request (0 if it could not be parsed)
    admitted: bool  # passed the limits: counted against the rate window and the daily quota
    http_status: int | None  # None when no response was sent (dropped or aborted)
    api: str = SOAP  # "soap" | "rest" | "admin"
    operation: str = WRITE  # "write" | "read" | "token"
    racing_keys: int = 0  # lookup keys this call shared with another Sync Leads call in flight (see races)

    @property
    def duration(self) -> float:
        return self.end - self.start


class CallLog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: collections.deque[CallRecord] = collections.deque(maxlen=_CALL_LOG_SIZE)

    def append(self, call: CallRecord) -> None:
        with self._lock:
            self._calls.append(call)
        log.debug("emulator call: %s %s %s %s, %d record(s), %.3fs", call.api, call.operation, call.outcome,
                  call.code or "", call.records, call.end - call.received)

    def snapshot(self) -> list[CallRecord]:
        with self._lock:
            return list(self._calls)

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()


class Call:
    """One call in flight: its concurrency slot and its log entry, settled exactly once by `finish`
    (which the HTTP layer runs just before the first byte of the answer goes out)."""

    def __init__(self, api: str, operation: str, *, admit: Callable[[], None], release: Callable[[], None],
                 calls: CallLog, clock: Callable[[], float], sent_status: Callable[[], int | None]):
        self.api = api
        self.operation = operation
        self.code: str | None = None
        self.records = 0
        self.outcome: str | None = None
        self.racing_keys = 0
        self._admit, self._release = admit, release
        self._calls = calls
        self._clock = clock
        self._sent_status = sent_status
        self.received = self.start = clock()
        self.admitted = False
        self._finished = False

    def admit(self) -> None:
        """Take a slot under the instance's limits, or raise `reasons.Refused`."""
        self._admit()
        self.admitted = True
        self.start = self._clock()

    def finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        status = self._sent_status()
        outcome = self.outcome or _outcome_of(status, self.code)
        self._calls.append(CallRecord(
            received=self.received, start=self.start, end=self._clock(), outcome=outcome, code=self.code,
            records=self.records, admitted=self.admitted, http_status=status, api=self.api,
            operation=self.operation, racing_keys=self.racing_keys))
        if self.admitted:  # after logging: no call in flight means every call is in the log
            self._release()


def _outcome_of(status: int | None, code: Any) -> str:
    if status is None:
        return ABORTED
    if code is not None:
        return FAULT
    return OK if status == 200 else FAULT if status == 500 else HTTP_ERROR
