"""HTTP machinery shared by every Marketo API transport (SOAP today, REST next): no wire format here.

A transport built on this module keeps only its own session details, its request building and its
classification of answers. Everything else lives here:

Endpoints
    ``validate_endpoint(url, what, example)`` -> the URL, checked: https (plain http only to a loopback host),
    a host, no ``user:password@``. Raises ``ConfigError`` naming ``what`` (an env var or option), with
    any userinfo redacted. ``redact_url(text)`` hides userinfo and ``access_token`` / ``client_id`` /
    ``client_secret`` query values in any URL about to be shown or logged (the debug log does this
    itself); ``host_port(url)``; ``is_loopback(host)``. ``one_line(text, limit)`` escapes control
    characters visibly (``\\r``) in server text before it reaches a message.

Limits
    ``RateLimiter(calls, window)`` (thread-safe sliding window; ``admit(stop)`` raises ``Stopped``
    when ``stop`` is set; a call counts from its answer once ``Admission.answered()``, else from its
    start plus a margin). ``RetryPolicy`` (attempts, total seconds, full-jitter exponential backoff,
    throttled attempts, immediate re-signs). ``pause(sleep, seconds, stop)`` waits, waking early
    when ``stop`` is set (with the real ``time.sleep``).

The daily quota
    ``quota_reset_after(now)`` -> the next midnight US Central; ``quota_message(now, resets_at, cause)``
    -> the one-line user message, e.g. cause ``"607 Daily quota reached"``.

One HTTP exchange: ``HttpClient``
    ``HttpClient(endpoint_env="MARKETO_REST_ENDPOINT", timeout=(10, 120), deadline=120, ...)`` owns a
    requests session (TLS verified, no redirects, no urllib3 retries, our user agent), the concurrency
    slots, the rate limiter and the counters (``stats``, a ``remote.base.TransportStats``).
    ``client.exchange(method, url, body=..., headers=..., attempt=n, stop=stop, show=redactor)`` makes
    ONE request and returns an ``Answer(status, reason, content, headers)`` (reason already escaped);
    the whole exchange (connect, headers, body) must finish within ``deadline`` seconds, enforced by
    a watchdog that shuts the socket down. A failure without an answer raises ``Failure`` with a
    ``Handling`` already decided: RETRY for "certainly not sent" (the error reads "could not connect
    to HOST:PORT (connection refused); check <endpoint_env>"; an unknown host gets one retry only),
    UNKNOWN for "sent, no usable answer" (read timeout, connection lost, deadline passed), STOP for
    TLS errors and refused oversized answers. ``stats.attempts`` counts requests that left, not
    connection attempts. It raises ``Stopped`` when ``stop`` is set while waiting for a slot. Bodies are read
    with a size cap (``max_response_bytes``). ``show(bytes) -> str`` turns bodies into debug-log text
    (redact secrets there); ``log`` receives one text per request and per answer.
    ``client.classify_status(answer, url, detail)`` -> the ``Failure`` for an HTTP status that carries no
    API-level error (429, 5xx, 3xx, 4xx), or None for 2xx.

The retry loop
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

import ipaddress
import random
import re
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from typing import TYPE_CHECKING, Any, Callable, Mapping, TypeVar
from urllib.parse import urlsplit

from reconcile.errors import ConfigError, ResponseError, TransportError
from reconcile.remote.base import (NotDelivered, OutcomeUnknown, RetryInfo, TransportStats, mark_outcome)
from reconcile.remote.codes import Handling
from reconcile.core.safetext import visible

if TYPE_CHECKING:  # pragma: no cover
    import requests

__all__ = [
    "is_loopback", "validate_endpoint", "redact_url", "one_line", "RateLimiter", "Admission", "Stopped", "pause",
    "RetryPolicy", "backoff_delay", "quota_reset_after", "quota_message", "retry_after", "user_agent",
    "Answer", "Failure", "HttpClient", "Counters", "call_with_retries", "host_port", "DEFAULT_DEADLINE",
    "LOG_BODY_LIMIT",
]

DEFAULT_DEADLINE = 120.0  # seconds one attempt (connect + headers + body) may take at most
LOG_BODY_LIMIT = 256 * 1024
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024

T = TypeVar("T")


# --------------------------------------------------------------------------------------------------
# Text that reaches a message


def one_line(text: str, limit: int = 300) -> str:
    """Untrusted text fit for a one-line message: control characters shown escaped, bounded."""
    text = visible(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*:/+)[^/?#@\s]*@")
_SECRET_PARAMS = re.compile(r"(?i)([?&](?:access_token|client_secret|client_id)=)[^&#\s]*")


def redact_url(url: str) -> str:
    """The URL with any ``user:password@`` replaced by ``***@`` and secret query parameters
    (``access_token``, ``client_id``, ``client_secret``) by ``***``; also inside longer text."""
    return _SECRET_PARAMS.sub(r"\1***", _USERINFO.sub(r"\1***@", str(url)))


# --------------------------------------------------------------------------------------------------
# Endpoints


def is_loopback(host: str) -> bool:
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


def validate_endpoint(endpoint: str, what: str, example: str | None = None) -> str:
    """The endpoint, checked: https (or http to a loopback host only), with a host, no credentials.
    `example` is a well-formed endpoint of the caller's API, shown when the URL is not usable."""
    endpoint = (endpoint or "").strip()
    shown = one_line(redact_url(endpoint), 200)
    try:
        parts = urlsplit(endpoint)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ConfigError(f"{what} is not a valid URL: {one_line(redact_url(str(exc)), 200)}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http") or not host:
        such = f" such as {example}" if example else ""
        raise ConfigError(f"{what} must be an https:// URL{such}, not {shown!r}")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(f"{what} must not contain a user name or password")
    if scheme == "http" and not is_loopback(host):
        raise ConfigError(f"{what} uses plain http:// to {one_line(host, 200)}: refusing to send signed "
                          "requests unencrypted; use https:// (http:// is allowed only to a loopback address "
                          "such as the local emulator)")
    return endpoint


