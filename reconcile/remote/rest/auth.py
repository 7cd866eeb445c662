"""OAuth client credentials: one access token, shared by every call, renewed before it runs out.

Facts relied on (../shared/marketo-rest-facts.md, "Authentication"):
`GET <identity>/oauth/token?grant_type=client_credentials&client_id=…&client_secret=…` answers
`{"access_token", "token_type", "expires_in", "scope"}`; asking again before expiry returns the same
token with its remaining life; the token travels only in `Authorization: Bearer` (the
`access_token` query parameter is gone). A bad client ID or secret is answered with an HTTP 4xx and
`{"error": "invalid_client", "error_description": …}` (OAuth 2, RFC 6749 §5.2).
"""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Callable
from urllib.parse import urlencode

from reconcile.errors import RemoteError
from reconcile.remote.codes import Handling
from reconcile.remote.http import Failure, HttpClient, RetryPolicy, call_with_retries
from reconcile.remote.rest.answers import clean
from reconcile.remote.rest.config import ENV_CLIENT_ID, ENV_CLIENT_SECRET, ENV_IDENTITY_ENDPOINT, RestCredentials
from reconcile.remote.rest.redact import Redactor

# Renew this long before the token runs out (at most a tenth of its life): a call that starts with
# a token must not arrive at Marketo after it expired.
RENEW_MARGIN = 60.0
# What a bearer token may hold in an `Authorization` header: visible ASCII, no spaces (Marketo's
# tokens are `<uuid>:<pod>`)
_HEADER_SAFE = re.compile(r"[\x21-\x7e]+")


def scrub(error: BaseException, redact: Redactor) -> None:
    """Mask secrets in the text of `error` and of every exception chained to it, in place."""
    seen: set[int] = set()
    item: BaseException | None = error
    while item is not None and id(item) not in seen:
        seen.add(id(item))
        if hasattr(item, "message") and isinstance(item.message, str):
            item.message = redact(item.message)  # type: ignore[attr-defined]
        item.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in item.args)
        item = item.__cause__ or item.__context__


class AuthenticationFailed(RemoteError):
    """Marketo's identity service refused the client ID or secret."""


class TokenSource:
    """Hands out the current access token; thread-safe, one request at a time to the identity service."""

    def __init__(self, credentials: RestCredentials, http: HttpClient, redactor: Redactor, *,
                 retry: RetryPolicy, monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.credentials = credentials
        self.http = http
        self.redact = redactor
        self.retry = retry
        self._monotonic = monotonic
        self._sleep = sleep
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0
        self._expires_at = 0.0
        self.fetched = 0  # tokens requested, for tests and --debug

    def current(self, stop: threading.Event | None = None) -> str:
        with self._lock:
            now = self._monotonic()
            if self._token is None or now >= self._renew_at:
                token, lifetime = self._fetch(stop)
                if token != self._token or self._token is None:
                    margin = min(RENEW_MARGIN, lifetime / 10)
                    self._renew_at = now + max(lifetime - margin, 0.0)
                else:
                    # the same token again, with less life left: keep it until it is refused
                    self._renew_at = now + lifetime
                self._token = token
                self._expires_at = now + lifetime
            return self._token

    def invalidate(self, token: str) -> None:
        """`token` was refused (601/602): the next `current()` asks for a new one, unless another call
        already did."""
        with self._lock:
            if self._token == token:
                self._token = None

    def _fetch(self, stop: threading.Event | None) -> tuple[str, float]:
        query = urlencode({"grant_type": "client_credentials", "client_id": self.credentials.client_id,
                           "client_secret": self.credentials.client_secret})
        url = f"{self.credentials.identity_url}/oauth/token?{query}"

        def attempt(number: int) -> tuple[str, float]:
            answer = self.http.exchange("GET", url, headers={"Accept": "application/json"}, attempt=number,
                                        stop=stop, show=self.redact.body)
            if answer.status in (400, 401, 403):
                raise Failure(self._refused(answer.status, answer.content), Handling.STOP,
                              f"HTTP {answer.status}")
            failure = self.http.classify_status(answer, self.redact(url))
            if failure is not None:
                raise failure
            return self._token_from(answer.content)

        self.fetched += 1
        try:
            return call_with_retries(attempt, lambda exc: None, policy=self.retry, resend_safe=True, stop=stop,
                                     monotonic=self._monotonic, sleep=self._sleep, stats=None)
        except BaseException as exc:
            scrub(exc, self.redact)  # its text may quote the token URL, secret and all
            raise

    def _refused(self, status: int, content: bytes) -> AuthenticationFailed:
        try:
            document = json.loads(content)
        except ValueError:
            document = {}
        detail = ""
        if isinstance(document, dict) and document.get("error"):
            detail = clean(document.get("error"), 60)
            if document.get("error_description"):
                detail += f": {clean(document.get('error_description'), 160)}"
        detail = self.redact(detail or f"HTTP {status}")
        return AuthenticationFailed(
            f"Marketo refused the REST client credentials ({detail}); check {ENV_CLIENT_ID} and "
            f"{ENV_CLIENT_SECRET} (Admin → LaunchPoint → the API-only user's service → View Details) and "
            f"{ENV_IDENTITY_ENDPOINT} if you set it")

    def _token_from(self, content: bytes) -> tuple[str, float]:
        try:
            document = json.loads(content)
        except ValueError:
            document = None
        token = document.get("access_token") if isinstance(document, dict) else None
        lifetime = document.get("expires_in") if isinstance(document, dict) else None
        if not isinstance(token, str) or not token.strip():
            raise Failure(RemoteError("Marketo's identity service answered without an access token"),
                          Handling.STOP, "no access token")
        self.redact.add(token)
        if not _HEADER_SAFE.fullmatch(token):
            raise Failure(RemoteError("Marketo's identity service answered an access token that cannot travel in "
                                      "an HTTP header (it holds spaces, line breaks or other control characters); "
                                      f"check that {ENV_IDENTITY_ENDPOINT} (if set) and the REST endpoint are "
                                      "Marketo's"), Handling.STOP, "unusable access token")
        if isinstance(lifetime, bool) or not isinstance(lifetime, (int, float)) or lifetime <= 0:
            lifetime = 0.0  # unknown life: use it once and ask again, as a refused token would make us do
        return token, float(lifetime)
