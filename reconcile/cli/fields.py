"""`reconcile fields` and `reconcile import`."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Optional

import typer

from reconcile.cli.environment import Environment, env
from reconcile.cli.inputs import _notice_if_migrated, _rest_instance
from reconcile.cli.progress import _print_event
from reconcile.cli.root import ApiOption, DebugOption, LeadsOption, MaxFileSizeOption, StateOption, app
from reconcile.cli.transports import _credentials_from_env, _embedded_emulator, _rest_catalog, _rest_client
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
    """Show the instance's lead fields (REST Describe), cached under .reconcile/ beside the state."""
    from reconcile.inputs.fields import load_catalog
    from reconcile.remote.rest.config import REST, select_api

    if select_api(api or REST, env().environ) != REST:
        raise UsageError("`reconcile fields` reads Marketo's REST Describe: it needs --api rest and the REST "
                         "credentials (SOAP has no describe call)")
    catalog = None if refresh or use_emulator else load_catalog(state, _rest_instance())
    if catalog is None:
        with contextlib.ExitStack() as stack:
            credentials = (stack.enter_context(_embedded_emulator(state, REST)) if use_emulator
                           else _credentials_from_env(None, REST))
            client = _rest_client(credentials, 1)
            stack.callback(client.close)
            catalog = _rest_catalog(client, state, refresh=True)
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
    leads: LeadsOption = Path("leads"),
    state: StateOption = Path("reconcile.state.json"),
    use_emulator: Annotated[bool, typer.Option(
        "--emulator", help="Import from the built-in emulator (database under .reconcile/).")] = False,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=10, help="Calls in flight at once.")] = 4,
    max_file_size: MaxFileSizeOption = "256M",
    api: ApiOption = None,
    debug: DebugOption = False,
) -> int:
    """Adopt existing Marketo leads: write them as a lead file keyed by leadId and record them in the state,
    so the next plan is empty. Reads through REST Get Leads (credentials as for `apply --api rest`)."""
    from reconcile import adopt
    from reconcile import apply as applier
    from reconcile.adopt import importer
    from reconcile.inputs.files import parse_size
    from reconcile.inputs.validate import load_desired
    from reconcile.store import lock
    from reconcile.store.instance import instance_of
    from reconcile.store.state import check_instance, check_state_path, finish_interrupted_write

    _import_api(api, use_emulator)
    request = adopt.build_request(lead_id or [], email or [], ids_from)
    asked_fields = [name.strip() for name in fields.split(",") if name.strip()] if fields is not None else None
    importer.check_destination(out, leads, force)
    check_state_path(state)
    with contextlib.ExitStack() as stack:
        credentials = (stack.enter_context(_embedded_emulator(state, "rest")) if use_emulator
                       else _credentials_from_env(None, "rest"))
        held = lock.acquire(state, "import", on_warning=lambda text: env().warn(text))
        stack.callback(held.release)
        stack.callback(_notice_if_migrated(state))
        finish_interrupted_write(state)
        current, _ = applier.recover_state(state, on_event=_print_event)
        instance = instance_of(credentials.endpoint)
        current = check_instance(current, instance, state)
        desired = load_desired(leads, max_file_bytes=parse_size(max_file_size))
        client = _rest_client(credentials, concurrency)
        stack.callback(client.close)
        settings = importer.ImportSettings(request=request, fields=asked_fields, out=out, state_path=state,
                                           instance=instance, concurrency=concurrency)
        result = importer.run_import(client, lambda: _rest_catalog(client, state), settings, desired.leads, current,
                                     on_event=_read_event_printer(env()))
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


def _import_api(api: str | None, use_emulator: bool) -> None:
    from reconcile.remote.rest.config import ENV_API, REST, select_api

    explicit = api or (env().environ.get(ENV_API) or "").strip() or None
    chosen = select_api(api, env().environ) if explicit or not use_emulator else REST
    if chosen != REST:
        raise UsageError("import reads leads through Marketo's REST API (Get Leads); no live Marketo serves reads "
                         "over SOAP. Use --api rest with MARKETO_REST_ENDPOINT, MARKETO_CLIENT_ID and "
                         "MARKETO_CLIENT_SECRET set (or --emulator)")


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
