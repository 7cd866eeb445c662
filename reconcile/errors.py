"""Error types. Each carries the exit code the CLI returns and, where known, a source location."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ExitStatus(enum.IntEnum):
    SUCCESS = 0
    ERROR = 1
    CHANGES_PRESENT = 2
    INVALID_INPUT = 3
    REMOTE_FAILURE = 4
    PARTIAL_APPLY = 5
    STALE_PLAN = 6
    LOCKED = 7
    INTERRUPTED = 130
    USAGE = 64


@dataclass(frozen=True, order=True)
class Location:
    file: str
    line: int | None = None

    def __str__(self) -> str:
        return self.file if self.line is None else f"{self.file}:{self.line}"


class ReconcileError(Exception):
    """Base: one line of text for the user, an exit status, an optional location."""

    exit_status: ExitStatus = ExitStatus.ERROR

    def __init__(self, message: str, location: Location | None = None):
        super().__init__(message)
        self.message = message
        self.location = location

    def lines(self) -> list[str]:
        prefix = f"{self.location}: " if self.location else ""
        return [f"{prefix}{self.message}"]


class UsageError(ReconcileError):
    exit_status = ExitStatus.USAGE


class InputError(ReconcileError):
    """Invalid lead files, schema or state file."""

    exit_status = ExitStatus.INVALID_INPUT


class InputErrors(InputError):
    """Several input problems reported at once, in source order."""

    def __init__(self, errors: list[InputError]):
        self.errors = sorted(errors, key=_error_sort_key)
        super().__init__(f"{len(self.errors)} error(s) in lead files")

    def lines(self) -> list[str]:
        return [line for error in self.errors for line in error.lines()]


def _error_sort_key(error: ReconcileError) -> tuple:
    loc = error.location
    return (loc.file if loc else "", (loc.line or 0) if loc else 0, error.message)


class StateError(InputError):
    """The state file is unreadable, corrupt or of an unknown format."""


class RemoteError(ReconcileError):
    """Marketo (or the transport to it) refused or failed: nothing more can be sent."""

    exit_status = ExitStatus.REMOTE_FAILURE

    def __init__(self, message: str, code: str | None = None, location: Location | None = None):
        super().__init__(message, location)
        self.code = code


class TransportError(RemoteError):
    """Connection failures, timeouts and HTTP errors that carry no SOAP fault."""


class ResponseError(RemoteError):
    """A response that cannot be trusted: malformed, hostile, oversized, or not matching the request."""


class ConfigError(ReconcileError):
    """Missing credentials or an endpoint we refuse to talk to."""

    exit_status = ExitStatus.USAGE


class StalePlanError(ReconcileError):
    exit_status = ExitStatus.STALE_PLAN


class LockedError(ReconcileError):
    exit_status = ExitStatus.LOCKED


class PartialApplyError(ReconcileError):
    exit_status = ExitStatus.PARTIAL_APPLY


class Interrupted(ReconcileError):
    exit_status = ExitStatus.INTERRUPTED
