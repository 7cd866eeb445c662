"""Endpoints, and text from a server or a URL made fit for a message or a log.

``validate_endpoint(url, what, example)`` -> the URL, checked: https (plain http only to a loopback host),
a host, no ``user:password@``. Raises ``ConfigError`` naming ``what`` (an env var or option), with
any userinfo redacted. ``redact_url(text)`` hides userinfo and ``access_token`` / ``client_id`` /
``client_secret`` query values in any URL about to be shown or logged (the debug log does this
itself); ``host_port(url)``; ``is_loopback(host)``. ``one_line(text, limit)`` escapes control
characters visibly (``\r``) in server text before it reaches a message.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from reconcile.core.safetext import visible
from reconcile.errors import ConfigError


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
