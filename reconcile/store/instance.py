"""Which Marketo instance an endpoint URL names, as the state records it.

A Marketo instance is known by its Munchkin-style ID (`123-ABC-456`), the first label of its SOAP and
REST host names (`123-ABC-456.mktoapi.com`, `123-abc-456.mktorest.com`): both APIs of one instance
name the same one. Loopback endpoints — the built-in emulator and local test servers, on whatever
port — count as one instance, `emulator`. Any other host is named by its lower-cased host name.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

EMULATOR = "emulator"
_MUNCHKIN = re.compile(r"^([0-9]{3}-[a-z]{3}-[0-9]{3})(?:\.|$)", re.IGNORECASE)


def instance_of(endpoint: str) -> str:
    """The instance `endpoint` belongs to: `123-ABC-456`, `emulator`, or the host name."""
    try:
        host = (urlsplit(endpoint.strip()).hostname or "").rstrip(".").lower()
    except ValueError:
        host = ""
    if not host:
        return endpoint.strip().lower()
    if host == "localhost" or host.endswith(".localhost") or _is_loopback(host):
        return EMULATOR
    match = _MUNCHKIN.match(host)
    if match:
        return match.group(1).upper()
    return host


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
