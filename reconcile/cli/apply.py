"""`reconcile apply`."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from reconcile.cli.environment import OutputFormat, env
from reconcile.cli.inputs import _notice_if_migrated
from reconcile.cli.plan import _show_plan_for_apply
from reconcile.cli.progress import _confirm, _print_event, _run_apply
from reconcile.cli.refresh import (_check_refresh_options, _nothing_to_apply, _record_refresh, _refresh_for_apply,
                                   _write_refreshed)
from reconcile.cli.rendering import _calls, _render
from reconcile.cli.root import (ApiOption, DebugOption, ForeignIdFieldOption, LeadsOption, MaxFileSizeOption,
                                StateOption, app)
from reconcile.cli.transports import (EMULATOR_FOREIGN_ID_FIELD, _credentials_from_env, _embedded_emulator,
                                      _make_transport, _rest_transport)
from reconcile.errors import ExitStatus, UsageError

# --- commands that talk to Marketo: apply, emulator, force-unlock, state rm ---


@app.command()
def apply(
    plan_file: Annotated[Optional[Path], typer.Argument(help="A plan saved by `plan --out`: apply exactly it.",
                                                        show_default=False)] = None,
    leads: LeadsOption = Path("leads"),
    state: StateOption = Path("reconcile.state.json"),
    auto_approve: Annotated[bool, typer.Option("--auto-approve", help="Apply without asking.")] = False,
    use_emulator: Annotated[bool, typer.Option(
        "--emulator", help="Apply to the built-in Marketo emulator (database under .reconcile/).")] = False,
    endpoint: Annotated[Optional[str], typer.Option(
        "--endpoint", help="SOAP endpoint URL (overrides MARKETO_SOAP_ENDPOINT).", show_default=False)] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Records per call (1..300).")] = 300,
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
    debug: DebugOption = False,
) -> int:
    """Apply the plan: send Sync Leads (REST) or syncMultipleLeads (SOAP) calls and record the lead IDs.

    Credentials come only from the environment. REST: MARKETO_CLIENT_ID, MARKETO_CLIENT_SECRET,
    MARKETO_REST_ENDPOINT (optional MARKETO_IDENTITY_ENDPOINT). SOAP: MARKETO_SOAP_ENDPOINT,
    MARKETO_USER_ID, MARKETO_ENCRYPTION_KEY. Without --api (or RECONCILE_API), the set present decides.
    """
    from reconcile import apply as applier
    from reconcile.inputs.files import parse_size
    from reconcile.store import lock, planfile
    from reconcile.store.instance import instance_of
    from reconcile.store.state import check_instance, check_state_path, finish_interrupted_write

    max_file_bytes = parse_size(max_file_size)
    options = applier.ApplyOptions(batch_size=batch_size, concurrency=concurrency, dedup_enabled=not no_dedup,
                                   forget_orphans=forget_orphans)
    _check_refresh_options(refresh, refresh_only, plan_file)
    saved = planfile.load(plan_file) if plan_file is not None else None
    if saved is not None:
        leads, state = Path(saved.leads_dir), Path(saved.state_path)
    if use_emulator and endpoint:
        raise UsageError("--emulator and --endpoint are mutually exclusive")
    check_state_path(state)
    chosen, foreign_id_field = _api_for_apply(api, endpoint, use_emulator, foreign_id_field)
    with contextlib.ExitStack() as stack:
        credentials = (stack.enter_context(_embedded_emulator(state, chosen)) if use_emulator
                       else _credentials_from_env(endpoint, chosen))
        held = lock.acquire(state, "apply", on_warning=lambda text: env().warn(text))
        stack.callback(held.release)
        stack.callback(_notice_if_migrated(state))
        finish_interrupted_write(state)
        current, _ = applier.recover_state(state, on_event=_print_event)
        current = check_instance(current, instance_of(credentials.endpoint), state)
        return _plan_and_send(stack, _ApplyRequest(
            leads=leads, state=state, saved=saved, options=options, api=chosen, foreign_id_field=foreign_id_field,
            refresh=refresh, refresh_only=refresh_only, auto_approve=auto_approve, max_file_bytes=max_file_bytes,
            use_emulator=use_emulator), credentials, current)


@dataclass(frozen=True)
class _ApplyRequest:
    """What the apply command was asked to do, once its options are checked."""

    leads: Path
    state: Path
    saved: Any
    options: Any
    api: str
    foreign_id_field: str | None
    refresh: bool
    refresh_only: bool
    auto_approve: bool
    max_file_bytes: int
    use_emulator: bool


def _plan_and_send(stack, r: _ApplyRequest, credentials, current) -> int:
    """Apply under the lock: refresh if asked, plan, show, confirm, send, report."""
    from reconcile.apply import PlannedCalls
    from reconcile.core import render
    from reconcile.core.declared_once import check_declared_once
    from reconcile.core.planner import plan as make_plan
    from reconcile.inputs.cache import cache_dir_for
    from reconcile.inputs.validate import load_desired
    from reconcile.remote.rest.config import REST
    from reconcile.store import planfile

    drift, reader = (_refresh_for_apply(stack, r.api, credentials, current, r.state, r.options, r.use_emulator)
                     if r.refresh or r.refresh_only else (None, None))
    if r.refresh_only:
        return _record_refresh(drift, current, r.state, r.auto_approve, credentials.endpoint)
    # The files' parses are shared with plan's: an apply after a plan of the same files parses none.
    desired = load_desired(r.leads, cache_dir=cache_dir_for(r.state), max_file_bytes=r.max_file_bytes)
    if r.saved is not None:
        planfile.check_fresh(r.saved, desired=desired, state=current, state_path=r.state)
    check_declared_once(desired.leads, current if drift is None else drift.refreshed)
    plan = make_plan(desired.leads, current if drift is None else drift.refreshed, batch_size=r.options.batch_size)
    has_work = plan.has_changes or (r.options.forget_orphans and plan.summary["orphaned"])
    if not has_work:
        env().out(_render(plan, OutputFormat.text, _calls(plan, r.api, r.options.dedup_enabled,
                                                          r.foreign_id_field), drift))
        return _nothing_to_apply(drift, current, r.state, r.auto_approve, credentials.endpoint)
    if r.api == REST:
        transport = _rest_transport(credentials, desired, plan, r.state, r.options, r.foreign_id_field, reader)
    else:  # SOAP writes: one rate window with the refresh's reads, as in Marketo
        transport = _make_transport(credentials, r.options.concurrency,
                                    reader.http.rate_limiter if reader is not None else None)
    stack.callback(transport.close)
    calls = PlannedCalls.of(plan, transport, r.options)
    calls.start_building(transport)  # envelopes are built while the plan is printed and confirmed
    shown = render.Calls("Sync Leads", len(calls.batches)) if r.api == REST else render.Calls()
    _show_plan_for_apply(r, plan, desired, shown, drift)
    if r.saved is None and not r.auto_approve:
        _confirm(credentials.endpoint)
    if drift is not None and drift.has_drift:
        current = _write_refreshed(drift, current, r.state)
    report = _run_apply(plan, current, r.state, transport, r.options, calls)
    env().out(report.summary("complete"))
    return ExitStatus.SUCCESS


def _api_for_apply(api: str | None, endpoint: str | None, use_emulator: bool,
                   foreign_id_field: str | None) -> tuple[str, str | None]:
    """The API apply talks to, and the REST field that carries foreign IDs (if any)."""
    from reconcile.remote.rest.config import ENV_FOREIGN_ID_FIELD, REST, select_api

    chosen = select_api(api, env().environ, emulator=use_emulator)
    if chosen == REST and endpoint:
        raise UsageError("--endpoint is the SOAP endpoint; the REST API reads MARKETO_REST_ENDPOINT")
    foreign_id_field = foreign_id_field or (env().environ.get(ENV_FOREIGN_ID_FIELD) or "").strip() or None
    if use_emulator and chosen == REST and not foreign_id_field:
        foreign_id_field = EMULATOR_FOREIGN_ID_FIELD  # so that the example leads apply out of the box
    return chosen, foreign_id_field
