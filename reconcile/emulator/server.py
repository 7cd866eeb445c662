"""The emulated Marketo SOAP endpoint: an HTTP server on the standard library, no web framework.

Routes
  POST /soap/mktows/<version>          syncMultipleLeads (SOAP 1.1, document/literal)
  GET  /soap/mktows/<version>?WSDL     the WSDL, its soap:address pointing at this emulator
  GET  /_emulator/leads                the lead database as JSON, sorted by id
  anything else                        404

Every POST is checked in this order; the first failure answers with a SOAP 1.1 `SOAP-ENV:Fault`
(HTTP 500) carrying the mktows code, and nothing is applied:

  1. parse      body over `max_body_bytes`, not XML, hostile XML (DTD/entities) -> 20012
                not valid against schemas/mktows.xsd                         -> 20017
                another operation than syncMultipleLeads                     -> 20019
  2. auth       no AuthenticationHeader, unknown user, wrong signature      -> 20014
                (HMAC-SHA1 hex compared in constant time)
  3. freshness  requestTimestamp unparsable, without offset, or more than
                15 minutes from the emulator's clock (either way)           -> 20016
  4. limits     more than `max_batch` records                               -> 20110 Bad Parameter
                (chosen over 20017 so clients can tell "batch too big" from "schema-invalid";
                not counted against rate or quota)
                more than `max_concurrency` calls in flight                 -> 20024
                `rate_calls` admitted calls in the last `rate_window` s     -> 20023
                `daily_quota` admitted calls today (America/Chicago day)    -> 20015
  5. faults     injected latency / failure / commit-then-drop (see faults.py); an injected
                failure is a SOAP fault with `fail_code` or a plain HTTP `fail_http_status`
  6. semantics  the records, in order, atomically, persisted before the response (see store.py)

Request bodies are never logged (they carry signatures); the request line goes to the
`reconcile.emulator` logger at DEBUG level instead of stderr.
"""

from __future__ import annotations

import collections
import dataclasses
import hmac
import json
import logging
import re
import signal
import socket
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

from reconcile.remote.soap import envelope as soap
from reconcile.emulator.config import DEFAULT_ENCRYPTION_KEY, EmulatorConfig
from reconcile.emulator.faults import Decision, Faults
from reconcile.emulator.limits import Limits, Refused
from reconcile.emulator.store import LeadStore, StoreError

log = logging.getLogger("reconcile.emulator")

API_VERSION = "2_1"
SOAP_PATH = re.compile(r"^/soap/mktows/(\d{1,2}_\d{1,2})/?$")
LEADS_PATH = "/_emulator/leads"

AUTH_FAILED = "20014"
REQUEST_EXPIRED = "20016"
REQUEST_NOT_UNDERSTOOD = "20012"
BAD_PARAMETER = "20110"
INTERNAL_ERROR = "20011"

# Oversized bodies are read and discarded up to this many bytes so that the client can read the
# fault; beyond it the connection is simply closed.
_DRAIN_LIMIT = 64 * 1024 * 1024
_CALL_LOG_SIZE = 100_000

OK = "ok"
FAULT = "fault"
HTTP_ERROR = "http_error"
DROPPED = "dropped"
ABORTED = "aborted"


@dataclasses.dataclass(frozen=True)
class CallRecord:
    """One POST to the SOAP endpoint, as the emulator saw it (times from `config.monotonic`).

    `start` is when the call was admitted (took its concurrency slot) or, for a call refused before
    that, when it was received; `end` is when its concurrency slot was released, just before the
    response was written (or the connection dropped): a client that has its answer finds the call
    logged, and its next call is not refused for a slot that is still being freed.
    """

    received: float
    start: float
    end: float
    outcome: str  # "ok" | "fault" | "http_error" | "dropped" | "aborted" (client went away)
    code: str | None  # mktows code of a fault
    records: int  # leadRecords in the request (0 if it could not be parsed)
    admitted: bool  # passed the limits: counted against the rate window and the daily quota
    http_status: int | None  # None when no response was sent (dropped or aborted)

    @property
    def duration(self) -> float:
        return self.end - self.start


