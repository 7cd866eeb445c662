"""The command tree: the Typer apps, the options several commands share, and the global options."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from reconcile import __version__
from reconcile.cli.environment import TextOrJson, env
from reconcile.errors import ExitStatus

app = typer.Typer(name="reconcile", add_completion=False, no_args_is_help=True,
                  help="Terraform for Marketo leads: YAML lead files in git → plan → apply through REST Sync Leads "
                       "(or SOAP syncMultipleLeads).")
state_app = typer.Typer(help="Inspect and edit the state file.", no_args_is_help=True)
app.add_typer(state_app, name="state")

LeadsOption = Annotated[Path, typer.Option("--leads", help="Directory of lead files (*.yaml, *.yml).")]
StateOption = Annotated[Path, typer.Option("--state", help="State file.")]
DebugOption = Annotated[bool, typer.Option("--debug", help="Show tracebacks and a redacted HTTP log.")]
MaxFileSizeOption = Annotated[str, typer.Option(
    "--max-file-size", metavar="SIZE", help="Refuse a lead file larger than this (e.g. 256M, 1G, or bytes).")]


def _show_version(value: bool) -> None:
    if value:
        env().out(f"reconcile {__version__}")
        raise typer.Exit(ExitStatus.SUCCESS)


ForeignIdFieldOption = Annotated[Optional[str], typer.Option(
    "--foreign-id-field", help="REST: the custom lead field that carries foreignSysPersonId "
    "(env RECONCILE_FOREIGN_ID_FIELD).", show_default=False)]
ApiOption = Annotated[Optional[str], typer.Option(
    "--api", help="Marketo API: soap or rest (env RECONCILE_API; default: the credentials set).",
    show_default=False)]


@app.callback()
def _root(debug: DebugOption = False,
          error_format: Annotated[TextOrJson, typer.Option(
              "--error-format", help="Errors and warnings on stderr as text, or as one JSON object per line "
              "(file, line, path, message, exit_code).")] = TextOrJson.text,
          version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_show_version,
                                                help="Show the version and exit.")] = False) -> None:
    """Options accepted anywhere on the command line (--debug, --error-format) are read by `run`."""


TargetOption = Annotated[Optional[list[str]], typer.Option(
    "--target", metavar="KEY|FILE", help="Only this lead: a state key (email:jane@example.com, id:1090240) or a "
    "lead file (repeatable).", show_default=False)]
RefreshOption = Annotated[bool, typer.Option(
    "--refresh", help="First read the managed fields of every state lead from Marketo (REST Get Leads, "
    "300 leads per call) and plan against what Marketo holds now.")]


# --- `reconcile ci ...`: the steps of action.yml (hidden; see reconcile/ci) ---

ci_app = typer.Typer(help="GitHub Actions steps (used by action.yml).", no_args_is_help=True)
app.add_typer(ci_app, name="ci", hidden=True)
