"""Running the CLI: global options, usage errors, exit statuses. The only place the process exits."""

from __future__ import annotations

import os
import sys
import traceback

import typer

try:  # typer >= 0.29 vendors click
    from typer._click import exceptions as _click_exceptions
except ImportError:  # pragma: no cover - older typer with click installed
    from click import exceptions as _click_exceptions

# Each command module registers its commands when imported, in the order `reconcile --help` lists them.
from reconcile.cli import plan  # noqa: F401  isort: skip
from reconcile.cli import apply  # noqa: F401  isort: skip
from reconcile.cli import fields  # noqa: F401  isort: skip
from reconcile.cli import state  # noqa: F401  isort: skip
from reconcile.cli import emulator  # noqa: F401  isort: skip
from reconcile.cli import ci  # noqa: F401  isort: skip
from reconcile.cli import lists  # noqa: F401  isort: skip
from reconcile.cli.environment import Environment, _current_env
from reconcile.cli.root import app
from reconcile.errors import ExitStatus, Interrupted, ReconcileError, UsageError


def _split_global_options(argv: list[str]) -> tuple[list[str], bool, bool]:
    """`--debug` and `--error-format FORMAT` are accepted anywhere, before or after the command.
    Returns the other arguments, debug, and whether errors are JSON."""
    cut = argv.index("--") if "--" in argv else len(argv)
    head, tail = argv[:cut], argv[cut:]
    rest: list[str] = []
    debug = json_errors = False
    index = 0
    while index < len(head):
        arg = head[index]
        index += 1
        if arg == "--debug":
            debug = True
        elif arg == "--error-format" and index < len(head) and head[index] in ("text", "json"):
            json_errors = head[index] == "json"
            index += 1
        elif arg in ("--error-format=text", "--error-format=json"):
            json_errors = arg.endswith("json")
        else:
            rest.append(arg)
    return rest + tail, debug, json_errors


def _without_value_placeholders(command) -> None:
    """Typer shows `<bool>` after every flag, as if it took a value: show nothing instead."""
    params = list(command.params)
    help_option = command.get_help_option(typer.Context(command))
    for param in params + ([help_option] if help_option is not None else []):
        if getattr(param, "is_flag", False):
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        _without_value_placeholders(sub)


def _usage_error(environment: Environment, message: str) -> None:
    if environment.json_errors:
        environment.error(UsageError(message))
        return
    environment.err(f"error: {message}")
    environment.err("Run 'reconcile --help' (or 'reconcile COMMAND --help') for usage.")


def run(argv: list[str], environment: Environment | None = None) -> int:
    """Run the CLI with `argv` (without the program name); return the exit status. Never raises."""
    argv, debug, json_errors = _split_global_options(list(argv))
    environment = environment or Environment()
    environment.debug = environment.debug or debug
    environment.json_errors = environment.json_errors or json_errors
    token = _current_env.set(environment)
    try:
        command = typer.main.get_command(app)
        _without_value_placeholders(command)
        result = command.main(args=argv or ["--help"], prog_name="reconcile", standalone_mode=False)
        return int(result) if isinstance(result, int) else ExitStatus.SUCCESS
    except _click_exceptions.NoArgsIsHelpError as exc:  # `reconcile state`: its help, like --help
        if exc.format_message().strip():
            environment.out(exc.format_message())
        return ExitStatus.SUCCESS
    except _click_exceptions.UsageError as exc:
        _usage_error(environment, exc.format_message())
        return ExitStatus.USAGE
    except _click_exceptions.ClickException as exc:
        environment.error(UsageError(exc.format_message()))
        return ExitStatus.USAGE
    except (typer.Abort, KeyboardInterrupt):
        environment.error(Interrupted("interrupted"))
        return ExitStatus.INTERRUPTED
    except typer.Exit as exc:
        return exc.exit_code
    except ReconcileError as exc:
        if environment.debug:
            environment.err_block(traceback.format_exc().rstrip())
        environment.error(exc)
        return exc.exit_status
    except Exception as exc:  # a bug: say so, and how to get the details
        if environment.debug:
            environment.err_block(traceback.format_exc().rstrip())
        else:
            environment.error(ReconcileError(f"unexpected {type(exc).__name__}: {exc}"))
            environment.err("This is a bug in reconcile; please report it. Run again with --debug for the traceback.")
        return ExitStatus.ERROR
    finally:
        _current_env.reset(token)


def main(args: list[str] | None = None, env: Environment | None = None) -> int:
    """The console entry point: run `args` (default: the process's arguments) and return the exit
    status, for `sys.exit`."""
    status = run(sys.argv[1:] if args is None else list(args), env)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):  # the reader went away (`reconcile plan | head`)
        _quiet_stdout()
    return int(status)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush has nowhere to fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