def parse_w3c_timestamp(text: str) -> datetime | None:
    """A W3C/ISO 8601 date-time with an offset (or Z); None when unparsable or without offset."""
    value = text.strip()
    if "T" not in value.upper():
        return None
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None or moment.utcoffset() is None:
        return None
    return moment


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], emulator: "Emulator"):
        self.emulator = emulator
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:  # no traceback on stderr
        log.debug("emulator: error on a connection from %s", client_address[0], exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "MarketoSoapEmulator/1.0"
    sys_version = ""
    timeout = 120  # idle keep-alive connections are closed after this many seconds
    server: _Server

    # -- plumbing -----------------------------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        try:  # headers and body go out in two writes: do not let Nagle + delayed ACK add 40 ms
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self.server.emulator._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.emulator._track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("emulator %s - %s", self.address_string(), format % args)

    sent_status: int | None = None
    before_response: Callable[[], None] | None = None

    def _send(self, status: int, body: bytes, content_type: str, *, close: bool = False) -> None:
        self.sent_status = status
        hook, self.before_response = self.before_response, None
        if hook is not None:
            hook()  # the call is over (slot released, call logged) before the client can see it
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if close or self.close_connection:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def _not_found(self) -> None:
        # Discard a (reasonably small) body so the connection stays usable; else close it.
        raw_length = (self.headers.get("Content-Length") or "0").strip()
        close = bool(self.headers.get("Transfer-Encoding"))
        if not close and raw_length.isascii() and raw_length.isdigit() and int(raw_length) <= _DRAIN_LIMIT:
            self._discard(int(raw_length))
        else:
            close = True
        self._send(404, b"not found\n", "text/plain; charset=utf-8", close=close)

    def _discard(self, length: int) -> None:
        remaining = length
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 1 << 16))
            if not chunk:
                self.close_connection = True
                break
            remaining -= len(chunk)

    def _fault(self, code: str, message: str | None = None, *, close: bool = False) -> None:
        text = message or ""  # build_fault takes the message from the code table
        faultcode = "SOAP-ENV:Server" if code in ("10001", INTERNAL_ERROR) else "SOAP-ENV:Client"
        self._send(500, soap.build_fault(code, text, faultcode=faultcode), soap.CONTENT_TYPE, close=close)

    # -- routes -------------------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        url = urlsplit(self.path)
        match = SOAP_PATH.match(url.path)
        query = parse_qsl(url.query, keep_blank_values=True)
        if match and any(name.lower() == "wsdl" for name, _ in query):
            endpoint = f"{self.server.emulator.base_url}/soap/mktows/{match.group(1)}"
            self._send(200, soap.wsdl_text(endpoint).encode("utf-8"), "text/xml; charset=utf-8")
        elif url.path == LEADS_PATH:
            body = json.dumps(self.server.emulator.leads(), indent=2, ensure_ascii=False) + "\n"
            self._send(200, body.encode("utf-8"), "application/json")
        else:
            self._not_found()

    do_HEAD = do_GET

    def do_PUT(self) -> None:  # noqa: N802
        self._not_found()

    do_DELETE = do_PATCH = do_OPTIONS = do_PUT

    def do_POST(self) -> None:  # noqa: N802
        if not SOAP_PATH.match(urlsplit(self.path).path):
            self._not_found()
            return
        self.server.emulator._handle_call(self)

    # -- body ---------------------------------------------------------------------------------------

    def read_body(self, limit: int) -> tuple[bytes | None, str | None]:
        """(body, None), or (None, problem): "length" (no usable Content-Length), "size" (over
        `limit`; the body is drained when reasonably small so the client can read the fault) or
        "eof" (the client went away mid-body)."""
        if self.headers.get("Transfer-Encoding"):
            return None, "length"
        raw_length = (self.headers.get("Content-Length") or "").strip()
        if not raw_length.isascii() or not raw_length.isdigit():
            return None, "length"
        length = int(raw_length)
        if length > limit:
            self.close_connection = True
            if length <= _DRAIN_LIMIT:
                self._discard(length)
            return None, "size"
        body = self.rfile.read(length)
        if len(body) < length:
            self.close_connection = True
            return None, "eof"
        return body, None

    def drop(self) -> None:
        """Close the connection without any response, as a lost reply or a timeout looks."""
        hook, self.before_response = self.before_response, None
        if hook is not None:
            hook()
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class Emulator:
    """A local Marketo SOAP endpoint for syncMultipleLeads. See the module docstring for the rules.

    >>> with Emulator(EmulatorConfig()) as emu:       # doctest: +SKIP
    ...     emu.endpoint                             # 'http://127.0.0.1:PORT/soap/mktows/2_1'
    """

    def __init__(self, config: EmulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0,
                 faults: Faults | None = None):
        self.config = config or EmulatorConfig()
        self.host = host
        self.port = port
        self.faults = faults if faults is not None else Faults()
        self.limits = Limits(self.config)
        self.store = self._open_store()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._state_lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._calls: collections.deque[CallRecord] = collections.deque(maxlen=_CALL_LOG_SIZE)
        self._calls_lock = threading.Lock()
        self._base_url: str | None = None
        self._started_once = False

    def _open_store(self) -> LeadStore:
        return LeadStore(fields=self.config.all_fields, first_lead_id=self.config.first_lead_id,
                         path=self.config.db_path, now=self.config.now)

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> str:
        """Bind, start serving in a background thread, and return the SOAP endpoint URL."""
        with self._state_lock:
            if self._server is not None:
                return self.endpoint
            if self._started_once and self.config.db_path is not None:
                self.store = self._open_store()  # a restart reloads the database from disk
            self._stopping.clear()
            server = _Server((self.host, self.port), self)
            host, port = server.server_address[:2]
            shown = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
            if ":" in shown:
                shown = f"[{shown}]"
            self._base_url = f"http://{shown}:{port}"
            self.port = port
            self._server = server
            self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                            name=f"marketo-emulator-{port}", daemon=True)
            self._thread.start()
            self._started_once = True
            log.info("Marketo SOAP emulator listening on %s", self.endpoint)
            return self.endpoint

    def stop(self) -> None:
        """Stop serving, close open (keep-alive) connections, and wait for the server thread."""
        with self._state_lock:
            server, thread = self._server, self._thread
            if server is None:
                return
            self._stopping.set()
            server.shutdown()
            server.server_close()
            with self._calls_lock:
                connections = list(self._connections)
            for connection in connections:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            if thread is not None:
                thread.join(timeout=10)
            self._server = self._thread = None
            log.info("Marketo SOAP emulator stopped")

    def __enter__(self) -> "Emulator":
        self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("the emulator has not been started")
        return self._base_url

    @property
    def endpoint(self) -> str:
        """The SOAP endpoint, e.g. http://127.0.0.1:PORT/soap/mktows/2_1 (after `start`)."""
        return f"{self.base_url}/soap/mktows/{API_VERSION}"

    @property
    def user_id(self) -> str:
        return self.config.user_id

    @property
    def encryption_key(self) -> str:
        return self.config.encryption_key

    @property
    def wsdl_url(self) -> str:
        return self.endpoint + "?WSDL"

    @property
    def leads_url(self) -> str:
        return self.base_url + LEADS_PATH

    # -- inspection ---------------------------------------------------------------------------------

    def leads(self) -> list[dict[str, Any]]:
        """A snapshot of the lead database, sorted by id (the same JSON as GET /_emulator/leads)."""
        return self.store.leads()

    @property
    def calls(self) -> list[CallRecord]:
        """The POSTs seen since the last `reset_counters()`, in completion order (a copy)."""
        with self._calls_lock:
            return list(self._calls)

    def reset_counters(self) -> None:
        """Forget the rate window, the quota used today, the call log and the fault call ordinal."""
        self.limits.reset()
        self.faults.reset_counter()
        with self._calls_lock:
            self._calls.clear()

    def _track(self, connection: socket.socket, open_: bool) -> None:
        with self._calls_lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def _record(self, call: CallRecord) -> None:
        with self._calls_lock:
            self._calls.append(call)
        log.debug("emulator call: %s %s, %d record(s), %.3fs", call.outcome, call.code or "",
                  call.records, call.end - call.received)

    # -- one syncMultipleLeads call -----------------------------------------------------------------

    def _handle_call(self, handler: _Handler) -> None:
        config = self.config
        clock = config.monotonic
        received = clock()
        state: dict[str, Any] = {"start": received, "outcome": None, "code": None, "records": 0,
                                 "admitted": False, "released": False}

        def finish() -> None:
            """End of the call, run once, just before the response is written (or the connection
            dropped, or the handler gives up): free the concurrency slot and log the call."""
            if state.get("finished"):
                return
            state["finished"] = True
            if state["admitted"] and not state["released"]:
                state["released"] = True
                self.limits.release()
            status = handler.sent_status
            outcome = state["outcome"] or (OK if status == 200 else FAULT if status == 500
                                           else HTTP_ERROR if status else ABORTED)
            self._record(CallRecord(received=received, start=state["start"], end=clock(), outcome=outcome,
                                    code=state["code"], records=state["records"],
                                    admitted=state["admitted"], http_status=status))

        def fault(code: str, message: str | None = None) -> None:
            state["code"] = code
            handler._fault(code, message)

        handler.sent_status = None
        handler.before_response = finish
        try:
            body, problem = handler.read_body(config.max_body_bytes)
            if problem == "length":
                handler._send(411, b"Content-Length required (no chunked request bodies)\n",
                              "text/plain; charset=utf-8", close=True)
                return
            if problem == "size":
                fault(REQUEST_NOT_UNDERSTOOD, f"Request Not Understood: request body over "
                                              f"{config.max_body_bytes} bytes")
                return
            if body is None:  # the client went away
                return
            try:
                request = soap.parse_request(body, max_bytes=config.max_body_bytes)
            except soap.RequestRejected as exc:
                fault(exc.code, exc.message or None)
                return
            state["records"] = len(request.records)

            if not self._authentic(request.header):
                fault(AUTH_FAILED)
                return
            if not self._fresh(request.header.timestamp):
                fault(REQUEST_EXPIRED)
                return
            if len(request.records) > config.max_batch:
                fault(BAD_PARAMETER, f"Bad Parameter: leadRecordList has {len(request.records)} records; "
                                     f"at most {config.max_batch} are allowed")
                return
            try:
                self.limits.admit()
            except Refused as exc:
                fault(exc.code)
                return
            state.update(admitted=True, start=clock())
            self._admitted_call(handler, request, state, fault)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError):
            handler.close_connection = True
        except Exception:
            log.exception("emulator: internal error while handling a call")
            if handler.sent_status is None and not handler.close_connection:
                try:
                    fault(INTERNAL_ERROR)
                except OSError:
                    handler.close_connection = True
            else:
                handler.close_connection = True
        finally:
            handler.before_response = None
            finish()

    def _admitted_call(self, handler: _Handler, request: Any, state: dict[str, Any],
                       fault: Callable[..., None]) -> None:
        decision: Decision = self.faults.decide()
        if decision.latency:
            self._stopping.wait(decision.latency)
        if self._stopping.is_set():  # stopped during the call: apply nothing, answer nothing
            state["outcome"] = ABORTED
            handler.drop()
            return
        if decision.fail:
            if decision.fail_http_status is not None:
                status = decision.fail_http_status
                text = f"{status} injected failure from the Marketo emulator\n".encode()
                handler._send(status, text, "text/plain; charset=utf-8")
            else:
                fault(decision.fail_code)
            return
        try:
            outcomes = self.store.sync(request.records, request.dedup_enabled)
        except StoreError:
            log.exception("emulator: the lead database could not be written; call rolled back")
            fault(INTERNAL_ERROR)
            return
        if decision.drop:
            state["outcome"] = DROPPED
            handler.drop()
            return
        statuses = [soap.SyncStatus(lead_id=o.lead_id, status=o.status, error=o.error) for o in outcomes]
        handler._send(200, soap.build_response(statuses), soap.CONTENT_TYPE)

    def _authentic(self, header: Any) -> bool:
        if header is None:
            return False
        user_id = header.user_id or ""
        signature = (header.signature or "").strip().lower()
        timestamp = header.timestamp or ""
        expected = soap.sign(self.config.encryption_key, timestamp, self.config.user_id)
        user_ok = hmac.compare_digest(user_id.encode("utf-8"), self.config.user_id.encode("utf-8"))
        signature_ok = hmac.compare_digest(signature.encode("utf-8"), expected.lower().encode("utf-8"))
        return user_ok and signature_ok

    def _fresh(self, timestamp: str | None) -> bool:
        moment = parse_w3c_timestamp(timestamp or "")
        if moment is None:
            return False
        return abs(self.config.now() - moment) <= self.config.max_clock_skew


