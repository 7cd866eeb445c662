"""The only module that talks to the network: signed syncMultipleLeads POSTs over a requests session.

* :class:`Credentials` come from the environment only (``MARKETO_SOAP_ENDPOINT``,
  ``MARKETO_USER_ID``, ``MARKETO_ENCRYPTION_KEY``); the key never appears in a repr, a message or a log.
* :class:`SoapTransport` sends one batch per :meth:`SoapTransport.send`: every attempt gets a fresh
  timestamp and signature; transient failures are retried with exponential backoff and full jitter,
  bounded in attempts and in total time; a client-side :class:`RateLimiter` (sliding window) and a
  concurrency cap keep it inside Marketo's limits (100 calls / 20 s, 10 at once).
* Failures say whether the batch may have been applied: :class:`NotDelivered` (it certainly was not)
  versus :class:`OutcomeUnknown` (the request went out and no usable answer came back). Every error
  raised by ``send`` carries ``outcome_unknown`` (see :func:`outcome_unknown`).
  With ``dedupEnabled=false``, a batch whose email-only records would be duplicated by a resend is
  never resent after an ambiguous failure.

requests and lxml are imported lazily: importing this module is cheap.
"""

from __future__ import annotations

import ipaddress
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence
from urllib.parse import urlsplit

from reconcile.core.clock import utc_now
from reconcile.remote.soap import envelope as soap
from reconcile.remote.base import (NotDelivered, OutcomeUnknown, QuotaExhausted, RetryInfo, TransportStats,
                                    mark_outcome, outcome_unknown)
from reconcile.errors import ConfigError, RemoteError, ResponseError, SoapFault, TransportError

if TYPE_CHECKING:  # pragma: no cover
    import requests

__all__ = [
    "ENV_ENDPOINT", "ENV_USER_ID", "ENV_ENCRYPTION_KEY", "Credentials", "RetryPolicy", "RetryInfo",
    "RateLimiter", "SoapTransport", "PreparedCall", "TransportStats", "NotDelivered", "OutcomeUnknown",
    "QuotaExhausted", "outcome_unknown", "is_resend_safe", "quota_reset_after", "validate_endpoint",
]

ENV_ENDPOINT = "MARKETO_SOAP_ENDPOINT"
ENV_USER_ID = "MARKETO_USER_ID"
ENV_ENCRYPTION_KEY = "MARKETO_ENCRYPTION_KEY"

# mktows codes: retried with backoff (the call was refused or failed inside Marketo) ...
RETRYABLE_CODES = frozenset({"20023", "20024", "20011", "10001"})
# ... of which these are internal failures after which the call may have been partly applied.
AMBIGUOUS_CODES = frozenset({"20011", "10001"})
# ... and these are refusals for load: nothing was applied.
THROTTLE_CODES = frozenset({"20023", "20024"})
REQUEST_EXPIRED = "20016"
QUOTA_EXCEEDED = "20015"

_PREPARED_MAX_AGE = 60.0  # seconds a pre-built (pre-signed) envelope may wait before it is re-signed
_LOG_BODY_LIMIT = 256 * 1024


# --------------------------------------------------------------------------------------------------
# Errors


# --------------------------------------------------------------------------------------------------
# Credentials


def _is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    return address.is_loopback


def validate_endpoint(endpoint: str, what: str = ENV_ENDPOINT) -> str:
    """The endpoint, checked: https (or http to a loopback host only), with a host, no credentials."""
    endpoint = (endpoint or "").strip()
    try:
        parts = urlsplit(endpoint)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ConfigError(f"{what} is not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http") or not host:
        raise ConfigError(f"{what} must be an https:// URL such as "
                          f"https://123-ABC-456.mktoapi.com/soap/mktows/2_1, not {endpoint!r}")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(f"{what} must not contain a user name or password")
    if scheme == "http" and not _is_loopback(host):
        raise ConfigError(f"{what} uses plain http:// to {host}: refusing to send signed requests "
                          "unencrypted; use https:// (http:// is allowed only to a loopback address "
                          "such as the local emulator)")
    return endpoint


