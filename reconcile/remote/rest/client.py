"""Marketo's REST API as calls: Sync Leads, Get Leads by filter type, Describe.

Every call carries the current access token (`Authorization: Bearer`), counts against the same rate
limiter and concurrency slots, and is retried per the one REST code table (`rest/codes.py`):
601/602 renew the token and retry once; rate, concurrency and transient errors back off as SOAP
does; 607 stops and says when the quota resets; 603 stops and names the permission; anything else
stops with exit 4 (details in the `--debug` log).
"""

from __future__ import annotations

import random
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable, Sequence
from urllib.parse import urlencode

from reconcile.core.clock import utc_now
from reconcile.errors import RemoteError, ResponseError
from reconcile.remote.base import QuotaExhausted, RetryInfo, TransportStats
from reconcile.remote.codes import Handling
from reconcile.remote.http import (Failure, HttpClient, RateLimiter, RetryPolicy, call_with_retries,
                                   quota_message, quota_reset_after)
from reconcile.remote.rest import answers, codes
from reconcile.remote.rest.auth import TokenSource, scrub
from reconcile.remote.rest.config import ENV_IDENTITY_ENDPOINT, ENV_REST_ENDPOINT, RestCredentials
from reconcile.remote.rest.redact import Redactor

SYNC_PATH = "/rest/v1/leads.json"
DESCRIBE_PATH = "/rest/v1/leads/describe.json"
MAX_URL_BYTES = 8 * 1024  # Marketo answers 414 above 8 KB: such reads go as POST ..._method=GET
MAX_FILTER_VALUES = 300
# Marketo answers 1003 "Too many results match the filter" rather than page past 1,000 leads
MAX_MATCHES = 1000
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"

# What an API-only user's role needs for each call (Marketo Admin → Users & Roles → Roles).
WRITE_PERMISSION = "Read-Write Lead"
READ_PERMISSION = "Read-Only Lead (or Read-Write Lead)"