def export_lines(emulator: Emulator) -> list[str]:
    """Shell lines that point `reconcile` (or any client) at a running emulator.

    Only the built-in demo key is ever shown; a key the user chose is a secret and stays unprinted.
    """
    import shlex

    config = emulator.config
    key = (shlex.quote(config.encryption_key) if config.encryption_key == DEFAULT_ENCRYPTION_KEY
           else '"$MARKETO_ENCRYPTION_KEY"  # the key you gave the emulator (not shown)')
    return [
        f"export MARKETO_SOAP_ENDPOINT={shlex.quote(emulator.endpoint)}",
        f"export MARKETO_USER_ID={shlex.quote(config.user_id)}",
        f"export MARKETO_ENCRYPTION_KEY={key}",
    ]


def serve_forever_cli(config: EmulatorConfig, host: str = "127.0.0.1", port: int = 8080,
                      faults: Faults | None = None, out: Callable[[str], None] = print,
                      stop: threading.Event | None = None) -> int:
    """Run an emulator in the foreground for `reconcile emulator` until Ctrl-C (or SIGTERM, or `stop`).

    All output goes through `out`: the endpoint, the WSDL and leads URLs, and `export` lines for the
    MARKETO_* environment variables. Returns 0 after a clean stop.
    """
    stop = stop or threading.Event()
    emulator = Emulator(config, host=host, port=port, faults=faults)
    emulator.start()
    previous_sigterm = None
    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread:
        previous_sigterm = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        out(f"Marketo SOAP emulator listening on {emulator.endpoint}")
        out(f"  WSDL:  {emulator.wsdl_url}")
        out(f"  leads: {emulator.leads_url}")
        out(f"  database: {config.db_path if config.db_path else 'in memory (lost on exit)'}")
        if emulator.faults.active:
            out(f"  faults: {emulator.faults!r}")
        out("Point reconcile at it with:")
        for line in export_lines(emulator):
            out(line)
        out("Press Ctrl-C to stop.")
        while not stop.wait(0.2):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
        if in_main_thread and previous_sigterm is not None:
            signal.signal(signal.SIGTERM, previous_sigterm)
    out("Marketo SOAP emulator stopped.")
    return 0


__all__ = ["API_VERSION", "CallRecord", "Emulator", "export_lines", "parse_w3c_timestamp",
           "serve_forever_cli"]
