"""A fake Marketo REST instance behind a `requests`-like session, for fast REST client tests.

It follows ../shared/marketo-rest-facts.md: OAuth client credentials (tokens with a life, the same
token again while it lives), Sync Leads with actions and lookup fields, skipped records with
reasons, call-level errors with `success: false`, Describe and Get Leads. Tests queue call-level
errors (`fake.fail_next("606", "606")`) or HTTP statuses (`fake.fail_next(502)`).
"""

from __future__ import annotations

import itertools
import json
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from reconcile.remote.http import RetryPolicy
from reconcile.remote.rest.client import RestClient
from reconcile.remote.rest.config import RestCredentials

CLIENT_ID = "fake-client-id"
CLIENT_SECRET = "fake-client-secret-6b1f0c"

FIELDS = [  # (SOAP name, REST name, dataType, length, readOnly)
    ("Id", "id", "integer", None, True),
    ("Email", "email", "email", 255, False),
    ("FirstName", "firstName", "string", 255, False),
    ("LastName", "lastName", "string", 255, False),
    ("Company", "company", "string", 255, False),
    ("Title", "title", "string", 255, False),
    ("PostalCode", "postalCode", "string", 255, False),
    ("NumberOfEmployees", "numberOfEmployees", "integer", None, False),
    ("Unsubscribed", "unsubscribed", "boolean", None, False),
    ("LeadScore", "leadScore", "integer", None, False),
    ("CreatedAt", "createdAt", "datetime", None, True),
    ("ExternalId__c", "externalId", "string", 64, False),
]


def describe_entries() -> list[dict[str, Any]]:
    return [{"id": number, "displayName": soap, "dataType": data_type, "length": length,
             "rest": {"name": rest, "readOnly": read_only}, "soap": {"name": soap, "readOnly": read_only}}
            for number, (soap, rest, data_type, length, read_only) in enumerate(FIELDS, start=1)]


class FakeResponse:
    def __init__(self, status: int, body: bytes, headers: dict[str, str] | None = None):
        self.status_code = status
        self.reason = {200: "OK", 401: "Unauthorized", 502: "Bad Gateway", 503: "Service Unavailable",
                       413: "Payload Too Large"}.get(status, "")
        self.headers = {"Content-Length": str(len(body)), "Content-Type": "application/json", **(headers or {})}
        self._body = body

    def iter_content(self, size: int):
        for start in range(0, len(self._body), size):
            yield self._body[start:start + size]

    def close(self) -> None:
        pass


