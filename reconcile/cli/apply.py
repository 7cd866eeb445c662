"""`reconcile apply`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from reconcile.cli.environment import env
from reconcile.cli.root import (ApiOption, DebugOption, ForeignIdFieldOption, LeadsOption, MaxFileSizeOption,
                                StateOption, TargetOption, app)
from reconcile.errors import ExitStatus

@app.command()
def apply(
    plan_file: Annotated[Optional[Path], typer.Argument(help="A plan saved by `plan --out`: apply exactly it.",
                                                        show_default=False)] = None,
    leads: LeadsOption = Path("leads"),
    state: StateOption = Path("reconcile.state.json"),
    auto_approve: Annotated[bool, typer.Option("--auto-approve", help="Apply without asking.")] = False,
    use_emulator: Annotated[bool, typer.Option(
        "--emulator", help="Apply to the built-in Marketo emulator (database in the user's cache directory).")] = False,
    endpoint: Annotated[Optional[str], typer.Option(
        "--endpoint", help="SOAP endpoint URL (overrides MARKETO_SOAP_ENDPOINT).", show_default=False)] = None,
    batch_size: Annotated[Optional[int], typer.Option(
        "--batch-size", help="Records per call (default: as many as the API takes).", show_default=False)] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", help="Calls in flight at once (1..10).")] = 4,
    no_dedup: Annotated[bool, typer.Option("--no-dedup", help="Send dedupEnabled=false: Marketo creates a new "
                                           "lead even when one with the email exists.")] = False,
    forget_orphans: Annotated[bool, typer.Option("--forget-orphans", help="Drop leads no longer declared "
                                                 "from the state (Marketo keeps them).")] = False,
    max_file_size: MaxFileSizeOption = "256M",
    api: ApiOption = None,
    foreign_id_field: ForeignIdFieldOption = None,
    refresh: Annotated[bool, typer.Option(
        "--refresh", help="First read Marketo (as plan --refresh does): values changed in Marketo are "
        "restored to the declared ones.")] = False,
    refresh_only: Annotated[bool, typer.Option(
        "--refresh-only", help="Only record Marketo's current values of the managed fields in the state; "
        "nothing is sent to Marketo.")] = False,
    target: TargetOption = None,
    allow_delete: Annotated[bool, typer.Option(
        "--allow-delete", help="Delete leads (tombstones, --delete-orphans) without asking again.")] = False,
    delete_orphans: Annotated[bool, typer.Option(
        "--delete-orphans", help="Delete from Marketo the leads the state records that no lead file "
        "declares, at most --max-deletes of them.")] = False,
    max_deletes: Annotated[int, typer.Option(
        "--max-deletes", min=0, help="The most orphans --delete-orphans may delete (0: refuse and list them).")] = 0,
    debug: DebugOption = False,
) -> int:
    """Apply the plan: send Sync Leads (REST) or syncMultipleLeads (SOAP) calls and record the lead IDs.

    Credentials come only from the environment. REST: MARKETO_CLIENT_ID, MARKETO_CLIENT_SECRET,
    MARKETO_REST_ENDPOINT (optional MARKETO_IDENTITY_ENDPOINT). SOAP: MARKETO_SOAP_ENDPOINT,
    MARKETO_USER_ID, MARKETO_ENCRYPTION_KEY. Without --api (or RECONCILE_API), the set present decides.
    """
    from reconcile.app.apply import run_apply
    from reconcile.app.operation import Operation
    from reconcile.cli.events import ApplyDisplay, session_for
    from reconcile import apply as applier
    from reconcile.core.gcpause import gc_paused
    from reconcile.inputs.files import parse_size
    from reconcile.remote import registry

    max_file_bytes = parse_size(max_file_size)
    largest = registry.largest_call()
    options = applier.ApplyOptions(batch_size=largest if batch_size is None else batch_size, max_batch_size=largest,
                                   concurrency=concurrency, dedup_enabled=not no_dedup, forget_orphans=forget_orphans)
    operation = Operation(leads=leads, state=state, api=api, refresh=refresh, refresh_only=refresh_only,
                          color=env().color, max_file_bytes=max_file_bytes, plan_file=plan_file,
                          auto_approve=auto_approve, use_emulator=use_emulator, endpoint=endpoint,
                          foreign_id_field=foreign_id_field, batch_size=batch_size, targets=tuple(target or ()),
                          allow_delete=allow_delete, delete_orphans=delete_orphans, max_deletes=max_deletes,
                          apply=options)
    with ApplyDisplay(env()) as display, gc_paused():  # once per command: see reconcile/core/gcpause.py
        run_apply(session_for(env(), display), operation)
    return ExitStatus.SUCCESS
