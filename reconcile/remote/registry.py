"""The transports reconcile can apply through, one line each; everything above asks here.

Adding a transport: a folder under reconcile/remote/ with an `about.py` that declares its
`TransportInfo` (and the transport class that honours it), and one line in `_TRANSPORTS`.
"""

from __future__ import annotations

from typing import Mapping

from reconcile.errors import UsageError
from reconcile.remote.base import TransportInfo
from reconcile.remote.rest.about import TRANSPORT as REST_TRANSPORT
from reconcile.remote.soap.about import TRANSPORT as SOAP_TRANSPORT

ENV_API = "RECONCILE_API"

# The first is the default when the environment holds no transport's credentials.
_TRANSPORTS: tuple[TransportInfo, ...] = (
    SOAP_TRANSPORT,
    REST_TRANSPORT,
)


def names() -> tuple[str, ...]:
    return tuple(info.name for info in _TRANSPORTS)


def get(name: str) -> TransportInfo:
    for info in _TRANSPORTS:
        if info.name == name:
            return info
    raise UsageError(f"no transport named {name!r}; choose one of {', '.join(names())}")


def largest_call() -> int:
    """The most records any transport takes in one call."""
    return max(info.max_records for info in _TRANSPORTS)


def _present(environ: Mapping[str, str], names_: tuple[str, ...]) -> bool:
    return bool(names_) and all((environ.get(name) or "").strip() for name in names_)


def select_api(explicit: str | None, environ: Mapping[str, str], *, emulator: bool = False) -> str:
    """`--api`, else RECONCILE_API, else the transport whose credentials are present (never two).

    The emulator keeps the default transport (SOAP). Without any credentials, the default too: the
    missing variables are named when a call is about to be made.
    """
    choice = (explicit or (environ.get(ENV_API) or "")).strip().lower()
    if choice:
        if choice not in names():
            source = "--api" if explicit else ENV_API
            raise UsageError(f"{source} must be {_one_of(names())}, not {choice!r}")
        return choice
    default = _TRANSPORTS[0].name
    if emulator:
        return default
    present = [info for info in _TRANSPORTS if _present(environ, info.credential_variables)]
    if len(present) > 1:  # named newest first
        sets = " and ".join(f"{info.name.upper()} ({', '.join(info.credential_variables)})"
                            for info in reversed(present))
        raise UsageError(f"both {sets} credentials are set; choose one with --api "
                         f"{'|'.join(reversed(names()))} or {ENV_API}")
    if present:
        return present[0].name
    # no set is complete: advise on the transport the user was setting up (the newest, if several)
    started = [info for info in _TRANSPORTS if _being_set_up(environ, info.variable_prefixes)]
    return started[-1].name if started else default


def _being_set_up(environ: Mapping[str, str], prefixes: tuple[str, ...]) -> bool:
    return bool(prefixes) and any(name.startswith(prefixes) and (value or "").strip()
                                  for name, value in environ.items())


def _one_of(choices: tuple[str, ...]) -> str:
    quoted = [f"'{name}'" for name in choices]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
