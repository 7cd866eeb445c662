"""The one seam between the apply engine and Marketo.

A transport takes wire-neutral `LeadRecord`s and answers one `SyncStatus` per record, in order.
Whatever its wire format, it reports failures with the types below, so that the engine can decide
what is safe to resend and what to tell the user without knowing SOAP or REST.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

from reconcile.core.records import LeadRecord, SyncStatus
from reconcile.errors import RemoteError, TransportError


class NotDelivered(TransportError):
    """The request certainly did not reach Marketo (connection refused, connect timeout, DNS...)."""

    outcome_unknown = False


class OutcomeUnknown(TransportError):
    """The request was sent and no usable answer came back: Marketo may or may not have applied it."""

    outcome_unknown = True


class QuotaExhausted(RemoteError):
    """Marketo's daily call quota is used up; `resets_at` is the next midnight US Central."""

    outcome_unknown = False

    def __init__(self, message: str, resets_at: datetime, code: str | None = None):
        super().__init__(message, code=code)
        self.resets_at = resets_at


def outcome_unknown(error: BaseException) -> bool:
    """Whether the batch whose send raised `error` may have been applied by Marketo."""
    return bool(getattr(error, "outcome_unknown", False))


def not_delivered(error: BaseException) -> bool:
    """Whether the batch whose send raised `error` certainly never reached Marketo."""
    return isinstance(error, NotDelivered)


def mark_outcome(error: BaseException, unknown: bool) -> BaseException:
    """Tag `error` with whether its batch may have been applied (sticky: once unknown, unknown)."""
    try:
        error.outcome_unknown = bool(unknown or getattr(error, "outcome_unknown", False))  # type: ignore[attr-defined]
    except AttributeError:  # pragma: no cover - exceptions without a __dict__
        pass
    return error


@dataclass(frozen=True)
class RetryInfo:
    """Reported to `on_retry` before each backoff pause."""

    attempt: int  # the attempt that failed (1-based)
    delay: float  # seconds until the next attempt
    reason: str  # e.g. "20023 Rate Limit Exceeded", "connection reset", "HTTP 503"
    outcome_unknown: bool  # whether the failed attempt may have been applied


@dataclass
class TransportStats:
    attempts: int = 0  # HTTP requests sent
    retries: int = 0  # attempts beyond the first of each batch (backoff and re-signing)
    waited: float = 0.0  # seconds spent in backoff and rate limiting


@dataclass(frozen=True)
class TransportInfo:
    """What a transport declares about itself, for the registry (reconcile/remote/registry.py): read
    without importing the transport, so that choosing one and describing its calls stays cheap."""

    name: str  # as `--api` and RECONCILE_API spell it
    call_name: str  # the write call as users know it ("syncMultipleLeads", "Sync Leads")
    max_records: int  # records one call may carry
    max_call_bytes: int | None = None  # bytes one call's records may add up to (None: no limit)
    can_delete: bool = False  # deletes leads
    can_lists: bool = False  # manages static list membership
    can_read: bool = False  # reads leads and fields (refresh, import, `reconcile fields`)
    credential_variables: tuple[str, ...] = ()  # all set: the environment holds this transport's credentials
    # a variable starting with one of these is set: the user is setting this transport up (even misspelt)
    variable_prefixes: tuple[str, ...] = ()
    # Which records may share a call, known before any transport exists (for plan's call count):
    # `group_of(record, dedup_enabled, foreign_id_field) -> Hashable`; None: any records may.
    group_of: Callable[[LeadRecord, bool, str], Any] | None = None
    # How plan sizes records as apply will (with no Describe to hand), for a call's `max_call_bytes`:
    # `plan_sizes(foreign_id_field) -> (size_of, size_bound_of)`; None: calls are cut by count alone.
    plan_sizes: Callable[[str | None], tuple[Callable[[LeadRecord], int], Callable[[LeadRecord], int]]] | None = None


@runtime_checkable
class Transport(Protocol):
    """What the apply engine needs from a Marketo API.

    Every transport declares what its `TransportInfo` says: `name`, `call_name`, `max_records`,
    `max_call_bytes`, `can_delete` and `can_lists`.

    Optional members, looked up with `getattr` (a transport without them, like SOAP's, is batched by
    record count alone):

    - ``prepare_later(records, dedup_enabled) -> Future``: :meth:`prepare` elsewhere (worker
      processes), with ``prepare_ahead: int``, how many calls are worth preparing ahead of the one
      being sent. Without them, each call is prepared just before it is sent.

    - ``group_of(record, dedup_enabled) -> Hashable``: records of different groups never share a
      call (REST: one `action`/`lookupField` per call, which depend on the record's key).
    - ``size_of(record) -> int`` with ``max_call_bytes: int``: the records of one call add up to at
      most `max_call_bytes` (leave room for the call's own framing). A record bigger than that on its
      own still gets a call, for the transport to refuse. ``size_bound_of(record) -> int``, if given,
      is a cheap upper bound of ``size_of``: calls are then sized by it, and by ``size_of`` only where
      the bounds say a call might not fit (the calls come out the same).

    - ``window_opens_in() -> float``: seconds until Marketo's rate window lets another call start;
      the engine keeps its own slow work (state checkpoints) for waits long enough to hold it.

    Whatever the grouping, records that reach one Marketo lead (same Id, same foreign ID, or the
    same email with dedup) are never in two concurrent calls.
    """

    #: the registry name (`--api`)
    name: str
    #: the call's name as users know it, for plan and apply output ("syncMultipleLeads", "Sync Leads")
    call_name: str
    #: records one call may carry
    max_records: int
    #: bytes one call's records may add up to (None: no limit)
    max_call_bytes: int | None
    #: what it can do besides creating and updating leads (neither, today)
    can_delete: bool
    can_lists: bool

    def prepare(self, records: Sequence[LeadRecord], dedup_enabled: bool = True) -> Any:
        """Build (and validate) the call for one batch ahead of time; handed back to `send`."""

    def send(self, records: Any, dedup_enabled: bool = True, *, stop: threading.Event | None = None,
             on_retry: Callable[[RetryInfo], None] | None = None) -> list[SyncStatus]:
        """Send one batch (records or a prepared call); one status per record, in order."""

    def close(self) -> None:
        """Release connections."""
