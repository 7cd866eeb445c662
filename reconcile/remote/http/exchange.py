"""One HTTP exchange: `HttpClient`.

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

requests is imported lazily: importing this module is cheap.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping
from urllib.parse import urlsplit

from reconcile.errors import ResponseError, TransportError
from reconcile.remote.base import NotDelivered, OutcomeUnknown, TransportStats, mark_outcome
from reconcile.remote.codes import Handling
from reconcile.remote.http.endpoints import host_port, is_loopback, one_line, redact_url
from reconcile.remote.http.limits import RateLimiter, Stopped, retry_after
from reconcile.remote.http.retry import Counters, Failure

if TYPE_CHECKING:  # pragma: no cover
    import requests


DEFAULT_DEADLINE = 120.0  # seconds one attempt (connect + headers + body) may take at most
LOG_BODY_LIMIT = 256 * 1024
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024


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