@dataclass(frozen=True)
class Credentials:
    """Where and as whom to call Marketo. The encryption key is never shown by repr() or str()."""

    endpoint: str
    user_id: str
    encryption_key: str = field(repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "endpoint", validate_endpoint(self.endpoint, "the SOAP endpoint"))
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
        endpoint = validate_endpoint(endpoint, what)
        return cls(endpoint=endpoint, user_id=env[ENV_USER_ID].strip(),
                   encryption_key=env[ENV_ENCRYPTION_KEY].strip())

    def __repr__(self) -> str:
        return f"Credentials(endpoint={self.endpoint!r}, user_id={self.user_id!r}, encryption_key='***')"

    __str__ = __repr__


# --------------------------------------------------------------------------------------------------
# Limits


def _pause(sleep: Callable[[float], None], seconds: float, stop: threading.Event | None) -> None:
    if seconds <= 0:
        return
    if stop is not None and sleep is time.sleep:
        stop.wait(seconds)
    else:
        sleep(seconds)


class _Stopped(Exception):
    pass


class RateLimiter:
    """A thread-safe sliding-window limiter: at most `calls` acquisitions in any `window` seconds.

    `margin` widens the window a little so that network jitter between our send time and Marketo's
    receive time cannot push two calls `window` apart into one server-side window.
    """

    def __init__(self, calls: int = 100, window: float = 20.0, *, margin: float | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        if calls < 1 or window <= 0:
            raise ValueError("RateLimiter needs calls >= 1 and window > 0")
        self.calls = calls
        self.window = float(window)
        self.margin = float(margin) if margin is not None else min(1.0, max(0.05, 0.05 * window))
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._times: deque[float] = deque()

    def acquire(self, stop: threading.Event | None = None) -> float:
        """Block until a call may start; returns the seconds waited. Raises _Stopped if `stop` is set."""
        waited = 0.0
        span = self.window + self.margin
        while True:
            with self._lock:
                now = self._clock()
                while self._times and self._times[0] <= now - span:
                    self._times.popleft()
                if len(self._times) < self.calls:
                    self._times.append(now)
                    return waited
                delay = self._times[0] + span - now
            if stop is not None and stop.is_set():
                raise _Stopped()
            delay = max(delay, 0.001)
            _pause(self._sleep, delay, stop)
            waited += delay


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries: attempts per batch, total seconds per batch, full-jitter exponential backoff."""

    max_attempts: int = 6
    max_elapsed: float = 120.0
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_resign: int = 2  # immediate re-signed retries after 20016 Request Expired
    # Refusals for load (20023 rate, 20024 concurrency, HTTP 429) applied nothing and clear within
    # Marketo's 20 s window: they may use more attempts (still within max_elapsed).
    max_throttled_attempts: int = 10

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.max_elapsed < 0 or self.base_delay < 0 or self.max_delay < 0 \
                or self.max_throttled_attempts < 1:
            raise ValueError("invalid retry policy")


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


# --------------------------------------------------------------------------------------------------
# The daily quota's reset time


def _central() -> tzinfo | None:
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo("America/Chicago")
    except Exception:
        return None


def _us_central_offset(moment_utc: datetime) -> timedelta:
    """UTC offset of US Central time (CST -6, CDT -5 from the 2nd Sunday of March to the 1st of Nov)."""
    year = moment_utc.year

    def nth_sunday(month: int, n: int) -> datetime:
        first = datetime(year, month, 1, tzinfo=timezone.utc)
        days = (6 - first.weekday()) % 7 + 7 * (n - 1)
        return first + timedelta(days=days)

    dst_start = nth_sunday(3, 2) + timedelta(hours=8)  # 02:00 CST = 08:00 UTC
    dst_end = nth_sunday(11, 1) + timedelta(hours=7)  # 02:00 CDT = 07:00 UTC
    return timedelta(hours=-5) if dst_start <= moment_utc < dst_end else timedelta(hours=-6)


def quota_reset_after(now: datetime) -> datetime:
    """The next midnight in America/Chicago after `now` (aware; a naive value is taken as UTC)."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    zone = _central()
    if zone is not None:
        local = now.astimezone(zone)
        next_day = (local + timedelta(days=1)).date()
        return datetime(next_day.year, next_day.month, next_day.day, tzinfo=zone)
    utc = now.astimezone(timezone.utc)
    local = utc + _us_central_offset(utc)
    next_day = (local + timedelta(days=1)).date()
    naive_midnight = datetime(next_day.year, next_day.month, next_day.day, tzinfo=timezone.utc)
    offset = _us_central_offset(naive_midnight + timedelta(hours=6))
    return (naive_midnight - offset).astimezone(timezone(offset))


def _quota_message(now: datetime, resets_at: datetime) -> str:
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    remaining = max(timedelta(0), resets_at - now)
    hours, rest = divmod(int(remaining.total_seconds()), 3600)
    minutes = rest // 60
    local = resets_at.strftime("%Y-%m-%d %H:%M ") + (resets_at.tzname() or "US Central")
    utc = resets_at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"Marketo's daily API quota is used up (20015 Request Limit Exceeded); it resets at midnight "
            f"US Central time, {local} ({utc}), in about {hours} h {minutes:02d} min. Leads applied so far "
            "are recorded in the state; run apply again after the reset to send the rest")


