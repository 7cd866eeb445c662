"""Marketo SOAP over HTTP: signed syncMultipleLeads POSTs, and what each answer means.

* :class:`Credentials` come from the environment only (``MARKETO_SOAP_ENDPOINT``,
  ``MARKETO_USER_ID``, ``MARKETO_ENCRYPTION_KEY``); the key never appears in a repr, a message or a log.
* :class:`SoapTransport` sends one batch per :meth:`SoapTransport.send`: every attempt gets a fresh
  timestamp and signature. Retries, limits, deadlines and bounded reads come from
  :mod:`reconcile.remote.http`; what a SOAP fault means comes from the one code table,
  :mod:`reconcile.remote.soap.codes`.
* Failures say whether the batch may have been applied (``NotDelivered`` versus ``OutcomeUnknown``,
  and ``outcome_unknown`` on every error ``send`` raises). With ``dedupEnabled=false``, a batch whose
  email-only records would be duplicated by a resend is never resent after an ambiguous failure.

requests and lxml are imported lazily: importing this module is cheap.
"""

from __future__ import annotations

import math
import random
import threading
import time
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from reconcile.core.clock import utc_now
from reconcile.errors import ConfigError, ReconcileError, ResponseError, TransportError
from reconcile.remote import http
from reconcile.remote.base import (NotDelivered, OutcomeUnknown, QuotaExhausted, RetryInfo, TransportStats,
                                   mark_outcome, outcome_unknown)
from reconcile.remote.codes import Handling
from reconcile.remote.http import RateLimiter, RetryPolicy, quota_reset_after, validate_endpoint
from reconcile.remote.soap import codes
from reconcile.remote.soap.about import TRANSPORT
from reconcile.remote.soap import envelope as soap
from reconcile.remote.soap.fault import SoapFault

if TYPE_CHECKING:  # pragma: no cover
    import requests

__all__ = [
    "ENV_ENDPOINT", "ENV_USER_ID", "ENV_ENCRYPTION_KEY", "Credentials", "RetryPolicy", "RetryInfo",
    "RateLimiter", "SoapTransport", "PreparedCall", "TransportStats", "NotDelivered", "OutcomeUnknown",
    "QuotaExhausted", "TransportError", "SoapFault", "outcome_unknown", "is_resend_safe", "quota_reset_after",
    "validate_endpoint",
]

ENV_ENDPOINT = "MARKETO_SOAP_ENDPOINT"
ENV_USER_ID = "MARKETO_USER_ID"
ENV_ENCRYPTION_KEY = "MARKETO_ENCRYPTION_KEY"

_PREPARED_MAX_AGE = 60.0  # seconds a pre-built (pre-signed) envelope may wait before it is re-signed
_EXAMPLE_ENDPOINT = "https://123-ABC-456.mktoapi.com/soap/mktows/2_1"


@dataclass(frozen=True)
class Credentials:
    """Where and as whom to call Marketo. The encryption key is never shown by repr() or str()."""

    endpoint: str
    user_id: str
    encryption_key: str = field(repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "endpoint", validate_endpoint(self.endpoint, "the SOAP endpoint", _EXAMPLE_ENDPOINT))
        if not self.user_id:
            raise ConfigError(f"{ENV_USER_ID} is empty")
        if not self.encryption_key:
            raise ConfigError(f"{ENV_ENCRYPTION_KEY} is empty")

    @classmethod
    def from_env(cls, env: Mapping[str, str], endpoint_override: str | None = None) -> "Credentials":
        """Read the three MARKETO_* variables (and nothing else); `endpoint_override` is `--endpoint`."""
        endpoint = endpoint_override if endpoint_override else env.get(ENV_ENDPOINT, "")
        missing = [name for name, value in ((ENV_ENDPOINT, endpoint), (ENV_USER_ID, env.get(ENV_USER_ID, "")),
                                            (ENV_ENCRYPTION_KEY, env.get(ENV_ENCRYPTION_KEY, "")))
                   if not (value or "").strip()]
        if missing:
            names = " and ".join(missing) if len(missing) <= 2 else ", ".join(missing)
            hint = " (or pass --endpoint)" if missing == [ENV_ENDPOINT] else ""
            raise ConfigError(f"environment variable{'s' if len(missing) > 1 else ''} {names} "
                              f"{'are' if len(missing) > 1 else 'is'} not set{hint}; credentials come "
                              "only from the environment")
        what = "--endpoint" if endpoint_override else ENV_ENDPOINT
        endpoint = validate_endpoint(endpoint, what, _EXAMPLE_ENDPOINT)
        return cls(endpoint=endpoint, user_id=env[ENV_USER_ID].strip(),
                   encryption_key=env[ENV_ENCRYPTION_KEY].strip())

    def __repr__(self) -> str:
        return f"Credentials(endpoint={self.endpoint!r}, user_id={self.user_id!r}, encryption_key='***')"

    __str__ = __repr__


