"""The emulator's REST face: Marketo's identity service, Sync Leads, Get Leads and Describe.

Routes (wire format from Marketo's REST documentation, ../shared/marketo-rest-facts.md)
  GET  /identity/oauth/token?grant_type=client_credentials&client_id=&client_secret=
  POST /rest/v1/leads.json                 Sync Leads (JSON body; rules in `rest_rules`)
  GET  /rest/v1/leads.json?filterType=&filterValues=&fields=&batchSize=&nextPageToken=
  POST /rest/v1/leads.json?_method=GET     the same read, its parameters as a form body
  GET  /rest/v1/leads/describe.json        the instance's lead fields (`fields`)
  static lists, their members and Delete Leads: see `rest_lists`

Answers are HTTP 200 with `success` and `result` or `errors`, as Marketo's are, except: a bad client
on the token endpoint (HTTP 401, OAuth's `{"error", "error_description"}`), a request target over
8 KB (414), a Sync Leads body over 1 MB (413), and injected HTTP failures. A call under /rest is
checked in this order; the first failure answers and nothing is applied:

  1. size       target over 8 KB -> 414; body over 1 MB -> 413; no Content-Length -> 411
  2. token      only from `Authorization: Bearer`; an `access_token` query or form parameter,
                a missing or unknown token -> 601; an expired one -> 602
  3. request    not JSON content -> 612; unparsable JSON -> 609; a bad action, lookupField,
                filterType, batchSize, page token or a body that is not a Sync Leads request, more
                than 300 records or filter values -> 1003 at call level. (The facts give 1003,
                "invalid data", for a request Marketo will not execute as sent, and list it among
                the call-level errors a client stops on; no other documented code fits "too many
                records".) An unknown field in `fields` -> 1006
  4. limits     the instance's limits (shared with the SOAP face), as their reasons' codes below
  5. faults     injected latency / failure / commit-then-drop (see `faults`)
  6. semantics  Sync Leads records in order, atomically, persisted before the answer
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import secrets
from typing import Any, Callable
from urllib.parse import parse_qsl

from reconcile.emulator import calls as calllog
from reconcile.emulator import rest_rules
from reconcile.emulator.config import MAX_URL_BYTES, REST_MAX_BODY_BYTES
from reconcile.emulator.fields import EMAIL, ID, FieldTable
from reconcile.emulator.races import KeysInFlight
from reconcile.emulator.reasons import Reason, Refused
from reconcile.emulator.store import StoreError
from reconcile.emulator.tokens import TokenState
from reconcile.remote.rest import codes

TOKEN_PATH = "/identity/oauth/token"
LEADS_PATH = "/rest/v1/leads.json"
DESCRIBE_PATH = "/rest/v1/leads/describe.json"
REST_PREFIX = "/rest/"
DEFAULT_GET_FIELDS = ("id", "email", "updatedAt", "createdAt", "firstName", "lastName")
MAX_FILTER_VALUES = 300
JSON_TYPE = "application/json"

REASON_CODES: dict[Reason, str] = {
    Reason.RATE_LIMIT: codes.RATE_LIMIT,
    Reason.CONCURRENCY_LIMIT: codes.CONCURRENCY_LIMIT,
    Reason.DAILY_QUOTA: codes.QUOTA_EXCEEDED,
    Reason.BAD_PARAMETER: codes.INVALID_DATA,
    Reason.INTERNAL_ERROR: codes.SYSTEM_ERROR,
    Reason.UNAVAILABLE: codes.TEMPORARILY_UNAVAILABLE,
    Reason.TIMEOUT: codes.REQUEST_TIMED_OUT,
    Reason.TRANSIENT: codes.TRANSIENT,
    Reason.ACCESS_DENIED: codes.ACCESS_DENIED,
    Reason.AUTH_FAILED: codes.TOKEN_INVALID,
}


class CallError(Exception):
    """A call-level error: `success: false` with this code, nothing applied."""

    def __init__(self, code: str, message: str | None = None):
        super().__init__(code)
        self.code = code
        self.message = message or codes.CODES[code].message


class RestFace:
    """Serves the REST routes of one emulator (see the module docstring for the rules)."""

    api = calllog.REST

    def __init__(self, emulator: Any):
        self._emulator = emulator
        self._request_ids = itertools.count(1)
        self._keys = KeysInFlight()

    # -- routing ------------------------------------------------------------------------------------

    def handles(self, path: str) -> bool:
        return path == TOKEN_PATH or path.startswith(REST_PREFIX)

    def serve(self, handler: Any) -> None:
        path, method = handler.url.path, handler.command
        if len(handler.path.encode("utf-8", "surrogateescape")) > MAX_URL_BYTES:
            handler.discard_body()
            handler.send(414, b"Request-URI Too Long\n", "text/plain; charset=utf-8")
            return
        if path == TOKEN_PATH:
            self._serve(handler, calllog.TOKEN, self._token, needs_token=False)
        elif path == LEADS_PATH and method == "POST" and handler.query_value("_method") == "GET":
            self._serve(handler, calllog.READ, self._get_leads_form)
        elif path == LEADS_PATH and method == "POST":
            self._serve(handler, calllog.WRITE, self._sync_leads)
        elif path == LEADS_PATH and method == "GET":
            self._serve(handler, calllog.READ, lambda h, c: self._get_leads(h, c, h.query))
        elif path == DESCRIBE_PATH and method == "GET":
            self._serve(handler, calllog.READ, self._describe)
        elif (list_call := self._emulator.rest_lists.route(handler)) is not None:  # see rest_lists
            self._serve(handler, *list_call)
        else:
            self._serve(handler, calllog.READ, self._not_found)

    # -- one call -----------------------------------------------------------------------------------

    def _serve(self, handler: Any, operation: str, work: Callable[[Any, Any], Any], needs_token: bool = True) -> None:
        emulator = self._emulator
        call = emulator.new_call(handler, self.api, operation)
        emulator.run_call(handler, call, lambda: self._call(handler, call, work, needs_token),
                          lambda: self._answer_error(handler, call, CallError(REASON_CODES[Reason.INTERNAL_ERROR])))

    def _call(self, handler: Any, call: Any, work: Callable[[Any, Any], Any], needs_token: bool) -> None:
        # Remove from List and Delete Leads may come as a DELETE with a JSON body
        if handler.command == "POST" or (handler.command == "DELETE" and handler.headers.get("Content-Length")):
            body, problem = handler.read_body(REST_MAX_BODY_BYTES)
        else:  # a stray body on a GET must not be read as the next request of the connection
            handler.discard_body()
            body, problem = b"", None
        if problem is not None:
            if problem != "eof":
                status, text = (413, b"Request Entity Too Large\n") if problem == "size" else (
                    411, b"Content-Length required (no chunked request bodies)\n")
                handler.send(status, text, "text/plain; charset=utf-8", close=True)
            return
        handler.body = body
        try:
            if needs_token:
                self._check_token(handler)
            answer = work(handler, call)
        except CallError as error:
            self._answer_error(handler, call, error)
            return
        if answer is not None:
            self._answer(handler, call, answer)

    def _admit_and_inflict(self, handler: Any, call: Any) -> Any:
        """Take a slot and draw this call's fault; None when the call has been answered already."""
        self._admit(call)
        return self._inflict(handler, call)

    def _admit(self, call: Any) -> None:
        try:
            call.admit()
        except Refused as refused:
            raise CallError(REASON_CODES[refused.reason]) from None

    def _inflict(self, handler: Any, call: Any) -> Any:
        return self._emulator.inflict(handler, call, lambda failure: self._answer_error(handler, call, CallError(
            failure.fail_code if failure.fail_code in codes.CODES else REASON_CODES[failure.fail_reason])))

    def _check_token(self, handler: Any) -> None:
        if handler.query_value("access_token") is not None or _form(handler).get("access_token") is not None:
            raise CallError(codes.TOKEN_INVALID, "Access token invalid: send it in the Authorization header "
                                                 "(Bearer); the access_token parameter is not supported")
        scheme, _, token = (handler.headers.get("Authorization") or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise CallError(codes.TOKEN_INVALID)
        state = self._emulator.tokens.check(token.strip())
        if state is TokenState.EXPIRED:
            raise CallError(codes.TOKEN_EXPIRED)
        if state is not TokenState.VALID:
            raise CallError(codes.TOKEN_INVALID)

    def _request_id(self) -> str:
        return f"{next(self._request_ids):x}#{secrets.token_hex(5)}"

    def _answer(self, handler: Any, call: Any, document: dict) -> None:
        document = {"requestId": self._request_id(), **document}
        handler.send(200, json.dumps(document, ensure_ascii=False).encode("utf-8"), JSON_TYPE)

    def _answer_error(self, handler: Any, call: Any, error: CallError) -> None:
        call.code = error.code
        self._answer(handler, call, {"success": False, "errors": [{"code": error.code, "message": error.message}]})

    # -- the identity service -----------------------------------------------------------------------

    def _token(self, handler: Any, call: Any) -> None:
        params = dict(handler.query)
        params.update(_form(handler))
        status, document = self._emulator.tokens.answer(params)
        if status != 200:
            call.code = document["error"]
        handler.send(status, json.dumps(document).encode("utf-8"), JSON_TYPE)

    # -- Sync Leads ---------------------------------------------------------------------------------

    def _sync_leads(self, handler: Any, call: Any) -> dict | None:
        action, lookup_field, records = self._sync_request(handler)
        call.records = len(records)
        self._admit(call)
        keys = set()
        if action in ("createOrUpdate", "createOnly") and lookup_field != ID:
            keys = {key for r in records if isinstance(r, dict)
                    for key in [rest_rules.lookup_key(lookup_field, r.get(lookup_field))] if key is not None}
        racing = self._keys.enter(keys)
        try:
            missed = frozenset(racing - _held(self._emulator, lookup_field, racing))
            call.racing_keys = len(racing)
            decision = self._inflict(handler, call)
            return None if decision is None else self._apply_sync(handler, call, decision, action, lookup_field,
                                                                   records, missed)
        finally:
            self._keys.leave(keys)

    def _apply_sync(self, handler: Any, call: Any, decision: Any, action: str, lookup_field: str, records: list,
                    missed: frozenset[str]) -> dict | None:
        emulator = self._emulator
        try:
            with emulator.store.transaction() as tx:
                result = rest_rules.sync(tx, emulator.fields, action, lookup_field, records, missed)
        except StoreError:
            calllog.log.exception("emulator: the lead database could not be written; call rolled back")
            raise CallError(REASON_CODES[Reason.INTERNAL_ERROR]) from None
        if decision.drop:
            call.outcome = calllog.DROPPED
            handler.drop()
            return None
        return {"success": True, "result": result}

    def _sync_request(self, handler: Any) -> tuple[str, str, list]:
        content_type = (handler.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != JSON_TYPE:
            raise CallError(codes.INVALID_CONTENT_TYPE)
        try:
            document = json.loads(handler.body)
        except (ValueError, UnicodeDecodeError):
            raise CallError(codes.INVALID_JSON) from None
        if not isinstance(document, dict) or not isinstance(document.get("input"), list):
            raise CallError(codes.INVALID_DATA, "Invalid data: expected an object with an 'input' list")
        action = document.get("action", "createOrUpdate")
        lookup_field = document.get("lookupField", EMAIL)
        records = document["input"]
        if action not in rest_rules.ACTIONS:
            raise CallError(codes.INVALID_DATA, f"Invalid data: action must be one of {', '.join(rest_rules.ACTIONS)}")
        if not isinstance(lookup_field, str) or self._emulator.fields.by_rest(lookup_field) is None:
            raise CallError(codes.INVALID_DATA, "Invalid data: lookupField is not a lead field")
        partition = document.get("partitionName")
        if partition is not None and action not in ("createOnly", "createOrUpdate"):
            raise CallError(codes.INVALID_DATA, "Invalid data: partitionName only goes with createOnly or "
                                                "createOrUpdate")
        max_batch = self._emulator.config.max_batch
        if len(records) > max_batch:
            raise CallError(REASON_CODES[Reason.BAD_PARAMETER],
                            f"Invalid data: input has {len(records)} records; at most {max_batch} are allowed")
        return action, lookup_field, records

    # -- Get Leads and Describe ---------------------------------------------------------------------

    def _get_leads_form(self, handler: Any, call: Any) -> dict | None:
        content_type = (handler.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            raise CallError(codes.INVALID_CONTENT_TYPE)
        params = [(k, v) for k, v in handler.query if k != "_method"] + list(_form(handler).items())
        return self._get_leads(handler, call, params)

    def _get_leads(self, handler: Any, call: Any, params: list[tuple[str, str]]) -> dict | None:
        query = dict(params)
        key, values = _filter(self._emulator.fields, query)
        fields = _fields(self._emulator.fields, query.get("fields"))
        batch_size = _int_param(query, "batchSize", 300, 1, 300)
        offset = _page_offset(query.get("nextPageToken"))
        decision = self._admit_and_inflict(handler, call)
        if decision is None:
            return None
        found = self._emulator.store.select(key, values)
        page = found[offset:offset + batch_size]
        call.records = len(page)
        if decision.drop:
            call.outcome = calllog.DROPPED
            handler.drop()
            return None
        answer: dict = {"success": True, "result": [_lead_view(lead, fields) for lead in page]}
        if offset + batch_size < len(found):
            answer["nextPageToken"] = _page_token(offset + batch_size)
        return answer

    def _describe(self, handler: Any, call: Any) -> dict | None:
        decision = self._admit_and_inflict(handler, call)
        if decision is None:
            return None
        if decision.drop:
            call.outcome = calllog.DROPPED
            handler.drop()
            return None
        return {"success": True, "result": self._emulator.fields.describe()}

    def _not_found(self, handler: Any, call: Any) -> None:
        self._check_token(handler)
        raise CallError(codes.NOT_FOUND)


def _filter(table: FieldTable, query: dict[str, str]) -> tuple[str, list]:
    """The store's key and values of a Get Leads filter."""
    filter_type = query.get("filterType", "")
    values = [v.strip() for v in query.get("filterValues", "").split(",") if v.strip()]
    if not filter_type or not values:
        raise CallError(codes.INVALID_DATA, "Invalid data: filterType and filterValues are required")
    if len(values) > MAX_FILTER_VALUES:
        raise CallError(codes.INVALID_DATA, f"Invalid data: {len(values)} filterValues; at most "
                                            f"{MAX_FILTER_VALUES} are allowed")
    if filter_type == ID:
        if not all(v.isascii() and v.isdigit() for v in values):
            raise CallError(codes.INVALID_DATA, "Invalid data: filterValues of id must be integers")
        return "id", [int(v) for v in values]
    if filter_type == EMAIL:
        return "email", values
    field = table.by_rest(filter_type)
    if field is None or field.read_only:
        raise CallError(codes.INVALID_DATA, f"Invalid data: invalid filterType '{filter_type[:100]}'")
    return field.soap_name, values


def _fields(table: FieldTable, text: str | None) -> list:
    """The fields a Get Leads answer shows, `id` always among them."""
    names = [n.strip() for n in text.split(",") if n.strip()] if text else list(DEFAULT_GET_FIELDS)
    fields = []
    for name in names:
        field = table.by_rest(name)
        if field is None:
            raise CallError(codes.FIELD_NOT_FOUND, f"Field '{name[:100]}' not found")
        fields.append(field)
    return fields


def _held(emulator: Any, lookup_field: str, keys: set[str]) -> set[str]:
    """Those of `keys` some lead holds now."""
    if not keys:
        return set()
    field = emulator.fields.by_rest(lookup_field)
    store_key = "email" if lookup_field == EMAIL else field.soap_name
    held = set()
    for lead in emulator.store.select(store_key, keys):
        value = lead["email"] if lookup_field == EMAIL else lead["attributes"].get(field.soap_name)
        held.add(rest_rules.lookup_key(lookup_field, value))
    return held


def _form(handler: Any) -> dict[str, str]:
    content_type = (handler.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if handler.command != "POST" or content_type != "application/x-www-form-urlencoded":
        return {}
    try:
        return dict(parse_qsl(handler.body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        raise CallError(codes.INVALID_DATA, "Invalid data: the form body is not UTF-8") from None


def _int_param(query: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    text = query.get(name)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        raise CallError(codes.INVALID_DATA, f"Invalid data: {name} must be between {low} and {high}")
    return int(text)


def _page_token(offset: int) -> str:
    return base64.b32encode(f"page:{offset}".encode()).decode().rstrip("=")


def _page_offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        text = base64.b32decode(token + "=" * (-len(token) % 8)).decode()
        if text.startswith("page:") and text[5:].isdigit():
            return int(text[5:])
    except (binascii.Error, ValueError):
        pass
    raise CallError(codes.INVALID_DATA, "Invalid data: invalid nextPageToken")


def _lead_view(lead: dict, fields: list) -> dict:
    view: dict[str, Any] = {"id": lead["id"]}
    for field in fields:
        name = field.rest_name
        if name == ID:
            continue
        if name == EMAIL:
            view[name] = lead["email"]
        elif name in ("createdAt", "updatedAt"):
            view[name] = lead[name]
        else:
            view[name] = lead["attributes"].get(field.soap_name)
    return view
