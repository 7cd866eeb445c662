"""What the application layer is given by the front end that runs it, and what it reports back.

The application never prints: whatever a user should see is an event handed to `on_event` (text for
stdout, notes and warnings for stderr, and the apply engine's own events), and a question is asked
through `confirm`. A front end (the CLI, a test) decides how to show them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable, Mapping


@dataclass(frozen=True)
class Output:
    """Text reconcile assembled for stdout (values in it already escaped)."""

    text: str


@dataclass(frozen=True)
class Note:
    """A line for stderr: what is being done, how far it got."""

    text: str


@dataclass(frozen=True)
class Warned:
    """A warning for stderr."""

    text: str


@dataclass(frozen=True)
class Sending:
    """Apply is about to send its calls (a front end may show progress from here)."""

    records: int
    calls: int


@dataclass(frozen=True)
class Sent:
    """Apply has stopped sending (done, failed or stopped); may come more than once."""


def _no_confirmation(question: str) -> bool:
    return False


@dataclass
class Session:
    """The environment variables, where events go, how to ask the user a yes/no question, and a way
    to ask a running apply to stop.

    `on_event` may be called from worker threads (a read's progress), so it must not depend on the
    calling thread. `confirm` answers True to go ahead; it may raise to stop the command.
    """

    environ: Mapping[str, str] = field(default_factory=dict)
    on_event: Callable[[object], None] = lambda event: None
    confirm: Callable[[str], bool] = _no_confirmation
    debug_log: Callable[[str], None] | None = None  # a redacted HTTP log, when asked for
    stop: threading.Event = field(default_factory=threading.Event)  # set: apply stops sending, gracefully

    def show(self, text: str) -> None:
        self.on_event(Output(text))

    def note(self, text: str) -> None:
        self.on_event(Note(text))

    def warn(self, text: str) -> None:
        self.on_event(Warned(text))
