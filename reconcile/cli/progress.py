"""What apply shows while it runs: the confirmation, its events, and the progress display."""

from __future__ import annotations

import signal
import threading

import typer

from reconcile.cli.environment import Environment, env
from reconcile.core.safetext import not_a_command
from reconcile.errors import ExitStatus, UsageError


def _confirm(question: str) -> bool:
    """Ask `question`; True only for "yes". Declining is a decision, not a failure: nothing is sent."""
    if not env().stdin_isatty:
        raise UsageError("apply needs confirmation but stdin is not interactive; review the plan and pass "
                         "--auto-approve, or apply a saved plan file")
    env().stdout.write(not_a_command(f"\n{question}\n  Only 'yes' will be accepted: "))
    env().stdout.flush()
    try:
        answer = env().stdin.readline()
    except KeyboardInterrupt:
        env().out("\nApply cancelled; nothing was sent.")
        raise typer.Exit(ExitStatus.INTERRUPTED) from None
    if answer.strip() != "yes":
        env().out(("" if answer.endswith("\n") else "\n") + "Apply cancelled; nothing was sent.")
        return False
    return True


def _print_event(event) -> None:
    from reconcile import apply as applier

    if isinstance(event, applier.JournalRecovered):
        env().warn(event.report.summary())
    elif isinstance(event, applier.ApplyWarning):
        env().warn(event.message)
    elif isinstance(event, applier.BatchRetrying):
        env().err(f"call {event.batch}: retrying in {event.delay:.1f} s after {event.reason}")
    elif isinstance(event, applier.BatchFailed):
        env().err(f"call {event.batch}: {event.error}")


class _Progress:
    """A progress bar on stderr when it is a terminal and there is more than one call; otherwise a
    line per answered call, so CI logs show progress too."""

    def __init__(self, total_records: int, calls: int):
        self.calls = calls
        self.bar = None
        if calls > 1 and env().stderr_isatty:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("applying"), BarColumn(), MofNCompleteColumn(), TextColumn("records"),
                                TimeElapsedColumn(), console=Console(file=env().stderr), transient=True)
            self.task = self.bar.add_task("apply", total=total_records)
            self.bar.start()

    def update(self, event) -> None:
        from reconcile import apply as applier

        if not isinstance(event, applier.BatchAnswered):
            return
        if self.bar is not None:
            self.bar.advance(self.task, event.records)
        elif self.calls > 1:
            adopted = f", {event.adopted} adopted" if event.adopted else ""
            refused = f", {event.refused} not recorded (conflicting lead IDs)" if event.refused else ""
            env().err(f"call {event.batch}/{self.calls}: {event.created} created, {event.updated} updated"
                      f"{adopted}, {event.failed} failed{refused}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


class ApplyDisplay:
    """What the user sees while apply sends: a progress display, each call's trouble once, and Ctrl-C /
    SIGTERM turned into a graceful stop (the session's `stop`), from `Sending` until `Sent`."""

    def __init__(self, environment: Environment):
        self.environment = environment
        self.stop = threading.Event()
        self.progress: _Progress | None = None
        self.failures: list[object] = []
        self.restore: list[tuple[int, object]] = []

    def __enter__(self) -> "ApplyDisplay":
        return self

    def __exit__(self, *exc_info) -> None:
        self.finish()

    def start(self, records: int, calls: int) -> None:
        self.progress = _Progress(total_records=records, calls=calls)
        self.failures = []
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self.restore.append((signum, signal.signal(signum, lambda *_: self.stop.set())))

    def sending(self) -> bool:
        return self.progress is not None

    def show(self, event) -> None:
        """An apply engine event while sending."""
        from reconcile import apply as applier

        if isinstance(event, applier.BatchFailed) and not self.failures:
            self.failures.append(event)  # the first failure ends the apply: its error line says it once
        else:
            _print_event(event)
        if self.progress is not None:
            self.progress.update(event)

    def finish(self) -> None:
        if self.progress is not None:
            self.progress.close()
            self.progress = None
        for signum, handler in self.restore:
            signal.signal(signum, handler)
        self.restore = []