class RestClient:
    """One instance's REST API. Thread-safe: calls may run from several threads at once."""

    def __init__(self, credentials: RestCredentials, *, timeout: tuple[float, float] = (10.0, 120.0),
                 session: Any = None, retry: RetryPolicy | None = None, rate_limiter: RateLimiter | None = None,
                 max_concurrency: int = 10, clock: Callable[[], datetime] = utc_now,
                 monotonic: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None, log: Callable[[str], None] | None = None):
        self.credentials = credentials
        self.retry = retry or RetryPolicy()
        self.redact = Redactor(credentials.client_secret)
        self._log = log
        self._clock = clock
        self._monotonic = monotonic
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._rng_lock = threading.Lock()
        logger = self._redacted_log if log is not None else None
        self.http = HttpClient(endpoint_env=ENV_REST_ENDPOINT, timeout=timeout, session=session,
                               rate_limiter=rate_limiter, max_concurrency=max_concurrency, monotonic=monotonic,
                               log=logger)
        # Token requests go to the identity service: they neither use a call slot nor count against
        # the REST rate window (a token fetched mid-apply must not push a call into the next window).
        # the identity URL is MARKETO_REST_ENDPOINT's /identity unless MARKETO_IDENTITY_ENDPOINT says otherwise
        derived = credentials.identity_url == f"{credentials.base_url}/identity"
        identity = HttpClient(endpoint_env=ENV_REST_ENDPOINT if derived else ENV_IDENTITY_ENDPOINT, timeout=timeout, session=session,
                              rate_limiter=RateLimiter(calls=100, window=20.0), max_concurrency=1,
                              monotonic=monotonic, log=logger)
        self.tokens = TokenSource(credentials, identity, self.redact, retry=self.retry, monotonic=monotonic,
                                  sleep=sleep)
        self._identity = identity

    @property
    def stats(self) -> TransportStats:
        return self.http.stats

    def close(self) -> None:
        self.http.close()
        self._identity.close()

    def _redacted_log(self, text: str) -> None:
        assert self._log is not None
        self._log(self.redact(text))

    def _uniform(self, low: float, high: float) -> float:
        with self._rng_lock:
            return self._rng.uniform(low, high)

    # -- the calls ----------------------------------------------------------------------------------

    def sync_leads(self, body: bytes, *, resend_safe: bool, stop: threading.Event | None = None,
                   on_retry: Callable[[RetryInfo], None] | None = None) -> answers.Answer:
        """POST one Sync Leads body; the answer of a call Marketo executed (`success: true`)."""
        return self.call("POST", SYNC_PATH, body=body, content_type=JSON, permission=WRITE_PERMISSION,
                         resend_safe=resend_safe, stop=stop, on_retry=on_retry)

    def get_leads(self, filter_type: str, values: Sequence[str | int], fields: Sequence[str], *,
                  stop: threading.Event | None = None,
                  on_retry: Callable[[RetryInfo], None] | None = None) -> list[dict[str, Any]]:
        """Get Leads by filter type: every lead matching up to 300 values, all pages, `fields` only."""
        if len(values) > MAX_FILTER_VALUES:
            raise ValueError(f"Get Leads takes at most {MAX_FILTER_VALUES} filter values, not {len(values)}")
        if not values:
            return []
        params = {"filterType": filter_type, "filterValues": ",".join(str(v) for v in values)}
        if fields:
            params["fields"] = ",".join(fields)
        rows: list[dict[str, Any]] = []
        tokens_seen: set[str] = set()
        ids_seen: set[Any] = set()
        while True:
            query = urlencode(params)
            if len(self.credentials.base_url) + len(SYNC_PATH) + len(query) + 1 > MAX_URL_BYTES:
                answer = self.call("POST", f"{SYNC_PATH}?_method=GET", body=query.encode("ascii"),
                                   content_type=FORM, permission=READ_PERMISSION, resend_safe=True, stop=stop,
                                   on_retry=on_retry)
            else:
                answer = self.call("GET", f"{SYNC_PATH}?{query}", permission=READ_PERMISSION, resend_safe=True,
                                   stop=stop, on_retry=on_retry)
            page = answers.lead_rows(answer)
            rows.extend(page)
            if answer.next_page_token is None or not answer.result:
                return rows
            fresh = _new_leads(page, ids_seen)
            _check_paging(filter_type, len(values), len(rows), answer.next_page_token, tokens_seen, fresh)
            tokens_seen.add(answer.next_page_token)
            params["nextPageToken"] = answer.next_page_token

    def describe(self, stop: threading.Event | None = None) -> list[dict[str, Any]]:
        """Describe's lead fields, as Marketo gave them."""
        answer = self.call("GET", DESCRIBE_PATH, permission=READ_PERMISSION, resend_safe=True, stop=stop)
        return answers.describe_entries(answer)

    # -- one call, retried --------------------------------------------------------------------------

    def call(self, method: str, path: str, *, body: bytes | None = None, content_type: str | None = None,
             permission: str, resend_safe: bool, stop: threading.Event | None = None,
             on_retry: Callable[[RetryInfo], None] | None = None) -> answers.Answer:
        url = f"{self.credentials.base_url}{path}"
        renewed = [False]

        def attempt(number: int) -> answers.Answer:
            token = self.tokens.current(stop)
            headers = {"Authorization": f"Bearer {token}", "Accept": JSON}
            if content_type is not None:
                headers["Content-Type"] = content_type
            reply = self.http.exchange(method, url, body=body, headers=headers, attempt=number, stop=stop,
                                       show=self.redact.body)
            return self._answer(reply, url, token, permission, renewed)

        try:
            return call_with_retries(attempt, lambda exc: None, policy=self.retry, resend_safe=resend_safe,
                                     stop=stop, on_retry=on_retry, monotonic=self._monotonic, sleep=self._sleep,
                                     uniform=self._uniform, stats=self.http.counters)
        except BaseException as exc:
            scrub(exc, self.redact)
            raise

    def _answer(self, reply: Any, url: str, token: str, permission: str, renewed: list[bool]) -> answers.Answer:
        if reply.status == 413:
            raise Failure(RemoteError(f"Marketo refused a call of {len(reply.content)} bytes as too large "
                                      "(HTTP 413); this is a bug in reconcile, please report it"),
                          Handling.STOP, "HTTP 413")
        failure = self.http.classify_status(reply, url)
        if failure is not None:
            raise failure
        try:
            answer = answers.parse_answer(reply.content)
        except ResponseError as exc:
            # HTTP 200 that is not a REST answer: Marketo most likely executed the call
            raise Failure(exc, Handling.STOP, "unusable answer", unknown=True) from None
        if answer.success:
            return answer
        raise self._call_failure(answers.first_error(answer.errors), token, permission, renewed)

    def _call_failure(self, error: answers.CallError, token: str, permission: str,
                      renewed: list[bool]) -> Failure:
        """What to do about a call-level error; the call was not executed (`success: false`)."""
        handling = codes.handling(error.code)
        reason = str(error)
        if handling is Handling.RESIGN:
            if not renewed[0]:
                renewed[0] = True
                self.tokens.invalidate(token)
                return Failure(RemoteError(reason, code=error.code), Handling.RESIGN, reason)
            return Failure(RemoteError(f"Marketo refused a freshly issued access token ({reason}); check the "
                                       "API-only user and its LaunchPoint service", code=error.code),
                           Handling.STOP, reason)
        if handling is Handling.QUOTA:
            now = self._now()
            resets = quota_reset_after(now)
            message = quota_message(now, resets, reason)
            return Failure(QuotaExhausted(message, resets, code=error.code), Handling.QUOTA, reason,
                           final=lambda _suffix: QuotaExhausted(message, resets, code=error.code))
        if handling in (Handling.RETRY, Handling.THROTTLED, Handling.UNKNOWN):
            return Failure(RemoteError(f"Marketo REST error {reason}", code=error.code), handling, reason,
                           final=lambda suffix: RemoteError(f"Marketo REST error {reason}{suffix}", code=error.code))
        if error.code == codes.ACCESS_DENIED:
            return Failure(RemoteError(f"Marketo denied access ({reason}): the API-only user's role needs the "
                                       f"{permission} permission (Admin → Users & Roles), and the IP allowlist "
                                       "must admit this machine", code=error.code), Handling.STOP, reason)
        return Failure(RemoteError(f"Marketo refused the call ({reason}); run with --debug to see the request "
                                   "and the answer", code=error.code), Handling.STOP, reason)

    def _now(self) -> datetime:
        now = self._clock()
        return now if now.tzinfo is not None else now.replace(tzinfo=timezone.utc)