def host_port(url: str) -> str:
    """``HOST:PORT`` of a URL, the port defaulted from the scheme."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = 443 if parts.scheme.lower() == "https" else 80
    return one_line(f"{host}:{port}", 300)


# --------------------------------------------------------------------------------------------------
# Limits


def pause(sleep: Callable[[float], None], seconds: float, stop: threading.Event | None) -> None:
    """Wait `seconds`; with the real time.sleep, wake as soon as `stop` is set."""
    if seconds <= 0:
        return
    if stop is not None and sleep is time.sleep:
        stop.wait(seconds)
    else:
        sleep(seconds)


class Stopped(Exception):
    """The caller's stop event was set while waiting for a slot."""


class RateLimiter:
    """A thread-safe sliding-window limiter: at most `calls` acquisitions in any `window` seconds.

    What Marketo counts is when it received each call, which we never see: we know only that it was
    after we began the call and before we had its answer. So a call counts in the window until
    `window` seconds after its answer (`Admission.answered`), or, while it is unanswered, until
    `window + margin` seconds after it began: `margin` covers the network time between our start and
    Marketo's receipt that jitter could otherwise push into one server-side window with a later call.
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
        self._counted_until: list[list[float]] = []  # one [time] a call in the window: when it stops counting

    def acquire(self, stop: threading.Event | None = None) -> float:
        """Block until a call may start; returns the seconds waited. Raises Stopped if `stop` is set."""
        return self.admit(stop).waited

    def admit(self, stop: threading.Event | None = None) -> "Admission":
        """Block until a call may start. Raises Stopped if `stop` is set while waiting."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                self._counted_until = [until for until in self._counted_until if until[0] > now]
                if len(self._counted_until) < self.calls:
                    until = [now + self.window + self.margin]
                    self._counted_until.append(until)
                    return Admission(waited, self, until)
                delay = min(until[0] for until in self._counted_until) - now
            if stop is not None and stop.is_set():
                raise Stopped()
            delay = max(delay, 0.001)
            pause(self._sleep, delay, stop)
            waited += delay

    def opens_in(self) -> float:
        """Seconds until the window lets another call start (0: it would now)."""
        with self._lock:
            now = self._clock()
            counted = sorted(until[0] for until in self._counted_until if until[0] > now)
            if len(counted) < self.calls:
                return 0.0
            return counted[len(counted) - self.calls] - now

    def _answered(self, until: list[float]) -> None:
        with self._lock:
            until[0] = min(until[0], self._clock() + self.window)


