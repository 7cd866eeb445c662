"""`reconcile validate` and `reconcile plan`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from reconcile.cli.environment import OutputFormat, TextOrJson, env
from reconcile.cli.root import (ApiOption, DebugOption, LeadsOption, MaxFileSizeOption, RefreshOption, StateOption,
                                TargetOption, app)
from reconcile.errors import ExitStatus, UsageError


@app.command()
def validate(leads: LeadsOption = Path("leads"), max_file_size: MaxFileSizeOption = "256M",
             format: Annotated[TextOrJson, typer.Option(
                 "--format", help="text, or json: each error as a JSON object on its own line on stderr, and "
                 "when the files are valid a JSON summary on stdout.")] = TextOrJson.text,
             debug: DebugOption = False) -> int:
    """Check the lead files against the schema and the key rules."""
    from reconcile.app.inputs import _check_fields, skipped_files_warning
    from reconcile.core.gcpause import gc_paused
    from reconcile.inputs.files import parse_size
    from reconcile.inputs.validate import load_desired, summary_line

    if format is TextOrJson.json:
        env().json_errors = True
    _warn(skipped_files_warning(leads))
    with gc_paused():  # once per command: see reconcile/core/gcpause.py
        desired = load_desired(leads, max_file_bytes=parse_size(max_file_size))
    _check_fields(desired, Path("reconcile.state.json"), env().environ)
    if format is TextOrJson.json:
        env().out(json.dumps({"valid": True, "leads": len(desired.leads), "files": len(desired.files)}))
    else:
        env().out(summary_line(desired))
    return ExitStatus.SUCCESS


@app.command("plan")
def plan_command(
    leads: LeadsOption = Path("leads"),
    state: StateOption = Path("reconcile.state.json"),
    out: Annotated[Optional[Path], typer.Option("--out", help="Save the plan for `apply PLAN_FILE`.")] = None,
    format: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = OutputFormat.text,
    detailed_exitcode: Annotated[bool, typer.Option("--detailed-exitcode",
                                                    help="Exit 2 when apply has something to do, 0 when not.")] = False,
    max_file_size: MaxFileSizeOption = "256M",
    api: ApiOption = None,
    refresh: RefreshOption = False,
    compact: Annotated[bool, typer.Option("--compact", help="One line per action, for people and logs.")] = False,
    full: Annotated[bool, typer.Option("--full", help="Show every action of a large plan (above 1,000 actions the "
                                       "text plan shows the counts per file and a sample).")] = False,
    target: TargetOption = None,
    debug: DebugOption = False,
) -> int:
    """Show what apply would change in Marketo (with --refresh, against what Marketo holds now)."""
    from reconcile.app.inputs import other_instance_warning, skipped_files_warning
    from reconcile.app.operation import Operation
    from reconcile.app.plan import _plan_and_render
    from reconcile.cli.events import session_for
    from reconcile.core.gcpause import gc_paused
    from reconcile.inputs.files import parse_size
    from reconcile.remote.registry import select_api

    if format is OutputFormat.json:
        env().json_errors = True
    chosen = select_api(api, env().environ)
    if compact and format is not OutputFormat.text:
        raise UsageError(f"--compact is a text format; it does not combine with --format {format.value}")
    _warn(skipped_files_warning(leads))
    _warn(other_instance_warning(state, chosen, env().environ))

    operation = Operation(leads=leads, state=state, api=chosen, refresh=refresh, format=format.value,
                          compact=compact, full=full, color=env().color, max_file_bytes=parse_size(max_file_size), out=out,
                          targets=tuple(target or ()))
    with gc_paused():  # once per command: see reconcile/core/gcpause.py
        result = _plan_and_render(session_for(env()), operation)
    if detailed_exitcode and (result.has_changes or result.has_drift):
        return ExitStatus.CHANGES_PRESENT
    return ExitStatus.SUCCESS


def _warn(warning: str | None) -> None:
    if warning:
        env().warn(warning)
