"""One emulated Marketo instance behind a plain HTTP server (standard library, no web framework).

The server only routes: `/soap/...` to the SOAP face (`soap_api`), `/identity/...` and `/rest/...`
to the REST face (`rest_api`), `/_emulator/...` to the admin endpoints (`admin`); anything else is
404. The faces share one lead database (`store`), one set of limits (`limits`), one fault injector
(`faults`) and one call log (`calls`). The request line goes to the `reconcile.emulator` logger
at DEBUG level instead of stderr; request bodies are never logged.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

from reconcile.emulator import calls as calllog
from reconcile.emulator.admin import AdminFace
from reconcile.emulator.calls import Call, CallLog, CallRecord
from reconcile.emulator.config import EmulatorConfig
from reconcile.emulator.faults import Decision, Faults
from reconcile.emulator.fields import FieldTable
from reconcile.emulator.limits import Limits
from reconcile.emulator.lists import ListStore, create_list_database, lists_path
from reconcile.emulator.lists_admin import ListsAdmin
from reconcile.emulator.rest_api import RestFace
from reconcile.emulator.rest_lists import RestLists
from reconcile.emulator.soap_api import SoapFace
from reconcile.emulator.soap_lists import SoapLists
from reconcile.emulator.store import LeadStore, create_database
from reconcile.emulator.tokens import Tokens

log = calllog.log

API_VERSION = "2_1"
SOAP_PATH = re.compile(r"^/soap/mktows/(\d{1,2}_\d{1,2})/?$")

# Oversized bodies are read and discarded up to this many bytes so that the client can read the
# answer; beyond it the connection is simply closed.
_DRAIN_LIMIT = 64 * 1024 * 1024


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], emulator: "Emulator"):
        self.emulator = emulator
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, Handler)

    def service_actions(self) -> None:
        """Between requests (and every poll interval when idle): the database's housekeeping."""
        self.emulator.store.fold_when_quiet()

    def handle_error(self, request: Any, client_address: Any) -> None:  # no traceback on stderr
        log.debug("emulator: error on a connection from %s", client_address[0], exc_info=True)


