"""Where and as whom to call Marketo's REST API.

Credentials come from the environment only. The client secret is never shown by repr() or str().
Facts relied on (../shared/marketo-rest-facts.md, "Authentication"): the identity service lives at
`<instance>/identity`; the REST endpoint is the instance's base URL, given in Marketo's Admin →
Integration → Web Services either with or without its trailing `/rest`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping
from urllib.parse import urlsplit

from reconcile.errors import ConfigError

ENV_REST_ENDPOINT = "MARKETO_REST_ENDPOINT"
ENV_IDENTITY_ENDPOINT = "MARKETO_IDENTITY_ENDPOINT"
ENV_CLIENT_ID = "MARKETO_CLIENT_ID"
ENV_CLIENT_SECRET = "MARKETO_CLIENT_SECRET"
ENV_FOREIGN_ID_FIELD = "RECONCILE_FOREIGN_ID_FIELD"

# The custom lead field that carries foreign IDs on the built-in emulator (`apply --emulator` and
# `reconcile emulator` both have it): the default of --foreign-id-field when the REST endpoint is the
# emulator's, the one instance where the field's meaning is known. A live instance's field is named.
EMULATOR_FOREIGN_ID_FIELD = "crmId"

REST_VARIABLES = (ENV_CLIENT_ID, ENV_CLIENT_SECRET, ENV_REST_ENDPOINT)
# SOAP's credentials: set for that API, never a misspelling of one of ours
OTHER_API_VARIABLES = ("MARKETO_SOAP_ENDPOINT", "MARKETO_USER_ID", "MARKETO_ENCRYPTION_KEY")
REST = "rest"  # its registry name (reconcile/remote/registry.py)


def _validate_endpoint(url: str, what: str) -> str:
    from reconcile.remote.http import validate_endpoint

    example = "https://123-ABC-456.mktorest.com" + ("/identity" if what == ENV_IDENTITY_ENDPOINT else "")
    return validate_endpoint(url, what, example=example)


def base_url(endpoint: str) -> str:
    """The instance's base URL: `MARKETO_REST_ENDPOINT` without a trailing `/`, `/rest` or `/rest/v1`
    (the last as copied from an API call's URL)."""
    url = endpoint.strip().rstrip("/")
    for suffix in ("/rest/v1", "/rest"):
        if url.lower().endswith(suffix):
            url = url[: -len(suffix)]
            break
    return url.rstrip("/")


@dataclass(frozen=True)
class RestCredentials:
    """The instance's base URL, its identity URL, and the LaunchPoint client ID and secret."""

    base_url: str
    identity_url: str
    client_id: str
    client_secret: str = field(repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_url", _validate_endpoint(base_url(self.base_url), ENV_REST_ENDPOINT))
        object.__setattr__(self, "identity_url",
                           _validate_endpoint(self.identity_url.strip().rstrip("/"), ENV_IDENTITY_ENDPOINT))
        if not self.client_id:
            raise ConfigError(f"{ENV_CLIENT_ID} is empty")
        if not self.client_secret:
            raise ConfigError(f"{ENV_CLIENT_SECRET} is empty")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> "RestCredentials":
        values = {name: (environ.get(name) or "").strip() for name in REST_VARIABLES}
        missing = [name for name in REST_VARIABLES if not values[name]]
        if missing:
            raise ConfigError(f"environment variable{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                              f"{'are' if len(missing) > 1 else 'is'} not set; the REST API needs "
                              f"{', '.join(REST_VARIABLES)} (credentials come only from the environment)"
                              + misspelt_hint(environ, missing))
        base = base_url(values[ENV_REST_ENDPOINT])
        identity = (environ.get(ENV_IDENTITY_ENDPOINT) or "").strip() or f"{base}/identity"
        return cls(base_url=base, identity_url=identity, client_id=values[ENV_CLIENT_ID],
                   client_secret=values[ENV_CLIENT_SECRET])

    @property
    def endpoint(self) -> str:
        """What a user is asked to confirm an apply against."""
        return f"{self.base_url}/rest"

    @property
    def instance(self) -> str:
        """The instance's host: the key of its describe cache."""
        return instance_host(self.base_url) or ""

    def __repr__(self) -> str:
        return (f"RestCredentials(base_url={self.base_url!r}, identity_url={self.identity_url!r}, "
                f"client_id={self.client_id!r}, client_secret='***')")

    __str__ = __repr__


def misspelt_hint(environ: Mapping[str, str], missing: list[str]) -> str:
    """`; MARKETO_REST_URL is set: did you mean MARKETO_REST_ENDPOINT?` for a set variable that looks
    like a missing one; empty when none does."""
    import difflib

    known = set(REST_VARIABLES) | set(OTHER_API_VARIABLES) | {ENV_IDENTITY_ENDPOINT}
    hints = []
    for name in missing:
        others = [other for other in environ if other.startswith("MARKETO_") and other not in known]
        close = difflib.get_close_matches(name, others, n=1, cutoff=0.6)
        if close:
            hints.append(f"{close[0]} is set: did you mean {name}?")
    return "; " + "; ".join(hints) if hints else ""


def instance_host(url: str) -> str | None:
    """The host of an instance URL, lower-cased: what its describe cache is keyed by. None when the
    URL has no host or cannot be parsed."""
    try:
        return (urlsplit(url).hostname or "").lower() or None
    except ValueError:
        return None


def foreign_id_field(named: str | None, environ: Mapping[str, str], *, emulator: bool = False) -> str | None:
    """The custom lead field that carries foreignSysPersonId through REST: `--foreign-id-field`, else
    RECONCILE_FOREIGN_ID_FIELD, else, on the built-in emulator (in-process, or a loopback
    MARKETO_REST_ENDPOINT), its `crmId` field. None: none is known, and foreign-ID leads cannot go."""
    from reconcile.remote.http import is_loopback

    chosen = (named or "").strip() or (environ.get(ENV_FOREIGN_ID_FIELD) or "").strip()
    if chosen:
        return chosen
    host = instance_host(base_url(environ.get(ENV_REST_ENDPOINT) or "")) or ""
    if emulator or (host and is_loopback(host)):
        return EMULATOR_FOREIGN_ID_FIELD
    return None
