"""`reconcile fields` and `reconcile import`."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Optional

import typer

from reconcile.cli.environment import Environment, env
from reconcile.cli.root import ApiOption, DebugOption, LeadsOption, MaxFileSizeOption, StateOption, app
from reconcile.core.safetext import visible
from reconcile.errors import ExitStatus, UsageError

@app.command("fields")
def fields_command(
    refresh: Annotated[bool, typer.Option("--refresh", help="Ask Marketo again (one Describe call).")] = False,
    state: StateOption = Path("reconcile.state.json"),
    use_emulator: Annotated[bool, typer.Option(
        "--emulator", help="Describe the built-in emulator's REST face.")] = False,
    api: ApiOption = None,
    debug: DebugOption = False,
) -> int:
    """Show the instance's lead fields (REST Describe), kept in the user's cache directory."""
    from reconcile.app.inputs import _cache_dir, _rest_instance
    from reconcile.app.transports import _credentials_from_env, _embedded_emulator, _rest_catalog, _rest_client
    from reconcile.cli.events import session_for
    from reconcile.inputs.fields import load_catalog
    from reconcile.remote.registry import select_api
    from reconcile.remote.rest.config import REST

    if select_api(api or REST, env().environ) != REST:
        raise UsageError("`reconcile fields` reads Marketo's REST Describe: it needs --api rest and the REST "
                         "credentials (SOAP has no describe call)")
    catalog = None if refresh or use_emulator else load_catalog(_cache_dir(state, env().environ), _rest_instance(env().environ))
    if catalog is None:
        session = session_for(env())
        with contextlib.ExitStack() as stack:
            credentials = (stack.enter_context(_embedded_emulator(session, state, REST)) if use_emulator
                           else _credentials_from_env(session, None, REST))
            client = _rest_client(session, credentials, 1)
            stack.callback(client.close)
            catalog = _rest_catalog(session, client, state, refresh=True)
    env().out(_fields_table(catalog))
    return ExitStatus.SUCCESS


def _fields_table(catalog) -> str:
    rows = [("LEAD FILE (SOAP)", "REST", "TYPE", "LENGTH", "")]
    for name in sorted(catalog.fields, key=str.lower):
        spec = catalog.fields[name]
        rows.append((name, spec.rest_name or "-", spec.data_type or "-", str(spec.length or "-"),
                     "read-only" if spec.read_only else ""))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths + [0])).rstrip() for row in rows]
    lines.append(f"{len(catalog)} fields of {catalog.instance or 'the instance'}, described at "
                 f"{catalog.fetched_at or 'an unknown time'} (cached in {catalog.source}).")
    return "\n".join(lines)


@app.command("import")
def import_command(
    out: Annotated[Path, typer.Option("--out", help="The lead file to write (inside --leads).")],
    lead_id: Annotated[Optional[list[str]], typer.Option(
        "--id", metavar="ID", help="A Marketo lead ID (repeatable).")] = None,
    email: Annotated[Optional[list[str]], typer.Option(
        "--email", metavar="EMAIL", help="A lead's email (repeatable).")] = None,
    ids_from: Annotated[Optional[Path], typer.Option(
        "--ids-from", help="A file of lead IDs, one a line (# comments).", show_default=False)] = None,
    fields: Annotated[Optional[str], typer.Option(
        "--fields", help="Fields to import, comma-separated (default: the standard person fields).",
        show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace --out if it exists.")] = False,
    with_lists: Annotated[bool, typer.Option("--lists", help="Also write the static lists each lead is on.")] = False,
    leads: LeadsOption = Path("leads"),
    state: StateOption = Path("reconcile.state.json"),
    use_emulator: Annotated[bool, typer.Option(
        "--emulator", help="Import from the built-in emulator (database in the user's cache directory).")] = False,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=10, help="Calls in flight at once.")] = 4,
    max_file_size: MaxFileSizeOption = "256M",
    api: ApiOption = None,
    debug: DebugOption = False,
) -> int:
    """Adopt existing Marketo leads into a lead file and the state, so the next plan is empty.

    Reads through REST Get Leads (credentials as for `apply --api rest`)."""
    from reconcile.app.importing import ImportOperation, run_import
    from reconcile.cli.events import session_for
    from reconcile.adopt import importer
    from reconcile.inputs.files import parse_size

    asked_fields = [name.strip() for name in fields.split(",") if name.strip()] if fields is not None else None
    operation = ImportOperation(out=out, lead_ids=tuple(lead_id or ()), emails=tuple(email or ()), ids_from=ids_from,
                                fields=tuple(asked_fields) if asked_fields is not None else None, force=force,
                                leads=leads, state=state, api=api, use_emulator=use_emulator,
                                concurrency=concurrency, max_file_bytes=parse_size(max_file_size), lists=with_lists)
    result = run_import(session_for(env(), also=_read_event_printer(env())), operation)
    problems = result.adopted.problems
    for line in (*problems[:20], *([f"{len(problems) - 20} more values left out"] if len(problems) > 20 else []),
                 *importer.missing_lines(result.adopted)):
        env().warn(line)
    entries = result.adopted.entries
    env().out(visible(f"Imported {len(entries)} lead(s) into {out} and recorded them in {state} "
                      f"({result.calls} Get Leads call(s)); `reconcile plan` now finds nothing to do for them."))
    if result.dropped:
        env().warn(f"{result.dropped} lead(s) the replaced {out} declared are no longer declared: plan shows them "
                   "as orphaned")
    return ExitStatus.SUCCESS


def _read_event_printer(environment: Environment):
    """Progress of an import's reads; called from its worker threads, outside this context."""
    from reconcile.adopt.reader import CallAnswered, CallRetrying

    def show(event) -> None:
        if isinstance(event, CallRetrying):
            environment.err(f"read {event.call.number}: retrying in {event.delay:.1f} s after {event.reason}")
        elif isinstance(event, CallAnswered) and event.calls > 1:
            environment.err(f"read {event.answered}/{event.calls}: {event.found} lead(s) by "
                            f"{event.call.filter_type}")

    return show