class Handler(BaseHTTPRequestHandler):
    """One HTTP exchange, as the faces see it: the request (`url`, `query`, `headers`, `body`
    once read) and the ways to answer (`send`, `drop`)."""

    protocol_version = "HTTP/1.1"
    server_version = "MarketoEmulator/1.0"
    sys_version = ""
    timeout = 120  # idle keep-alive connections are closed after this many seconds
    server: _Server
    sent_status: int | None = None
    before_response: Callable[[], None] | None = None
    body: bytes = b""

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

    @property
    def url(self):
        return urlsplit(self.path)

    @property
    def query(self) -> list[tuple[str, str]]:
        return parse_qsl(self.url.query, keep_blank_values=True)

    def query_value(self, name: str) -> str | None:
        return next((value for key, value in self.query if key == name), None)

    def send(self, status: int, body: bytes, content_type: str, *, close: bool = False) -> None:
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

    def read_body(self, limit: int) -> tuple[bytes | None, str | None]:
        """(body, None), or (None, problem): "length" (no usable Content-Length), "size" (over
        `limit`; the body is drained when reasonably small so the client can read the answer) or
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

    def discard_body(self) -> None:
        """Read and forget a (reasonably small) body so the connection stays usable; else close it."""
        raw_length = (self.headers.get("Content-Length") or "0").strip()
        if (not self.headers.get("Transfer-Encoding") and raw_length.isascii() and raw_length.isdigit()
                and int(raw_length) <= _DRAIN_LIMIT):
            self._discard(int(raw_length))
        else:
            self.close_connection = True

    def _discard(self, length: int) -> None:
        remaining = length
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 1 << 16))
            if not chunk:
                self.close_connection = True
                break
            remaining -= len(chunk)

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

    # -- routes -------------------------------------------------------------------------------------

    def _route(self) -> None:
        emulator = self.server.emulator
        path = self.url.path
        soap = SOAP_PATH.match(path)
        if soap and self.command == "POST":
            emulator.soap.sync(self)
        elif soap and self.command in ("GET", "HEAD") and any(k.lower() == "wsdl" for k, _ in self.query):
            emulator.soap.wsdl(self, soap.group(1))
        elif emulator.rest.handles(path):
            emulator.rest.serve(self)
        elif not (emulator.admin.handles(path) and emulator.admin.serve(self)):
            self.discard_body()
            self.send(404, b"not found\n", "text/plain; charset=utf-8")

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _route


class Emulator:
    """A local Marketo instance with a SOAP and a REST face over one lead database.

    >>> with Emulator(EmulatorConfig()) as emu:       # doctest: +SKIP
    ...     emu.endpoint          # 'http://127.0.0.1:PORT/soap/mktows/2_1'
    ...     emu.rest_endpoint     # 'http://127.0.0.1:PORT'
    """

    def __init__(self, config: EmulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0,
                 faults: Faults | None = None):
        self.config = config or EmulatorConfig()
        self.host = host
        self.port = port
        self.faults = faults if faults is not None else Faults()
        self.limits = Limits(self.config)
        self.fields = FieldTable(self.config.fields, self.config.extra_fields)
        self.tokens = Tokens(self.config)
        self.store = self._open_store()
        self.lists = self._open_lists()
        self.soap, self.rest, self.admin = SoapFace(self), RestFace(self), AdminFace(self)
        self.lists_admin, self.rest_lists = ListsAdmin(self), RestLists(self, self.rest)
        self.soap_lists = SoapLists(self)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._state_lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._calls = CallLog()
        self._base_url: str | None = None
        self._started_once = False

    def _open_store(self) -> LeadStore:
        path, initial = self.config.db_path, self.config.initial_leads
        if path is not None and initial:
            create_database(path, initial, self.config.first_lead_id)
        store = LeadStore(fields=self.config.all_fields, first_lead_id=self.config.first_lead_id,
                          path=path, now=self.config.now)
        if path is None and initial:
            store.seed(initial)
        return store

    def _open_lists(self) -> ListStore:
        db_path, initial = self.config.db_path, self.config.initial_lists
        if db_path is not None and initial:
            create_list_database(db_path, initial, now=self.config.now)
        lists = ListStore(None if db_path is None else lists_path(db_path), now=self.config.now)
        if db_path is None:
            for name in initial:
                lists.create(name)
        return lists

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> str:
        """Bind, start serving in a background thread, and return the SOAP endpoint URL.
        Raises OSError when the address cannot be bound (e.g. the port is in use)."""
        with self._state_lock:
            if self._server is not None:
                return self.endpoint
            if self._started_once and self.config.db_path is not None:
                self.store = self._open_store()  # a restart reloads the database from disk
                self.lists = self._open_lists()
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
            log.info("Marketo emulator listening on %s", self.base_url)
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
            settle_by = time.monotonic() + 1.0  # calls woken by `_stopping` log themselves first
            while self.limits.in_flight and time.monotonic() < settle_by:
                time.sleep(0.005)
            with self._connections_lock:
                connections = list(self._connections)
            for connection in connections:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            if thread is not None:
                thread.join(timeout=10)
            self._server = self._thread = None
            self.store.close()
            self.lists.close()
            log.info("Marketo emulator stopped")

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
    def rest_endpoint(self) -> str:
        """The REST base URL (MARKETO_REST_ENDPOINT): `/rest/v1/...` and `/identity/...` hang off it."""
        return self.base_url

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
        return self.base_url + "/_emulator/leads"

    # -- inspection ---------------------------------------------------------------------------------

    def leads(self) -> list[dict[str, Any]]:
        """A snapshot of the lead database, sorted by id (the same JSON as GET /_emulator/leads)."""
        return self.store.leads()

    @property
    def calls(self) -> list[CallRecord]:
        """The calls seen since the last `reset_counters()`, in completion order (a copy)."""
        return self._calls.snapshot()

    def reset_counters(self) -> None:
        """Forget the rate window, the quota used today, the call log and the fault call ordinal."""
        self.limits.reset()
        self.faults.reset_counter()
        self._calls.clear()

    def _track(self, connection: socket.socket, open_: bool) -> None:
        with self._connections_lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    # -- what the faces share -----------------------------------------------------------------------

    def new_call(self, handler: Handler, api: str, operation: str) -> Call:
        return Call(api, operation, admit=self.limits.admit, release=self.limits.release, calls=self._calls,
                    clock=self.config.monotonic, sent_status=lambda: handler.sent_status)

    def run_call(self, handler: Handler, call: Call, serve: Callable[[], None],
                 internal_error: Callable[[], None]) -> None:
        """Serve one call; whatever happens, settle it (slot, log) exactly once. An unexpected
        exception is logged and answered with the face's internal error if nothing was sent yet."""
        handler.sent_status = None
        handler.before_response = call.finish
        try:
            serve()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError):
            handler.close_connection = True
        except Exception:
            log.exception("emulator: internal error while handling a call")
            if handler.sent_status is None and not handler.close_connection:
                try:
                    internal_error()
                except OSError:
                    handler.close_connection = True
            else:
                handler.close_connection = True
        finally:
            handler.before_response = None
            call.finish()

    def inflict(self, handler: Handler, call: Call, answer_failure: Callable[[Decision], None]) -> Decision | None:
        """Draw an admitted call's injected fault and inflict latency and failures. Returns the
        decision when the call goes on (it may still be dropped after it is applied), None when it
        has been answered (or dropped) here."""
        decision = self.faults.decide()
        if decision.latency:
            self._stopping.wait(decision.latency)
        if self._stopping.is_set():  # stopped during the call: apply nothing, answer nothing
            call.outcome = calllog.ABORTED
            handler.drop()
            return None
        if decision.fail:
            if decision.fail_http_status is not None:
                status = decision.fail_http_status
                text = f"{status} injected failure from the Marketo emulator\n".encode()
                handler.send(status, text, "text/plain; charset=utf-8")
            else:
                answer_failure(decision)
            return None
        return decision
