"""Classified failures and the retry loop around one call.

``call_with_retries(attempt, classify, policy=..., resend_safe=..., stop=..., on_retry=..., ...)``
    calls ``attempt(n)`` (n = 1, 2, ... HTTP requests for this batch; build a fresh request each time
    if it is signed or timestamped). ``classify(exc)`` turns what it raised into a ``Failure`` (or
    None to let the exception through untouched). By ``Failure.handling``:

    * RETRY - back off (``RetryPolicy``) and try again;
    * THROTTLED - the same, with up to ``max_throttled_attempts``;
    * UNKNOWN - the call may have been applied: retried only when ``resend_safe``, otherwise
      ``OutcomeUnknown`` ("... not resent") at once;
    * RESIGN - try again at once (renew the signature or token in ``attempt``), at most
      ``max_resign`` times, not counted as a backoff attempt;
    * QUOTA, STOP, RECORD - stop now.

    ``Failure.max_attempts`` tightens the policy's cap for one kind of failure; ``Failure(...,
    unknown=True)`` marks a STOP whose call may nevertheless have been applied.

    Stopping raises ``Failure.final(suffix)`` when the classifier gave one (e.g. a ``QuotaExhausted``
    or an API fault with " (gave up after 3 attempts)" appended), else a ``NotDelivered`` /
    ``OutcomeUnknown`` / ``TransportError`` built from the failure. Every raised error carries
    ``outcome_unknown`` (sticky across attempts). When ``stop`` is set no new attempt starts.
    ``on_retry`` gets a ``RetryInfo`` before each backoff pause.

requests is imported lazily: importing this module is cheap.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Callable, TypeVar

from reconcile.errors import TransportError
from reconcile.remote.base import NotDelivered, OutcomeUnknown, RetryInfo, TransportStats, mark_outcome
from reconcile.remote.codes import Handling
from reconcile.remote.http.limits import RetryPolicy, Stopped, backoff_delay, pause


T = TypeVar("T")


class Failure(Exception):
    """One failed attempt, classified: what happened (`error`) and what to do about it (`handling`).

    `reason` is short, for progress lines ("20023 Rate Limit Exceeded", "HTTP 503", "connection lost").
    `final(suffix)`, when given, builds the error to raise if the loop stops at this failure; `suffix`
    is "" or " (gave up after N attempts)".
    """

    def __init__(self, error: BaseException, handling: Handling, reason: str, *,
                 retry_after: float | None = None, final: Callable[[str], BaseException] | None = None,
                 unknown: bool | None = None, max_attempts: int | None = None):
        super().__init__(reason)
        self.max_attempts = max_attempts  # a tighter cap than the policy's (a DNS failure: 2)
        self.error = error
        self.handling = handling
        self.reason = reason
        self.retry_after = retry_after
        self.final = final
        # Whether the failed attempt may have been applied: UNKNOWN always; a STOP may be too (an
        # answer we cannot use, after Marketo most likely processed the call).
        self.unknown = handling is Handling.UNKNOWN if unknown is None else bool(unknown)

    def give_up(self, suffix: str, ambiguous: bool) -> BaseException:
        """The error to raise when the loop stops at this failure."""
        error = self.error
        if self.final is not None:
            final = self.final(suffix)
        elif not suffix:
            final = error
        else:
            text = (getattr(error, "message", None) or str(error)) + suffix
            if ambiguous or isinstance(error, OutcomeUnknown):
                final = OutcomeUnknown(text)
            elif isinstance(error, NotDelivered):
                final = NotDelivered(text)
            else:
                final = TransportError(text, code=getattr(error, "code", None))
        if final is not error:
            final.__cause__ = error
        return mark_outcome(final, ambiguous)


def _stopped_error(ambiguous: bool) -> BaseException:
    if ambiguous:
        return mark_outcome(OutcomeUnknown("interrupted while retrying a batch whose outcome is unknown"), True)
    return mark_outcome(NotDelivered("interrupted before the batch was sent"), False)


_RETRIED = (Handling.RETRY, Handling.UNKNOWN, Handling.THROTTLED)


def call_with_retries(attempt: Callable[[int], T], classify: Callable[[BaseException], Failure | None], *,
                      policy: RetryPolicy, resend_safe: bool, stop: threading.Event | None = None,
                      on_retry: Callable[[RetryInfo], None] | None = None,
                      monotonic: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                      uniform: Callable[[float, float], float] = random.uniform,
                      stats: "Counters | None" = None) -> T:
    """Run `attempt(n)` until it returns, retrying as the classification of each failure says."""
    started = monotonic()
    backoffs = 0  # attempts that count against the policy (an immediate re-sign does not)
    sent = 0
    resigned = 0
    ambiguous = False  # some attempt of this call may have been applied
    while True:
        backoffs += 1
        sent += 1
        if stop is not None and stop.is_set():
            raise _stopped_error(ambiguous)
        try:
            return attempt(sent)
        except Stopped:
            raise _stopped_error(ambiguous) from None
        except BaseException as exc:  # noqa: BLE001 - classified below, or re-raised untouched
            failure = exc if isinstance(exc, Failure) else classify(exc)
            if failure is None:
                raise
        ambiguous = ambiguous or failure.unknown
        handling = failure.handling
        if handling is Handling.RESIGN and resigned < policy.max_resign:
            resigned += 1
            backoffs -= 1
            if stats is not None:
                stats.count(retries=1)
            continue
        if handling not in _RETRIED:
            raise failure.give_up("", ambiguous)
        if handling is Handling.UNKNOWN and not resend_safe:
            raise mark_outcome(OutcomeUnknown(
                f"{failure.reason}: the batch may have been applied, and with dedup off resending "
                "it could create duplicate leads, so it is not resent"), True) from failure.error
        delay = backoff_delay(policy, backoffs, failure.retry_after, uniform)
        limit = max(policy.max_attempts, policy.max_throttled_attempts) if handling is Handling.THROTTLED \
            else policy.max_attempts
        if failure.max_attempts is not None:
            limit = min(limit, failure.max_attempts)
        if backoffs >= limit or monotonic() - started + delay > policy.max_elapsed:
            suffix = f" (gave up after {backoffs} attempt{'s' if backoffs != 1 else ''})"
            raise failure.give_up(suffix, ambiguous)
        if on_retry is not None:
            on_retry(RetryInfo(attempt=backoffs, delay=delay, reason=failure.reason,
                               outcome_unknown=failure.unknown))
        if stats is not None:
            stats.count(retries=1, waited=delay)
        pause(sleep, delay, stop)


class Counters:
    """Thread-safe updates of a TransportStats."""

    def __init__(self, stats: TransportStats | None = None):
        self.stats = stats if stats is not None else TransportStats()
        self._lock = threading.Lock()

    def count(self, attempts: int = 0, retries: int = 0, waited: float = 0.0) -> None:
        with self._lock:
            self.stats.attempts += attempts
            self.stats.retries += retries
            self.stats.waited += waited