@dataclass(frozen=True)
class PreparedCall:
    """An envelope built (and validated, and signed) ahead of sending, to overlap XML work with I/O."""

    records: tuple[soap.LeadRecord, ...]
    dedup_enabled: bool
    body: bytes
    built_at: float  # monotonic


def is_resend_safe(records: Sequence[soap.LeadRecord], dedup_enabled: bool) -> bool:
    """Whether sending these records again cannot create a second lead for any of them.

    Records keyed by Id or ForeignSysPersonId are matched by that unique key; email-only records
    are matched by email only when dedup is on (with dedupEnabled=false each one creates a lead).
    """
    return dedup_enabled or all(r.lead_id is not None or r.foreign_sys_person_id for r in records)


class SoapTransport:
    """Sends syncMultipleLeads batches to one endpoint. Thread-safe: call `send` from several threads.

    `timeout` is requests' (connect, read) in seconds; `deadline` caps one whole attempt (connect,
    headers and body). `prepare_workers` > 0 builds envelopes ahead (:meth:`prepare_later`) in that
    many processes, started at the first such call. `clock` is the wall clock of request timestamps
    and of the quota reset; `monotonic`, `sleep` and `rng` drive backoff (inject fakes in tests).
    `log`, when given, receives one text per HTTP request and response, signatures redacted.
    """

    name = TRANSPORT.name
    call_name = TRANSPORT.call_name
    max_records = TRANSPORT.max_records
    max_call_bytes = TRANSPORT.max_call_bytes  # None: envelopes are sized by record count alone
    can_delete = TRANSPORT.can_delete
    can_lists = TRANSPORT.can_lists

    def __init__(self, credentials: Credentials, *, timeout: tuple[float, float] = (10.0, 120.0),
                 deadline: float = http.DEFAULT_DEADLINE,
                 session: "requests.Session | None" = None, retry: RetryPolicy | None = None,
                 rate_limiter: RateLimiter | None = None, max_concurrency: int = 10, prepare_workers: int = 0,
                 clock: Callable[[], datetime] = utc_now, monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None,
                 log: Callable[[str], None] | None = None):
        self.credentials = credentials
        self.retry = retry or RetryPolicy()
        self.http = http.HttpClient(endpoint_env=ENV_ENDPOINT, timeout=timeout, deadline=deadline, session=session,
                                    rate_limiter=rate_limiter, max_concurrency=max_concurrency,
                                    monotonic=monotonic, log=log, max_response_bytes=soap.MAX_RESPONSE_BYTES)
        self._clock = clock
        self._monotonic = monotonic
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._rng_lock = threading.Lock()
        self.prepare_workers = prepare_workers
        self._workers: Any = None  # EnvelopeWorkers, started by the first prepare_later

    # -- plumbing -----------------------------------------------------------------------------------

    @property
    def session(self) -> "requests.Session":
        return self.http.session

    @property
    def stats(self) -> TransportStats:
        return self.http.stats

    @property
    def rate_limiter(self) -> RateLimiter:
        return self.http.rate_limiter

    def window_opens_in(self) -> float:
        """Seconds until the rate window lets another call start (0: now)."""
        return self.rate_limiter.opens_in()

    @property
    def max_concurrency(self) -> int:
        return self.http.max_concurrency

    def close(self) -> None:
        if self._workers is not None:
            self._workers.close()
            self._workers = None
        self.http.close()

    def __enter__(self) -> "SoapTransport":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SoapTransport({self.credentials!r})"

    # -- envelopes ----------------------------------------------------------------------------------

    def _build(self, records: Sequence[soap.LeadRecord], dedup_enabled: bool) -> bytes:
        creds = self.credentials
        return soap.build_request(records, user_id=creds.user_id, encryption_key=creds.encryption_key,
                                  timestamp=soap.w3c_timestamp(self._now()), dedup_enabled=dedup_enabled)

    def _resign(self, body: bytes) -> bytes:
        creds = self.credentials
        return soap.resign(body, user_id=creds.user_id, encryption_key=creds.encryption_key,
                           timestamp=soap.w3c_timestamp(self._now()))

    def _now(self) -> datetime:
        now = self._clock()
        return now if now.tzinfo is not None else now.replace(tzinfo=timezone.utc)

    def prepare(self, records: Sequence[soap.LeadRecord], dedup_enabled: bool = True) -> PreparedCall:
        """Build, validate and sign the envelope now (raises soap.EnvelopeInvalid on a bug)."""
        records = tuple(records)
        return PreparedCall(records=records, dedup_enabled=dedup_enabled,
                            body=self._build(records, dedup_enabled), built_at=self._monotonic())

    @property
    def prepare_ahead(self) -> int:
        """How many calls are worth preparing ahead of the one being sent: with workers, one rate
        window's worth and the calls in flight, so the next window's envelopes are ready when it opens
        (they are re-signed if they wait longer than a minute); without, one."""
        return self.rate_limiter.calls + self.max_concurrency if self.prepare_workers > 0 else 1

    def prepare_later(self, records: Sequence[soap.LeadRecord], dedup_enabled: bool = True) -> "Future[PreparedCall]":
        """:meth:`prepare` in a worker process: the same bytes for the same timestamp, which is taken now.

        If the workers cannot build it (one died), the envelope is left to :meth:`send` to build."""
        records = tuple(records)
        prepared: Future = Future()
        if self.prepare_workers <= 0:
            try:
                prepared.set_result(self.prepare(records, dedup_enabled))
            except BaseException as exc:
                prepared.set_exception(exc)
            return prepared
        if self._workers is None:
            from reconcile.remote.soap.workers import EnvelopeWorkers

            self._workers = EnvelopeWorkers(self.prepare_workers, user_id=self.credentials.user_id,
                                            encryption_key=self.credentials.encryption_key)
        unbuilt = PreparedCall(records=records, dedup_enabled=dedup_enabled, body=b"", built_at=-math.inf)
        built_at = self._monotonic()  # the signature's age counts from its timestamp, not from the build
        try:
            envelope = self._workers.submit(records, soap.w3c_timestamp(self._now()), dedup_enabled)
        except Exception:  # a broken pool
            prepared.set_result(unbuilt)
            return prepared

        def finished(built: Future) -> None:
            try:
                if built.cancelled():
                    prepared.cancel()
                elif isinstance(built.exception(), ReconcileError):  # a wrong envelope: never sent
                    prepared.set_exception(built.exception())
                elif built.exception() is not None:
                    prepared.set_result(unbuilt)
                else:
                    prepared.set_result(PreparedCall(records=records, dedup_enabled=dedup_enabled,
                                                     body=built.result(), built_at=built_at))
            except InvalidStateError:  # cancelled by the scheduler meanwhile
                pass

        envelope.add_done_callback(finished)
        prepared.add_done_callback(lambda future: envelope.cancel() if future.cancelled() else None)
        return prepared

    # -- sending ------------------------------------------------------------------------------------

    def send(self, records: "Sequence[soap.LeadRecord] | PreparedCall", dedup_enabled: bool = True, *,
             stop: threading.Event | None = None,
             on_retry: Callable[[RetryInfo], None] | None = None) -> list[soap.SyncStatus]:
        """Send one batch; return Marketo's statuses (one per record, in order).

        Raises SoapFault (non-retryable fault codes, or retries exhausted), QuotaExhausted (20015),
        NotDelivered / OutcomeUnknown (transport failures), ResponseError (an unusable answer),
        TransportError (HTTP errors). Each carries `outcome_unknown`. When `stop` is set, no new
        attempt starts (the error raised then is the last failure, or NotDelivered).
        """
        prepared = records if isinstance(records, PreparedCall) else None
        if prepared is not None:
            batch, dedup_enabled = prepared.records, prepared.dedup_enabled
        else:
            batch = tuple(records)
        if not batch:
            return []

        built = [prepared.body] if prepared is not None and prepared.body else []
        fresh_until = prepared.built_at + _PREPARED_MAX_AGE if prepared is not None and built else -math.inf

        def attempt(sent: int) -> list[soap.SyncStatus]:
            if not built:
                built.append(self._build(batch, dedup_enabled))
                body = built[0]
            elif sent == 1 and self._monotonic() <= fresh_until:
                body = built[0]
            else:  # it waited, or is sent again: a fresh timestamp and signature, the same validated body
                body = self._resign(built[0])
            return self._attempt(body, sent, stop)

        return http.call_with_retries(attempt, lambda exc: None, policy=self.retry,
                                      resend_safe=is_resend_safe(batch, dedup_enabled), stop=stop,
                                      on_retry=on_retry, monotonic=self._monotonic, sleep=self._sleep,
                                      uniform=self._uniform, stats=self.http.counters)

    def _uniform(self, low: float, high: float) -> float:
        with self._rng_lock:
            return self._rng.uniform(low, high)

    def call(self, build: Callable[[str, str, str], bytes], action: str, parse: Callable[[bytes, int], Any], *,
             stop: threading.Event | None = None, on_retry: Callable[[RetryInfo], None] | None = None) -> Any:
        """Another mktows operation than syncMultipleLeads, with the same limits, retries and faults:
        `build(user_id, encryption_key, timestamp)` makes the signed, validated envelope of each
        attempt (so each has a fresh signature), `parse(content, http_status)` reads the answer. For
        operations that do nothing more when sent twice (listOperation): resent after any failure."""
        creds = self.credentials

        def attempt(sent: int) -> Any:
            body = build(creds.user_id, creds.encryption_key, soap.w3c_timestamp(self._now()))
            return self._attempt(body, sent, stop, action, parse)

        return http.call_with_retries(attempt, lambda exc: None, policy=self.retry, resend_safe=True, stop=stop,
                                      on_retry=on_retry, monotonic=self._monotonic, sleep=self._sleep,
                                      uniform=self._uniform, stats=self.http.counters)

    def _attempt(self, body: bytes, attempt: int, stop: threading.Event | None, action: str = soap.SOAP_ACTION,
                 parse: Callable[[bytes, int], Any] = soap.parse_response) -> Any:
        """One HTTP exchange. Raises http.Failure (classified) or http.Stopped."""
        headers = {"Content-Type": soap.CONTENT_TYPE, "SOAPAction": action, "Accept": "text/xml"}
        answer = self.http.exchange("POST", self.credentials.endpoint, body=body, headers=headers,
                                    attempt=attempt, stop=stop, show=soap.redact)
        try:
            return parse(answer.content, answer.status)
        except SoapFault as fault:
            raise self._classify_fault(fault) from None
        except ResponseError as exc:
            failure = self.http.classify_status(answer, self.credentials.endpoint,
                                                "without a SOAP fault" if answer.status >= 429 else exc.message)
            if failure is not None:
                raise failure from None
            # a 2xx we cannot use: Marketo most likely applied the batch
            raise http.Failure(mark_outcome(exc, True), Handling.STOP, "unusable response", unknown=True) from None

    def _classify_fault(self, fault: SoapFault) -> http.Failure:
        code = fault.code or ""
        handling = codes.handling(code)
        reason = f"{code} {fault.fault_message}".strip()
        if handling is Handling.QUOTA:
            def quota(suffix: str) -> BaseException:
                now = self._now()
                resets = quota_reset_after(now)
                cause = f"{code} {codes.message(code)}"
                return QuotaExhausted(http.quota_message(now, resets, cause), resets, code=code)
            return http.Failure(fault, handling, reason, final=quota)
        if handling is Handling.RESIGN:
            def expired(suffix: str) -> BaseException:
                return SoapFault(fault.code, f"{fault.fault_message} (still after re-signing: check that "
                                             "this machine's clock is correct)", fault.faultcode, fault.http_status)
            return http.Failure(fault, handling, reason, final=expired)
        if handling in (Handling.RETRY, Handling.UNKNOWN, Handling.THROTTLED):
            def exhausted(suffix: str) -> BaseException:
                return SoapFault(fault.code, fault.fault_message + suffix, fault.faultcode, fault.http_status)
            return http.Failure(fault, handling, reason, final=exhausted)
        return http.Failure(fault, Handling.STOP, reason)