@dataclass
class Admission:
    """One call let through the rate window."""

    waited: float  # seconds spent waiting for the window
    _limiter: RateLimiter
    _until: list[float]

    def answered(self) -> None:
        """Marketo has answered, so it received the call by now: the call counts `window` seconds from
        here, if that is sooner than from its start plus the margin."""
        self._limiter._answered(self._until)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries: attempts per batch, total seconds per batch, full-jitter exponential backoff."""

    max_attempts: int = 6
    max_elapsed: float = 120.0
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_resign: int = 2  # immediate retries with a renewed signature (SOAP 20016) or token (REST 601/602)
    # Refusals for load (rate, concurrency, HTTP 429) applied nothing and clear within Marketo's 20 s
    # window: they may use more attempts (still within max_elapsed).
    max_throttled_attempts: int = 10

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.max_elapsed < 0 or self.base_delay < 0 or self.max_delay < 0 \
                or self.max_throttled_attempts < 1:
            raise ValueError("invalid retry policy")


def backoff_delay(policy: RetryPolicy, attempt: int, retry_after_seconds: float | None,
                  uniform: Callable[[float, float], float]) -> float:
    """Full jitter: uniform(0, min(max_delay, base * 2^(attempt-1))), at least Retry-After (capped)."""
    ceiling = min(policy.max_delay, policy.base_delay * (2 ** (attempt - 1)))
    delay = uniform(0.0, ceiling)
    if retry_after_seconds is not None:
        delay = max(delay, min(retry_after_seconds, policy.max_delay))
    return delay


def retry_after(headers: Mapping[str, str]) -> float | None:
    value = (headers.get("Retry-After") or "").strip()
    if value.isdigit():
        return float(value)
    return None


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


def quota_message(now: datetime, resets_at: datetime, cause: str) -> str:
    """What to tell the user when the daily quota is used up; `cause` is e.g. "20015 Request Limit Exceeded"."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    remaining = max(timedelta(0), resets_at - now)
    hours, rest = divmod(int(remaining.total_seconds()), 3600)
    minutes = rest // 60
    local = resets_at.strftime("%Y-%m-%d %H:%M ") + (resets_at.tzname() or "US Central")
    utc = resets_at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"Marketo's daily API quota is used up ({cause}); it resets at midnight "
            f"US Central time, {local} ({utc}), in about {hours} h {minutes:02d} min. Leads applied so far "
            "are recorded in the state; run apply again after the reset to send the rest")


# --------------------------------------------------------------------------------------------------
# Classified failures and the retry loop


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


# --------------------------------------------------------------------------------------------------
# One HTTP exchange


@dataclass(frozen=True)
class Answer:
    """What came back from one request, read in full."""

    status: int
    reason: str
    content: bytes
    headers: Mapping[str, str]


def user_agent() -> str:
    from reconcile import __version__

    return f"reconcile/{__version__}"


def _truncate(text: str) -> str:
    if len(text) <= LOG_BODY_LIMIT:
        return text
    return text[:LOG_BODY_LIMIT] + f"\n[... {len(text) - LOG_BODY_LIMIT} more characters not logged]"


def _short(exc: BaseException, limit: int = 200) -> str:
    return one_line(redact_url(" ".join(str(exc).split())), limit)


