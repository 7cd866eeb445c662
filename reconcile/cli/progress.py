"""What apply shows while it runs: the confirmation, its events, and the progress display."""

from __future__ import annotations

from pathlib import Path

import typer

from reconcile.cli.environment import env
from reconcile.core.safetext import not_a_command, visible
from reconcile.errors import ExitStatus, ReconcileError, UsageError

def _confirm(endpoint: str, question: str | None = None) -> None:
    if not env().stdin_isatty:
        raise UsageError("apply needs confirmation but stdin is not interactive; review the plan and pass "
                         "--auto-approve, or apply a saved plan file")
    question = question or f"Apply these changes to {visible(endpoint)}?"
    env().stdout.write(not_a_command(f"\n{question}\n  Only 'yes' will be accepted: "))
    env().stdout.flush()
    try:
        answer = env().stdin.readline()
    except KeyboardInterrupt:
        env().out("\nApply cancelled; nothing was sent.")
        raise typer.Exit(ExitStatus.INTERRUPTED) from None
    if answer.strip() != "yes":
        # Declining is a decision, not a failure (exit 1 means a bug here): nothing was sent, exit 0.
        env().out(("" if answer.endswith("\n") else "\n") + "Apply cancelled; nothing was sent.")
        raise typer.Exit(ExitStatus.SUCCESS)


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


def _run_apply(plan, current, state_path: Path, transport, options, calls=None):
    """Run the applier with a progress display and Ctrl-C / SIGTERM turned into a graceful stop."""
    import signal
    import threading

    from reconcile import apply as applier

    stop = threading.Event()
    progress = _Progress(total_records=plan.records_to_send, calls=plan.calls)
    restore = []
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            restore.append((signum, signal.signal(signum, lambda *_: stop.set())))

    failures = []

    def on_event(event) -> None:
        if isinstance(event, applier.BatchFailed) and not failures:
            failures.append(event)  # the first failure ends the apply: its error line says it once
        else:
            _print_event(event)
        progress.update(event)

    try:
        return applier.apply_plan(plan, current, state_path, transport, options=options, on_event=on_event,
                                  stop=stop, calls=calls)
    except ReconcileError as exc:
        report = getattr(exc, "report", None)
        if report is not None:
            progress.close()
            env().out(report.summary("interrupted" if exc.exit_status == ExitStatus.INTERRUPTED else "failed"))
        raise
    finally:
        progress.close()
        for signum, handler in restore:
            signal.signal(signum, handler)


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