@dataclass
class Request:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class FakeMarketo:
    token_ttl: float = 3600.0
    now: float = 0.0  # the fake's clock, seconds; tests move it
    requests: list[Request] = field(default_factory=list)
    leads: dict[int, dict[str, Any]] = field(default_factory=dict)
    failures: list[Any] = field(default_factory=list)
    page_size: int = 300  # Get Leads records per page

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1001)
        self._tokens = itertools.count(1)
        self._token: tuple[str, float] | None = None
        self.rest_names = {rest for _, rest, *_ in FIELDS}

    # -- test controls ------------------------------------------------------------------------------

    def fail_next(self, *failures: Any) -> None:
        self.failures.extend(failures)

    def clock(self) -> float:
        return self.now

    def expire_token(self) -> None:
        self._token = (self._token[0], self.now) if self._token else None

    def calls(self, path: str = "/rest/v1/leads.json") -> list[Request]:
        return [r for r in self.requests if r.path == path]

    # -- the session --------------------------------------------------------------------------------

    def request(self, method: str, url: str, data: bytes | None = None, headers: dict | None = None,
                **_: Any) -> FakeResponse:
        with self._lock:
            request = Request(method, url, dict(headers or {}), data)
            self.requests.append(request)
            path = request.path
            if path == "/identity/oauth/token":
                return self._token_answer(url)
            refused = self._check_token(request.headers.get("Authorization", ""))
            if refused is not None:
                return refused
            if self.failures:
                failure = self.failures.pop(0)
                if isinstance(failure, int):
                    return FakeResponse(failure, b"<html>error</html>", {"Content-Type": "text/html"})
                return _answer(False, errors=[{"code": failure, "message": f"fake error {failure}"}])
            if path == "/rest/v1/leads/describe.json":
                return _answer(True, describe_entries())
            if path == "/rest/v1/leads.json" and method == "POST" and "_method=GET" not in url:
                return self._sync(json.loads(data or b"{}"))
            if path == "/rest/v1/leads.json":
                query = (data or b"").decode() if method == "POST" else urlsplit(url).query
                return self._get_leads(parse_qs(query))
            return _answer(False, errors=[{"code": "610", "message": "Requested resource not found"}])

    def close(self) -> None:
        pass

    def mount(self, prefix: str, adapter: Any) -> None:
        pass

    def _token_answer(self, url: str) -> FakeResponse:
        query = parse_qs(urlsplit(url).query)
        if query.get("client_id") != [CLIENT_ID] or query.get("client_secret") != [CLIENT_SECRET]:
            return FakeResponse(401, json.dumps({"error": "invalid_client",
                                                 "error_description": "Bad client credentials"}).encode())
        if self._token is None or self._token[1] <= self.now:
            self._token = (f"fake-token-{next(self._tokens)}-a1b2c3", self.now + self.token_ttl)
        token, expires = self._token
        return FakeResponse(200, json.dumps({"access_token": token, "token_type": "bearer",
                                             "expires_in": int(expires - self.now), "scope": "api"}).encode())

    def _check_token(self, header: str) -> FakeResponse | None:
        if not header.startswith("Bearer "):
            return _answer(False, errors=[{"code": "601", "message": "Access token invalid"}])
        token = header[len("Bearer "):]
        if self._token is None or token != self._token[0]:
            return _answer(False, errors=[{"code": "601", "message": "Access token invalid"}])
        if self._token[1] <= self.now:
            return _answer(False, errors=[{"code": "602", "message": "Access token expired"}])
        return None

    # -- Sync Leads and Get Leads -------------------------------------------------------------------

    def _sync(self, body: dict[str, Any]) -> FakeResponse:
        action = body.get("action", "createOrUpdate")
        lookup = body.get("lookupField", "email")
        if lookup == "id" and action != "updateOnly":
            return _answer(False, errors=[{"code": "1003", "message": "id lookup needs updateOnly"}])
        results = []
        for item in body.get("input", []):
            unknown = [name for name in item if name not in self.rest_names]
            if unknown:
                results.append({"status": "skipped", "reasons": [
                    {"code": "1006", "message": f"Field '{unknown[0]}' not found"}]})
                continue
            match = None
            if action != "createDuplicate":
                key = item.get(lookup)
                match = next((lead_id for lead_id, lead in self.leads.items()
                              if key is not None and str(lead.get(lookup, "")).lower() == str(key).lower()), None)
                if lookup == "id":
                    match = item.get("id") if item.get("id") in self.leads else None
            if match is None and action == "updateOnly":
                results.append({"status": "skipped", "reasons": [{"code": "1004", "message": "Lead not found"}]})
                continue
            if match is None:
                lead_id = next(self._ids)
                self.leads[lead_id] = {"id": lead_id, **{k: v for k, v in item.items() if k != "id"}}
                results.append({"id": lead_id, "status": "created"})
            else:
                self.leads[match].update({k: v for k, v in item.items() if k != "id"})
                results.append({"id": match, "status": "updated"})
        return _answer(True, results)

    def _get_leads(self, query: dict[str, list[str]]) -> FakeResponse:
        filter_type = query["filterType"][0]
        values = query["filterValues"][0].split(",")
        fields = query.get("fields", ["id,email"])[0].split(",")
        # Marketo answers every lead with its id, asked for or not.
        rows = [{"id": lead.get("id"), **{name: lead.get(name) for name in fields if name in lead}}
                for lead in self.leads.values() if str(lead.get(filter_type)) in values]
        offset = int(query.get("nextPageToken", ["0"])[0])
        page = rows[offset:offset + self.page_size]
        answer = _answer(True, page)
        if offset + self.page_size < len(rows):
            document = json.loads(answer._body)
            document["nextPageToken"] = str(offset + self.page_size)
            answer = FakeResponse(200, json.dumps(document).encode())
        return answer


def _answer(success: bool, result: list | None = None, errors: list | None = None) -> FakeResponse:
    document: dict[str, Any] = {"requestId": "e42b#14272d07d78", "success": success}
    if result is not None:
        document["result"] = result
    if errors is not None:
        document["errors"] = errors
    return FakeResponse(200, json.dumps(document).encode())


NAMES = {soap: rest for soap, rest, *_ in FIELDS}  # SOAP name -> REST name, as a Describe maps them


def make_client(fake: FakeMarketo, secret: str = CLIENT_SECRET, log=None, **kwargs) -> RestClient:
    credentials = RestCredentials(base_url="https://123-ABC-456.mktorest.com/rest",
                                  identity_url="https://123-ABC-456.mktorest.com/identity",
                                  client_id=CLIENT_ID, client_secret=secret)
    kwargs.setdefault("retry", RetryPolicy(max_attempts=4, base_delay=0.0, max_delay=0.0))
    return RestClient(credentials, session=fake, monotonic=fake.clock, sleep=lambda s: None, log=log, **kwargs)