class _Watch:
    """One attempt's deadline: when it passes, the attempt's connections are shut down, which wakes
    any read blocked on them (a per-read timeout cannot catch a server trickling one byte a second)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.expired = False
        self._sockets: list[Any] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> "_Watch":
        _watching.current = self
        self._timer.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._timer.cancel()
        _watching.current = None

    def add(self, sock: Any) -> None:
        """Watch a connection's socket. (The socket, not the connection: http.client detaches the
        socket from the connection when the answer says "Connection: close".)"""
        with self._lock:
            self._sockets.append(sock)
            expired = self.expired
        if expired:
            _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)


def _shut(sock: Any) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


# The watch of the attempt running on this thread; the connection classes below register with it.
_watching = threading.local()


def _watched_adapter(pool_maxsize: int) -> Any:
    """A requests adapter whose connections register with the current thread's _Watch."""
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class Watched:
        def connect(self) -> None:
            watch = getattr(_watching, "current", None)
            super().connect()  # type: ignore[misc]
            if watch is not None and getattr(self, "sock", None) is not None:
                watch.add(self.sock)

        def request(self, *args: Any, **kwargs: Any) -> Any:
            watch = getattr(_watching, "current", None)
            if watch is not None and getattr(self, "sock", None) is not None:
                watch.add(self.sock)  # a kept-alive connection: connect() is not called again
            return super().request(*args, **kwargs)  # type: ignore[misc]

    class WatchedHTTPConnection(Watched, HTTPConnection):
        pass

    class WatchedHTTPSConnection(Watched, HTTPSConnection):
        pass

    class WatchedHTTPPool(HTTPConnectionPool):
        ConnectionCls = WatchedHTTPConnection

    class WatchedHTTPSPool(HTTPSConnectionPool):
        ConnectionCls = WatchedHTTPSConnection

    class WatchedAdapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": WatchedHTTPPool, "https": WatchedHTTPSPool}

    return WatchedAdapter(pool_connections=1, pool_maxsize=pool_maxsize, max_retries=0, pool_block=False)


