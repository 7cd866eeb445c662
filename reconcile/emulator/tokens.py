"""OAuth access tokens of the REST face, as Marketo's identity service hands them out.

One client (the configured LaunchPoint client id and secret). A token lives `token_ttl` seconds
on the emulator's monotonic clock; asking again before it expires returns the same token and its
remaining life, asking after returns a new one. An expired token is known as expired (602), any
other unknown string is invalid (601).
"""

from __future__ import annotations

import collections
import enum
import hmac
import secrets
import threading
from dataclasses import dataclass

from reconcile.emulator.config import EmulatorConfig

_REMEMBERED = 1000  # expired tokens still recognised as expired rather than invalid


class TokenState(enum.Enum):
    VALID = "valid"
    EXPIRED = "expired"
    INVALID = "invalid"


@dataclass(frozen=True)
class Grant:
    access_token: str
    expires_in: int  # whole seconds of life left


class Tokens:
    def __init__(self, config: EmulatorConfig):
        self._config = config
        self._lock = threading.Lock()
        self._current: tuple[str, float] | None = None  # (token, expiry)
        self._issued: collections.OrderedDict[str, float] = collections.OrderedDict()

    def client_ok(self, client_id: str, client_secret: str) -> bool:
        config = self._config
        id_ok = hmac.compare_digest(client_id.encode("utf-8"), config.client_id.encode("utf-8"))
        secret_ok = hmac.compare_digest(client_secret.encode("utf-8"), config.client_secret.encode("utf-8"))
        return id_ok and secret_ok

    def grant(self) -> Grant:
        """The current token if it still lives, else a new one. Call after `client_ok`."""
        now = self._config.monotonic()
        with self._lock:
            if self._current is None or self._current[1] <= now:
                # Marketo's tokens look like "<uuid>:<pod>"; the pod suffix is "emu" here.
                token = f"{secrets.token_hex(16)}:emu"
                self._current = (token, now + self._config.token_ttl)
                self._issued[token] = self._current[1]
                while len(self._issued) > _REMEMBERED:
                    self._issued.popitem(last=False)
            token, expiry = self._current
        return Grant(token, int(expiry - now))

    def answer(self, params: dict[str, str]) -> tuple[int, dict]:
        """The identity service's HTTP status and JSON answer to a token request's parameters:
        a grant, or OAuth's `{"error", "error_description"}` (HTTP 401 for a bad client, as Marketo)."""
        if params.get("grant_type") != "client_credentials":
            error = "invalid_request" if "grant_type" not in params else "unsupported_grant_type"
            return 400, {"error": error, "error_description": "grant_type must be client_credentials"}
        if not self.client_ok(params.get("client_id", ""), params.get("client_secret", "")):
            return 401, {"error": "unauthorized", "error_description": "Bad client credentials"}
        grant = self.grant()
        return 200, {"access_token": grant.access_token, "token_type": "bearer", "expires_in": grant.expires_in,
                     "scope": f"{self._config.client_id}@emulator"}

    def check(self, token: str) -> TokenState:
        now = self._config.monotonic()
        with self._lock:
            expiry = self._issued.get(token)
        if expiry is None:
            return TokenState.INVALID
        return TokenState.VALID if now < expiry else TokenState.EXPIRED
