"""The application layer's events shown to the user, and the session the CLI hands it."""

from __future__ import annotations

from typing import Callable

from reconcile.app.session import Note, Output, Sending, Sent, Session, Warned
from reconcile.cli.environment import Environment
from reconcile.cli.progress import ApplyDisplay, _confirm, _print_event


def session_for(environment: Environment, display: ApplyDisplay | None = None,
                also: Callable[[object], None] | None = None) -> Session:
    """A session whose events go to `environment` (apply's sending through `display`; any event to
    `also` too, first), and whose questions are asked on its terminal."""

    def on_event(event) -> None:
        if also is not None:
            also(event)
        if isinstance(event, Output):
            environment.out(event.text)
        elif isinstance(event, Note):
            environment.err(event.text)
        elif isinstance(event, Warned):
            environment.warn(event.text)
        elif isinstance(event, Sending) and display is not None:
            display.start(event.records, event.calls)
        elif isinstance(event, Sent) and display is not None:
            display.finish()
        elif display is not None and display.sending():
            display.show(event)
        else:
            _print_event(event)

    session = Session(environ=environment.environ, on_event=on_event, confirm=_confirm,
                      debug_log=environment.debug_log if environment.debug else None)
    if display is not None:
        session.stop = display.stop
    return session