def _new_leads(page: list[dict[str, Any]], ids_seen: set[Any]) -> bool:
    """Whether `page` holds a lead not answered on an earlier page (noting its ID)."""
    ids = {row.get("id") if isinstance(row.get("id"), int) else None for row in page}
    fresh = not ids <= ids_seen or None in ids
    ids_seen |= ids
    return fresh


def _check_paging(filter_type: str, values: int, rows: int, token: str, tokens_seen: set[str], fresh: bool) -> None:
    """ResponseError when Marketo offers a page that cannot hold anything new: the token of an earlier
    page again, after a page of leads already answered, or after as many leads as the filter values
    can match (each lead ID is one lead; any filter matches at most 1,000). Following such pages
    would read without end."""
    pages = len(tokens_seen) + 1
    if token in tokens_seen:
        why = "offered the nextPageToken of an earlier page again"
    elif not fresh:
        why = "answered only leads of earlier pages, and offered another page"
    elif rows >= (min(values, MAX_MATCHES) if filter_type == "id" else MAX_MATCHES):
        why = (f"offered another page after {rows} leads, more than {values} {filter_type} value(s) can match"
               if filter_type == "id" else
               f"offered another page after {rows} leads, though Marketo never pages past {MAX_MATCHES} matches")
    else:
        return
    raise ResponseError(f"Marketo's Get Leads by {filter_type} pages without end: after {pages} page(s) it {why}; "
                        "the read stopped and nothing was written. Try again later; if it persists, report it "
                        "to Marketo support (run with --debug to see the answers)")