class HttpClient:
    """One endpoint's session, limits and counters; `exchange` makes one request. Thread-safe.

    `endpoint_env` names the setting users fix when the endpoint is wrong (``MARKETO_SOAP_ENDPOINT``).
    `timeout` is requests' (connect, read) in seconds; `deadline` caps one whole exchange. `log`,
    when given, receives one text per request and per answer (bodies through the caller's `show`).
    """

    def __init__(self, *, endpoint_env: str, timeout: float | tuple[float, float] = (10.0, 120.0),
                 deadline: float = DEFAULT_DEADLINE, session: "requests.Session | None" = None,
                 rate_limiter: RateLimiter | None = None, max_concurrency: int = 10,
                 monotonic: Callable[[], float] = time.monotonic, log: Callable[[str], None] | None = None,
                 max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES, stats: TransportStats | None = None):
        if not 1 <= max_concurrency <= 10:
            raise ValueError("max_concurrency must be between 1 and 10")
        if deadline <= 0:
            raise ValueError("deadline must be positive")
        self.endpoint_env = endpoint_env
        self.timeout = timeout
        self.deadline = float(deadline)
        self.rate_limiter = rate_limiter or RateLimiter()
        self.max_concurrency = max_concurrency
        self.max_response_bytes = max_response_bytes
        self.counters = Counters(stats)
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._monotonic = monotonic
        self._log = log
        self._session = self._mount(session) if session is not None else None
        self._session_lock = threading.Lock()

    @property
    def stats(self) -> TransportStats:
        return self.counters.stats

    @property
    def session(self) -> "requests.Session":
        if self._session is None:
            with self._session_lock:
                if self._session is None:
                    import requests

                    session = requests.Session()
                    session.verify = True
                    session.headers.update({"User-Agent": user_agent()})
                    self._session = self._mount(session)
        return self._session

    def _mount(self, session: "requests.Session") -> "requests.Session":
        adapter = _watched_adapter(self.max_concurrency)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return session

    def close(self) -> None:
        with self._session_lock:
            if self._session is not None:
                self._session.close()
                self._session = None

    def exchange(self, method: str, url: str, *, body: bytes | None = None,
                 headers: Mapping[str, str] | None = None, attempt: int = 1,
                 stop: threading.Event | None = None, show: Callable[[bytes], str] | None = None) -> Answer:
        """One request within the limits. Raises Failure (no usable answer) or Stopped."""
        with self._slots:
            admission = self.rate_limiter.admit(stop)
            if admission.waited:
                self.counters.count(waited=admission.waited)
            if stop is not None and stop.is_set():
                raise Stopped()
            answer = self._request(method, url, body, dict(headers or {}), attempt, show)
            admission.answered()
        return answer

    def _request(self, method: str, url: str, body: bytes | None, headers: dict[str, str], attempt: int,
                 show: Callable[[bytes], str] | None) -> Answer:
        import requests

        shown_url = redact_url(url)
        if self._log is not None:
            lines = [f"> {method} {shown_url} (attempt {attempt}, {len(body or b'')} bytes)"]
            lines += [f"> {name}: {value}" for name, value in headers.items()]
            self._log("\n".join(lines) + ("\n" + _truncate(show(body)) if show and body else ""))
        began = self._monotonic()
        with _Watch(self.deadline) as watch:
            try:
                response = self.session.request(method, url, data=body, headers=headers, timeout=self.timeout,
                                                stream=True, verify=True, allow_redirects=False)
            except requests.exceptions.RequestException as exc:
                raise self._unanswered(exc, url, watch) from None
            self.counters.count(attempts=1)
            try:
                content = self._read_bounded(response)
            except ResponseError as exc:
                raise Failure(mark_outcome(exc, True), Handling.STOP, "response refused", unknown=True) from None
            except (requests.exceptions.RequestException, OSError) as exc:
                if watch.expired:
                    raise self._late(shown_url) from None
                error = OutcomeUnknown(f"connection to {host_port(url)} lost while reading the answer "
                                       f"({_why_lost(exc)})")
                raise Failure(error, Handling.UNKNOWN, "connection lost") from None
            finally:
                response.close()
        status, reason = response.status_code, one_line(response.reason or "", 200)
        if self._log is not None:
            elapsed = self._monotonic() - began
            self._log(f"< HTTP {status} {reason} in {elapsed:.3f} s ({len(content)} bytes)\n"
                      + (_truncate(show(content)) if show else ""))
        return Answer(status, reason, content, response.headers)

    def _late(self, shown_url: str) -> Failure:
        error = OutcomeUnknown(f"no complete answer from {shown_url} within {self.deadline:g} s")
        return Failure(error, Handling.UNKNOWN, "deadline passed")

    def _not_connected(self, url: str, why: str, reason: str, max_attempts: int | None = None) -> Failure:
        error = NotDelivered(f"could not connect to {host_port(url)} ({why}); check {self.endpoint_env}")
        return Failure(error, Handling.RETRY, reason, max_attempts=max_attempts)

    def _unanswered(self, exc: BaseException, url: str, watch: _Watch) -> Failure:
        """Classify a request that raised before any answer arrived."""
        import requests

        shown_url = redact_url(url)
        before_sending = _failed_before_sending(exc)
        if watch.expired and not before_sending:
            self.counters.count(attempts=1)
            return self._late(shown_url)
        if isinstance(exc, requests.exceptions.SSLError):
            error = TransportError(f"TLS error talking to {host_port(url)} ({_why_tls(exc)}); "
                                   f"check {self.endpoint_env}")
            return Failure(mark_outcome(error, False), Handling.STOP, "TLS error")
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return self._not_connected(url, "timed out", "connect timeout")
        if isinstance(exc, requests.exceptions.ReadTimeout):
            self.counters.count(attempts=1)
            error = OutcomeUnknown(f"no answer from {shown_url} within {self._read_timeout():g} s")
            return Failure(error, Handling.UNKNOWN, "read timeout")
        if isinstance(exc, requests.exceptions.ConnectionError):
            if before_sending:
                why = _why_not_connected(exc)
                return self._not_connected(url, why, "host not found" if why == _DNS else "connection failed",
                                           max_attempts=_attempts_when_not_connected(why, url))
            self.counters.count(attempts=1)
            error = OutcomeUnknown(f"connection to {host_port(url)} lost before an answer ({_why_lost(exc)})")
            return Failure(error, Handling.UNKNOWN, "connection lost")
        error = TransportError(f"cannot send to {shown_url}: {_short(exc)}")
        return Failure(mark_outcome(error, False), Handling.STOP, "request error")

    def _read_timeout(self) -> float:
        timeout = self.timeout
        return float(timeout[1] if isinstance(timeout, tuple) else timeout)

    def _read_bounded(self, response: Any) -> bytes:
        limit = self.max_response_bytes
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            raise ResponseError(f"response of {declared.strip()} bytes exceeds the limit of {limit} bytes")
        chunks = []
        total = 0
        for chunk in response.iter_content(64 * 1024):
            total += len(chunk)
            if total > limit:
                raise ResponseError(f"response exceeds the limit of {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def classify_status(self, answer: Answer, url: str, detail: str = "") -> Failure | None:
        """The failure an HTTP status means when the body carries no API-level error; None for 2xx.

        429 and 503 mean "not now" (nothing applied); other 5xx may come after the server processed
        the call; 3xx and other 4xx stop (the endpoint is wrong).
        """
        status, reason, shown_url = answer.status, answer.reason, redact_url(url)
        if 200 <= status < 300:
            return None
        if status == 429 or status >= 500:
            unknown = status not in (429, 503)
            error = mark_outcome(TransportError(f"HTTP {status} {reason} from {shown_url}"
                                                + (f" {detail}" if detail else "")), unknown)
            handling = Handling.THROTTLED if status == 429 else Handling.UNKNOWN if unknown else Handling.RETRY
            return Failure(error, handling, f"HTTP {status}", retry_after=retry_after(answer.headers))
        if 300 <= status < 400:
            where = one_line(redact_url(answer.headers.get("Location", "elsewhere")), 300)
            error = TransportError(f"HTTP {status}: the endpoint redirects to {where}; set "
                                   f"{self.endpoint_env} to the API endpoint itself")
            return Failure(mark_outcome(error, False), Handling.STOP, f"HTTP {status}")
        error = TransportError(f"HTTP {status} {reason} from {shown_url}"
                               + (f": {detail}" if detail else "") + f"; check {self.endpoint_env}")
        return Failure(mark_outcome(error, False), Handling.STOP, f"HTTP {status}")


_DNS = "host name not found"


def _why_lost(exc: BaseException) -> str:
    """A few plain words for a connection that broke after the request went out."""
    import http.client

    for item in _causes(exc):
        if isinstance(item, (ConnectionResetError, BrokenPipeError)):
            return "connection reset"
        if isinstance(item, (http.client.RemoteDisconnected, http.client.IncompleteRead)):
            return "closed by the server"
        if isinstance(item, (socket.timeout, TimeoutError)):
            return "timed out"
    return "connection lost"


def _why_tls(exc: BaseException) -> str:
    """The TLS failure in a few words (the certificate problem, when that is what it was)."""
    import ssl

    for item in _causes(exc):
        if isinstance(item, ssl.SSLCertVerificationError):
            return one_line(f"certificate verify failed: {item.verify_message or item.reason}", 200)
    for item in _causes(exc):
        if isinstance(item, ssl.SSLError):
            return one_line(str(item.reason or item.strerror or "handshake failed"), 200)
    return "handshake failed"


def _causes(exc: BaseException) -> list[Any]:
    """`exc` and everything urllib3 and requests wrapped inside it."""
    seen: set[int] = set()
    found: list[Any] = []
    stack: list[Any] = [exc]
    while stack:
        item = stack.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        found.append(item)
        if isinstance(item, BaseException):
            stack.extend([getattr(item, "reason", None), item.__cause__, item.__context__])
            stack.extend(arg for arg in item.args if isinstance(arg, BaseException))
    return found


def _attempts_when_not_connected(why: str, url: str) -> int | None:
    """An unknown host is tried twice; a refused connection on this machine (nothing listens there:
    an emulator not started, a wrong port) once, since waiting will not start it; None: the usual."""
    if why == _DNS:
        return 2
    if why == "connection refused" and is_loopback(urlsplit(url).hostname or ""):
        return 1
    return None


def _why_not_connected(exc: BaseException) -> str:
    """A few plain words for a failed connect, never urllib3's own text."""
    import errno

    causes = _causes(exc)
    for item in causes:
        if isinstance(item, socket.gaierror):
            return _DNS
        if isinstance(item, ConnectionRefusedError):
            return "connection refused"
        if isinstance(item, (socket.timeout, TimeoutError)):
            return "timed out"
    for item in causes:
        number = getattr(item, "errno", None)
        if number in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return "network unreachable" if number == errno.ENETUNREACH else "host unreachable"
        if "Name or service not known" in str(item) or "nodename nor servname" in str(item):
            return _DNS
    return "connection failed"


def _failed_before_sending(exc: BaseException) -> bool:
    """Whether a requests ConnectionError happened while connecting (nothing was sent)."""
    try:
        from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
    except ImportError:  # pragma: no cover
        return False
    failed = (NewConnectionError, ConnectTimeoutError, ConnectionRefusedError, socket.gaierror)
    return any(isinstance(item, failed) for item in _causes(exc))