# --------------------------------------------------------------------------------------------------
# The transport


class _Attempt(Exception):
    """One failed attempt, classified."""

    def __init__(self, error: BaseException, *, retry: bool, unknown: bool, reason: str,
                 retry_after: float | None = None, throttled: bool = False):
        super().__init__(reason)
        self.error = error
        self.retry = retry
        self.unknown = unknown
        self.reason = reason
        self.retry_after = retry_after
        self.throttled = throttled


class SoapTransport:
    """Sends syncMultipleLeads batches to one endpoint. Thread-safe: call `send` from several threads.

    `timeout` is requests' (connect, read) in seconds. `clock` is the wall clock of request
    timestamps and of the quota reset; `monotonic`, `sleep` and `rng` drive backoff (inject fakes in
    tests). `log`, when given, receives one text per HTTP request and response, signatures redacted.
    """

    def __init__(self, credentials: Credentials, *, timeout: tuple[float, float] = (10.0, 120.0),
                 session: "requests.Session | None" = None, retry: RetryPolicy | None = None,
                 rate_limiter: RateLimiter | None = None, max_concurrency: int = 10,
                 clock: Callable[[], datetime] = utc_now, monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None,
                 log: Callable[[str], None] | None = None):
        if not 1 <= max_concurrency <= 10:
            raise ValueError("max_concurrency must be between 1 and 10")
        self.credentials = credentials
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.rate_limiter = rate_limiter or RateLimiter()
        self.max_concurrency = max_concurrency
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._clock = clock
        self._monotonic = monotonic
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._rng_lock = threading.Lock()
        self._log = log
        self._session = session
        self._session_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self.stats = TransportStats()

    # -- session ------------------------------------------------------------------------------------

    @property
    def session(self) -> "requests.Session":
        if self._session is None:
            with self._session_lock:
                if self._session is None:
                    import requests
                    from requests.adapters import HTTPAdapter

                    session = requests.Session()
                    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=self.max_concurrency,
                                          max_retries=0, pool_block=False)
                    session.mount("https://", adapter)
                    session.mount("http://", adapter)
                    session.verify = True
                    session.headers.update({"User-Agent": _user_agent()})
                    self._session = session
        return self._session

    def close(self) -> None:
        with self._session_lock:
            if self._session is not None:
                self._session.close()
                self._session = None

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

    def _now(self) -> datetime:
        now = self._clock()
        return now if now.tzinfo is not None else now.replace(tzinfo=timezone.utc)

    def prepare(self, records: Sequence[soap.LeadRecord], dedup_enabled: bool = True) -> PreparedCall:
        """Build, validate and sign the envelope now (raises soap.EnvelopeInvalid on a bug)."""
        records = tuple(records)
        return PreparedCall(records=records, dedup_enabled=dedup_enabled,
                            body=self._build(records, dedup_enabled), built_at=self._monotonic())

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
        resend_safe = is_resend_safe(batch, dedup_enabled)
        policy = self.retry
        started = self._monotonic()
        attempt = 0  # backoff attempts (a re-signed retry after 20016 does not count)
        sent = 0  # HTTP requests for this batch
        resigned = 0
        ambiguous = False  # some attempt of this batch may have been applied
        while True:
            attempt += 1
            sent += 1
            if stop is not None and stop.is_set():
                raise self._stopped(ambiguous)
            if sent == 1 and prepared is not None and self._monotonic() - prepared.built_at <= _PREPARED_MAX_AGE:
                body = prepared.body
            else:
                body = self._build(batch, dedup_enabled)  # a fresh timestamp and signature every time
            try:
                return self._attempt(body, sent, stop)
            except _Stopped:
                raise self._stopped(ambiguous) from None
            except _Attempt as failure:
                ambiguous = ambiguous or failure.unknown
                error = failure.error
                if isinstance(error, SoapFault) and error.code == REQUEST_EXPIRED and resigned < policy.max_resign:
                    resigned += 1
                    attempt -= 1  # a re-signed retry at once; it does not count as a backoff attempt
                    self._count(retries=1)
                    continue
                if isinstance(error, SoapFault) and error.code == QUOTA_EXCEEDED:
                    now = self._now()
                    resets = quota_reset_after(now)
                    raise mark_outcome(QuotaExhausted(_quota_message(now, resets), resets, code=QUOTA_EXCEEDED), ambiguous) from error
                if isinstance(error, SoapFault) and error.code == REQUEST_EXPIRED:
                    expired = SoapFault(error.code, f"{error.fault_message} (still after re-signing: check that "
                                                    "this machine's clock is correct)", error.faultcode,
                                        error.http_status)
                    raise mark_outcome(expired, ambiguous) from None
                if not failure.retry:
                    raise mark_outcome(error, ambiguous) from None
                if failure.unknown and not resend_safe:
                    raise mark_outcome(OutcomeUnknown(
                        f"{failure.reason}: the batch may have been applied, and with dedup off resending "
                        "it could create duplicate leads, so it is not resent"), True) from error
                elapsed = self._monotonic() - started
                delay = self._backoff(attempt, failure.retry_after)
                limit = max(policy.max_attempts, policy.max_throttled_attempts) if failure.throttled \
                    else policy.max_attempts
                if attempt >= limit or elapsed + delay > policy.max_elapsed:
                    raise self._exhausted(error, failure, attempt, ambiguous)
                if on_retry is not None:
                    on_retry(RetryInfo(attempt=attempt, delay=delay, reason=failure.reason,
                                       outcome_unknown=failure.unknown))
                self._count(retries=1, waited=delay)
                _pause(self._sleep, delay, stop)

    def _stopped(self, ambiguous: bool) -> BaseException:
        if ambiguous:
            return mark_outcome(OutcomeUnknown("interrupted while retrying a batch whose outcome is unknown"), True)
        return mark_outcome(NotDelivered("interrupted before the batch was sent"), False)

    def _exhausted(self, error: BaseException, failure: _Attempt, attempts: int, ambiguous: bool) -> BaseException:
        text = getattr(error, "message", None) or str(error)
        suffix = f" (gave up after {attempts} attempt{'s' if attempts != 1 else ''})"
        if isinstance(error, SoapFault):
            final: BaseException = SoapFault(error.code, error.fault_message + suffix, error.faultcode,
                                              error.http_status)
        elif ambiguous:
            final = OutcomeUnknown(text + suffix)
        elif isinstance(error, NotDelivered):
            final = NotDelivered(text + suffix)
        else:
            final = TransportError(text + suffix, code=getattr(error, "code", None))
        final.__cause__ = error
        return mark_outcome(final, ambiguous)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        policy = self.retry
        ceiling = min(policy.max_delay, policy.base_delay * (2 ** (attempt - 1)))
        with self._rng_lock:
            delay = self._rng.uniform(0.0, ceiling)
        if retry_after is not None:
            delay = max(delay, min(retry_after, policy.max_delay))
        return delay

    def _count(self, attempts: int = 0, retries: int = 0, waited: float = 0.0) -> None:
        with self._stats_lock:
            self.stats.attempts += attempts
            self.stats.retries += retries
            self.stats.waited += waited

    def _attempt(self, body: bytes, attempt: int, stop: threading.Event | None) -> list[soap.SyncStatus]:
        """One HTTP exchange. Raises _Attempt (classified failure) or _Stopped."""
        with self._slots:
            waited = self.rate_limiter.acquire(stop)
            if waited:
                self._count(waited=waited)
            if stop is not None and stop.is_set():
                raise _Stopped()
            self._count(attempts=1)
            status, reason, content, headers = self._post(body, attempt)
        try:
            return soap.parse_response(content, status)
        except SoapFault as fault:
            code = fault.code or ""
            retry = code in RETRYABLE_CODES or code == REQUEST_EXPIRED
            raise _Attempt(fault, retry=retry, unknown=code in AMBIGUOUS_CODES,
                           reason=f"{code} {fault.fault_message}".strip(),
                           throttled=code in THROTTLE_CODES) from None
        except ResponseError as exc:
            if status == 429 or status >= 500:
                # an HTTP error without a SOAP fault (a proxy, a load balancer): transient.
                # 429/503 mean "not now"; other 5xx may come after Marketo processed the call.
                unknown = status not in (429, 503)
                error = mark_outcome(TransportError(f"HTTP {status} {reason} from {self.credentials.endpoint} "
                                             f"without a SOAP fault"), unknown)
                raise _Attempt(error, retry=True, unknown=unknown, reason=f"HTTP {status}",
                               retry_after=_retry_after(headers), throttled=status == 429) from None
            if 300 <= status < 400:
                where = headers.get("Location", "elsewhere")
                error = TransportError(f"HTTP {status}: the endpoint redirects to {where}; set "
                                       f"{ENV_ENDPOINT} to the SOAP endpoint itself")
                raise _Attempt(mark_outcome(error, False), retry=False, unknown=False, reason=f"HTTP {status}") from None
            if 400 <= status < 500:
                error = TransportError(f"HTTP {status} {reason} from {self.credentials.endpoint}: "
                                       f"{exc.message}; check {ENV_ENDPOINT}")
                raise _Attempt(mark_outcome(error, False), retry=False, unknown=False, reason=f"HTTP {status}") from None
            # a 2xx we cannot use: Marketo most likely applied the batch
            raise _Attempt(mark_outcome(exc, True), retry=False, unknown=True, reason="unusable response") from None

    def _post(self, body: bytes, attempt: int) -> tuple[int, str, bytes, Mapping[str, str]]:
        import requests

        endpoint = self.credentials.endpoint
        headers = {"Content-Type": soap.CONTENT_TYPE, "SOAPAction": soap.SOAP_ACTION,
                   "Accept": "text/xml"}
        if self._log is not None:
            self._log(f"> POST {endpoint} (attempt {attempt}, {len(body)} bytes)\n"
                      f"> Content-Type: {soap.CONTENT_TYPE}\n> SOAPAction: {soap.SOAP_ACTION}\n"
                      + _truncate(soap.redact(body)))
        began = self._monotonic()
        try:
            response = self.session.post(endpoint, data=body, headers=headers, timeout=self.timeout,
                                         stream=True, verify=True, allow_redirects=False)
        except requests.exceptions.SSLError as exc:
            error = TransportError(f"TLS error talking to {endpoint}: {_short(exc)}")
            raise _Attempt(mark_outcome(error, False), retry=False, unknown=False, reason="TLS error") from None
        except requests.exceptions.ConnectTimeout as exc:
            error = NotDelivered(f"connection to {endpoint} timed out: {_short(exc)}")
            raise _Attempt(error, retry=True, unknown=False, reason="connect timeout") from None
        except requests.exceptions.ReadTimeout:
            error = OutcomeUnknown(f"no answer from {endpoint} within {self._read_timeout():g} s")
            raise _Attempt(error, retry=True, unknown=True, reason="read timeout") from None
        except requests.exceptions.ConnectionError as exc:
            if _failed_before_sending(exc):
                error = NotDelivered(f"cannot connect to {endpoint}: {_short(exc)}")
                raise _Attempt(error, retry=True, unknown=False, reason="connection failed") from None
            error = OutcomeUnknown(f"connection to {endpoint} lost before an answer: {_short(exc)}")
            raise _Attempt(error, retry=True, unknown=True, reason="connection lost") from None
        except requests.exceptions.RequestException as exc:
            error = TransportError(f"cannot send to {endpoint}: {_short(exc)}")
            raise _Attempt(mark_outcome(error, False), retry=False, unknown=False, reason="request error") from None
        try:
            content = self._read_bounded(response, began)
        except ResponseError as exc:
            raise _Attempt(mark_outcome(exc, True), retry=False, unknown=True, reason="response refused") from None
        except (requests.exceptions.RequestException, OSError) as exc:
            error = OutcomeUnknown(f"connection to {endpoint} lost while reading the answer: {_short(exc)}")
            raise _Attempt(error, retry=True, unknown=True, reason="connection lost") from None
        finally:
            response.close()
        status, reason = response.status_code, response.reason or ""
        if self._log is not None:
            elapsed = self._monotonic() - began
            self._log(f"< HTTP {status} {reason} in {elapsed:.3f} s ({len(content)} bytes)\n"
                      + _truncate(soap.redact(content)))
        return status, reason, content, response.headers

    def _read_timeout(self) -> float:
        timeout = self.timeout
        return float(timeout[1] if isinstance(timeout, tuple) else timeout)

    def _read_bounded(self, response: Any, began: float) -> bytes:
        limit = soap.MAX_RESPONSE_BYTES
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            raise ResponseError(f"response of {declared} bytes exceeds the limit of {limit} bytes")
        deadline = began + 2 * max(self._read_timeout(), 1.0)
        chunks = []
        total = 0
        for chunk in response.iter_content(64 * 1024):
            total += len(chunk)
            if total > limit:
                raise ResponseError(f"response exceeds the limit of {limit} bytes")
            chunks.append(chunk)
            if self._monotonic() > deadline:
                raise ResponseError("response took too long to arrive")
        return b"".join(chunks)


def _failed_before_sending(exc: BaseException) -> bool:
    """Whether a requests ConnectionError happened while connecting (nothing was sent)."""
    try:
        from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
    except ImportError:  # pragma: no cover
        return False
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        item = stack.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, (NewConnectionError, ConnectTimeoutError, ConnectionRefusedError)):
            return True
        if isinstance(item, BaseException):
            stack.extend([getattr(item, "reason", None), item.__cause__, item.__context__])
            stack.extend(arg for arg in item.args if isinstance(arg, BaseException))
    return False


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = (headers.get("Retry-After") or "").strip()
    if value.isdigit():
        return float(value)
    return None


def _short(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _truncate(text: str) -> str:
    if len(text) <= _LOG_BODY_LIMIT:
        return text
    return text[:_LOG_BODY_LIMIT] + f"\n[... {len(text) - _LOG_BODY_LIMIT} more characters not logged]"


def _user_agent() -> str:
    from reconcile import __version__

    return f"reconcile/{__version__}"
