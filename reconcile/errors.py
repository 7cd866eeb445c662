"""Error types. Each carries the exit code the CLI returns and, where known, a source location."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any


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

    @property
    def meaning(self) -> str:
        return _MEANINGS[self]

    @classmethod
    def describe(cls, code: int) -> str:
        """What an exit status means, for any integer a process may have returned."""
        try:
            return cls(code).meaning
        except ValueError:
            return "failure"


_MEANINGS = {
    ExitStatus.SUCCESS: "success",
    ExitStatus.ERROR: "unexpected error (a bug in reconcile)",
    ExitStatus.CHANGES_PRESENT: "changes present",
    ExitStatus.INVALID_INPUT: "invalid input",
    ExitStatus.REMOTE_FAILURE: "remote failure",
    ExitStatus.PARTIAL_APPLY: "partial apply",
    ExitStatus.STALE_PLAN: "stale plan",
    ExitStatus.LOCKED: "state locked",
    ExitStatus.INTERRUPTED: "interrupted",
    ExitStatus.USAGE: "usage error",
}

# Messages about one place in a lead file start with its path in the document, e.g. `leads[3].email: `.
_DOCUMENT_PATH = re.compile(r"(leads(?:\[\d+\]|\.[^\s.:\[]+)*): ")


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

    def diagnostics(self) -> list[dict[str, Any]]:
        """The machine-readable form: one object per error, with file, line, path, message, exit code."""
        path, message = None, self.message
        found = _DOCUMENT_PATH.match(message)
        if found is not None:
            path, message = found[1], message[found.end():]
        main = {"severity": "error", "file": self.location.file if self.location else None,
                "line": self.location.line if self.location else None, "path": path, "message": message,
                "exit_code": int(self.exit_status)}
        # an error that lists details (e.g. each lead that FAILED) prints them as its further lines
        details = [{**main, "file": None, "line": None, "path": None, "message": line.strip()}
                   for line in self.lines()[1:]]
        return [main, *details]


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

    def diagnostics(self) -> list[dict[str, Any]]:
        return [item for error in self.errors for item in error.diagnostics()]


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
